// Package callers authenticates the callers of sessiond's API: operators
// (a client certificate from the cluster CA naming operator/<name>, or a
// named operator token), services (a service-client id and secret over
// HTTP Basic, or a client certificate naming service/<name>) and nodes (a
// client certificate naming node/<name>; nodes talk to each other over the
// peer listener, not this API, so a node may only read the cluster status).
// It turns a request's credentials into a Principal (who, how
// authenticated, which scopes) before any body is read; the HTTP glue that
// calls it and checks each route's scope is in api/callerauth.
//
// Operator tokens look like "sdo_<24 hex id>.<43 base64url secret>"; the
// store keeps only SHA-256 over the id and the secret, looked up by the id,
// compared in constant time. Service-client secrets are argon2id PHC
// strings; failures are throttled per client id and source address, and an
// unknown client id costs the same argon2id work as a known one.
package callers

import (
	"context"
	"slices"
	"strings"
)

// Kind is what a principal is.
type Kind string

// The kinds of principals.
const (
	// KindAnonymous is a caller that presented no credential (allowed only
	// on routes configured open).
	KindAnonymous Kind = "anonymous"
	// KindOperator is a human operator or automation acting for one.
	KindOperator Kind = "operator"
	// KindService is a service that checks tokens or watches revocations.
	KindService Kind = "service"
	// KindNode is another node of the cluster.
	KindNode Kind = "node"
	// KindUser is a person logged in to the operator console (api/console)
	// whose directory roles grant scopes (operator, admin); Name is the
	// user's email.
	KindUser Kind = "user"
)

// Method is how a principal authenticated.
type Method string

// The authentication methods.
const (
	MethodNone          Method = "none"
	MethodCertificate   Method = "certificate"
	MethodOperatorToken Method = "operator_token"
	MethodClientSecret  Method = "client_secret"
	MethodLocalSocket   Method = "local_socket"
	MethodConsole       Method = "console_session"
)

// Scopes. A principal holding ScopeAll has every scope; "<x>:write"
// implies "<x>:read" and "watch:details" implies "watch".
const (
	ScopeAll          = "*"
	ScopeClusterRead  = "cluster:read"  // ClusterService.Status
	ScopeClusterWrite = "cluster:write" // Join, Remove, TransferLeadership
	ScopeAdmin        = "admin"         // users and sessions administration
	ScopeTokens       = "tokens"        // create, list and revoke operator tokens
	ScopeCheck        = "check"         // CheckToken, CheckSession, IsRevoked
	ScopeWatch        = "watch"         // WatchRevocations (ids and cut-offs)
	ScopeWatchDetails = "watch:details" // WatchRevocations with reasons
	ScopeIntrospect   = "introspect"    // RFC 7662 /oauth2/introspect
	ScopeRevoke       = "revoke"        // RFC 7009 /oauth2/revoke
	ScopeMetrics      = "metrics"       // GET /metrics
	ScopeReflection   = "reflection"    // gRPC server reflection
)

// GrantableScopes are the scopes an operator token or a service client may
// hold (ScopeAll is not grantable).
var GrantableScopes = []string{
	ScopeClusterRead, ScopeClusterWrite, ScopeAdmin, ScopeTokens, ScopeCheck, ScopeWatch,
	ScopeWatchDetails, ScopeIntrospect, ScopeRevoke, ScopeMetrics, ScopeReflection,
}

// implied maps a scope to the scope that also grants it.
var implied = map[string]string{
	ScopeClusterRead: ScopeClusterWrite,
	ScopeWatch:       ScopeWatchDetails,
}

// Principal is an authenticated caller.
type Principal struct {
	// Kind is what the caller is.
	Kind Kind
	// Name is the caller's name within its kind: the certificate's name,
	// the operator token's name, the service client's id, the node id.
	Name string
	// Method is how it authenticated.
	Method Method
	// Scopes are what it may do.
	Scopes []string
	// TokenID is the operator token's id (Method == MethodOperatorToken).
	TokenID string
}

// Anonymous is the principal of a request without credentials.
var Anonymous = Principal{Kind: KindAnonymous, Method: MethodNone}

// Has reports whether p holds scope (directly, through ScopeAll, or
// through the scope that implies it).
func (p Principal) Has(scope string) bool {
	if scope == "" {
		return true
	}
	if slices.Contains(p.Scopes, ScopeAll) || slices.Contains(p.Scopes, scope) {
		return true
	}
	if sup, ok := implied[scope]; ok {
		return slices.Contains(p.Scopes, sup)
	}
	return false
}

// ID is "<kind>/<name>", e.g. "operator/ci", unique per principal; the
// anonymous principal's is "anonymous".
func (p Principal) ID() string {
	if p.Kind == KindAnonymous || p.Kind == "" {
		return string(KindAnonymous)
	}
	return string(p.Kind) + "/" + p.Name
}

// String describes p for logs and messages: "operator/ci (operator_token)".
func (p Principal) String() string {
	if p.Kind == KindAnonymous || p.Kind == "" {
		return "an anonymous caller"
	}
	return p.ID() + " (" + string(p.Method) + ")"
}

// CheckGrantable reports an error naming the first scope of scopes that
// is not grantable or that granter does not hold itself (a principal
// never grants more than it has).
func CheckGrantable(granter Principal, scopes []string) error {
	if len(scopes) == 0 {
		return &Error{Code: CodeInvalid, Message: "at least one scope is required; one of " + strings.Join(GrantableScopes, ", ")}
	}
	for _, s := range scopes {
		if !slices.Contains(GrantableScopes, s) {
			return &Error{Code: CodeInvalid, Message: "scope " + quote(s) + " is unknown; want one of " + strings.Join(GrantableScopes, ", ")}
		}
		if !granter.Has(s) {
			return &Error{Code: CodeForbidden, Message: granter.ID() + " cannot grant scope " + s + ": it does not hold it"}
		}
	}
	return nil
}

func scopeHint(scope string) string {
	if scope == "" {
		return ""
	}
	return " with the " + scope + " scope"
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return `"` + s + `"`
}

type ctxKey struct{}

// NewContext returns ctx carrying p. Only trusted code sets it: the
// authentication middleware, or a listener whose callers are authenticated
// by other means (the node's local operator socket).
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal of the request ctx belongs to.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// Require returns nil when ctx carries a principal holding scope, else an
// *Error (CodeUnauthenticated without a principal, CodeForbidden without
// the scope). Doors call it as a second guard, so that a handler mounted
// without the authentication middleware refuses instead of serving.
func Require(ctx context.Context, scope string) error {
	p, ok := FromContext(ctx)
	switch {
	case !ok || p.Kind == KindAnonymous:
		return &Error{Code: CodeUnauthenticated, Message: "this call needs an authenticated caller" + scopeHint(scope)}
	case !p.Has(scope):
		return &Error{Code: CodeForbidden, Message: p.ID() + " lacks the " + scope + " scope"}
	}
	return nil
}
