package cluster

import (
	"context"
	"sync"
	"time"
)

// readRound is one read-index round trip: started at start (this node's
// clock, before the request left), it learned index, the leader's commit
// index at some moment after start, or failed with err.
type readRound struct {
	start time.Time
	done  chan struct{}
	index uint64
	err   error
}

// readRounds shares read-index rounds between concurrent reads. A read
// needs a round that started no earlier than some time: its own arrival
// for a LINEARIZABLE read (every write acknowledged before it then lies at
// or below the index), its arrival minus the bound for a DEFAULT read. It
// takes the last completed round when that one is recent enough, joins the
// round in flight when that one started late enough, and otherwise waits
// for the next round, which starts as soon as the one in flight ends: so
// however many reads wait, a node has at most one round in flight and one
// queued (many reads, one ReadIndex call).
type readRounds struct {
	// do runs one round; ctx bounds it.
	do func(ctx context.Context) (uint64, error)
	// timeout bounds one round; closed stops starting rounds.
	timeout time.Duration
	closed  <-chan struct{}

	mu       sync.Mutex
	last     *readRound // the newest successful round, completed
	inflight *readRound
	next     *readRound // queued behind inflight, not started
	rounds   uint64     // rounds started (for tests and benchmarks)
}

// get returns the index of a round that started at or after since,
// waiting for ctx at most. A failed round's error is returned as is (the
// caller decides whether to retry).
func (rs *readRounds) get(ctx context.Context, since time.Time) (uint64, error) {
	r := rs.pick(since)
	if r.done != nil {
		select {
		case <-r.done:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return r.index, r.err
}

// recent returns the index of the last completed round when it started at
// or after since.
func (rs *readRounds) recent(since time.Time) (uint64, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if l := rs.last; l != nil && !l.start.Before(since) {
		return l.index, true
	}
	return 0, false
}

// pick returns a completed round (done nil), or one to wait for.
func (rs *readRounds) pick(since time.Time) *readRound {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if l := rs.last; l != nil && !l.start.Before(since) {
		return &readRound{start: l.start, index: l.index}
	}
	if f := rs.inflight; f != nil {
		if !f.start.Before(since) {
			return f
		}
		if rs.next == nil {
			rs.next = &readRound{done: make(chan struct{})}
		}
		return rs.next
	}
	r := &readRound{done: make(chan struct{})}
	rs.startLocked(r)
	return r
}

// startLocked starts r now; rs.mu is held.
func (rs *readRounds) startLocked(r *readRound) {
	r.start = time.Now()
	rs.inflight = r
	rs.rounds++
	go rs.run(r)
}

func (rs *readRounds) run(r *readRound) {
	ctx, cancel := context.WithTimeout(context.Background(), rs.timeout)
	go func() {
		select {
		case <-rs.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	r.index, r.err = rs.do(ctx)
	cancel()
	rs.mu.Lock()
	if r.err == nil && (rs.last == nil || !r.start.Before(rs.last.start)) {
		rs.last = r
	}
	rs.inflight = nil
	if n := rs.next; n != nil {
		rs.next = nil
		rs.startLocked(n)
	}
	rs.mu.Unlock()
	close(r.done)
}

// started returns how many rounds have started.
func (rs *readRounds) started() uint64 {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.rounds
}
