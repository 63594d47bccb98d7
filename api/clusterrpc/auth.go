// Package clusterrpc is the thin Connect handler of
// sessiond.cluster.v1.ClusterService (operators' cluster API, on the client
// API port) over a *cluster.Node, plus the client the CLI uses
// (WithClusterSecret, NewClient).
//
// Every call must carry "Authorization: Bearer <cluster secret>". The node
// relays Join, Remove, Status and TransferLeadership to the leader over the
// peer channel (package cluster owns node-to-node traffic; the secret never
// travels between nodes).
package clusterrpc

import (
	"context"
	"crypto/subtle"
	"errors"

	"connectrpc.com/connect"
)

var errUnauthenticated = errors.New("missing or wrong cluster credential")

// authInterceptor checks the bearer cluster secret on every unary call.
type authInterceptor struct{ want []byte }

func (a authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		got := req.Header().Get("Authorization")
		const prefix = "Bearer "
		ok := len(got) > len(prefix) && got[:len(prefix)] == prefix &&
			subtle.ConstantTimeCompare([]byte(got[len(prefix):]), a.want) == 1
		if !ok {
			return nil, connect.NewError(connect.CodeUnauthenticated, errUnauthenticated)
		}
		return next(ctx, req)
	}
}

func (a authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (a authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		return connect.NewError(connect.CodeUnimplemented, errors.New("streaming is not supported"))
	}
}

// clientAuth adds the bearer cluster secret to outgoing calls.
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

// WithClusterSecret returns a client option (connect.WithInterceptors) that
// sends "Authorization: Bearer <secret>" on every call.
func WithClusterSecret(secret string) connect.ClientOption {
	return connect.WithInterceptors(clientAuth{header: "Bearer " + secret})
}

// RequireSecret returns the server-side interceptor that refuses calls
// without "Authorization: Bearer <secret>" (Unauthenticated), for other
// operator-only services.
func RequireSecret(secret string) connect.Interceptor { return authInterceptor{want: []byte(secret)} }
