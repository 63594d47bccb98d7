package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/cenkalti/backoff/v5"
	"github.com/hashicorp/raft"
)

// ErrUnavailable is matched (errors.Is) by every *UnavailableError: the
// cluster could not serve a write or a consistent read within the
// request's bound (the caller's deadline and Config.RequestTimeout).
var ErrUnavailable = errors.New("cluster: unavailable")

// UnavailableError says why a write or a consistent read was not served
// within its bound: no leader (since when), or a leader this node could
// not reach or that could not commit, and how many voters this node
// reached when it gave up.
type UnavailableError struct {
	// Op is "write" or "read".
	Op string
	// Waited is how long the request waited.
	Waited time.Duration
	// Leader is the leader this node knew when it gave up, "" for none;
	// NoLeaderSince is since when it has known none (when Leader is "").
	Leader        string
	NoLeaderSince time.Time
	// Voters is the number of voters in this node's configuration (0 when
	// it holds none); Reachable how many of them (this node included)
	// answered a probe just now; Down says why each other one did not.
	Voters, Reachable int
	Down              []string
	// MaybeApplied: a write was handed to a leader that did not answer, so
	// it may still be applied (retrying it with the same request id is
	// safe).
	MaybeApplied bool
	// Last is the last failure of the last attempt.
	Last error
}

func (e *UnavailableError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster unavailable: %s not served within %s: %s", e.Op, e.Waited.Round(time.Millisecond), e.Reason())
	if e.MaybeApplied {
		b.WriteString("; the write may still be applied")
	}
	if e.Last != nil && !errors.Is(e.Last, ErrNotLeader) {
		fmt.Fprintf(&b, " (last error: %v)", unwrapConnect(e.Last))
	}
	return b.String()
}

// Reason says why, in a few words: "no leader since 05:01:02.345 (3.2s
// ago); 1 of 3 voters reachable".
func (e *UnavailableError) Reason() string {
	var b strings.Builder
	if e.Leader == "" {
		fmt.Fprintf(&b, "no leader since %s (%s ago)", e.NoLeaderSince.UTC().Format("15:04:05.000Z"), time.Since(e.NoLeaderSince).Round(time.Millisecond))
	} else {
		fmt.Fprintf(&b, "leader %s did not answer in time", e.Leader)
	}
	switch {
	case e.Voters == 0:
		b.WriteString("; this node holds no cluster configuration")
	default:
		fmt.Fprintf(&b, "; %d of %d voters reachable", e.Reachable, e.Voters)
		if len(e.Down) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(e.Down, "; "))
		}
	}
	return b.String()
}

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Unwrap returns the last attempt's error.
func (e *UnavailableError) Unwrap() error { return e.Last }

// errLeaderUnreachable is wrapped when a call forwarded to the leader got
// no answer (connection refused or lost, the leader replaced meanwhile):
// worth retrying with the leader known next.
var errLeaderUnreachable = errors.New("cluster: leader unreachable")

// diagnoseReserve is the part of a request's bound kept for saying why it
// failed, at most a tenth of the bound: the voters are probed in its first
// half, so the answer leaves before the caller's deadline.
const diagnoseReserve = 500 * time.Millisecond

// retryable reports whether a failed attempt changed nothing or may be
// repeated: no leader, the leader unreachable, or leadership lost while
// committing (a read changes nothing; a write carries a request id the FSM
// applies once).
func retryable(err error) bool {
	switch {
	case errors.Is(err, ErrNotLeader), errors.Is(err, errLeaderUnreachable):
		return true
	case errors.Is(err, ErrOutcomeUnknown) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled):
		return true
	}
	return false
}

// bounded runs attempt until it succeeds, fails for good, or the request's
// bound ends: the earlier of ctx's deadline and Config.RequestTimeout from
// now. Between attempts that may be repeated (see retryable) it waits for
// the known leader to change or a backoff of 5-100 ms. When the bound
// ends it returns an *UnavailableError naming why (a little before ctx's
// deadline, so the caller gets the answer); when ctx is cancelled,
// ctx's error.
func (n *Node) bounded(ctx context.Context, op string, write bool, attempt func(ctx context.Context) error) error {
	start := time.Now()
	bctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	deadline, _ := bctx.Deadline()
	reserve := min(diagnoseReserve, time.Until(deadline)/10)
	actx, acancel := context.WithDeadline(bctx, deadline.Add(-reserve))
	defer acancel()
	b := &backoff.ExponentialBackOff{InitialInterval: 5 * time.Millisecond, RandomizationFactor: 0.2, Multiplier: 2, MaxInterval: 100 * time.Millisecond}
	b.Reset()
	var last error
	maybeApplied := false
	for {
		changed := n.leaders.changed()
		last = attempt(actx)
		if last == nil {
			return nil
		}
		if write && (errors.Is(last, ErrOutcomeUnknown) || errors.Is(last, errLeaderUnreachable) && errors.Is(last, errSent)) {
			maybeApplied = true
		}
		if ctx.Err() != nil {
			return last
		}
		if !retryable(last) && actx.Err() == nil {
			return last
		}
		if actx.Err() == nil {
			t := time.NewTimer(b.NextBackOff())
			select {
			case <-changed:
			case <-t.C:
			case <-actx.Done():
			case <-n.closed:
				t.Stop()
				return ErrShutdown
			}
			t.Stop()
		}
		if actx.Err() != nil {
			if ctx.Err() != nil {
				return last
			}
			pctx, pcancel := context.WithDeadline(bctx, deadline.Add(-reserve/2))
			defer pcancel()
			return n.unavailable(pctx, op, start, maybeApplied, last)
		}
	}
}

// errSent marks a forwarded call whose request may have reached the
// leader before the failure.
var errSent = errors.New("request sent")

// unavailable builds the *UnavailableError of a request that waited since
// start, probing the other voters within ctx.
func (n *Node) unavailable(ctx context.Context, op string, start time.Time, maybeApplied bool, last error) error {
	e := &UnavailableError{Op: op, MaybeApplied: maybeApplied, Last: last}
	e.Leader, _ = n.Leader()
	if e.Leader == "" {
		e.NoLeaderSince = n.leaders.noLeaderSince()
	}
	var voters []Server
	for _, s := range n.raft.GetConfiguration().Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters = append(voters, Server{ID: string(s.ID), RaftAddr: string(s.Address), Voter: true})
		}
	}
	e.Voters = len(voters)
	if len(voters) > 0 {
		e.Reachable, e.Down = n.probeVoters(ctx, voters)
		slices.Sort(e.Down)
	}
	e.Waited = time.Since(start)
	return e
}

// probeVoters asks every other voter for its Info at once, within ctx,
// and counts those that answer (this node included).
func (n *Node) probeVoters(ctx context.Context, voters []Server) (alive int, down []string) {
	type result struct {
		id  string
		err error
	}
	results := make(chan result, len(voters))
	for _, s := range voters {
		if s.ID == n.cfg.NodeID {
			results <- result{s.ID, nil}
			continue
		}
		go func() {
			_, err := n.peerInfo(ctx, s.ID, s.RaftAddr)
			results <- result{s.ID, err}
		}()
	}
	for range voters {
		r := <-results
		if r.err == nil {
			alive++
			continue
		}
		msg := "no answer"
		var op *net.OpError
		if ce := new(connect.Error); errors.As(r.err, &op) {
			msg = op.Err.Error() // "connect: connection refused"
		} else if errors.As(r.err, &ce) && ce.Code() != connect.CodeDeadlineExceeded {
			msg = ce.Message()
		}
		down = append(down, r.id+": "+msg)
	}
	return alive, down
}
