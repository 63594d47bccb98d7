package cluster

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
)

// NotLeaderMetaKey is the error-metadata key set on Unavailable errors that
// mean "this node is not the leader, nothing was done"; its value is the
// leader id the node knows ("?" if none).
const NotLeaderMetaKey = "Sessiond-Not-Leader"

// RemovedMetaKey is the error-metadata key set on the FailedPrecondition
// error that refuses a node removed from the cluster (ErrRemoved).
const RemovedMetaKey = "Sessiond-Removed"

// noLeader is NotLeaderMetaKey's value when no leader is known (not a valid
// node id).
const noLeader = "?"

// ToConnectError maps an error of this package to a Connect error:
// *NotLeaderError -> Unavailable (with NotLeaderMetaKey), *StaleError ->
// FailedPrecondition, ErrInvalidArgument -> InvalidArgument,
// ErrAlreadyExists -> AlreadyExists, ErrUnknownNode -> NotFound,
// ErrQuorumAtRisk, ErrUnreachable and ErrClusterMismatch ->
// FailedPrecondition, ErrRemoved -> FailedPrecondition (with
// RemovedMetaKey), ErrIdentity -> PermissionDenied, ErrShutdown and
// ErrUnavailable -> Unavailable, ErrOutcomeUnknown -> Unknown, context errors ->
// DeadlineExceeded/Canceled; a *connect.Error passes through; anything else
// -> Internal. nil maps to nil.
func ToConnectError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	var nle *NotLeaderError
	var stale *StaleError
	code := connect.CodeInternal
	switch {
	case errors.Is(err, ErrUnavailable):
		// Before not-leader: the last attempt's error it wraps is no
		// longer the answer.
		code = connect.CodeUnavailable
	case errors.As(err, &nle):
		e := connect.NewError(connect.CodeUnavailable, err)
		id := nle.LeaderID
		if id == "" {
			id = noLeader
		}
		e.Meta().Set(NotLeaderMetaKey, id)
		return e
	case errors.As(err, &stale):
		code = connect.CodeFailedPrecondition
	case errors.As(err, &ce):
		return ce
	case errors.Is(err, ErrInvalidArgument):
		code = connect.CodeInvalidArgument
	case errors.Is(err, ErrAlreadyExists):
		code = connect.CodeAlreadyExists
	case errors.Is(err, ErrUnknownNode):
		code = connect.CodeNotFound
	case errors.Is(err, ErrRemoved):
		e := connect.NewError(connect.CodeFailedPrecondition, err)
		e.Meta().Set(RemovedMetaKey, "1")
		return e
	case errors.Is(err, ErrQuorumAtRisk), errors.Is(err, ErrUnreachable), errors.Is(err, ErrClusterMismatch):
		code = connect.CodeFailedPrecondition
	case errors.Is(err, ErrIdentity):
		code = connect.CodePermissionDenied
	case errors.Is(err, ErrShutdown):
		code = connect.CodeUnavailable
	case errors.Is(err, ErrOutcomeUnknown):
		code = connect.CodeUnknown
	case errors.Is(err, context.DeadlineExceeded):
		code = connect.CodeDeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = connect.CodeCanceled
	}
	return connect.NewError(code, err)
}

// fromConnectError turns a peer call's error back into this package's where
// retrying depends on it: Unavailable with NotLeaderMetaKey ->
// *NotLeaderError (nothing was done). Other errors are returned unchanged.
func fromConnectError(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) && ce.Code() == connect.CodeUnavailable {
		if vals, ok := ce.Meta()[NotLeaderMetaKey]; ok {
			id := ""
			if len(vals) > 0 && vals[0] != noLeader {
				id = vals[0]
			}
			return fmt.Errorf("%w (remote: %v)", &NotLeaderError{LeaderID: id}, ce.Message())
		}
	}
	return err
}
