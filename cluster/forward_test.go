package cluster_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"

	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/clustertest"
)

func startDedupe(t *testing.T, n int) ([]*cluster.Node, []*dedupeFSM) {
	t.Helper()
	fsms := make([]*dedupeFSM, n)
	nodes := clustertest.StartCluster(t, n, func(i int) raft.FSM {
		fsms[i] = newDedupeFSM()
		return fsms[i]
	})
	return nodes, fsms
}

// Many writes proposed at once on a follower are forwarded in fewer
// ApplyBatch calls than writes, and each caller gets its own result: its
// own command's response at its own index.
func TestConcurrentForwardedWritesShareBatches(t *testing.T) {
	nodes, fsms := startDedupe(t, 3)
	leader := clustertest.Leader(t, nodes, 5*time.Second)
	li := indexOf(nodes, leader)
	f := nodes[(li+1)%3]
	ctx := ctxT(t, 30*time.Second)
	before := f.ForwardStats()

	const writes = 300
	got := make([]cluster.Applied, writes)
	errs := make([]error, writes)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writes {
		wg.Go(func() {
			<-start
			got[i], errs[i] = f.Propose(ctx, fmt.Appendf(nil, "w:%d", i))
		})
	}
	close(start)
	wg.Wait()
	seen := map[uint64]int{}
	for i := range writes {
		if errs[i] != nil {
			t.Fatalf("write %d: %v", i, errs[i])
		}
		if want := fmt.Sprintf("%d@%d", i, got[i].Index); string(got[i].Response) != want {
			t.Errorf("write %d: response %q at index %d, want %q (another write's result?)", i, got[i].Response, got[i].Index, want)
		}
		if j, dup := seen[got[i].Index]; dup {
			t.Errorf("writes %d and %d both answered index %d", j, i, got[i].Index)
		}
		seen[got[i].Index] = i
	}
	st := f.ForwardStats()
	batches, batched := st.Batches-before.Batches, st.Batched-before.Batched
	t.Logf("%d writes in %d ApplyBatch calls (%d commands sent, %d single calls)", writes, batches, batched, st.Single-before.Single)
	if batched < writes {
		t.Errorf("ForwardStats: %d writes batched, want >= %d", batched, writes)
	}
	if batches == 0 || batches >= writes {
		t.Errorf("ForwardStats: %d ApplyBatch calls for %d concurrent writes, want 1 to %d", batches, writes, writes-1)
	}
	if st.Single != before.Single {
		t.Errorf("ForwardStats: %d single Apply calls to a leader that implements ApplyBatch, want 0", st.Single-before.Single)
	}
	applied, _ := fsms[li].state()
	for i := range writes {
		if idx := applied[fmt.Sprint(i)]; idx != got[i].Index {
			t.Errorf("write %d: the leader applied it at %d, the caller was told %d", i, idx, got[i].Index)
		}
	}
}

