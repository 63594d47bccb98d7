package cluster

import (
	"errors"
	"fmt"
	"time"
)

// ErrNotLeader is matched (errors.Is) by every *NotLeaderError: the
// operation needs the leader and this node is not it. The operation was not
// applied, so retrying it on the leader is safe.
var ErrNotLeader = errors.New("cluster: not the leader")

// NotLeaderError says this node is not the leader and names the leader it
// knows of (both fields empty when there is no known leader, e.g. during an
// election).
type NotLeaderError struct {
	// LeaderID is the known leader's node id, or "".
	LeaderID string
	// LeaderAddr is the known leader's Raft address, or "".
	LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "cluster: not the leader (no leader known)"
	}
	return fmt.Sprintf("cluster: not the leader (leader is %s at %s)", e.LeaderID, e.LeaderAddr)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// StaleError is returned by ReadBarrier when a STALE read with a
// MaxStaleness bound cannot be served because this follower's data may be
// older than the bound.
type StaleError struct {
	// Lag is the time since this follower last heard from the leader
	// (NeverContacted if it never has or knows no leader).
	Lag time.Duration
	// Max is the bound the caller asked for.
	Max time.Duration
}

func (e *StaleError) Error() string {
	if e.Lag == NeverContacted {
		return fmt.Sprintf("cluster: follower has no contact with a leader (max staleness %s)", e.Max)
	}
	return fmt.Sprintf("cluster: follower lags the leader by %s, more than the max staleness %s", e.Lag, e.Max)
}

// Membership errors returned by Node.Join and Node.Remove (errors.Is-able).
var (
	// ErrInvalidArgument: a malformed node id or address, or a request over
	// its bounds (an ApplyBatch of more than 1024 commands).
	ErrInvalidArgument = errors.New("cluster: invalid argument")
	// ErrAlreadyExists: another live node already uses the id.
	ErrAlreadyExists = errors.New("cluster: already exists")
	// ErrUnknownNode: the node is not in the Raft configuration.
	ErrUnknownNode = errors.New("cluster: unknown node")
	// ErrQuorumAtRisk: the change would leave the remaining voters without a
	// quorum of live voters.
	ErrQuorumAtRisk = errors.New("cluster: change would lose quorum")
	// ErrOutcomeUnknown: the write may or may not have been applied
	// (leadership lost while committing, or the caller's deadline passed
	// while waiting). Retry only with a command the FSM deduplicates.
	ErrOutcomeUnknown = errors.New("cluster: write outcome unknown")
	// ErrShutdown: the node has been shut down.
	ErrShutdown = errors.New("cluster: node is shut down")
)

// FSMError wraps an error value the FSM returned as a command's response.
// The command IS applied (at Index); retrying it is pointless. For a command
// forwarded to the leader only the message survives the hop (Err is then a
// plain error with the leader's text).
type FSMError struct {
	// Index is the applied command's log index.
	Index uint64
	// Err is the FSM's error value.
	Err error
}

func (e *FSMError) Error() string { return "cluster: fsm: " + e.Err.Error() }

// Unwrap returns the FSM's error, so errors.Is/As reach it.
func (e *FSMError) Unwrap() error { return e.Err }

// ErrUnreachable is wrapped when the leader cannot complete a TLS handshake
// with a joining node at the peer address it gave (nothing was changed).
var ErrUnreachable = errors.New("cluster: node unreachable")
