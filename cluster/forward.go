package cluster

import (
	"context"
)

// Propose applies cmd on the leader: locally (Apply) when this node leads,
// otherwise by forwarding it to the leader's PeerService.Apply over the
// peer channel (mutual TLS, the leader's certificate must name the leader
// Raft reports). While no leader is known or the target turns out not to be
// the leader (nothing applied), it retries with a 5-100 ms backoff until ctx
// ends; any other failure is returned as is (the command may have been
// applied: callers embed a request id that the FSM deduplicates, so
// retrying is safe).
func (n *Node) Propose(ctx context.Context, cmd []byte) (Applied, error) {
	var out Applied
	err := n.retryNotLeader(ctx, func() error {
		var err error
		if n.IsLeader() {
			out, err = n.Apply(ctx, cmd)
			return err
		}
		out, err = n.forwardApply(ctx, cmd)
		return err
	})
	return out, err
}
