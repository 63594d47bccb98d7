package cluster

import (
	"context"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"golang.org/x/sync/semaphore"
)

// trackedFSM wraps the user's FSM and records the highest log index the FSM
// has finished applying (Raft's own AppliedIndex runs ahead of the FSM: it is
// bumped when entries are handed to the FSM goroutine).
type trackedFSM struct {
	inner raft.FSM
	snaps raft.SnapshotStore

	applied atomic.Uint64
	mu      sync.Mutex
	notify  chan struct{} // closed and replaced whenever applied advances

	pipe *pipelinedFSM // set by wrap when the inner FSM batches
}

func newTrackedFSM(inner raft.FSM) *trackedFSM {
	return &trackedFSM{inner: inner, notify: make(chan struct{})}
}

// wrap returns a raft.FSM that also implements raft.BatchingFSM when the
// inner FSM does (Raft checks with a type assertion).
func (t *trackedFSM) wrap() raft.FSM {
	if b, ok := t.inner.(raft.BatchingFSM); ok {
		t.pipe = newPipelinedFSM(t, b)
		return t.pipe
	}
	return t
}

func (t *trackedFSM) advance(index uint64) {
	for {
		cur := t.applied.Load()
		if index <= cur {
			return
		}
		if t.applied.CompareAndSwap(cur, index) {
			break
		}
	}
	t.mu.Lock()
	close(t.notify)
	t.notify = make(chan struct{})
	t.mu.Unlock()
}

// changed returns a channel closed at the next advance.
func (t *trackedFSM) changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.notify
}

func (t *trackedFSM) Apply(l *raft.Log) any {
	resp := t.inner.Apply(l)
	t.advance(l.Index)
	return resp
}

func (t *trackedFSM) Snapshot() (raft.FSMSnapshot, error) { return t.inner.Snapshot() }

func (t *trackedFSM) Restore(rc io.ReadCloser) error {
	if err := t.inner.Restore(rc); err != nil {
		return err
	}
	// Raft persists a snapshot in the store before restoring it, so the
	// newest stored snapshot is the one just restored.
	if t.snaps != nil {
		if list, err := t.snaps.List(); err == nil && len(list) > 0 {
			t.applied.Store(0)
			t.advance(list[0].Index)
		}
	}
	return nil
}

// Group commit of the FSM.
//
// Raft hands the FSM one batch per commit notification, often a few
// entries, and waits for each before the next; a persistent FSM (the
// store: one bbolt transaction and its fsyncs per batch) then pays its
// commit for every few entries, and under load the batches queue up
// behind it, each still small. The pipeline takes them from Raft at once
// and applies everything queued meanwhile in one ApplyBatch of the inner
// FSM: one transaction, one fsync, for all the batches that arrived while
// the previous one was committing.
//
// A batch's responses are *pendingResponse values that Node.Apply waits
// on, so a write is acknowledged only once the transaction holding it is
// committed, as before. The tracked applied index (reads wait for it)
// advances when the inner FSM has applied, never when Raft handed over.
// Snapshot and Restore first wait for everything handed over to be
// applied, so a snapshot covers the index Raft gives it; Node.Shutdown
// applies what is still queued after Raft stopped.

// maxPipelined is how many of Raft's batches, and maxPipelinedBytes how
// many bytes of their command data, may wait for the inner FSM before
// ApplyBatch blocks Raft's FSM goroutine (back-pressure). The byte bound
// keeps a follower that applies slower than the cluster commits (a bulk
// load of large commands, a node short of page cache) from holding
// maxPipelined batches of up to MaxAppendEntries large entries in memory.
const (
	maxPipelined      = 64
	maxPipelinedBytes = 16 << 20
)

// maxGroupEntries and maxGroupBytes (of command data) bound what one
// inner ApplyBatch (one transaction) merges. A transaction holds every
// page it dirties in memory until it commits, many times its commands'
// size when they write at random keys: a follower catching up on a bulk
// load into 1M sessions (256 sessions per command, each at random
// places in several indexes) dirtied most of the tree, 230 MB of pages,
// in one transaction of 16 MiB of commands, and 4 MiB did not do much
// better. 512 KiB is a few bulk commands; the groups of ordinary writes
// (a few hundred bytes each) are smaller than that under any load of a
// few hundred clients.
const (
	maxGroupEntries = 4096
	maxGroupBytes   = 512 << 10
)

