package main

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sessiond/sessiond/store"
)

// nodeMetrics are the node's own instruments; a registry per node lets
// `sessiond dev` run several nodes in one process.
type nodeMetrics struct {
	rpcs      *prometheus.CounterVec
	rpcTime   *prometheus.HistogramVec
	applyTime prometheus.Histogram
}

// newMetrics registers the node's metrics: Raft state and indexes, gossip
// members by health and region, RPC counts and latencies, the verified-token
// cache, forwarded writes and their batches, the state machine's writes
// and file, Go runtime and process.
func newMetrics(n *node) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "sessiond", Name: name, Help: help}, f))
	}
	gauge("raft_leader", "1 when this node is the Raft leader.", func() float64 { return b2f(n.raft.IsLeader()) })
	gauge("raft_term", "Current Raft term.", func() float64 { return float64(n.raft.Term()) })
	gauge("raft_commit_index", "Raft commit index known to this node.", func() float64 { return float64(n.raft.CommitIndex()) })
	gauge("raft_applied_index", "Last log index applied to the state machine.", func() float64 { return float64(n.raft.AppliedIndex()) })
	gauge("raft_last_index", "Last index in the Raft log.", func() float64 { return float64(n.raft.LastIndex()) })
	gauge("raft_snapshot_index", "Log index of this node's newest Raft snapshot (0: none).",
		func() float64 { i, _ := n.raft.LastSnapshot(); return float64(i) })
	gauge("raft_snapshot_bytes", "Size of this node's newest Raft snapshot.",
		func() float64 { _, b := n.raft.LastSnapshot(); return float64(b) })
	gauge("raft_snapshot_threshold", "Log entries Raft waits for between snapshots: the configured threshold, or more while the log since the newest snapshot is under a quarter of its size.",
		func() float64 { return float64(n.raft.SnapshotThreshold()) })
	gauge("raft_last_contact_seconds", "Time since this follower last heard from the leader (0 on the leader).",
		func() float64 { return n.raft.LastContact().Seconds() })
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "sessiond", Name: "token_cache_hits_total",
		Help: "Access-token checks answered from the verified-token cache."}, func() float64 { h, _ := n.auth.CacheStats(); return float64(h) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "sessiond", Name: "token_cache_misses_total",
		Help: "Access-token checks that verified a signature."}, func() float64 { _, m := n.auth.CacheStats(); return float64(m) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "sessiond", Name: "snapshot_restores_total",
		Help: "Raft snapshots installed into the state machine (a follower far behind catching up)."}, func() float64 { return float64(n.restores.Load()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "sessiond", Name: "forward_batches_total",
		Help: "PeerService.ApplyBatch calls this follower sent to the leader (forwarded writes share them)."},
		func() float64 { return float64(n.raft.ForwardStats().Batches) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "sessiond", Name: "forward_batched_writes_total",
		Help: "Writes this follower forwarded in ApplyBatch calls (divided by sessiond_forward_batches_total: the mean batch)."},
		func() float64 { return float64(n.raft.ForwardStats().Batched) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "sessiond", Name: "forward_single_writes_total",
		Help: "Writes this follower forwarded one per PeerService.Apply call (to a leader that predates ApplyBatch)."},
		func() float64 { return float64(n.raft.ForwardStats().Single) }))
	reg.MustRegister(newStoreCollector(n.st))
	reg.MustRegister(newExpiryCollector(n.tls))
	reg.MustRegister(&membersCollector{n: n, desc: prometheus.NewDesc("sessiond_members",
		"Gossip members by health and region.", []string{"health", "region"}, nil)})

	n.metrics = &nodeMetrics{
		rpcs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sessiond", Name: "rpc_requests_total",
			Help: "Connect/gRPC requests by procedure and code."}, []string{"procedure", "code"}),
		rpcTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "sessiond", Name: "rpc_duration_seconds",
			Help: "Connect/gRPC request latency by procedure.", Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14)}, []string{"procedure"}),
		applyTime: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "sessiond", Name: "propose_duration_seconds",
			Help: "Time to replicate a write (apply on the leader or forward to it).", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
	}
	reg.MustRegister(n.metrics.rpcs, n.metrics.rpcTime, n.metrics.applyTime)
	return reg
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// membersCollector reports gossip members by health and region.
type membersCollector struct {
	n    *node
	desc *prometheus.Desc
}

func (c *membersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *membersCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[[2]string]int{}
	for _, m := range c.n.gossip.Members() {
		counts[[2]string{m.Health.String(), m.Region}]++
	}
	for k, v := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(v), k[0], k[1])
	}
}

// storeCollector reports the state machine's write counters and file
// sizes (store.Stats, read once per scrape).
type storeCollector struct {
	st                                *store.Store
	txs, entries, pages, bytes, frees *prometheus.Desc
}

func newStoreCollector(st *store.Store) *storeCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("sessiond_store_"+name, help, nil, nil)
	}
	return &storeCollector{st: st,
		txs:     d("transactions_total", "Write transactions the state machine committed (one per group of log entries)."),
		entries: d("entries_applied_total", "Log entries the state machine applied."),
		pages: d("page_writes_total", "Pages written to state.db, meta pages included; "+
			"divided by sessiond_store_entries_applied_total: pages per command (write amplification)."),
		bytes: d("file_bytes", "Size of state.db."),
		frees: d("free_pages", "Pages of state.db free for reuse (or once no reader holds them)."),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.txs
	ch <- c.entries
	ch <- c.pages
	ch <- c.bytes
	ch <- c.frees
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.st.Stats()
	ch <- prometheus.MustNewConstMetric(c.txs, prometheus.CounterValue, float64(s.Transactions))
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.CounterValue, float64(s.Entries))
	ch <- prometheus.MustNewConstMetric(c.pages, prometheus.CounterValue, float64(s.PageWrites))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.FileBytes))
	ch <- prometheus.MustNewConstMetric(c.frees, prometheus.GaugeValue, float64(s.FreePages))
}

// rpcMetrics counts and times every unary Connect call.
func (n *node) rpcMetrics() connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			start := time.Now()
			res, err := next(ctx, req)
			code := "ok"
			if err != nil {
				code = connect.CodeOf(err).String()
				var ce *connect.Error
				if !errors.As(err, &ce) {
					code = connect.CodeUnknown.String()
				}
			}
			p := req.Spec().Procedure
			n.metrics.rpcs.WithLabelValues(p, code).Inc()
			n.metrics.rpcTime.WithLabelValues(p).Observe(time.Since(start).Seconds())
			return res, err
		}
	})
}
