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
//   - Stale: local. With MaxStaleness > 0, a follower whose last contact with
//     the leader is older than MaxStaleness (or that has none) fails with
//     *StaleError naming the lag.
//   - Default: local on the leader; local on a follower whose last contact
//     is within Config.FollowerMaxLag and whose applied index has reached its
//     known commit index; otherwise as Linearizable.
//   - Linearizable: on the leader ReadIndex then WaitApplied; on a follower
//     asks the leader for a read index (PeerService.ReadIndex over the peer
//     channel) then WaitApplied.
//
// It honours ctx's deadline.
func (n *Node) ReadBarrier(ctx context.Context, opts ReadOptions) (uint64, error) {
	return n.readBarrier(ctx, opts, time.Now)
}

func (n *Node) readBarrier(ctx context.Context, opts ReadOptions, now func() time.Time) (uint64, error) {
	if opts.MinIndex > 0 {
		if err := n.WaitApplied(ctx, opts.MinIndex); err != nil {
			return 0, err
		}
	}
	switch opts.Consistency {
	case ConsistencyStale:
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
		if n.IsLeader() {
			return n.AppliedIndex(), nil
		}
		if leaderID, _ := n.Leader(); leaderID != "" && n.lastContact(now()) <= n.cfg.FollowerMaxLag {
			if commit := n.raft.CommitIndex(); n.fsmCaughtUp(commit) {
				return n.AppliedIndex(), nil
			}
		}
		return n.linearizable(ctx)
	case ConsistencyLinearizable:
		return n.linearizable(ctx)
	default:
		return 0, fmt.Errorf("%w: unknown read consistency %d", ErrInvalidArgument, int(opts.Consistency))
	}
}

// linearizable obtains a read index (locally on the leader, from the
// leader over the peer channel on a follower, retrying while no leader is known) and waits
// until the FSM has applied it.
func (n *Node) linearizable(ctx context.Context) (uint64, error) {
	var index uint64
	err := n.retryNotLeader(ctx, func() error {
		if n.IsLeader() {
			i, err := n.ReadIndex(ctx)
			index = i
			return err
		}
		i, err := n.forwardReadIndex(ctx)
		index = i
		return err
	})
	if err != nil {
		return 0, err
	}
	if err := n.WaitApplied(ctx, index); err != nil {
		return 0, err
	}
	return n.AppliedIndex(), nil
}
