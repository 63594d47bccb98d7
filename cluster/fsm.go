package cluster

import (
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
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
}

func newTrackedFSM(inner raft.FSM) *trackedFSM {
	return &trackedFSM{inner: inner, notify: make(chan struct{})}
}

// wrap returns a raft.FSM that also implements raft.BatchingFSM when the
// inner FSM does (Raft checks with a type assertion).
func (t *trackedFSM) wrap() raft.FSM {
	if _, ok := t.inner.(raft.BatchingFSM); ok {
		return batchingTrackedFSM{t}
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

type batchingTrackedFSM struct{ *trackedFSM }

func (b batchingTrackedFSM) ApplyBatch(logs []*raft.Log) []any {
	resp := b.inner.(raft.BatchingFSM).ApplyBatch(logs)
	if n := len(logs); n > 0 {
		b.advance(logs[n-1].Index)
	}
	return resp
}
