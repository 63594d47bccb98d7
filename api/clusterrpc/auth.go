// Package clusterrpc is the thin Connect handler of
// sessiond.cluster.v1.ClusterService (operators' cluster API, on the client
// API port) over a *cluster.Node, plus the client the CLI uses
// (WithBearer, NewClient).
//
// Callers are authenticated in front of the handler (api/callerauth) and
// each procedure needs the scope in Scopes: Status cluster:read; Join,
// Remove and TransferLeadership cluster:write; Snapshot (a backup of every
// session) admin. The handler checks the
// scope again, so that it refuses when mounted without the middleware.
// The node relays every call to the leader over the peer channel (package
// cluster owns node-to-node traffic, authenticated by node certificates).
package clusterrpc

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/api/rpcerr"
	"github.com/sessiond/sessiond/authsvc/callers"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1/clusterv1connect"
)

// Scopes is the scope each ClusterService procedure needs.
var Scopes = map[string]string{
	clusterv1connect.ClusterServiceStatusProcedure:             callers.ScopeClusterRead,
	clusterv1connect.ClusterServiceJoinProcedure:               callers.ScopeClusterWrite,
	clusterv1connect.ClusterServiceRemoveProcedure:             callers.ScopeClusterWrite,
	clusterv1connect.ClusterServiceTransferLeadershipProcedure: callers.ScopeClusterWrite,
	clusterv1connect.ClusterServiceSnapshotProcedure:           callers.ScopeAdmin,
}

// scopeInterceptor refuses a call whose principal lacks its procedure's
// scope.
type scopeInterceptor struct{}

func (scopeInterceptor) check(ctx context.Context, procedure string) error {
	scope, ok := Scopes[procedure]
	if !ok {
		return connect.NewError(connect.CodeUnimplemented, errors.New("no such procedure"))
	}
	if err := callers.Require(ctx, scope); err != nil {
		return rpcerr.FromCaller(err)
	}
	return nil
}

func (a scopeInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		if err := a.check(ctx, req.Spec().Procedure); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (scopeInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler checks server streams (Snapshot) like unary calls;
// other stream types are refused.
func (a scopeInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if conn.Spec().StreamType != connect.StreamTypeServer {
			return connect.NewError(connect.CodeUnimplemented, errors.New("only server streams are supported"))
		}
		if err := a.check(ctx, conn.Spec().Procedure); err != nil {
			return err
		}
		return next(ctx, conn)
	}
}

// clientAuth adds an Authorization header to outgoing calls.
type clientAuth struct{ header string }

func (c clientAuth) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			req.Header().Set("Authorization", c.header)
		}
		return next(ctx, req)
	}
}

func (c clientAuth) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", c.header)
		return conn
	}
}

func (c clientAuth) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// WithBearer returns a client option (connect.WithInterceptors) that sends
// "Authorization: Bearer <credential>" (an operator token) on every call.
// An empty credential sends nothing (a client certificate or the local
// operator socket authenticates the caller instead).
func WithBearer(credential string) connect.ClientOption {
	if credential == "" {
		return connect.WithInterceptors()
	}
	return connect.WithInterceptors(clientAuth{header: "Bearer " + credential})
}
