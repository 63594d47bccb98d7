package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/sessiond/sessiond/clients/go/checkreason"
	"net/http"
	"strings"

	"github.com/sessiond/sessiond/clients/go/policy"
	"github.com/sessiond/sessiond/clients/go/token"
)

// MiddlewareOption configures Middleware and Interceptor.
type MiddlewareOption func(*middlewareConfig)

type middlewareConfig struct {
	action, resource string
	require          bool
}

// RequireAction makes the middleware (or interceptor) also require that
// the rules allow action on resource for the token's subject, answering 403
// (PermissionDenied) otherwise.
func RequireAction(action, resource string) MiddlewareOption {
	return func(c *middlewareConfig) { c.action, c.resource, c.require = action, resource, true }
}

type claimsKey struct{}

// WithClaims returns a copy of ctx carrying c, as the middleware and the
// interceptor do.
func WithClaims(ctx context.Context, c *token.AccessClaims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// ClaimsFromContext returns the claims the middleware or the interceptor
// put in ctx. They are shared: do not modify them.
func ClaimsFromContext(ctx context.Context) (*token.AccessClaims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*token.AccessClaims)
	return c, ok && c != nil
}

// SubjectOf turns claims into the policy subject the rules see, exactly as
// sessiond does: the user id, the roles, and the attributes "country",
// "org_type", "org" (the organisation id) and "platform".
func SubjectOf(c *token.AccessClaims) policy.Subject {
	return policy.Subject{UserID: c.Subject, Roles: c.Roles, Attrs: map[string]string{
		"country": c.Country, "org_type": c.OrgType, "org": c.OrgID, "platform": c.Platform,
	}}
}

// Authorize evaluates Config.Rules for the claims' subject (see SubjectOf).
// It does not check the token: pass claims from Check.
func (g *Guard) Authorize(c *token.AccessClaims, action, resource string) policy.Decision {
	if c == nil {
		return policy.Decision{Reason: "denied: no claims"}
	}
	return g.policy.Authorize(SubjectOf(c), action, resource)
}

// CheckAction is Check followed by Authorize: it returns the claims when the
// token is acceptable and the rules allow action on resource, or an error
// wrapping ErrForbidden (with the decision's reason) when they do not.
func (g *Guard) CheckAction(ctx context.Context, raw, action, resource string) (*token.AccessClaims, error) {
	c, err := g.Check(ctx, raw)
	if err != nil {
		return nil, err
	}
	if d := g.Authorize(c, action, resource); !d.Allowed {
		return nil, fmt.Errorf("%w: %s", ErrForbidden, d.Reason)
	}
	return c, nil
}

// BearerToken extracts the token of an "Authorization: Bearer <token>"
// header value (scheme case-insensitive); "" when absent or another scheme.
func BearerToken(header string) string {
	const prefix = "bearer "
	if len(header) < len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return ""
	}
	return strings.TrimSpace(header[len(prefix):])
}

// Middleware authenticates every request with the bearer access token of
// its Authorization header (Check) and, with RequireAction, authorizes it.
// It answers:
//   - 401 with WWW-Authenticate: Bearer (error="invalid_token" when a token
//     was given) and a JSON body {"error","message"} when the token is
//     missing or refused;
//   - 403 {"error":"forbidden"} when the rules deny the action;
//   - 503 {"error":"temporarily_unavailable"} with Retry-After when the
//     revocation state is stale (ErrStale);
//
// otherwise it calls next with the claims in the request context
// (ClaimsFromContext).
func (g *Guard) Middleware(next http.Handler, opts ...MiddlewareOption) http.Handler {
	var mc middlewareConfig
	for _, o := range opts {
		o(&mc)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw := BearerToken(r.Header.Get("Authorization"))
		if raw == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sessiond"`)
			writeError(w, http.StatusUnauthorized, "unauthenticated", "a bearer access token is required")
			return
		}
		c, err := g.Check(r.Context(), raw)
		if err != nil {
			g.writeCheckError(w, err)
			return
		}
		if mc.require {
			if d := g.Authorize(c, mc.action, mc.resource); !d.Allowed {
				w.Header().Set("WWW-Authenticate", `Bearer realm="sessiond", error="insufficient_scope"`)
				writeError(w, http.StatusForbidden, "forbidden", d.Reason)
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), c)))
	})
}

func (g *Guard) writeCheckError(w http.ResponseWriter, err error) {
	var ae *AuthError
	switch {
	case errors.As(err, &ae):
		w.Header().Set("WWW-Authenticate", `Bearer realm="sessiond", error="invalid_token", error_description="`+ae.WireReason()+`"`)
		writeError(w, http.StatusUnauthorized, "invalid_token", "the access token is not active: "+ae.WireReason())
	case errors.Is(err, ErrStale):
		g.log.Warn("guard: refusing request, revocation state stale", "error", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "token revocation state is not current; retry shortly")
	default:
		g.log.Error("guard: check failed", "error", err)
		writeError(w, http.StatusInternalServerError, "internal_error", "the access token could not be checked")
	}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "message": msg})
}

// WriteError answers a refused request as Middleware does: 401 with
// WWW-Authenticate naming the check reason for an *AuthError, 503 with
// Retry-After for ErrStale, 500 otherwise; the body is
// {"error":"<code>","message":"…"}.
func (g *Guard) WriteError(w http.ResponseWriter, err error) {
	var ae *AuthError
	if errors.As(err, &ae) && ae.Reason == checkreason.MissingToken {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sessiond"`)
		writeError(w, http.StatusUnauthorized, "unauthenticated", "a bearer access token is required")
		return
	}
	g.writeCheckError(w, err)
}
