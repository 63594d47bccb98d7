package cluster

import (
	"context"
	"fmt"
	"time"
)

// ReadIndex implements the leader side of the read-index protocol (Raft
// dissertation §6.4) as one function. On the leader it:
//
//  1. makes sure the leader has committed and applied an entry of its
//     current term, by issuing a Barrier once per term (the first call in a
//     new term pays one round of replication; later calls skip it);
//  2. records the commit index as the read index;
//  3. confirms it is still the leader by hearing from a quorum
//     (raft.VerifyLeader), so no newer leader can have committed anything
//     the read index does not cover;
//  4. checks the term did not change meanwhile, and returns the read index.
//
// A read served after the local FSM has applied the returned index (see
// WaitApplied) is linearizable. On a follower it returns *NotLeaderError.
// It honours ctx's deadline.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if !n.IsLeader() {
		return 0, n.notLeader()
	}
	term := n.raft.CurrentTerm()
	if n.barrierTerm.Load() != term {
		if err := awaitFuture(ctx, n.raft.Barrier(timeoutFrom(ctx))); err != nil {
			return 0, n.mapRaftErr("read index: barrier", err)
		}
		n.barrierTerm.Store(term)
	}
	index := n.raft.CommitIndex()
	if err := awaitFuture(ctx, n.raft.VerifyLeader()); err != nil {
		return 0, n.mapRaftErr("read index: verify leader", err)
	}
	if n.raft.CurrentTerm() != term {
		return 0, n.notLeader()
	}
	return index, nil
}

// Consistency selects how fresh a read must be (see ReadBarrier). It mirrors
// sessiond.cluster.v1.ReadConsistency.
type Consistency int

const (
	// ConsistencyDefault: the zero value; served locally on the leader, and
	// on a follower that is in close contact with the leader and has applied
	// everything it knows committed; otherwise like ConsistencyLinearizable.
	ConsistencyDefault Consistency = iota
	// ConsistencyStale: served from local state, optionally bounded by
	// ReadOptions.MaxStaleness.
	ConsistencyStale
	// ConsistencyLinearizable: reflects every write acknowledged before the
	// read started (read-index protocol through the leader).
	ConsistencyLinearizable
)

// String returns "default", "stale" or "linearizable".
func (c Consistency) String() string {
	switch c {
	case ConsistencyDefault:
		return "default"
	case ConsistencyStale:
		return "stale"
	case ConsistencyLinearizable:
		return "linearizable"
	}
	return fmt.Sprintf("Consistency(%d)", int(c))
}

// ReadOptions is the Go form of sessiond.cluster.v1.ReadOptions.
type ReadOptions struct {
	// Consistency is the freshness level; the zero value is ConsistencyDefault.
	Consistency Consistency
	// MaxStaleness, for ConsistencyStale, bounds how long ago a follower may
	// last have heard from the leader; 0 means unbounded. Ignored for the
	// other levels.
	MaxStaleness time.Duration
	// MinIndex, when non-zero, makes the read wait until this node has
	// applied at least this log index (read-your-writes after a write that
	// returned that index).
	MinIndex uint64
}

// ReadBarrier prepares a local read at the requested consistency and returns
// the log index the read will reflect (the local applied index once the
// barrier is passed). Read the FSM right after it returns.
//
//   - MinIndex > 0: first waits until the FSM has applied MinIndex.
//   - Stale: local (ErrUnavailable on a node that has applied no entry
//     at all, so no answer names index 0). With MaxStaleness > 0, a follower whose last contact with
//     the leader is older than MaxStaleness (or that has none) fails with
//     *StaleError naming the lag.
//   - Default: local once this node has applied the index of a read-index
//     round that started at most Config.FollowerMaxLag ago (on a follower
//     the round trip to the leader, on the leader its own check that it
//     still leads): the state then reflects every write acknowledged
//     before that round started. Otherwise it takes part in a new round
//     first. Rounds are shared: on a busy node most DEFAULT reads are
//     served locally, and a node just restarted, resumed from a pause or
//     cut off from the leader never answers from older state.
//   - Linearizable: a read-index round that started after the call (on the
//     leader ReadIndex, on a follower PeerService.ReadIndex over the peer
//     channel; concurrent reads share one), then WaitApplied.
//
// Default and Linearizable are bounded like Propose (ctx's deadline and
// Config.RequestTimeout): they wait for a leader within it and otherwise
// fail with an *UnavailableError naming why.
func (n *Node) ReadBarrier(ctx context.Context, opts ReadOptions) (uint64, error) {
	return n.readBarrier(ctx, opts, time.Now)
}

