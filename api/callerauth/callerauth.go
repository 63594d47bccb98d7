// Package callerauth is the one caller-authentication layer of the API: an
// HTTP middleware that, before any body is read, resolves a request's
// credentials (client certificate, operator token, service-client Basic
// credential) into an authsvc/callers.Principal, checks the scope the
// route requires, and puts the principal in the request's context for the
// handlers; plus a Connect interceptor that audits operator and admin
// calls. It is not a door: cmd/sessiond wraps the whole mux with it, and
// doors read the principal with callers.FromContext.
package callerauth

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/authsvc/callers"
)

// Rule says who may call one route.
type Rule struct {
	// Scope is the scope a caller needs ("" means any authenticated one).
	Scope string
	// Open lets anonymous callers in (a credential, if presented, is still
	// verified and a bad one refused).
	Open bool
	// Audit logs every call of the route with its principal.
	Audit bool
	// Deny refuses the route to everyone (used for a service prefix: a
	// procedure without its own rule is refused).
	Deny bool
	// OAuthClient answers refusals as RFC 6749 §5.2 does for client
	// authentication: 401 {"error":"invalid_client"} (throttling stays 429).
	OAuthClient bool
	// CredentialHeader, when set, is the header that holds the caller's own
	// credential (the values Authorization takes elsewhere) on this route,
	// whose Authorization header carries what the route checks: a user's
	// access token a gateway forwards. A refusal of the caller there is
	// 500 (503 when unavailable), never 401/403/429: a forward-auth gateway
	// relays those to the user, who would take them for a verdict on the
	// user's own token and log in again for nothing.
	CredentialHeader string
}

// Routes maps a request path to its rule: an exact path
// ("/sessiond.cluster.v1.ClusterService/Remove", "/metrics"), or a prefix
// ending in "/" that covers every path below it without a rule of its own.
// A path no key matches is not this layer's business (user routes, health).
type Routes map[string]Rule

// Lookup returns the rule of path.
func (rs Routes) Lookup(path string) (Rule, bool) {
	if r, ok := rs[path]; ok {
		return r, true
	}
	best, found := "", false
	for k := range rs {
		if strings.HasSuffix(k, "/") && strings.HasPrefix(path, k) && len(k) > len(best) {
			best, found = k, true
		}
	}
	if !found {
		return Rule{}, false
	}
	return rs[best], true
}

// Authenticator resolves credentials; *callers.Authenticator implements it.
type Authenticator interface {
	Authenticate(ctx context.Context, c callers.Credentials) (callers.Principal, error)
}

// Middleware authenticates and authorizes requests to the routes it knows.
type Middleware struct {
	auth   Authenticator
	routes Routes
	log    *slog.Logger
	errw   *connect.ErrorWriter
	next   http.Handler
}

// New returns the middleware in front of next. log receives the audit
// events of refusals (nil: discard).
func New(auth Authenticator, routes Routes, log *slog.Logger, next http.Handler) *Middleware {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Middleware{auth: auth, routes: routes, log: log, errw: connect.NewErrorWriter(), next: next}
}

// ServeHTTP implements http.Handler.
func (m *Middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rule, ok := m.routes.Lookup(r.URL.Path)
	if !ok {
		m.next.ServeHTTP(w, r)
		return
	}
	if rule.Deny {
		m.refuse(w, r, rule, callers.Anonymous, &callers.Error{Code: callers.CodeForbidden, Message: "no caller may call " + r.URL.Path})
		return
	}
	p, preset := callers.FromContext(r.Context())
	if !preset {
		authz := r.Header.Get("Authorization")
		if rule.CredentialHeader != "" {
			authz = r.Header.Get(rule.CredentialHeader)
		}
		creds := callers.Credentials{Authorization: authz, IP: remoteIP(r.RemoteAddr)}
		if r.TLS != nil {
			creds.Chains = r.TLS.VerifiedChains
		}
		var err error
		p, err = m.auth.Authenticate(r.Context(), creds)
		if errors.Is(err, callers.ErrNotOurs) && rule.Open {
			p, err = callers.Anonymous, nil // e.g. a user's own access token on an open check
		}
		if err != nil {
			m.refuse(w, r, rule, callers.Anonymous, err)
			return
		}
	}
	switch {
	case p.Kind == callers.KindAnonymous && !rule.Open:
		m.refuse(w, r, rule, p, &callers.Error{Code: callers.CodeUnauthenticated,
			Message: r.URL.Path + " needs a credential: a client certificate, an operator token (Bearer) or a service client (Basic)" + inHeader(rule) + scopeHint(rule.Scope)})
		return
	case !rule.Open && !p.Has(rule.Scope):
		m.refuse(w, r, rule, p, &callers.Error{Code: callers.CodeForbidden, Message: p.ID() + " lacks the " + rule.Scope + " scope that " + r.URL.Path + " needs"})
		return
	}
	if rule.Audit {
		m.log.LogAttrs(r.Context(), slog.LevelInfo, "audit", slog.String("event", "operator_call"),
			slog.String("principal", p.ID()), slog.String("method", string(p.Method)), slog.String("token_id", p.TokenID),
			slog.String("route", r.URL.Path), slog.String("ip", remoteIP(r.RemoteAddr)))
	}
	m.next.ServeHTTP(w, r.WithContext(callers.NewContext(r.Context(), p)))
}

