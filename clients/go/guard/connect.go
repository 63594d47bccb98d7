package guard

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/clients/go/checkreason"
	"github.com/sessiond/sessiond/clients/go/token"
)

// Interceptor returns a Connect handler interceptor that authenticates
// every unary and streaming call with the bearer access token of its
// Authorization header and, with RequireAction, authorizes it. Refusals are
// CodeUnauthenticated (missing or refused token), CodePermissionDenied
// (rules deny) and CodeUnavailable (ErrStale); the Connect error wraps the
// guard error. Accepted calls see the claims through ClaimsFromContext.
// On the client side it does nothing.
func (g *Guard) Interceptor(opts ...MiddlewareOption) connect.Interceptor {
	var mc middlewareConfig
	for _, o := range opts {
		o(&mc)
	}
	return &interceptor{g: g, mc: mc}
}

type interceptor struct {
	g  *Guard
	mc middlewareConfig
}

// authenticate returns ctx with the claims, or a Connect error.
func (i *interceptor) authenticate(ctx context.Context, h http.Header) (context.Context, error) {
	raw := BearerToken(h.Get("Authorization"))
	if raw == "" {
		return nil, connect.NewError(connect.CodeUnauthenticated, &AuthError{Reason: checkreason.MissingToken, Err: fmt.Errorf("%w: no bearer token", token.ErrMalformed)})
	}
	c, err := i.g.Check(ctx, raw)
	if err != nil {
		code := connect.CodeInternal
		switch {
		case errors.Is(err, ErrUnauthenticated):
			code = connect.CodeUnauthenticated
		case errors.Is(err, ErrStale):
			code = connect.CodeUnavailable
		}
		return nil, connect.NewError(code, err)
	}
	if i.mc.require {
		if d := i.g.Authorize(c, i.mc.action, i.mc.resource); !d.Allowed {
			return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%w: %s", ErrForbidden, d.Reason))
		}
	}
	return WithClaims(ctx, c), nil
}

// WrapUnary authenticates unary calls on the handler side.
func (i *interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		ctx, err := i.authenticate(ctx, req.Header())
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

// WrapStreamingClient does nothing.
func (i *interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler authenticates streaming calls.
func (i *interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := i.authenticate(ctx, conn.RequestHeader())
		if err != nil {
			return err
		}
		return next(ctx, conn)
	}
}
