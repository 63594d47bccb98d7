package clusterrpc

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/cluster"
)

// NotLeaderMetaKey is the error-metadata key set on Unavailable errors that
// mean "this node is not the leader, nothing was applied"; its value is the
// leader id the node knows ("?" if none).
const NotLeaderMetaKey = "Sessiond-Not-Leader"

// noLeader is NotLeaderMetaKey's value when no leader is known (not a valid
// node id).
const noLeader = "?"

// ToConnectError maps a cluster error to a Connect error: *NotLeaderError ->
// Unavailable (with NotLeaderMetaKey), *StaleError -> FailedPrecondition,
// ErrInvalidArgument -> InvalidArgument, ErrAlreadyExists -> AlreadyExists,
// ErrUnknownNode -> NotFound, ErrQuorumAtRisk -> FailedPrecondition,
// ErrShutdown -> Unavailable, ErrOutcomeUnknown -> Unknown, context errors
// -> DeadlineExceeded/Canceled, a *connect.Error passes through, anything
// else -> Internal. nil maps to nil.
func ToConnectError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	var nle *cluster.NotLeaderError
	var stale *cluster.StaleError
	switch {
	case errors.As(err, &nle):
		e := connect.NewError(connect.CodeUnavailable, err)
		id := nle.LeaderID
		if id == "" {
			id = noLeader
		}
		e.Meta().Set(NotLeaderMetaKey, id)
		return e
	case errors.As(err, &stale):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.As(err, &ce):
		return ce
	case errors.Is(err, cluster.ErrInvalidArgument):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, cluster.ErrAlreadyExists):
		return connect.NewError(connect.CodeAlreadyExists, err)
	case errors.Is(err, cluster.ErrUnknownNode):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, cluster.ErrQuorumAtRisk):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, cluster.ErrShutdown):
		return connect.NewError(connect.CodeUnavailable, err)
	case errors.Is(err, cluster.ErrOutcomeUnknown):
		return connect.NewError(connect.CodeUnknown, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	default:
		return connect.NewError(connect.CodeInternal, err)
	}
}

// fromConnectError turns a forwarded call's error back into a cluster error
// where that matters for retrying: Unavailable with NotLeaderMetaKey ->
// *cluster.NotLeaderError. Other errors are returned unchanged.
func fromConnectError(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) && ce.Code() == connect.CodeUnavailable {
		if vals, ok := ce.Meta()[NotLeaderMetaKey]; ok {
			id := ""
			if len(vals) > 0 && vals[0] != noLeader {
				id = vals[0]
			}
			return fmt.Errorf("%w (remote: %v)", &cluster.NotLeaderError{LeaderID: id}, ce.Message())
		}
	}
	return err
}
