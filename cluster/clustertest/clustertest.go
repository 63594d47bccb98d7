// Package clustertest starts real Raft clusters (mutual TLS on 127.0.0.1
// with a throwaway CA per test, bbolt in tb.TempDir()) for tests and
// benchmarks of packages built on cluster.
package clustertest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/cluster"
)

// Timeouts is the LAN profile scaled down to 1/2 (500 ms heartbeat and
// election, 250 ms lease, 25 ms commit): faster failover on loopback while
// staying clear of spurious elections under the race detector on a busy
// 2-core machine.
func Timeouts() cluster.Timeouts { return cluster.LANTimeouts().Scale(0.5) }

// Logger returns a logger for test nodes: discarded unless the environment
// variable SESSIOND_TEST_LOG is set (then text to stderr at debug level).
func Logger() *slog.Logger {
	if os.Getenv("SESSIOND_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// NodeConfig returns the config StartCluster uses for node i: id "node-<i>",
// region "test", a fresh tb.TempDir(), a free loopback port, Timeouts(),
// and peer TLS with a node certificate of the test's CA (TestPKI).
func NodeConfig(tb testing.TB, i int) cluster.Config {
	id := fmt.Sprintf("node-%d", i)
	return cluster.Config{
		NodeID:   id,
		Region:   "test",
		DataDir:  tb.TempDir(),
		RaftBind: "127.0.0.1:0",
		TLS:      TestPKI(tb).PeerTLS(tb, id),
		Timeouts: Timeouts(),
		Logger:   Logger(),
	}
}

// StartCluster starts n nodes (see NodeConfig), bootstraps node 0, adds the
// others as voters, waits until every node knows the leader and has applied
// the final configuration, and registers Shutdown of every node with
// tb.Cleanup. newFSM(i) builds node i's FSM.
func StartCluster(tb testing.TB, n int, newFSM func(i int) raft.FSM) []*cluster.Node {
	tb.Helper()
	return StartClusterWith(tb, n, newFSM, nil)
}

// StartClusterWith is StartCluster with a hook that may adjust node i's
// config before it is opened (nil means no change).
func StartClusterWith(tb testing.TB, n int, newFSM func(i int) raft.FSM, adjust func(i int, cfg *cluster.Config)) []*cluster.Node {
	tb.Helper()
	nodes := make([]*cluster.Node, n)
	for i := range n {
		cfg := NodeConfig(tb, i)
		if adjust != nil {
			adjust(i, &cfg)
		}
		node, err := cluster.Open(cfg, newFSM(i))
		if err != nil {
			tb.Fatalf("open node %d: %v", i, err)
		}
		tb.Cleanup(func() { _ = node.Shutdown() })
		nodes[i] = node
	}
	if err := nodes[0].Bootstrap(); err != nil {
		tb.Fatalf("bootstrap: %v", err)
	}
	WaitFor(tb, 10*time.Second, "node-0 leads", nodes[0].IsLeader)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, node := range nodes[1:] {
		if err := AddVoter(ctx, nodes, node.ID(), node.RaftAddr()); err != nil {
			tb.Fatalf("add voter %s: %v", node.ID(), err)
		}
	}
	WaitConverged(tb, nodes, 10*time.Second)
	return nodes
}

// AddVoter adds a voter through whichever node of nodes currently leads,
// retrying while leadership moves.
func AddVoter(ctx context.Context, nodes []*cluster.Node, id, raftAddr string) error {
	for {
		var err error = cluster.ErrNotLeader
		for _, n := range nodes {
			if n.IsLeader() {
				err = n.AddVoter(ctx, id, raftAddr)
				break
			}
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Leader waits up to timeout for exactly one of nodes to be leader and
// returns it.
func Leader(tb testing.TB, nodes []*cluster.Node, timeout time.Duration) *cluster.Node {
	tb.Helper()
	var leader *cluster.Node
	WaitFor(tb, timeout, "a single leader", func() bool {
		leader = nil
		count := 0
		for _, n := range nodes {
			if n.IsLeader() {
				leader = n
				count++
			}
		}
		return count == 1
	})
	return leader
}

// WaitConverged waits until every node knows the same leader and has
// applied the leader's commit index.
func WaitConverged(tb testing.TB, nodes []*cluster.Node, timeout time.Duration) {
	tb.Helper()
	WaitFor(tb, timeout, "nodes converged on one leader and its commit index", func() bool {
		var leader *cluster.Node
		for _, n := range nodes {
			if n.IsLeader() {
				leader = n
			}
		}
		if leader == nil {
			return false
		}
		commit := leader.CommitIndex()
		for _, n := range nodes {
			if id, _ := n.Leader(); id != leader.ID() || n.AppliedIndex() < commit {
				return false
			}
		}
		return true
	})
}

// WaitFor polls cond every 5 ms until it returns true, failing tb with what
// after timeout.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}
