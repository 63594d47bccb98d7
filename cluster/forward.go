package cluster

import (
	"context"
	"fmt"
)

// Forwarder sends leader-only operations from a follower to the leader. The
// Connect implementation lives in package api/clusterrpc (it calls
// ClusterService.Apply / ClusterService.ReadIndex on the leader's API
// address, found through gossip). Implementations must return an error
// matching ErrNotLeader only when the operation was certainly not applied
// (the target was not the leader or no leader is known), so that the caller
// may retry it.
type Forwarder interface {
	// ForwardApply applies cmd on the leader leaderID and returns its result.
	// FSM error responses come back as *FSMError.
	ForwardApply(ctx context.Context, leaderID string, cmd []byte) (Applied, error)
	// ForwardReadIndex runs ReadIndex on the leader leaderID.
	ForwardReadIndex(ctx context.Context, leaderID string) (uint64, error)
}

// SetForwarder installs (or, with nil, removes) the Forwarder used by
// Propose and by linearizable reads on followers.
func (n *Node) SetForwarder(f Forwarder) {
	if f == nil {
		n.forwarder.Store(nil)
		return
	}
	n.forwarder.Store(&forwarderBox{f: f})
}

// Forwarder returns the installed Forwarder, or nil.
func (n *Node) Forwarder() Forwarder {
	if b := n.forwarder.Load(); b != nil {
		return b.f
	}
	return nil
}

// Propose applies cmd on the leader: locally (Apply) when this node leads,
// otherwise through the Forwarder to the leader. While no leader is known or
// the target turns out not to be the leader (nothing applied), it retries
// with a 5-100 ms backoff until ctx ends; any other failure is returned as
// is (the command may have been applied: callers embed a request id that
// the FSM deduplicates, so retrying is safe). Without a Forwarder, a
// follower returns *NotLeaderError.
func (n *Node) Propose(ctx context.Context, cmd []byte) (Applied, error) {
	var out Applied
	err := n.retryNotLeader(ctx, func() error {
		if n.IsLeader() {
			a, err := n.Apply(ctx, cmd)
			out = a
			return err
		}
		leaderID, _ := n.Leader()
		fwd := n.Forwarder()
		if leaderID == "" || fwd == nil {
			return n.notLeader()
		}
		a, err := fwd.ForwardApply(ctx, leaderID, cmd)
		out = a
		if err != nil {
			return fmt.Errorf("cluster: forward to leader %s: %w", leaderID, err)
		}
		return nil
	})
	return out, err
}
