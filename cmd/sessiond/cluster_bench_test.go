package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"

	authv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1"
	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1/sessionv1connect"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/clustertest"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	"github.com/sessiond/sessiond/store"
)

// ptCounterFSM is the trivial FSM the store is compared with: it counts.
type ptCounterFSM struct{ n atomic.Uint64 }

func (f *ptCounterFSM) Apply(*raft.Log) any { return []byte(fmt.Sprint(f.n.Add(1))) }
func (f *ptCounterFSM) Snapshot() (raft.FSMSnapshot, error) {
	return ptCounterSnap(f.n.Load()), nil
}
func (f *ptCounterFSM) Restore(rc io.ReadCloser) error { return rc.Close() }

type ptCounterSnap uint64

func (s ptCounterSnap) Persist(sink raft.SnapshotSink) error {
	if _, err := fmt.Fprint(sink, uint64(s)); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}
func (ptCounterSnap) Release() {}

// ptRevokeCmd is a store write with a unique id (a token revocation: one
// record plus its expiry-index entry, like a session's writes).
func ptRevokeCmd(prefix string, i int) []byte {
	cmd, err := store.EncodeCommand(&storev1.Command{NowUnixNano: time.Now().UnixNano(), RequestId: fmt.Sprintf("%s-req-%d", prefix, i),
		Op: &storev1.Command_RevokeToken{RevokeToken: &storev1.RevokeToken{Revocation: &storev1.Revocation{
			Jti: fmt.Sprintf("%s-jti-%d", prefix, i), ExpiresUnixNano: time.Now().Add(time.Hour).UnixNano(), Reason: "bench"}}}})
	if err != nil {
		panic(err) // a constant, valid message
	}
	return cmd
}

// BenchmarkReplicatedWrites compares, on 3-node loopback clusters with 64
// concurrent writers on the leader, the real store FSM with a trivial
// counter FSM. Reports ops/s, p50-ms, p99-ms per sub-benchmark.
func BenchmarkReplicatedWrites(b *testing.B) {
	b.Run("store", func(b *testing.B) {
		to := cluster.LANTimeouts()
		tc := startTestCluster(b, 3, func(_ int, c *Config) { c.raftTimeouts = &to })
		prefix := fmt.Sprintf("w%d", time.Now().UnixNano())
		clustertest.RunWriteBenchmark(b, tc.leader().raft, 64, func(i int) []byte { return ptRevokeCmd(prefix, i) })
	})
	b.Run("counter", func(b *testing.B) {
		nodes := clustertest.StartClusterWith(b, 3, func(int) raft.FSM { return &ptCounterFSM{} }, func(_ int, c *cluster.Config) {
			c.Timeouts = cluster.LANTimeouts()
		})
		clustertest.RunWriteBenchmark(b, clustertest.Leader(b, nodes, 5*time.Second), 64, func(int) []byte { return []byte("inc") })
	})
}

// ptConcurrent runs n calls of fn from workers goroutines and reports
// ops/s, p50-ms and p99-ms.
func ptConcurrent(b *testing.B, workers, n int, fn func() error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				if err := fn(); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(lat[n/2])/float64(time.Millisecond), "p50-ms")
	b.ReportMetric(float64(lat[min(n-1, n*99/100)])/float64(time.Millisecond), "p99-ms")
}

// ptPooledClient keeps enough idle connections for 64 concurrent callers.
func ptPooledClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 128}}
}

// ptPooledServiceClient is ptPooledClient authenticating as the test
// service client (checks need a caller credential).
func ptPooledServiceClient() *http.Client {
	return &http.Client{Transport: basicAuth{id: tcServiceID, secret: tcServiceSecret,
		base: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 128}}}
}

// BenchmarkFollowerReads: 64 concurrent CheckToken calls over Connect
// against a follower, per consistency level.
func BenchmarkFollowerReads(b *testing.B) {
	to := cluster.LANTimeouts()
	tc := startTestCluster(b, 3, func(_ int, c *Config) { c.raftTimeouts = &to })
	tc.createUser("ana@example.com", ptPassword)
	leader := tc.leader()
	follower := tc.nodes[(ptIndexOf(tc, leader)+1)%3]
	tp := ptLogin(b, leader, "ana@example.com", "laptop", authv1.Platform_PLATFORM_WEB)
	clustertest.WaitFor(b, 10*time.Second, "the follower to apply the login", func() bool { return follower.raft.AppliedIndex() >= tp.GetIndex() })
	client := sessionv1connect.NewSessionServiceClient(ptPooledServiceClient(), ptURL(follower))
	for _, cons := range ptConsistencies {
		b.Run(cons.String(), func(b *testing.B) {
			ptConcurrent(b, 64, max(b.N, 64), func() error {
				resp, err := client.CheckToken(context.Background(), connect.NewRequest(&sessionv1.CheckTokenRequest{Token: tp.GetAccessToken(), Read: ptRead(cons)}))
				if err == nil && !resp.Msg.GetActive() {
					err = fmt.Errorf("inactive: %s", resp.Msg.GetReason())
				}
				return err
			})
		})
	}
}

// BenchmarkLeaderFailover: time from killing the leader (Raft shut down
// without a handover) of a 3-node cluster with the LAN profile to the first
// write acknowledged by the new leader. Each iteration starts a cluster.
func BenchmarkLeaderFailover(b *testing.B) {
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		nodes := clustertest.StartClusterWith(b, 3, func(int) raft.FSM { return &ptCounterFSM{} }, func(_ int, c *cluster.Config) {
			c.Timeouts = cluster.LANTimeouts()
		})
		old := clustertest.Leader(b, nodes, 5*time.Second)
		b.StartTimer()
		t0 := time.Now()
		_ = old.Shutdown()
		for {
			var l *cluster.Node
			for _, n := range nodes {
				if n != old && n.IsLeader() {
					l = n
				}
			}
			if l != nil {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_, err := l.Propose(ctx, []byte("inc"))
				cancel()
				if err == nil {
					break
				}
			}
			time.Sleep(time.Millisecond) // polling interval
		}
		total += time.Since(t0)
	}
	b.ReportMetric(float64(total)/float64(b.N)/float64(time.Millisecond), "failover-ms")
}
