package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"

	"connectrpc.com/connect"

	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1/clusterv1connect"
)

// Propose applies cmd on the leader: locally (Apply) when this node leads,
// otherwise by forwarding it to the leader's PeerService.Apply over the
// peer channel (mutual TLS, the leader's certificate must name the leader
// Raft reports).
//
// It is bounded by ctx's deadline and Config.RequestTimeout, whichever
// comes first. Within that bound it waits for a leader while none is known,
// and tries again when the leader turns out not to be one, cannot be
// reached, is replaced while the call is forwarded to it (the call is then
// abandoned and sent to the new leader), or loses its leadership while
// committing. Repeating a command is safe only because callers embed a
// request id the FSM deduplicates: every command given to Propose must.
// When the bound ends first it returns an *UnavailableError (errors.Is
// ErrUnavailable) saying why: no leader since when, or the leader that did
// not answer, and how many voters this node reaches. Other failures (an
// FSM error, the node shut down) are returned at once.
func (n *Node) Propose(ctx context.Context, cmd []byte) (Applied, error) {
	var out Applied
	err := n.bounded(ctx, "write", true, func(ctx context.Context) error {
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

// toLeader calls the leader this node knows through call. The call is
// abandoned when the known leader changes meanwhile. A not-leader answer
// is a *NotLeaderError; no answer (refused or lost connection, the leader
// replaced) wraps errLeaderUnreachable, and also errSent once the request
// may have reached the leader.
func (n *Node) toLeader(ctx context.Context, what string, call func(ctx context.Context, c clusterv1connect.PeerServiceClient) error) error {
	changed := n.leaders.changed()
	c, leaderID, err := n.leaderClient()
	if err != nil {
		return err
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-changed:
			cancel()
		case <-actx.Done():
		}
	}()
	err = call(actx, c)
	var fe *FSMError
	if err == nil || errors.As(err, &fe) {
		return err
	}
	err = fromConnectError(err)
	switch {
	case errors.Is(err, ErrNotLeader):
		return fmt.Errorf("cluster: %s: leader %s: %w", what, leaderID, err)
	case ctx.Err() != nil:
		return fmt.Errorf("cluster: %s: leader %s: %w", what, leaderID, err)
	case actx.Err() != nil:
		return fmt.Errorf("cluster: %s: %w: leader %s replaced while the call waited: %w", what, errLeaderUnreachable, leaderID, errSent)
	case notSent(err):
		return fmt.Errorf("cluster: %s: %w: %s: %w", what, errLeaderUnreachable, leaderID, err)
	case lostAnswer(err):
		return fmt.Errorf("cluster: %s: %w: %s: %w (%w)", what, errLeaderUnreachable, leaderID, err, errSent)
	}
	return fmt.Errorf("cluster: %s: leader %s: %w", what, leaderID, err)
}

// lostAnswer reports whether a failed peer call got no real answer (the
// connection failed or broke, the call was cut short) or an answer that
// the outcome is unknown: worth sending again, to the leader known then.
func lostAnswer(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeCanceled, connect.CodeDeadlineExceeded, connect.CodeUnknown, connect.CodeAborted:
		return true
	}
	return false
}

// notSent reports whether a failed peer call never reached the leader:
// the connection to it could not be set up.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// forwardApply applies cmd on the leader. A not-leader answer is a
// *NotLeaderError (nothing applied); an FSM error comes back as *FSMError.
func (n *Node) forwardApply(ctx context.Context, cmd []byte) (Applied, error) {
	var out Applied
	err := n.toLeader(ctx, "forward write", func(ctx context.Context, c clusterv1connect.PeerServiceClient) error {
		resp, err := c.Apply(ctx, connect.NewRequest(&clusterv1.ApplyRequest{Command: cmd}))
		if err != nil {
			return err
		}
		out = Applied{Index: resp.Msg.GetIndex(), Response: resp.Msg.GetResponse()}
		if msg := resp.Msg.GetFsmError(); msg != "" {
			return &FSMError{Index: out.Index, Err: errors.New(msg)}
		}
		return nil
	})
	return out, err
}

// forwardReadIndex asks the leader for its read index.
func (n *Node) forwardReadIndex(ctx context.Context) (uint64, error) {
	var index uint64
	err := n.toLeader(ctx, "read index", func(ctx context.Context, c clusterv1connect.PeerServiceClient) error {
		resp, err := c.ReadIndex(ctx, connect.NewRequest(&clusterv1.ReadIndexRequest{}))
		if err != nil {
			return err
		}
		index = resp.Msg.GetIndex()
		return nil
	})
	return index, err
}