// pendingResponse is an entry's response while the batch holding it waits
// for the inner FSM: wait returns the inner FSM's response for it.
type pendingResponse struct {
	g *pendingGroup
	i int
}

// pendingGroup is one of Raft's batches in the pipeline.
type pendingGroup struct {
	logs   []*raft.Log // none: a marker of drain
	weight int64       // its share of pipelinedFSM.queued
	resp   []any
	done   chan struct{} // closed once resp is set
}

// wait blocks until the response is known or ctx ends.
func (p *pendingResponse) wait(ctx context.Context) (any, error) {
	select {
	case <-p.g.done:
		return p.g.resp[p.i], nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// pipelinedFSM is the raft.BatchingFSM Raft sees when the user's FSM
// batches: it queues Raft's batches for one applier goroutine.
type pipelinedFSM struct {
	*trackedFSM
	batching raft.BatchingFSM
	queue    chan *pendingGroup
	// queued holds the command bytes of the batches in queue, at most
	// maxPipelinedBytes (a larger batch takes all of it).
	queued   *semaphore.Weighted
	stopOnce sync.Once
	stopped  chan struct{}
}

func newPipelinedFSM(t *trackedFSM, inner raft.BatchingFSM) *pipelinedFSM {
	p := &pipelinedFSM{trackedFSM: t, batching: inner, queue: make(chan *pendingGroup, maxPipelined), queued: semaphore.NewWeighted(maxPipelinedBytes), stopped: make(chan struct{})}
	go p.run()
	return p
}

// ApplyBatch queues logs and returns one *pendingResponse per entry.
func (p *pipelinedFSM) ApplyBatch(logs []*raft.Log) []any {
	g := &pendingGroup{logs: logs, weight: min(int64(dataSize(logs)), maxPipelinedBytes), done: make(chan struct{})}
	out := make([]any, len(logs))
	for i := range logs {
		out[i] = &pendingResponse{g: g, i: i}
	}
	// Acquire cannot fail: its context never ends.
	_ = p.queued.Acquire(context.Background(), g.weight)
	p.queue <- g
	return out
}

// drain waits until every batch queued so far has been applied.
func (p *pipelinedFSM) drain() {
	g := &pendingGroup{done: make(chan struct{})}
	p.queue <- g
	<-g.done
}

func (p *pipelinedFSM) Snapshot() (raft.FSMSnapshot, error) {
	p.drain()
	return p.trackedFSM.Snapshot()
}

func (p *pipelinedFSM) Restore(rc io.ReadCloser) error {
	p.drain()
	return p.trackedFSM.Restore(rc)
}

// stop applies what is queued and ends the applier. Raft must have shut
// down (no more ApplyBatch calls).
func (p *pipelinedFSM) stop() {
	p.stopOnce.Do(func() { close(p.queue) })
	<-p.stopped
}

// run is the applier: it takes the next batch and every batch queued
// behind it (up to maxGroupEntries entries) and applies them in one inner
// ApplyBatch.
func (p *pipelinedFSM) run() {
	defer close(p.stopped)
	var groups []*pendingGroup
	var logs []*raft.Log
	for {
		g, ok := <-p.queue
		if !ok {
			return
		}
		groups, logs = append(groups[:0], g), append(logs[:0], g.logs...)
		size := dataSize(g.logs)
	more:
		for len(logs) < maxGroupEntries && size < maxGroupBytes {
			select {
			case g, ok := <-p.queue:
				if !ok {
					break more
				}
				groups, logs = append(groups, g), append(logs, g.logs...)
				size += dataSize(g.logs)
			default:
				break more
			}
		}
		var resp []any
		if len(logs) > 0 {
			resp = p.batching.ApplyBatch(logs)
			p.advance(logs[len(logs)-1].Index)
		}
		for _, g := range groups {
			g.resp, resp = resp[:len(g.logs):len(g.logs)], resp[len(g.logs):]
			p.queued.Release(g.weight)
			close(g.done)
		}
		clear(groups)
		clear(logs)
	}
}

func dataSize(logs []*raft.Log) int {
	n := 0
	for _, l := range logs {
		n += len(l.Data)
	}
	return n
}
