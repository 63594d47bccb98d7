// Package clusterrpc is the thin Connect handler of
// sessiond.cluster.v1.ClusterService over a *cluster.Node, plus the client
// side used for follower-to-leader forwarding (Forwarder) and by the CLI
// (WithBearer, NewClient).
//
// Callers are authenticated in front of the handler (api/callerauth) and
// each procedure needs the scope in Scopes: Status cluster:read; Join,
// Remove and TransferLeadership cluster:write; Apply and ReadIndex
// cluster:peer (nodes only). The handler checks the scope again, so that
// it refuses when mounted without the middleware. A follower forwards
// Join, Remove, Status and TransferLeadership to the leader (one hop) as a
// node; only a node may send a forwarded call.
package clusterrpc

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/api/rpcerr"
	"github.com/sessiond/sessiond/authsvc/callers"
	"github.com/sessiond/sessiond/proto/gen/sessiond/cluster/v1/clusterv1connect"
)

// forwardedHeader marks a call forwarded by a follower: the receiver never
// forwards it again.
const forwardedHeader = "Sessiond-Forwarded"

// Scopes is the scope each ClusterService procedure needs.
var Scopes = map[string]string{
	clusterv1connect.ClusterServiceStatusProcedure:             callers.ScopeClusterRead,
	clusterv1connect.ClusterServiceJoinProcedure:               callers.ScopeClusterWrite,
	clusterv1connect.ClusterServiceRemoveProcedure:             callers.ScopeClusterWrite,
	clusterv1connect.ClusterServiceTransferLeadershipProcedure: callers.ScopeClusterWrite,
	clusterv1connect.ClusterServiceApplyProcedure:              callers.ScopeClusterPeer,
	clusterv1connect.ClusterServiceReadIndexProcedure:          callers.ScopeClusterPeer,
}

// scopeInterceptor refuses a call whose principal lacks its procedure's
// scope, and a forwarded call from anything but a node.
type scopeInterceptor struct{}

func (scopeInterceptor) check(ctx context.Context, procedure string, forwarded bool) error {
	scope, ok := Scopes[procedure]
	if !ok {
		return connect.NewError(connect.CodeUnimplemented, errors.New("no such procedure"))
	}
	if err := callers.Require(ctx, scope); err != nil {
		return rpcerr.FromCaller(err)
	}
	if p, _ := callers.FromContext(ctx); forwarded && p.Kind != callers.KindNode {
		return connect.NewError(connect.CodePermissionDenied, errors.New("only a node may forward a call ("+forwardedHeader+")"))
	}
	return nil
}

func (a scopeInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		if err := a.check(ctx, req.Spec().Procedure, req.Header().Get(forwardedHeader) != ""); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (scopeInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (scopeInterceptor) WrapStreamingHandler(connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		return connect.NewError(connect.CodeUnimplemented, errors.New("streaming is not supported"))
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
// "Authorization: Bearer <credential>" on every call: an operator token,
// or between nodes the node credential. An empty credential sends nothing.
func WithBearer(credential string) connect.ClientOption {
	if credential == "" {
		return connect.WithInterceptors()
	}
	return connect.WithInterceptors(clientAuth{header: "Bearer " + credential})
}