// Writes forwarded through a follower while leadership moves (twice) are
// each applied exactly once: every acknowledged write is in every node's
// state with the result its caller was told, and no request id was
// applied twice, whether or not it reached the log again (a batch
// abandoned or refused during the change is sent again).
func TestLeaderChangeWhileForwardingAppliesEachWriteOnce(t *testing.T) {
	nodes, fsms := startDedupe(t, 3)
	leader := clustertest.Leader(t, nodes, 5*time.Second)
	li := indexOf(nodes, leader)
	fi, oi := (li+1)%3, (li+2)%3
	f := nodes[fi]
	ctx := ctxT(t, time.Minute)

	type ack struct {
		id string
		a  cluster.Applied
	}
	var (
		mu     sync.Mutex
		acks   []ack
		failed []error
		next   atomic.Int64
		acked  atomic.Int64
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	const writers = 32
	for range writers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprint(next.Add(1))
				a, err := f.Propose(ctx, []byte("w:"+id))
				mu.Lock()
				if err != nil {
					failed = append(failed, fmt.Errorf("write %s: %w", id, err))
				} else {
					acks = append(acks, ack{id, a})
				}
				mu.Unlock()
				if err == nil {
					acked.Add(1)
				}
			}
		})
	}
	waitAcked := func(n int64, what string) {
		t.Helper()
		clustertest.WaitFor(t, 30*time.Second, what, func() bool { return acked.Load() >= n })
	}
	waitAcked(100, "100 forwarded writes before the first transfer")
	// To the other follower, then back: f forwards throughout.
	for _, to := range []int{oi, li} {
		from := clustertest.Leader(t, nodes, 10*time.Second)
		if err := from.TransferLeadership(ctx, nodes[to].ID()); err != nil {
			t.Fatalf("transfer leadership %s -> %s: %v", from.ID(), nodes[to].ID(), err)
		}
		clustertest.WaitFor(t, 10*time.Second, "the follower to know the new leader", func() bool {
			id, _ := f.Leader()
			return id == nodes[to].ID()
		})
		waitAcked(acked.Load()+100, "100 more forwarded writes after the transfer")
	}
	close(stop)
	wg.Wait()

	for i, err := range failed {
		if i < 5 {
			t.Errorf("%v", err)
		}
	}
	if len(failed) > 0 {
		t.Fatalf("%d of %d forwarded writes failed across two leader changes", len(failed), len(failed)+len(acks))
	}
	clustertest.WaitConverged(t, nodes, 20*time.Second)
	retried := 0
	for ni, fsm := range fsms {
		applied, inLog := fsm.state()
		for _, k := range acks {
			idx, ok := applied[k.id]
			if !ok {
				t.Errorf("node %s: acknowledged write %s missing", nodes[ni].ID(), k.id)
				continue
			}
			// A write sent again is answered at its repeat's index,
			// with the first application's result.
			if string(k.a.Response) != fmt.Sprintf("%s@%d", k.id, idx) || k.a.Index < idx {
				t.Errorf("node %s: write %s applied at %d, its caller was told %q at index %d", nodes[ni].ID(), k.id, idx, k.a.Response, k.a.Index)
			}
		}
		if ni == fi {
			for _, n := range inLog {
				if n > 1 {
					retried++
				}
			}
		}
	}
	st := f.ForwardStats()
	t.Logf("%d writes acknowledged; %d reached the log more than once (applied once); %d ApplyBatch calls carried %d commands",
		len(acks), retried, st.Batches, st.Batched)
	if st.Batches == 0 {
		t.Error("ForwardStats: no ApplyBatch call")
	}
}

