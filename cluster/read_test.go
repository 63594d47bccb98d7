package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/clustertest"
)

func TestStaleReadBoundedByMaxStaleness(t *testing.T) {
	nodes, _ := startCounters(t, 3, nil)
	leader := clustertest.Leader(t, nodes, 5*time.Second)
	ctx := ctxT(t, 10*time.Second)
	w, err := leader.Apply(ctx, []byte("inc"))
	if err != nil {
		t.Fatal(err)
	}
	follower := nodes[(indexOf(nodes, leader)+1)%3]
	idx, err := follower.ReadBarrier(ctx, cluster.ReadOptions{Consistency: cluster.ConsistencyDefault, MinIndex: w.Index})
	if err != nil || idx < w.Index {
		t.Fatalf("default read with min_index: got %d, %v; want >= %d", idx, err, w.Index)
	}
	// Stop the other two nodes: the follower loses its leader.
	for _, n := range nodes {
		if n != follower {
			_ = n.Shutdown()
		}
	}
	maxStale := 2 * clustertest.Timeouts().HeartbeatTimeout
	clustertest.WaitFor(t, 5*time.Second, "follower contact older than max staleness", func() bool {
		return follower.LastContact() > maxStale
	})
	_, err = follower.ReadBarrier(ctx, cluster.ReadOptions{Consistency: cluster.ConsistencyStale, MaxStaleness: maxStale})
	var se *cluster.StaleError
	if !errors.As(err, &se) || se.Max != maxStale || se.Lag <= maxStale {
		t.Fatalf("bounded stale read without leader: got %v, want *StaleError with lag > %s", err, maxStale)
	}
	if idx, err := follower.ReadBarrier(ctx, cluster.ReadOptions{Consistency: cluster.ConsistencyStale}); err != nil || idx < w.Index {
		t.Errorf("unbounded stale read: got %d, %v; want local index >= %d", idx, err, w.Index)
	}
}

// With no quorum a write and every consistent read end with an
// *UnavailableError saying why, bounded by the node's RequestTimeout (the
// caller's deadline is a minute away) or by the caller's deadline when it
// is shorter: not a hang, and not a bare deadline.
func TestNoQuorumIsAnAnswer(t *testing.T) {
	nodes, _ := startCounters(t, 3, func(_ int, cfg *cluster.Config) { cfg.RequestTimeout = 2 * time.Second })
	leader := clustertest.Leader(t, nodes, 5*time.Second)
	ctx := ctxT(t, time.Minute)
	if _, err := leader.Apply(ctx, []byte("inc")); err != nil {
		t.Fatal(err)
	}
	survivor := nodes[(indexOf(nodes, leader)+1)%3]
	for _, n := range nodes {
		if n != survivor {
			_ = n.Shutdown()
		}
	}
	check := func(what, op string, err error) {
		t.Helper()
		var ue *cluster.UnavailableError
		if !errors.As(err, &ue) || !errors.Is(err, cluster.ErrUnavailable) {
			t.Fatalf("%s without quorum: got %v; want *UnavailableError", what, err)
		}
		if ue.Op != op || ue.Voters != 3 || ue.Reachable != 1 || len(ue.Down) != 2 {
			t.Errorf("%s: got op %q, %d of %d voters reachable, down %v; want %s, 1 of 3, two down", what, ue.Op, ue.Reachable, ue.Voters, ue.Down, op)
		}
		msg := err.Error()
		if !strings.Contains(msg, "1 of 3 voters reachable") || ue.Leader == "" && !strings.Contains(msg, "no leader since") {
			t.Errorf("%s: message %q; want it to name the leader or since when there is none, and 1 of 3 voters reachable", what, msg)
		}
		if code := connect.CodeOf(cluster.ToConnectError(err)); code != connect.CodeUnavailable {
			t.Errorf("%s: Connect code %v; want unavailable", what, code)
		}
	}
	_, err := survivor.Propose(ctx, []byte("inc"))
	t.Logf("write without quorum: %v", err)
	check("write", "write", err)
	_, err = survivor.ReadBarrier(ctx, cluster.ReadOptions{Consistency: cluster.ConsistencyLinearizable})
	check("linearizable read", "read", err)
	_, err = survivor.ReadBarrier(ctx, cluster.ReadOptions{Consistency: cluster.ConsistencyDefault})
	check("default read", "read", err)
	if lead, _ := survivor.Leader(); lead == "" {
		var ue *cluster.UnavailableError
		_, err = survivor.Propose(ctx, []byte("inc"))
		if errors.As(err, &ue) && (ue.Leader != "" || ue.NoLeaderSince.IsZero()) {
			t.Errorf("write with no leader known: leader %q, no leader since %v; want none, and since when", ue.Leader, ue.NoLeaderSince)
		}
	}
	// A caller's deadline shorter than RequestTimeout bounds it too, and
	// the answer is still why, not a bare deadline.
	short, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err = survivor.ReadBarrier(short, cluster.ReadOptions{Consistency: cluster.ConsistencyLinearizable})
	check("linearizable read with a short deadline", "read", err)
	// STALE reads are still served locally.
	if _, err := survivor.ReadBarrier(ctx, cluster.ReadOptions{Consistency: cluster.ConsistencyStale}); err != nil {
		t.Errorf("stale read without quorum: %v; want it served", err)
	}
}

