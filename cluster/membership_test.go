package cluster_test

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/clustertest"
)

// openNode opens node i (not bootstrapped) with adjust applied.
func openNode(t *testing.T, i int, adjust func(*cluster.Config)) *cluster.Node {
	t.Helper()
	cfg := clustertest.NodeConfig(t, i)
	if adjust != nil {
		adjust(&cfg)
	}
	n, err := cluster.Open(cfg, &counterFSM{})
	if err != nil {
		t.Fatalf("open node %d: %v", i, err)
	}
	t.Cleanup(func() { _ = n.Shutdown() })
	return n
}

func suffrage(t *testing.T, n *cluster.Node, id string) (voter, found bool) {
	t.Helper()
	servers, err := n.Servers()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		if s.ID == id {
			return s.Voter, true
		}
	}
	return false, false
}

// TestJoinStagesThenPromotes: a node asking to be a voter is added as a
// staged non-voter and promoted only after the stabilization period.
func TestJoinStagesThenPromotes(t *testing.T) {
	const stab = 1500 * time.Millisecond
	leader := openNode(t, 0, func(c *cluster.Config) { c.Autopilot.Stabilization = stab })
	if err := leader.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 10*time.Second, "node-0 leads", leader.IsLeader)
	newcomer := openNode(t, 1, nil)
	ctx := ctxT(t, 20*time.Second)
	joined := time.Now()
	if _, err := leader.Join(ctx, cluster.JoinRequest{ID: newcomer.ID(), RaftAddr: newcomer.RaftAddr(), Voter: true, Region: "test"}); err != nil {
		t.Fatal(err)
	}
	if voter, found := suffrage(t, leader, newcomer.ID()); !found || voter || !leader.Staging(newcomer.ID()) {
		t.Fatalf("just after joining: found %t voter %t staging %t; want a staged non-voter", found, voter, leader.Staging(newcomer.ID()))
	}
	clustertest.WaitFor(t, 15*time.Second, "node-1 promoted to voter", func() bool {
		voter, _ := suffrage(t, leader, newcomer.ID())
		return voter
	})
	if waited := time.Since(joined); waited < stab {
		t.Errorf("promoted after %s; want at least the stabilization period %s", waited, stab)
	}
}