func inHeader(rule Rule) string {
	if rule.CredentialHeader == "" {
		return ""
	}
	return " in the " + rule.CredentialHeader + " header"
}

func scopeHint(scope string) string {
	if scope == "" {
		return ""
	}
	return " with the " + scope + " scope"
}

// codes maps refusal codes to Connect codes and HTTP statuses.
var codes = map[callers.Code]struct {
	connect connect.Code
	status  int
}{
	callers.CodeUnauthenticated: {connect.CodeUnauthenticated, http.StatusUnauthorized},
	callers.CodeForbidden:       {connect.CodePermissionDenied, http.StatusForbidden},
	callers.CodeThrottled:       {connect.CodeResourceExhausted, http.StatusTooManyRequests},
	callers.CodeUnavailable:     {connect.CodeUnavailable, http.StatusServiceUnavailable},
	callers.CodeInvalid:         {connect.CodeInvalidArgument, http.StatusBadRequest},
}

// refuse answers err in the request's protocol (Connect, gRPC, gRPC-Web,
// or JSON for plain HTTP routes) and logs the refusal.
func (m *Middleware) refuse(w http.ResponseWriter, r *http.Request, rule Rule, p callers.Principal, err error) {
	var ce *callers.Error
	if !errors.As(err, &ce) {
		ce = &callers.Error{Code: callers.CodeUnavailable, Message: "authentication failed internally; retry"}
	}
	c, ok := codes[ce.Code]
	if !ok {
		c = codes[callers.CodeUnauthenticated]
	}
	m.log.LogAttrs(r.Context(), slog.LevelWarn, "audit", slog.String("event", "caller_refused"),
		slog.String("principal", p.ID()), slog.String("route", r.URL.Path), slog.String("ip", remoteIP(r.RemoteAddr)),
		slog.String("code", string(ce.Code)), slog.String("why", ce.Message))
	if ce.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((ce.RetryAfter+time.Second-1)/time.Second)))
	}
	if rule.CredentialHeader != "" {
		// The caller is a gateway: its failure must not read as the user's.
		if c.status != http.StatusServiceUnavailable {
			c.status = http.StatusInternalServerError
		}
		ce = &callers.Error{Code: ce.Code, Message: "the gateway's own credential (" + rule.CredentialHeader +
			" header or client certificate) was refused: " + ce.Message}
	} else if c.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="sessiond", Bearer realm="sessiond"`)
	}
	if isProcedure(r.URL.Path) && m.errw.IsSupported(r) {
		_ = m.errw.Write(w, r, connect.NewError(c.connect, errors.New(ce.Message)))
		return
	}
	code := string(ce.Code)
	if rule.OAuthClient && (ce.Code == callers.CodeUnauthenticated || ce.Code == callers.CodeForbidden) {
		code, c.status = "invalid_client", http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", `Basic realm="sessiond"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(c.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "message": ce.Message})
}

// isProcedure reports whether path names an RPC ("/pkg.Service/Method"),
// whose errors go in the RPC protocol; other routes answer JSON.
func isProcedure(path string) bool {
	svc, method, ok := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return ok && strings.Contains(svc, ".") && method != "" && !strings.Contains(method, "/")
}

func remoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// WithPrincipal wraps next so that every request carries p: for a listener
// whose callers are authenticated by other means (the node's local
// operator socket, guarded by file permissions).
func WithPrincipal(p callers.Principal, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(callers.NewContext(r.Context(), p)))
	})
}