// When the leader goes away, a follower's LINEARIZABLE read and forwarded
// write wait for the new leader (within their deadline) instead of
// failing on the connection the dead leader refuses.
func TestFollowerWaitsForTheNewLeader(t *testing.T) {
	nodes, fsms := startCounters(t, 3, nil)
	leader := clustertest.Leader(t, nodes, 5*time.Second)
	ctx := ctxT(t, 30*time.Second)
	fi := (indexOf(nodes, leader) + 1) % 3
	f := nodes[fi]
	// The follower talks to the leader once, so its peer client exists.
	if _, err := f.Propose(ctx, []byte("inc")); err != nil {
		t.Fatal(err)
	}
	if err := leader.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if old, _ := f.Leader(); old != leader.ID() {
		t.Logf("the follower forgot the leader already (%q); the calls below still wait for the next one", old)
	}
	idx, err := f.ReadBarrier(ctx, cluster.ReadOptions{Consistency: cluster.ConsistencyLinearizable})
	if err != nil {
		t.Fatalf("linearizable read on a follower while the leader is gone: %v; want it to wait for the new leader", err)
	}
	a, err := f.Propose(ctx, []byte("inc"))
	if err != nil {
		t.Fatalf("write through a follower while the leader is gone: %v; want it to wait for the new leader", err)
	}
	if a.Index <= idx {
		t.Errorf("write after the read: index %d; want > %d", a.Index, idx)
	}
	if err := f.WaitApplied(ctx, a.Index); err != nil {
		t.Fatal(err)
	}
	if got := fsms[fi].Count(); got != 2 {
		t.Errorf("follower count: %d; want 2 (each write applied once)", got)
	}
}

// A node restarted from its data dir reports the applied index of the
// state it holds at once (not 0), and never answers DEFAULT from the state
// it had before the restart once the cluster has moved on: every DEFAULT
// read reflects the writes acknowledged before it began, and the node is
// CaughtUp once it has applied what the leader had committed.
func TestRestartedNodeDefaultReadsAndIndex(t *testing.T) {
	nodes, fsms := startCounters(t, 3, nil)
	leader := clustertest.Leader(t, nodes, 5*time.Second)
	ctx := ctxT(t, 60*time.Second)
	for range 5 {
		if _, err := leader.Apply(ctx, []byte("inc")); err != nil {
			t.Fatal(err)
		}
	}
	fi := (indexOf(nodes, leader) + 1) % 3
	f := nodes[fi]
	clustertest.WaitFor(t, 10*time.Second, "the follower caught up", func() bool { return fsms[fi].Count() == 5 })
	before := f.AppliedIndex()
	cfg := f.Config()
	if err := f.Shutdown(); err != nil {
		t.Fatal(err)
	}
	// The state it kept: a persistent FSM keeps what it applied.
	kept := &counterFSM{count: fsms[fi].Count(), lastIndex: fsms[fi].AppliedIndex()}
	var last cluster.Applied
	const missed = 300
	for range missed {
		a, err := leader.Apply(ctx, []byte("inc"))
		if err != nil {
			t.Fatal(err)
		}
		last = a
	}
	restarted, err := cluster.Open(cluster.Config{DataDir: cfg.DataDir, RaftBind: cfg.RaftAdvertise, TLS: cfg.TLS, Timeouts: cfg.Timeouts, Logger: clustertest.Logger()}, kept)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = restarted.Shutdown() })
	if got := restarted.AppliedIndex(); got < before || got == 0 {
		t.Errorf("applied index right after the restart: %d; want >= %d, the index of the state kept", got, before)
	}
	if idx, err := restarted.ReadBarrier(ctx, cluster.ReadOptions{Consistency: cluster.ConsistencyStale}); err != nil || idx < before {
		t.Errorf("stale read right after the restart: index %d, %v; want >= %d", idx, err, before)
	}
	// DEFAULT reads from the first moment on: each reflects every write
	// acknowledged before the restart.
	for reads := 0; reads < 1 || !restarted.CaughtUp(); reads++ {
		idx, err := restarted.ReadBarrier(ctx, cluster.ReadOptions{Consistency: cluster.ConsistencyDefault})
		if err != nil {
			t.Fatalf("default read after the restart: %v", err)
		}
		if idx < last.Index || kept.Count() < 5+missed {
			t.Fatalf("default read after the restart: index %d, count %d; want >= %d and %d (acknowledged before the read began)", idx, kept.Count(), last.Index, 5+missed)
		}
	}
	if ctx.Err() != nil {
		t.Fatal(ctx.Err())
	}
}

