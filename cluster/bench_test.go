package cluster_test

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/clustertest"
)

// BenchmarkReplicatedCounter measures replicated writes on a 3-node loopback
// cluster with a trivial counter FSM and 64 concurrent writers on the leader.
// Reports ops/s and per-write p50/p99 latency in ms. Uses the production
// LAN timeouts (the scaled-down test ones can lose leadership under load).
func BenchmarkReplicatedCounter(b *testing.B) {
	nodes := clustertest.StartClusterWith(b, 3, func(int) raft.FSM { return &counterFSM{} }, func(_ int, c *cluster.Config) {
		c.Timeouts = cluster.LANTimeouts()
	})
	leader := clustertest.Leader(b, nodes, 5*time.Second)
	clustertest.RunWriteBenchmark(b, leader, 64, func(int) []byte { return []byte("inc") })
}