// TestJoinRefusesBadFields: a malformed region, and an address where no
// node answers, are refused with nothing changed.
func TestJoinRefusesBadFields(t *testing.T) {
	nodes, _ := startCounters(t, 1, nil)
	ctx := ctxT(t, 15*time.Second)
	before, _ := nodes[0].Servers()
	_, err := nodes[0].Join(ctx, cluster.JoinRequest{ID: "node-9", RaftAddr: "127.0.0.1:9", Region: "HK", Voter: true})
	if !errors.Is(err, cluster.ErrInvalidArgument) {
		t.Errorf("join with region HK: got %v, want ErrInvalidArgument", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ghost := l.Addr().String()
	l.Close()
	_, err = nodes[0].Join(ctx, cluster.JoinRequest{ID: "node-9", RaftAddr: ghost, Region: "test", Voter: true})
	if !errors.Is(err, cluster.ErrUnreachable) {
		t.Errorf("join of a node that is not running: got %v, want ErrUnreachable", err)
	}
	if after, _ := nodes[0].Servers(); len(after) != len(before) {
		t.Errorf("servers after refused joins: got %d, want %d", len(after), len(before))
	}
}

// TestRemoveJudgesQuorumByRaft: right after two of five voters stop (no
// gossip at all here), removing the leader is refused and changes nothing
// (it would leave 2 of 4 voters reachable); removing a stopped voter is
// accepted; a running follower removed learns it. The three running voters
// keep a quorum throughout, so the test does not depend on the leader's
// lease outliving the refused call.
func TestRemoveJudgesQuorumByRaft(t *testing.T) {
	var removedCalls atomic.Int32
	nodes, _ := startCounters(t, 5, func(i int, c *cluster.Config) {
		c.OnRemoved = func() { removedCalls.Add(1) }
	})
	leader := clustertest.Leader(t, nodes, 10*time.Second)
	var followers []*cluster.Node
	for _, n := range nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}
	_ = followers[0].Shutdown()
	_ = followers[1].Shutdown()
	running := []*cluster.Node{leader, followers[2], followers[3]}
	ctx := ctxT(t, 30*time.Second)
	_, err := leader.Remove(ctx, leader.ID(), false)
	if !errors.Is(err, cluster.ErrQuorumAtRisk) {
		t.Fatalf("remove the leader with 2 of 5 voters down: got %v, want ErrQuorumAtRisk", err)
	}
	cur := clustertest.Leader(t, running, 15*time.Second)
	if servers, _ := cur.Servers(); len(servers) != 5 {
		t.Fatalf("after the refused removal: %d servers; want 5, unchanged", len(servers))
	}
	for i, want := range []int{4, 3} {
		cur = clustertest.Leader(t, running, 15*time.Second)
		res, err := cur.Remove(ctx, followers[i].ID(), false)
		if err != nil || res.LeaderID != cur.ID() || res.Voters != want {
			t.Fatalf("remove stopped voter %s: got %+v, %v; want accepted by %s with %d voters left", followers[i].ID(), res, err, cur.ID(), want)
		}
	}
	cur = clustertest.Leader(t, running, 15*time.Second)
	var victim *cluster.Node
	for _, n := range running {
		if n != cur {
			victim = n
			break
		}
	}
	if _, err := cur.Remove(ctx, victim.ID(), false); err != nil {
		t.Fatalf("remove a running follower: %v", err)
	}
	clustertest.WaitFor(t, 15*time.Second, victim.ID()+" learns it was removed", victim.Removed)
	clustertest.WaitFor(t, 5*time.Second, "OnRemoved called", func() bool { return removedCalls.Load() == 1 })
	if cur.Removed() {
		t.Errorf("the leader thinks it was removed")
	}
}

// TestBootstrapExpectFormsOneCluster: three nodes with bootstrap_expect 3
// and the same peers, opened in reverse order, form one cluster whose
// first leader is the lowest id; a fourth, fresh node with the same
// settings joins it.
func TestBootstrapExpectFormsOneCluster(t *testing.T) {
	var nodes []*cluster.Node
	for i := range 3 {
		nodes = append(nodes, openNode(t, i, func(c *cluster.Config) {
			c.BootstrapExpect = 3
			c.Autopilot.Stabilization = 200 * time.Millisecond
		}))
	}
	var peers []string
	for _, n := range nodes {
		peers = append(peers, n.RaftAddr())
	}
	ctx := ctxT(t, 60*time.Second)
	errs := make(chan error, 4)
	for _, i := range []int{2, 1, 0} {
		go func() { errs <- nodes[i].BootstrapExpect(ctx, peers, 3) }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	leader := clustertest.Leader(t, nodes, 10*time.Second)
	id := leader.ClusterID()
	for _, n := range nodes {
		if n.ClusterID() != id {
			t.Errorf("%s in cluster %q; want %q", n.ID(), n.ClusterID(), id)
		}
	}
	servers, _ := leader.Servers()
	if len(servers) != 3 || slices.ContainsFunc(servers, func(s cluster.Server) bool { return !s.Voter }) {
		t.Errorf("configuration %v; want 3 voters", servers)
	}
	late := openNode(t, 3, func(c *cluster.Config) { c.BootstrapExpect = 3 })
	if err := late.BootstrapExpect(ctx, append(peers, late.RaftAddr()), 3); err != nil {
		t.Fatal(err)
	}
	if late.ClusterID() != id {
		t.Errorf("late node in cluster %q; want %q", late.ClusterID(), id)
	}
	clustertest.WaitFor(t, 15*time.Second, "node-3 a voter", func() bool { v, _ := suffrage(t, leader, late.ID()); return v })
}

// TestBootstrapCheckedRefusesBesideACluster: a fresh node told to
// bootstrap, whose peer already is in a cluster, refuses and stays empty.
func TestBootstrapCheckedRefusesBesideACluster(t *testing.T) {
	nodes, _ := startCounters(t, 1, nil)
	fresh := openNode(t, 5, nil)
	err := fresh.BootstrapChecked(ctxT(t, 10*time.Second), []string{nodes[0].RaftAddr()})
	if !errors.Is(err, cluster.ErrBootstrapRefused) {
		t.Fatalf("bootstrap beside a cluster: got %v, want ErrBootstrapRefused", err)
	}
	if servers, _ := fresh.Servers(); len(servers) != 0 {
		t.Errorf("refused node's configuration: %v; want none", servers)
	}
}

// TestBootstrapCheckedRefusesWhatALeaderSentIt: a node that started with
// an empty data dir and received a cluster's log before it could bootstrap
// (a leader still replicating to the address of a node it just removed)
// refuses to carry on as if it were bootstrapped: it must join.
func TestBootstrapCheckedRefusesWhatALeaderSentIt(t *testing.T) {
	nodes, _ := startCounters(t, 1, nil)
	fresh := openNode(t, 5, nil)
	ctx := ctxT(t, 20*time.Second)
	if err := nodes[0].AddNonvoter(ctx, fresh.ID(), fresh.RaftAddr()); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 15*time.Second, "the fresh node holds the cluster's log", func() bool {
		s, _ := fresh.Servers()
		return len(s) > 0 && fresh.ClusterID() != ""
	})
	err := fresh.BootstrapChecked(ctx, nil)
	if !errors.Is(err, cluster.ErrBootstrapRefused) || !strings.Contains(err.Error(), "join: [") {
		t.Fatalf("bootstrap of a node a leader reached first: got %v, want ErrBootstrapRefused saying to join", err)
	}
}

// TestAdvertisedHostName: a node advertising a DNS name is reached by it.
func TestAdvertisedHostName(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	named := openNode(t, 0, func(c *cluster.Config) {
		c.RaftBind = fmt.Sprintf("127.0.0.1:%d", port)
		c.RaftAdvertise = fmt.Sprintf("localhost:%d", port)
	})
	if got, want := named.RaftAddr(), fmt.Sprintf("localhost:%d", port); got != want {
		t.Fatalf("RaftAddr: got %s, want %s", got, want)
	}
	if err := named.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 10*time.Second, "node-0 leads", named.IsLeader)
	other := openNode(t, 1, nil)
	ctx := ctxT(t, 20*time.Second)
	if err := other.JoinCluster(ctx, []string{named.RaftAddr()}, false); err != nil {
		t.Fatal(err)
	}
	a, err := named.Apply(ctx, []byte("inc"))
	if err != nil {
		t.Fatal(err)
	}
	if err := other.WaitApplied(ctx, a.Index); err != nil {
		t.Errorf("the joined node did not apply a write of the node reached by name: %v", err)
	}
}

// TestSeedAndRecoverRefuseUnsafeInput: seeding a data dir that holds Raft
// state, or a recovery configuration without the node, is refused.
func TestSeedAndRecoverRefuseUnsafeInput(t *testing.T) {
	nodes, _ := startCounters(t, 1, nil)
	dir := nodes[0].Config().DataDir
	_ = nodes[0].Shutdown()
	_, err := cluster.SeedNewCluster(cluster.SeedConfig{DataDir: dir, NodeID: "node-0", Region: "test", RaftAddr: "127.0.0.1:1", Index: 5, Term: 1}, nil)
	if !errors.Is(err, cluster.ErrAlreadyExists) {
		t.Errorf("seed over a cluster's data dir: got %v, want ErrAlreadyExists", err)
	}
	err = cluster.RecoverConfiguration(dir, "node-0", []cluster.RecoveryServer{{ID: "node-7", Address: "127.0.0.1:1"}}, &counterFSM{}, nil)
	if !errors.Is(err, cluster.ErrInvalidArgument) {
		t.Errorf("recover without this node: got %v, want ErrInvalidArgument", err)
	}
}
