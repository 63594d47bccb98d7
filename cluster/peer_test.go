package cluster_test

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/clustertest"
)

// openBootstrapped opens node i (see clustertest.NodeConfig) as a new
// one-node cluster and waits until it leads.
func openBootstrapped(t *testing.T, i int) *cluster.Node {
	t.Helper()
	n, err := cluster.Open(clustertest.NodeConfig(t, i), &counterFSM{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown() })
	if err := n.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 10*time.Second, n.ID()+" leads", n.IsLeader)
	return n
}

func TestNodeOfAnotherClusterIsRefused(t *testing.T) {
	a, b := openBootstrapped(t, 0), openBootstrapped(t, 1) // same CA, two clusters
	if a.ClusterID() == "" || a.ClusterID() == b.ClusterID() {
		t.Fatalf("cluster ids %q and %q: want two different, non-empty ids", a.ClusterID(), b.ClusterID())
	}
	ctx := ctxT(t, 20*time.Second)
	bothIDs := func(err error) bool {
		return errors.Is(err, cluster.ErrClusterMismatch) && strings.Contains(err.Error(), a.ClusterID()) && strings.Contains(err.Error(), b.ClusterID())
	}

	// b asks a to add it: refused at once (not retried), naming both ids.
	start := time.Now()
	if err := b.JoinCluster(ctx, []string{a.RaftAddr()}, true); !bothIDs(err) {
		t.Errorf("b joins a's cluster: %v; want ErrClusterMismatch naming both cluster ids", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a join that can never succeed took %s; want it given up at once", d)
	}
	// An operator asks a to add b: the leader's check of the newcomer
	// refuses it before anything changes.
	if _, err := a.Join(ctx, cluster.JoinRequest{ID: b.ID(), RaftAddr: b.RaftAddr(), Voter: true}); !bothIDs(err) {
		t.Errorf("a adds b: %v; want ErrClusterMismatch naming both cluster ids", err)
	}
	if s, _ := a.Servers(); len(s) != 1 {
		t.Errorf("a's configuration after the refused joins: %v; want a alone", s)
	}

	// Raft itself refuses the other cluster: a made to replicate to b (the
	// checks above bypassed) does not change b.
	bLast, bTerm := b.LastIndex(), b.Term()
	actx := ctxT(t, 3*time.Second)
	_ = a.AddVoter(actx, b.ID(), b.RaftAddr()) // cannot commit: b never answers
	if b.LastIndex() != bLast || b.Term() != bTerm || !b.IsLeader() {
		t.Errorf("b after a replicated to it: last index %d term %d leader %t; want %d, %d, still leading", b.LastIndex(), b.Term(), b.IsLeader(), bLast, bTerm)
	}
}

func TestNewNodeAdoptsTheClusterIDWhenItJoins(t *testing.T) {
	a := openBootstrapped(t, 0)
	cfg := clustertest.NodeConfig(t, 1)
	n, err := cluster.Open(cfg, &counterFSM{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown() })
	if n.ClusterID() != "" {
		t.Fatalf("a new node's cluster id: %q; want none yet", n.ClusterID())
	}
	if err := n.JoinCluster(ctxT(t, 20*time.Second), []string{a.RaftAddr()}, true); err != nil {
		t.Fatalf("join: %v", err)
	}
	if n.ClusterID() != a.ClusterID() {
		t.Errorf("the new node's cluster id: %q; want the cluster's %q", n.ClusterID(), a.ClusterID())
	}
	id, err := cluster.LoadIdentity(cfg.DataDir)
	if err != nil || id.ClusterID != a.ClusterID() {
		t.Errorf("node.json after joining: %+v, %v; want cluster_id %q stored", id, err, a.ClusterID())
	}
	clustertest.WaitConverged(t, []*cluster.Node{a, n}, 10*time.Second)
	// A write through the new follower is forwarded to the leader over the
	// peer channel.
	if _, err := n.Propose(ctxT(t, 10*time.Second), []byte("inc")); err != nil {
		t.Errorf("write through the new follower: %v", err)
	}
}

func TestJoinRefusesUnreachableAndImpostorNodes(t *testing.T) {
	a := openBootstrapped(t, 0)
	other := openBootstrapped(t, 1)
	ctx := ctxT(t, 20*time.Second)
	// Nothing listens at the address: nothing is added.
	if _, err := a.Join(ctx, cluster.JoinRequest{ID: "node-7", RaftAddr: "127.0.0.1:1", Voter: true}); !errors.Is(err, cluster.ErrUnreachable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("join of an address where nothing answers: %v; want ErrUnreachable naming it", err)
	}
	// Another node answers there: its certificate does not name node-7.
	if _, err := a.Join(ctx, cluster.JoinRequest{ID: "node-7", RaftAddr: other.RaftAddr(), Voter: true}); !errors.Is(err, cluster.ErrIdentity) || !strings.Contains(err.Error(), `want node "node-7"`) {
		t.Errorf("join of node-7 at node-1's address: %v; want ErrIdentity naming node-7", err)
	}
	if s, _ := a.Servers(); len(s) != 1 {
		t.Errorf("configuration after the refused joins: %v; want the leader alone", s)
	}
}

func TestGossipIgnoresMembersOfAnotherCluster(t *testing.T) {
	start := func(id, clusterID string) *cluster.Gossip {
		g, err := cluster.NewGossip(cluster.GossipConfig{NodeID: id, APIAddr: "127.0.0.1:1", Bind: "127.0.0.1:0",
			SecretKey: []byte("0123456789abcdef"), ClusterID: func() string { return clusterID },
			Logger: clustertest.Logger(), Configure: fastGossip})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = g.Shutdown() })
		return g
	}
	a := start("a", "aaaaaaaa")
	b := start("b", "bbbbbbbb")
	fresh := start("c", "")
	if _, err := b.Join([]string{a.Addr()}); err == nil || !strings.Contains(err.Error(), "cluster aaaaaaaa") {
		t.Errorf("a member of cluster bbbbbbbb joins cluster aaaaaaaa's gossip: %v; want refused naming the cluster", err)
	}
	if _, err := fresh.Join([]string{a.Addr()}); err != nil {
		t.Errorf("a new member (no cluster id yet) joins: %v", err)
	}
	clustertest.WaitFor(t, 5*time.Second, "a to see the new member", func() bool {
		h, ok := a.Health("c")
		return ok && h == cluster.HealthAlive
	})
	if _, ok := a.Member("b"); ok {
		t.Errorf("a lists b, a member of another cluster")
	}
}

