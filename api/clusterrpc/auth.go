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
	"net/http"

	"connectrpc.com/connect"
)

var errUnauthenticated = errors.New("missing or wrong cluster credential")

// authInterceptor checks the bearer cluster secret on every call: unary,
// and server streams (ClusterService.Snapshot), before the handler runs.
type authInterceptor struct{ want []byte }

// authorized reports whether an Authorization header carries the secret.
func (a authInterceptor) authorized(h http.Header) bool {
	got := h.Get("Authorization")
	const prefix = "Bearer "
	return len(got) > len(prefix) && got[:len(prefix)] == prefix &&
		subtle.ConstantTimeCompare([]byte(got[len(prefix):]), a.want) == 1
}

func (a authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		if !a.authorized(req.Header()) {
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
		if conn.Spec().StreamType != connect.StreamTypeServer {
			return connect.NewError(connect.CodeUnimplemented, errors.New("only server streams are supported"))
		}
		if !a.authorized(conn.RequestHeader()) {
			return connect.NewError(connect.CodeUnauthenticated, errUnauthenticated)
		}
		return next(ctx, conn)
	}
}

// RequireSecretHTTP wraps an operator-only HTTP handler (pprof, the
// redacted config) with the same check as ClusterService: 401 without
// "Authorization: Bearer <secret>", before the handler reads anything.
func RequireSecretHTTP(secret string, next http.Handler) http.Handler {
	a := authInterceptor{want: []byte(secret)}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.authorized(r.Header) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sessiond operator"`)
			http.Error(w, errUnauthenticated.Error(), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
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
