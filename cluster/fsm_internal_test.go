package cluster

import (
	"context"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// gatedFSM is a batching FSM whose ApplyBatch can be held: it records
// every call's indexes and answers each entry with its index.
type gatedFSM struct {
	mu      sync.Mutex
	calls   [][]uint64
	gate    chan struct{} // when set, the next ApplyBatch waits for it
	entered chan struct{}
	snapAt  uint64
}

func (f *gatedFSM) hold() (entered, release chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate, f.entered = make(chan struct{}), make(chan struct{})
	return f.entered, f.gate
}

func (f *gatedFSM) ApplyBatch(logs []*raft.Log) []any {
	f.mu.Lock()
	gate, entered := f.gate, f.entered
	f.gate, f.entered = nil, nil
	f.mu.Unlock()
	if gate != nil {
		close(entered)
		<-gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var idx []uint64
	out := make([]any, len(logs))
	for i, l := range logs {
		idx = append(idx, l.Index)
		out[i] = []byte(strconv.FormatUint(l.Index, 10))
	}
	f.calls = append(f.calls, idx)
	return out
}

func (f *gatedFSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

func (f *gatedFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.calls); n > 0 {
		c := f.calls[n-1]
		f.snapAt = c[len(c)-1]
	}
	return nil, nil
}

func (f *gatedFSM) Restore(io.ReadCloser) error { return nil }

func (f *gatedFSM) callsCopy() [][]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]uint64(nil), f.calls...)
}

func cmdLogs(from, n uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i < from+n; i++ {
		out = append(out, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand})
	}
	return out
}

// TestGroupCommitMergesQueuedBatches: while the FSM applies one batch,
// the batches Raft hands over are queued without waiting, and are then
// applied together in one ApplyBatch (one transaction); every entry gets
// its own response, only once that ApplyBatch returned, and the tracked
// applied index (what reads wait for) only moves then.
func TestGroupCommitMergesQueuedBatches(t *testing.T) {
	inner := &gatedFSM{}
	tr := newTrackedFSM(inner)
	p, ok := tr.wrap().(*pipelinedFSM)
	if !ok {
		t.Fatalf("wrap of a batching FSM: got %T, want *pipelinedFSM", tr.wrap())
	}
	defer p.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	entered, release := inner.hold()
	first := p.ApplyBatch(cmdLogs(1, 2))
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the first batch never reached the FSM")
	}
	// Raft hands over 20 more one-entry batches while the FSM is busy:
	// none of these calls may wait for it.
	var later [][]any
	for i := uint64(3); i <= 22; i++ {
		later = append(later, p.ApplyBatch(cmdLogs(i, 1)))
	}
	if got := tr.applied.Load(); got != 0 {
		t.Fatalf("applied index while the FSM holds the first batch: got %d, want 0", got)
	}
	for _, r := range append(first, later[0][0]) {
		select {
		case <-r.(*pendingResponse).g.done:
			t.Fatal("a response was ready before the FSM applied its entry")
		default:
		}
	}
	close(release)

	for i, r := range first {
		got, err := r.(*pendingResponse).wait(ctx)
		if err != nil || string(got.([]byte)) != strconv.Itoa(i+1) {
			t.Fatalf("response of entry %d: got %v, %v", i+1, got, err)
		}
	}
	for k, rs := range later {
		got, err := rs[0].(*pendingResponse).wait(ctx)
		if err != nil || string(got.([]byte)) != strconv.Itoa(k+3) {
			t.Fatalf("response of entry %d: got %v, %v", k+3, got, err)
		}
	}
	calls := inner.callsCopy()
	if len(calls) != 2 || len(calls[0]) != 2 || len(calls[1]) != 20 || calls[1][0] != 3 || calls[1][19] != 22 {
		t.Fatalf("ApplyBatch calls: got %v, want [1 2] then 3..22 in one call", calls)
	}
	if got := tr.applied.Load(); got != 22 {
		t.Fatalf("applied index: got %d, want 22", got)
	}
}

// TestGroupCommitSnapshotCoversHandedOverEntries: a snapshot taken after
// Raft handed entries over includes them (it waits for the pipeline).
func TestGroupCommitSnapshotCoversHandedOverEntries(t *testing.T) {
	inner := &gatedFSM{}
	p := newTrackedFSM(inner).wrap().(*pipelinedFSM)
	defer p.stop()
	entered, release := inner.hold()
	p.ApplyBatch(cmdLogs(1, 3))
	<-entered
	p.ApplyBatch(cmdLogs(4, 3))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := p.Snapshot(); err != nil {
			t.Errorf("snapshot: %v", err)
		}
	}()
	close(release)
	<-done
	if inner.snapAt != 6 {
		t.Fatalf("snapshot taken at index %d, want 6 (everything handed over)", inner.snapAt)
	}
}

// TestGroupCommitStopAppliesWhatIsQueued: stopping (after Raft shut down)
// applies the batches still queued.
func TestGroupCommitStopAppliesWhatIsQueued(t *testing.T) {
	inner := &gatedFSM{}
	tr := newTrackedFSM(inner)
	p := tr.wrap().(*pipelinedFSM)
	entered, release := inner.hold()
	p.ApplyBatch(cmdLogs(1, 1))
	<-entered
	p.ApplyBatch(cmdLogs(2, 5))
	go close(release)
	p.stop()
	if got := tr.applied.Load(); got != 6 {
		t.Fatalf("applied index after stop: got %d, want 6", got)
	}
}

// TestPipelineBoundsQueuedBytes: the command bytes waiting for the FSM
// are bounded, so a follower that applies slower than the cluster commits
// large entries (a bulk load) stops taking more from Raft instead of
// holding them all in memory; the budget comes back once they are applied.
func TestPipelineBoundsQueuedBytes(t *testing.T) {
	inner := &gatedFSM{}
	tr := newTrackedFSM(inner)
	p := tr.wrap().(*pipelinedFSM)
	defer p.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	entered, release := inner.hold()
	big := cmdLogs(1, 4)
	for _, l := range big {
		l.Data = make([]byte, maxPipelinedBytes/4)
	}
	first := p.ApplyBatch(big)
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the first batch never reached the FSM")
	}
	if p.queued.TryAcquire(1) {
		t.Fatal("a full budget of command bytes is waiting for the FSM, yet one more byte was admitted")
	}
	next := make(chan []any, 1)
	go func() {
		next <- p.ApplyBatch([]*raft.Log{{Index: 5, Term: 1, Type: raft.LogCommand, Data: []byte("x")}})
	}()
	close(release)
	var second []any
	select {
	case second = <-next:
	case <-ctx.Done():
		t.Fatal("the budget never came back after the FSM applied the first batch")
	}
	for _, r := range append(first, second...) {
		if _, err := r.(*pendingResponse).wait(ctx); err != nil {
			t.Fatalf("waiting for a response: %v", err)
		}
	}
	if got := tr.applied.Load(); got != 5 {
		t.Fatalf("applied index: got %d, want 5", got)
	}
}