func TestPlaintextPeersWorkWhenAskedFor(t *testing.T) {
	nodes, _ := startCounters(t, 3, func(_ int, c *cluster.Config) { c.TLS, c.InsecurePlaintext = nil, true })
	leader := clustertest.Leader(t, nodes, 5*time.Second)
	follower := nodes[(indexOf(nodes, leader)+1)%3]
	ctx := ctxT(t, 10*time.Second)
	a, err := follower.Propose(ctx, []byte("inc"))
	if err != nil {
		t.Fatalf("write through a follower over plaintext h2c: %v", err)
	}
	idx, err := follower.ReadBarrier(ctx, cluster.ReadOptions{Consistency: cluster.ConsistencyLinearizable})
	if err != nil || idx < a.Index {
		t.Errorf("linearizable read on a follower: %d, %v; want >= %d", idx, err, a.Index)
	}
}

func TestSilentConnectionsDoNotStallThePeerPort(t *testing.T) {
	nodes, _ := startCounters(t, 3, func(_ int, c *cluster.Config) { c.HandshakeTimeout = 500 * time.Millisecond })
	leader := clustertest.Leader(t, nodes, 5*time.Second)
	// Twenty clients connect and say nothing.
	var silent []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", leader.RaftAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	// A node still connects at once: a new peer client, a forwarded write.
	cfg := clustertest.NodeConfig(t, 5)
	n, err := cluster.Open(cfg, &counterFSM{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown() })
	start := time.Now()
	if _, err := leader.Join(ctxT(t, 10*time.Second), cluster.JoinRequest{ID: n.ID(), RaftAddr: n.RaftAddr()}); err != nil {
		t.Fatalf("join while 20 silent connections are open: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("join took %s while silent connections were open; want them not to stall the listener", d)
	}
	// The silent ones are closed once the handshake deadline passes.
	for i, c := range silent {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("silent connection %d: read %v; want it closed by the node after the handshake deadline", i, err)
		}
	}
}