// A DEFAULT read is served locally only within FollowerMaxLag of the start
// of a read-index round this node took part in: past it (a node resumed
// from a pause, or simply idle) the next DEFAULT read runs a new round
// first. Concurrent reads share rounds: many waiting reads, few ReadIndex
// calls.
func TestDefaultReadsNeedARecentRoundAndShareThem(t *testing.T) {
	nodes, _ := startCounters(t, 3, func(_ int, cfg *cluster.Config) { cfg.FollowerMaxLag = 200 * time.Millisecond })
	leader := clustertest.Leader(t, nodes, 5*time.Second)
	ctx := ctxT(t, 30*time.Second)
	f := nodes[(indexOf(nodes, leader)+1)%3]
	def := cluster.ReadOptions{Consistency: cluster.ConsistencyDefault}
	if _, err := f.ReadBarrier(ctx, def); err != nil {
		t.Fatal(err)
	}
	r0 := f.ReadIndexRounds()
	roundAt := time.Now()
	clustertest.WaitFor(t, 5*time.Second, "the last round older than FollowerMaxLag", func() bool {
		return time.Since(roundAt) > 200*time.Millisecond
	})
	w, err := leader.Apply(ctx, []byte("inc"))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := f.ReadBarrier(ctx, def)
	if err != nil || idx < w.Index {
		t.Fatalf("default read past the bound: index %d, %v; want >= %d (the write acknowledged before it)", idx, err, w.Index)
	}
	if f.ReadIndexRounds() == r0 {
		t.Errorf("default read past the bound: no new read-index round; want one")
	}

	// Many concurrent LINEARIZABLE reads share rounds.
	const readers = 64
	r1 := f.ReadIndexRounds()
	errs := make(chan error, readers)
	for range readers {
		go func() {
			_, err := f.ReadBarrier(ctx, cluster.ReadOptions{Consistency: cluster.ConsistencyLinearizable})
			errs <- err
		}()
	}
	for range readers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := f.ReadIndexRounds() - r1; got >= readers {
		t.Errorf("%d concurrent linearizable reads took %d read-index rounds; want them shared (fewer)", readers, got)
	}
}

// A node that has applied nothing (new, not yet joined) refuses even a
// STALE read: it has no state, and no answer names index 0.
func TestNodeWithoutStateRefusesStaleReads(t *testing.T) {
	n, err := cluster.Open(clustertest.NodeConfig(t, 0), &counterFSM{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown() })
	_, err = n.ReadBarrier(ctxT(t, 5*time.Second), cluster.ReadOptions{Consistency: cluster.ConsistencyStale})
	if !errors.Is(err, cluster.ErrUnavailable) || !strings.Contains(err.Error(), "applied no entry") {
		t.Errorf("stale read on a node with no state: %v; want ErrUnavailable saying it applied no entry", err)
	}
}
