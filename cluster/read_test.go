package cluster_test

import (
	"errors"
	"testing"
	"time"

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
