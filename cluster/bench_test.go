package cluster_test

import (
	"context"
	"sync"
	"sync/atomic"
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

// BenchmarkPeerTLS compares the peer channel with mutual TLS against
// plaintext in the same run, on two 3-node loopback clusters (production
// LAN timeouts), 64 concurrent clients on a follower:
//
//   - writes: Propose on a follower, forwarded to the leader over
//     PeerService (HTTP/2) and replicated over Raft;
//   - linearizable-reads: ReadBarrier(LINEARIZABLE) on a follower, one
//     read-index round trip to the leader each.
//
// Each reports plain-ops/s, mtls-ops/s and mtls/plain (target >= 0.9).
func BenchmarkPeerTLS(b *testing.B) {
	start := func(b *testing.B, tls bool) *cluster.Node {
		nodes := clustertest.StartClusterWith(b, 3, func(int) raft.FSM { return &counterFSM{} }, func(_ int, c *cluster.Config) {
			c.Timeouts = cluster.LANTimeouts()
			if !tls {
				c.TLS, c.InsecurePlaintext = nil, true
			}
		})
		leader := clustertest.Leader(b, nodes, 5*time.Second)
		for _, n := range nodes {
			if n != leader {
				return n
			}
		}
		return nil
	}
	ops := map[string]func(n *cluster.Node) error{
		"writes": func(n *cluster.Node) error { _, err := n.Propose(context.Background(), []byte("inc")); return err },
		"linearizable-reads": func(n *cluster.Node) error {
			_, err := n.ReadBarrier(context.Background(), cluster.ReadOptions{Consistency: cluster.ConsistencyLinearizable})
			return err
		},
	}
	for _, name := range []string{"writes", "linearizable-reads"} {
		op := ops[name]
		b.Run(name, func(b *testing.B) {
			plain, mtls := start(b, false), start(b, true)
			run := func(n *cluster.Node) float64 {
				var next atomic.Int64
				var wg sync.WaitGroup
				var failed atomic.Value
				t0 := time.Now()
				for range 64 {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							if err := op(n); err != nil {
								failed.CompareAndSwap(nil, err)
								return
							}
						}
					})
				}
				wg.Wait()
				if err, _ := failed.Load().(error); err != nil {
					b.Fatal(err)
				}
				return float64(b.N) / time.Since(t0).Seconds()
			}
			b.ResetTimer()
			p, m := run(plain), run(mtls)
			b.ReportMetric(p, "plain-ops/s")
			b.ReportMetric(m, "mtls-ops/s")
			b.ReportMetric(m/p, "mtls/plain")
		})
	}
}

// BenchmarkFollowerReads measures reads on a follower of a 3-node loopback
// cluster (mutual TLS, production LAN timeouts) with 64 concurrent
// readers, at LINEARIZABLE and DEFAULT. Concurrent reads share read-index
// rounds (at most one in flight and one queued per node), so it reports
// reads/s and rounds/read: the read-index round trips per read (1 without
// sharing). Compare reads/s with BenchmarkPeerTLS/linearizable-reads on a
// version without sharing.
func BenchmarkFollowerReads(b *testing.B) {
	nodes := clustertest.StartClusterWith(b, 3, func(int) raft.FSM { return &counterFSM{} }, func(_ int, c *cluster.Config) {
		c.Timeouts = cluster.LANTimeouts()
	})
	leader := clustertest.Leader(b, nodes, 5*time.Second)
	f := nodes[(indexOf(nodes, leader)+1)%3]
	for _, level := range []cluster.Consistency{cluster.ConsistencyLinearizable, cluster.ConsistencyDefault} {
		b.Run(level.String(), func(b *testing.B) {
			var next atomic.Int64
			var wg sync.WaitGroup
			var failed atomic.Value
			r0 := f.ReadIndexRounds()
			b.ResetTimer()
			t0 := time.Now()
			for range 64 {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if _, err := f.ReadBarrier(context.Background(), cluster.ReadOptions{Consistency: level}); err != nil {
							failed.CompareAndSwap(nil, err)
							return
						}
					}
				})
			}
			wg.Wait()
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "reads/s")
			b.ReportMetric(float64(f.ReadIndexRounds()-r0)/float64(b.N), "rounds/read")
		})
	}
}