func (n *Node) readBarrier(ctx context.Context, opts ReadOptions, now func() time.Time) (uint64, error) {
	if opts.MinIndex > 0 {
		wctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
		err := n.WaitApplied(wctx, opts.MinIndex)
		cancel()
		if err != nil {
			return 0, err
		}
	}
	switch opts.Consistency {
	case ConsistencyStale:
		if n.AppliedIndex() == 0 {
			// Not even the cluster's first entry: no state to answer from.
			return 0, fmt.Errorf("%w: this node has applied no entry yet (it is new or joining): ask another node, or retry", ErrUnavailable)
		}
		if opts.MaxStaleness > 0 && !n.IsLeader() {
			lag := n.lastContact(now())
			if leaderID, _ := n.Leader(); leaderID == "" {
				lag = NeverContacted
			}
			if lag > opts.MaxStaleness {
				return 0, &StaleError{Lag: lag, Max: opts.MaxStaleness}
			}
		}
		return n.AppliedIndex(), nil
	case ConsistencyDefault:
		return n.readSince(ctx, now().Add(-n.cfg.FollowerMaxLag))
	case ConsistencyLinearizable:
		return n.readSince(ctx, now())
	default:
		return 0, fmt.Errorf("%w: unknown read consistency %d", ErrInvalidArgument, int(opts.Consistency))
	}
}

// readSince obtains the index of a read-index round that started at or
// after since (locally on the leader, from the leader over the peer
// channel on a follower; a recent enough round already done or in flight
// is shared), within the request's bound, and waits until the FSM has
// applied it.
func (n *Node) readSince(ctx context.Context, since time.Time) (uint64, error) {
	// The common case of a busy node: a recent round, already applied.
	rounds := &n.followerRounds
	if n.IsLeader() {
		rounds = &n.leaderRounds
	}
	if i, ok := rounds.recent(since); ok && n.fsmCaughtUp(i) {
		return n.AppliedIndex(), nil
	}
	var index uint64
	err := n.bounded(ctx, "read", false, func(ctx context.Context) error {
		var err error
		if n.IsLeader() {
			index, err = n.leaderRounds.get(ctx, since)
		} else {
			index, err = n.followerRounds.get(ctx, since)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	if !n.fsmCaughtUp(index) {
		wctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
		defer cancel()
		if err := n.WaitApplied(wctx, index); err != nil {
			return 0, err
		}
	}
	return n.AppliedIndex(), nil
}

// leaderReadIndex answers a follower's PeerService.ReadIndex: a round of
// ReadIndex on this node that started after the call (shared with the
// other reads waiting here), or *NotLeaderError.
func (n *Node) leaderReadIndex(ctx context.Context) (uint64, error) {
	if !n.IsLeader() {
		return 0, n.notLeader()
	}
	return n.leaderRounds.get(ctx, time.Now())
}

// ReadIndexRounds returns how many read-index rounds this node has
// started (as leader and as follower): many concurrent reads share one.
func (n *Node) ReadIndexRounds() uint64 {
	return n.leaderRounds.started() + n.followerRounds.started()
}

// CaughtUp reports whether this node, since it started, has applied
// everything the cluster had committed at some moment after its start (a
// read-index round once a leader was known). It stays true from then on.
// A node just restarted serves its old state until then, so it is not
// ready.
func (n *Node) CaughtUp() bool { return n.caughtUp.Load() }

// catchUp runs one read-index round after the node starts, retrying until
// it succeeds or the node shuts down, then sets caughtUp.
func (n *Node) catchUp() {
	for {
		changed := n.leaders.changed()
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.RequestTimeout)
		go func() {
			select {
			case <-n.closed:
				cancel()
			case <-ctx.Done():
			}
		}()
		_, err := n.readSince(ctx, time.Now())
		cancel()
		if err == nil {
			n.caughtUp.Store(true)
			return
		}
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-n.closed:
			t.Stop()
			return
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}
