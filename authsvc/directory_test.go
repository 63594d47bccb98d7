package authsvc_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/users"
	"github.com/sessiond/sessiond/authsvc/users/userstest"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/clustertest"
	"github.com/sessiond/sessiond/store"
)

// dirCluster adapts a real *cluster.Node to authsvc.Cluster, as the agent
// does.
type dirCluster struct{ n *cluster.Node }

func (c dirCluster) Propose(ctx context.Context, cmd []byte) (uint64, []byte, error) {
	a, err := c.n.Propose(ctx, cmd)
	return a.Index, a.Response, err
}

func (c dirCluster) IsLeader() bool { return c.n.IsLeader() }

func (c dirCluster) Sync(ctx context.Context) error {
	_, err := c.n.ReadBarrier(ctx, cluster.ReadOptions{Consistency: cluster.ConsistencyLinearizable})
	return err
}

// dirNode starts a one-node cluster (real Raft over loopback TCP, real
// bbolt in t.TempDir()) and returns its store and cluster adapter. A single
// voter has no follower to lose, so short timeouts elect it quickly.
func dirNode(t *testing.T) (*store.Store, dirCluster) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{NoSync: true, InitialMmapSize: 1 << 20})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	cfg := clustertest.NodeConfig(t, 0)
	cfg.Timeouts = cluster.LANTimeouts().Scale(0.1)
	n, err := cluster.Open(cfg, st)
	if err != nil {
		_ = st.Close()
		t.Fatalf("open node: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	if err := n.Bootstrap(); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	clustertest.WaitFor(t, 10*time.Second, "the node to lead", n.IsLeader)
	return st, dirCluster{n}
}

// TestBuiltinDirectory runs the users.Directory conformance suite against
// the built-in directory, each subtest on a fresh, empty node.
func TestBuiltinDirectory(t *testing.T) {
	userstest.Run(t, func(t *testing.T) users.Directory {
		st, c := dirNode(t)
		return authsvc.NewBuiltinDirectory(st, c)
	})
}
