package cluster_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/clustertest"
)

func startCounters(t *testing.T, n int, adjust func(i int, cfg *cluster.Config)) ([]*cluster.Node, []*counterFSM) {
	t.Helper()
	fsms := make([]*counterFSM, n)
	nodes := clustertest.StartClusterWith(t, n, func(i int) raft.FSM {
		fsms[i] = &counterFSM{}
		return fsms[i]
	}, adjust)
	return nodes, fsms
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func indexOf(nodes []*cluster.Node, n *cluster.Node) int {
	for i := range nodes {
		if nodes[i] == n {
			return i
		}
	}
	return -1
}

func TestAcknowledgedWriteReadableOnEveryNode(t *testing.T) {
	nodes, fsms := startCounters(t, 3, nil)
	leader := clustertest.Leader(t, nodes, 5*time.Second)
	ctx := ctxT(t, 10*time.Second)
	var last cluster.Applied
	for i := 1; i <= 10; i++ {
		a, err := leader.Apply(ctx, []byte("inc"))
		if err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
		if got, want := string(a.Response), strconv.Itoa(i); got != want {
			t.Fatalf("response of write %d: got %q, want %q", i, got, want)
		}
		last = a
	}
	for i, n := range nodes {
		if err := n.WaitApplied(ctx, last.Index); err != nil {
			t.Fatalf("node %d wait applied: %v", i, err)
		}
		if got := fsms[i].Count(); got != 10 {
			t.Errorf("node %d count after applying index %d: got %d, want 10", i, last.Index, got)
		}
		if got := n.AppliedIndex(); got < last.Index {
			t.Errorf("node %d AppliedIndex: got %d, want >= %d", i, got, last.Index)
		}
	}
}

func TestApplyOnFollowerAndFSMErrors(t *testing.T) {
	nodes, _ := startCounters(t, 3, nil)
	leader := clustertest.Leader(t, nodes, 5*time.Second)
	ctx := ctxT(t, 10*time.Second)
	follower := nodes[(indexOf(nodes, leader)+1)%3]

	_, err := follower.Apply(ctx, []byte("inc"))
	if !errors.Is(err, cluster.ErrNotLeader) {
		t.Fatalf("apply on follower: got %v, want ErrNotLeader", err)
	}
	var nle *cluster.NotLeaderError
	if !errors.As(err, &nle) || nle.LeaderID != leader.ID() || nle.LeaderAddr != leader.RaftAddr() {
		t.Fatalf("NotLeaderError: got %+v, want leader %s at %s", nle, leader.ID(), leader.RaftAddr())
	}

	a, err := leader.Apply(ctx, []byte("fail"))
	if !errors.Is(err, errFail) {
		t.Fatalf("apply fail command: got %v, want the FSM's error", err)
	}
	if a.Index == 0 {
		t.Errorf("FSM error: got index 0, want the entry's index")
	}

	if _, err := follower.ReadIndex(ctx); !errors.Is(err, cluster.ErrNotLeader) {
		t.Errorf("ReadIndex on follower: got %v, want ErrNotLeader", err)
	}
	w, err := leader.Apply(ctx, []byte("inc"))
	if err != nil {
		t.Fatal(err)
	}
	ri, err := leader.ReadIndex(ctx)
	if err != nil {
		t.Fatalf("ReadIndex on leader: %v", err)
	}
	if ri < w.Index {
		t.Errorf("ReadIndex: got %d, want >= last acknowledged write %d", ri, w.Index)
	}

	expired, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-expired.Done()
	if _, err := leader.Apply(expired, []byte("inc")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("apply with expired ctx: got %v, want DeadlineExceeded", err)
	}
}

func TestLeaderFailoverKeepsAcknowledgedWrites(t *testing.T) {
	nodes, fsms := startCounters(t, 3, nil)
	leader := clustertest.Leader(t, nodes, 5*time.Second)
	ctx := ctxT(t, 20*time.Second)
	const writes = 20
	for i := 0; i < writes; i++ {
		if _, err := leader.Apply(ctx, []byte("inc")); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
	old := indexOf(nodes, leader)
	start := time.Now()
	if err := leader.Shutdown(); err != nil {
		t.Fatalf("shutdown leader: %v", err)
	}
	rest := append(append([]*cluster.Node(nil), nodes[:old]...), nodes[old+1:]...)
	restFSM := append(append([]*counterFSM(nil), fsms[:old]...), fsms[old+1:]...)
	timeouts := clustertest.Timeouts()
	// A follower notices after HeartbeatTimeout (up to 2x, randomised) and
	// then needs an election round; allow generous slack for -race.
	budget := 2*timeouts.HeartbeatTimeout + 2*timeouts.ElectionTimeout + 2*time.Second
	newLeader := clustertest.Leader(t, rest, budget)
	t.Logf("new leader %s after %s", newLeader.ID(), time.Since(start))

	a, err := newLeader.Apply(ctx, []byte("inc"))
	if err != nil {
		t.Fatalf("apply on new leader: %v", err)
	}
	if got, want := string(a.Response), strconv.Itoa(writes+1); got != want {
		t.Fatalf("count after failover: got %s, want %s (an acknowledged write was lost)", got, want)
	}
	for i, n := range rest {
		if err := n.WaitApplied(ctx, a.Index); err != nil {
			t.Fatal(err)
		}
		if got := restFSM[i].Count(); got != writes+1 {
			t.Errorf("survivor %s count: got %d, want %d", n.ID(), got, writes+1)
		}
	}
}

func TestRestartedNodeCatchesUpFromDataDir(t *testing.T) {
	nodes, _ := startCounters(t, 3, nil)
	leader := clustertest.Leader(t, nodes, 5*time.Second)
	ctx := ctxT(t, 20*time.Second)
	for i := 0; i < 5; i++ {
		if _, err := leader.Apply(ctx, []byte("inc")); err != nil {
			t.Fatal(err)
		}
	}
	fi := (indexOf(nodes, leader) + 1) % 3
	follower := nodes[fi]
	cfg := follower.Config()
	if err := follower.Shutdown(); err != nil {
		t.Fatal(err)
	}
	var last cluster.Applied
	for i := 0; i < 5; i++ {
		a, err := leader.Apply(ctx, []byte("inc"))
		if err != nil {
			t.Fatal(err)
		}
		last = a
	}

	id, err := cluster.LoadIdentity(cfg.DataDir)
	if err != nil || id.NodeID != cfg.NodeID || id.Region != cfg.Region {
		t.Fatalf("LoadIdentity: got %+v, %v; want %s/%s", id, err, cfg.NodeID, cfg.Region)
	}
	// Restart with no id or region: they come from node.json.
	fsm := &counterFSM{}
	restarted, err := cluster.Open(cluster.Config{
		DataDir: cfg.DataDir, RaftBind: cfg.RaftAdvertise, TLS: cfg.TLS, Timeouts: cfg.Timeouts, Logger: clustertest.Logger(),
	}, fsm)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { _ = restarted.Shutdown() })
	if restarted.ID() != cfg.NodeID {
		t.Errorf("restarted id: got %q, want %q", restarted.ID(), cfg.NodeID)
	}
	if err := restarted.Bootstrap(); err != nil {
		t.Errorf("Bootstrap on a restarted node: got %v, want nil (idempotent)", err)
	}
	if err := restarted.WaitApplied(ctx, last.Index); err != nil {
		t.Fatalf("restarted node catching up: %v", err)
	}
	if got := fsm.Count(); got != 10 {
		t.Errorf("restarted node count: got %d, want 10", got)
	}

	// A different id for the same data dir is refused.
	_, err = cluster.Open(cluster.Config{NodeID: "other", DataDir: cfg.DataDir, RaftBind: "127.0.0.1:0"}, &counterFSM{})
	if !errors.Is(err, cluster.ErrInvalidConfig) {
		t.Errorf("open with conflicting id: got %v, want ErrInvalidConfig", err)
	}
}

func TestFarBehindNodeCatchesUpThroughSnapshot(t *testing.T) {
	small := func(_ int, cfg *cluster.Config) {
		cfg.SnapshotThreshold = 32
		cfg.TrailingLogs = 8
		cfg.SnapshotInterval = 20 * time.Millisecond
	}
	nodes, fsms := startCounters(t, 3, small)
	leader := clustertest.Leader(t, nodes, 5*time.Second)
	ctx := ctxT(t, 30*time.Second)
	const writes = 200
	var last cluster.Applied
	// On a loaded machine the leader may lose its lease during the writes
	// (the tests' election timeouts are short): write on through the new
	// leader, counting the writes whose outcome is unknown.
	unknown := 0
	for done := 0; done < writes; {
		a, err := leader.Apply(ctx, []byte("inc"))
		switch {
		case err == nil:
			last = a
			done++
		case ctx.Err() == nil && (errors.Is(err, cluster.ErrOutcomeUnknown) || errors.Is(err, cluster.ErrNotLeader)):
			if errors.Is(err, cluster.ErrOutcomeUnknown) {
				unknown++
			}
			leader = clustertest.Leader(t, nodes, 5*time.Second)
		default:
			t.Fatal(err)
		}
	}
	clustertest.WaitFor(t, 10*time.Second, "leader snapshot and log compaction", func() bool {
		idx, _ := strconv.ParseUint(leader.Raft().Stats()["last_snapshot_index"], 10, 64)
		return idx > 100
	})

	cfg := clustertest.NodeConfig(t, 3)
	small(3, &cfg)
	fsm := &counterFSM{}
	late, err := cluster.Open(cfg, fsm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = late.Shutdown() })
	if err := clustertest.AddVoter(ctx, nodes, late.ID(), late.RaftAddr()); err != nil {
		t.Fatal(err)
	}
	if err := late.WaitApplied(ctx, last.Index); err != nil {
		t.Fatal(err)
	}
	want := fsms[indexOf(nodes, leader)].Count()
	if got := fsm.Count(); got != want || got < writes || got > writes+uint64(unknown) {
		t.Errorf("late node count: got %d, want the leader's %d (%d writes, %d of unknown outcome)", got, want, writes, unknown)
	}
	if got := fsm.restores.Load(); got < 1 {
		t.Errorf("late node snapshot restores: got %d, want >= 1 (should catch up via InstallSnapshot)", got)
	}
}
