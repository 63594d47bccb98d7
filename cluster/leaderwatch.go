package cluster

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// leaderWatch follows the leader this node knows (Raft's leader
// observations): when it last changed, since when none is known, and a
// channel closed at every change, so that requests waiting for a leader
// or forwarded to one that has since been replaced retry at once.
type leaderWatch struct {
	mu       sync.Mutex
	leader   string    // the known leader's id, "" for none
	noneFrom time.Time // when the node last lost (or, at start, had no) leader
	notify   chan struct{}
}

func (w *leaderWatch) init(now time.Time) {
	w.noneFrom = now
	w.notify = make(chan struct{})
}

// observe registers the Raft observer that maintains w until done closes.
func (w *leaderWatch) observe(r *raft.Raft, done <-chan struct{}) {
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(obs)
	go func() {
		defer r.DeregisterObserver(obs)
		for {
			select {
			case <-done:
				return
			case o := <-ch:
				w.set(string(o.Data.(raft.LeaderObservation).LeaderID), time.Now())
			}
		}
	}()
}

func (w *leaderWatch) set(id string, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if id == w.leader {
		return
	}
	if id == "" {
		w.noneFrom = now
	}
	w.leader = id
	close(w.notify)
	w.notify = make(chan struct{})
}

// changed returns a channel closed at the next change of leader.
func (w *leaderWatch) changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.notify
}

// noLeaderSince returns since when no leader has been known (from the
// node's own view as the observer last recorded it).
func (w *leaderWatch) noLeaderSince() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.noneFrom
}