// The leader refuses an ApplyBatch over its bounds with InvalidArgument
// naming the bound; a follower refuses one as not the leader (nothing
// applied); a good one answers every command in order, an FSM error in
// its own result.
func TestApplyBatchBoundsAndResults(t *testing.T) {
	nodes, _ := startCounters(t, 3, nil)
	leader := clustertest.Leader(t, nodes, 5*time.Second)
	li := indexOf(nodes, leader)
	f, other := nodes[(li+1)%3], nodes[(li+2)%3]
	ctx := ctxT(t, 20*time.Second)
	toLeader := f.PeerClientOf(leader)

	cmds := make([][]byte, cluster.MaxApplyBatch+1)
	for i := range cmds {
		cmds[i] = []byte("inc")
	}
	_, err := toLeader.ApplyBatch(ctx, connect.NewRequest(&clusterv1.ApplyBatchRequest{Commands: cmds}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), fmt.Sprint(cluster.MaxApplyBatch)) {
		t.Errorf("ApplyBatch of %d commands: %v; want InvalidArgument naming %d", len(cmds), err, cluster.MaxApplyBatch)
	}
	_, err = toLeader.ApplyBatch(ctx, connect.NewRequest(&clusterv1.ApplyBatchRequest{}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("ApplyBatch of no command: %v; want InvalidArgument", err)
	}

	_, err = f.PeerClientOf(other).ApplyBatch(ctx, connect.NewRequest(&clusterv1.ApplyBatchRequest{Commands: [][]byte{[]byte("inc")}}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeUnavailable || ce.Meta().Get(cluster.NotLeaderMetaKey) != leader.ID() {
		t.Errorf("ApplyBatch to a follower: %v; want Unavailable with %s=%s", err, cluster.NotLeaderMetaKey, leader.ID())
	}

	res, err := toLeader.ApplyBatch(ctx, connect.NewRequest(&clusterv1.ApplyBatchRequest{Commands: [][]byte{
		[]byte("inc"), []byte("fail"), []byte("inc"),
	}}))
	if err != nil {
		t.Fatalf("ApplyBatch of 3 commands: %v", err)
	}
	r := res.Msg.GetResults()
	if len(r) != 3 {
		t.Fatalf("ApplyBatch of 3 commands: %d results", len(r))
	}
	if r[0].GetFsmError() != "" || string(r[0].GetResponse()) != "1" || r[2].GetFsmError() != "" || string(r[2].GetResponse()) != "2" {
		t.Errorf("results of the incs: %v, %v; want responses 1 and 2", r[0], r[2])
	}
	if r[1].GetFsmError() != errFail.Error() || r[1].GetIndex() == 0 {
		t.Errorf("result of the failing command: %v; want fsm_error %q and its index", r[1], errFail)
	}
	if !(r[0].GetIndex() < r[1].GetIndex() && r[1].GetIndex() < r[2].GetIndex()) {
		t.Errorf("indexes %d, %d, %d; want them in the request's order", r[0].GetIndex(), r[1].GetIndex(), r[2].GetIndex())
	}
}

// A leader that predates ApplyBatch (its peer port answers it 404, as an
// older binary's does) gets the forwarded writes as single Apply calls,
// until the leader changes: the next leader gets batches again.
func TestForwardingFallsBackToApplyForAnOlderLeader(t *testing.T) {
	nodes, fsms := startCounters(t, 3, nil)
	leader := clustertest.Leader(t, nodes, 5*time.Second)
	li := indexOf(nodes, leader)
	fi, oi := (li+1)%3, (li+2)%3
	f := nodes[fi]
	ctx := ctxT(t, 30*time.Second)
	leader.RefuseApplyBatch(true)

	const writes = 20
	var wg sync.WaitGroup
	errs := make(chan error, writes)
	for range writes {
		wg.Go(func() {
			_, err := f.Propose(ctx, []byte("inc"))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("write through a follower to an older leader: %v", err)
		}
	}
	st := f.ForwardStats()
	if st.Single != writes {
		t.Errorf("ForwardStats after %d writes to an older leader: %+v; want %d single calls", writes, st, writes)
	}
	// Remembered: the next write tries no batch.
	if _, err := f.Propose(ctx, []byte("inc")); err != nil {
		t.Fatal(err)
	}
	if st2 := f.ForwardStats(); st2.Batches != st.Batches || st2.Single != st.Single+1 {
		t.Errorf("ForwardStats after one more write: %+v, before %+v; want one more single call and no batch", st2, st)
	}

	if err := leader.TransferLeadership(ctx, nodes[oi].ID()); err != nil {
		t.Fatalf("transfer leadership: %v", err)
	}
	clustertest.WaitFor(t, 10*time.Second, "the follower to know the new leader", func() bool {
		id, _ := f.Leader()
		return id == nodes[oi].ID()
	})
	st = f.ForwardStats()
	a, err := f.Propose(ctx, []byte("inc"))
	if err != nil {
		t.Fatalf("write after the leader changed: %v", err)
	}
	// (More than one batch when the follower's leader watch catches up
	// with Raft while the first is sent: that call is abandoned, retried.)
	if st2 := f.ForwardStats(); st2.Batches == st.Batches || st2.Single != st.Single {
		t.Errorf("ForwardStats after a write to a new leader: %+v, before %+v; want batches again, no single call", st2, st)
	}
	if err := f.WaitApplied(ctx, a.Index); err != nil {
		t.Fatal(err)
	}
	if got := fsms[fi].Count(); got != writes+2 {
		t.Errorf("count: %d, want %d", got, writes+2)
	}
}
