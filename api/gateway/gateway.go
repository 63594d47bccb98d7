// Package gateway answers the token checks of API gateways in front of
// services, so that the services behind them never see a request without
// an active session:
//
//   - GET /gateway/check, a forward-auth endpoint for nginx auth_request,
//     Traefik ForwardAuth and Caddy forward_auth: the gateway forwards the
//     request's headers; 200 carries the identity headers (X-Sessiond-User,
//     X-Sessiond-Session, X-Sessiond-Roles, ...) the gateway copies onto the
//     request it passes on, 401 carries WWW-Authenticate (RFC 6750) and
//     X-Sessiond-Reason naming the check reason;
//   - envoy.service.auth.v3.Authorization/Check, Envoy's ext_authz over
//     gRPC, with the same answers as an OkHttpResponse or a
//     DeniedHttpResponse.
//
// A route may also need a permission: the query parameters action and
// resource of /gateway/check, or the context extensions of the same names
// (Envoy's per-route check_settings), make an active token also need the
// authorization policy (auth.policy) to allow that action on that
// resource; 403 (PERMISSION_DENIED) with the policy's reason when not.
//
// Both read the user's access token from the Authorization header (Bearer)
// of the request the gateway checks; sessiond issues no access-token
// cookie (the refresh cookie is scoped to /auth and never reaches a
// gateway), so there is nothing else to read. The gateway authenticates
// itself as a caller with the check scope: on the forward-auth route its
// own credential cannot be in Authorization (the user's token is there),
// so it presents a client certificate (service/<id>) or the same values
// Authorization would hold (Basic id:secret, Bearer operator token) in
// X-Sessiond-Authorization (CredentialHeader); ext_authz is an ordinary
// gRPC call whose Authorization metadata or client certificate is the
// gateway's. cmd/sessiond/callers.go holds both rules.
//
// Freshness: tokens are checked at CheckToken's default read consistency;
// a node cut off from the leader answers 503 / UNAVAILABLE rather than
// allow from state that may miss a revocation, and the gateway asks
// another node or fails closed.
//
// Caching: answers are Cache-Control: no-store unless Options.MaxAge is
// set, because a gateway that caches an allow keeps letting a revoked
// session in until the entry expires, and a check costs this node
// microseconds. With MaxAge, a 200 says max-age=min(MaxAge, the token's
// remaining lifetime) and Vary: Authorization; refusals are never
// cacheable.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/clients/go/checkreason"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/clients/go/policy"
	"github.com/sessiond/sessiond/clients/go/token"
	"github.com/sessiond/sessiond/cluster"
)

// CheckPath is the forward-auth route. It answers every method (nginx's
// auth_request subrequest keeps the original method) and reads no body.
const CheckPath = "/gateway/check"

// CredentialHeader carries the gateway's own credential on CheckPath (the
// values the Authorization header takes on other routes), since
// Authorization holds the user's token there.
const CredentialHeader = "X-Sessiond-Authorization"

// The identity headers of an allowed request. Every one is set on a 200
// (empty when the token has no such claim), so a gateway that copies them
// replaces whatever a client sent under the same names.
const (
	HeaderUser     = "X-Sessiond-User"       // sub: the user id
	HeaderSession  = "X-Sessiond-Session"    // sid: the session id
	HeaderTokenID  = "X-Sessiond-Token-Id"   // jti: the access token's id
	HeaderRoles    = "X-Sessiond-Roles"      // roles, comma-separated
	HeaderOrg      = "X-Sessiond-Org"        // org: the organization id
	HeaderOrgType  = "X-Sessiond-Org-Type"   // org_type: CUSTOMER, SUPPLIER, OPERATOR
	HeaderCountry  = "X-Sessiond-Country"    // country: ISO 3166-1 alpha-2
	HeaderPlatform = "X-Sessiond-Platform"   // platform: web, ios, android, ...
	HeaderExpires  = "X-Sessiond-Expires"    // exp: Unix seconds
	HeaderReason   = "X-Sessiond-Reason"     // on a 401: the check reason (expired, session_ended, ...)
	HeaderEnd      = "X-Sessiond-End-Reason" // on a 401 for session_ended: logout, forced_out, ...
)

// IdentityHeaders are the names of the identity headers, in the order
// they are written.
var IdentityHeaders = []string{HeaderUser, HeaderSession, HeaderTokenID, HeaderRoles, HeaderOrg,
	HeaderOrgType, HeaderCountry, HeaderPlatform, HeaderExpires}

// Checker answers token checks and policy decisions; *authsvc.Service
// implements it.
type Checker interface {
	// CheckTokenSynced checks an access token against this node's state,
	// after one read barrier when its session is not known here yet.
	CheckTokenSynced(ctx context.Context, raw string) authsvc.Check
	// Decide evaluates the authorization policy (auth.policy) for an
	// active token's claims.
	Decide(c *token.AccessClaims, action, resource string) policy.Decision
}

// Barrier makes this node's state fresh enough for a read; *cluster.Node
// implements it.
type Barrier interface {
	ReadBarrier(ctx context.Context, opts cluster.ReadOptions) (uint64, error)
}

// Options configure the gateway door.
type Options struct {
	// BarrierTimeout bounds the wait for fresh state before a check
	// (default 2s); beyond it the node answers 503 / UNAVAILABLE.
	BarrierTimeout time.Duration
	// MaxAge, when positive, lets a gateway cache an allow for at most this
	// long (never beyond the token's expiry); zero answers no-store.
	MaxAge time.Duration
	// Now is the clock for MaxAge (nil: time.Now).
	Now func() time.Time
	// HandlerOptions are passed to the ext_authz Connect handler.
	HandlerOptions []connect.HandlerOption
}

// maxTokenLen bounds the token read from a header; longer is malformed.
const maxTokenLen = 8 << 10

// maxPermissionLen bounds the action and resource of a permission.
const maxPermissionLen = 256

// permission is what a route needs beyond an active session: an action
// on a resource, decided by the policy. The zero value needs nothing.
type permission struct{ action, resource string }

// parsePermission checks an action and resource given together or not at
// all, each at most maxPermissionLen bytes.
func parsePermission(action, resource string) (permission, error) {
	switch {
	case action == "" && resource == "":
		return permission{}, nil
	case action == "" || resource == "":
		return permission{}, errors.New("action and resource: give both (the permission a route needs) or neither")
	case len(action) > maxPermissionLen || len(resource) > maxPermissionLen:
		return permission{}, fmt.Errorf("action and resource: at most %d bytes each", maxPermissionLen)
	}
	return permission{action: action, resource: resource}, nil
}

// verdict is one check's outcome, in the terms both protocols answer in.
type verdict struct {
	claims *token.AccessClaims // set when active and allowed
	// reason is the check reason of an inactive token ("" when no token
	// was presented at all).
	reason, endReason string
	// denied is the policy's reason when an active token lacks the
	// permission the route needs.
	denied string
}

// door is what both protocols share.
type door struct {
	c    Checker
	rb   Barrier
	opts Options
}

func newDoor(c Checker, rb Barrier, opts Options) *door {
	if opts.BarrierTimeout <= 0 {
		opts.BarrierTimeout = 2 * time.Second
	}
	return &door{c: c, rb: rb, opts: opts}
}

// check reads the bearer token from an Authorization value, checks it and,
// when perm names one, decides the permission. A token is checked at the
// default read consistency, as CheckToken is by default: the leader and a
// follower in close contact with it answer locally, a follower cut off
// from it first asks it for a read index; an error means this node cannot
// vouch for its state (fail closed; another node may).
func (d *door) check(ctx context.Context, authorization string, perm permission) (verdict, error) {
	tok, ok := bearer(authorization)
	if !ok {
		return verdict{}, nil
	}
	if len(tok) > maxTokenLen {
		return verdict{reason: checkreason.String(checkreason.Malformed)}, nil
	}
	bctx, cancel := context.WithTimeout(ctx, d.opts.BarrierTimeout)
	_, err := d.rb.ReadBarrier(bctx, cluster.ReadOptions{Consistency: cluster.ConsistencyDefault})
	cancel()
	if err != nil {
		return verdict{}, fmt.Errorf("this node cannot vouch for its state (ask another node): %w", err)
	}
	v := d.checkToken(ctx, tok)
	if v.claims != nil && perm.action != "" {
		if dec := d.c.Decide(v.claims, perm.action, perm.resource); !dec.Allowed {
			return verdict{denied: dec.Reason}, nil
		}
	}
	return v, nil
}

func (d *door) checkToken(ctx context.Context, tok string) verdict {
	chk := d.c.CheckTokenSynced(ctx, tok)
	if chk.Active && chk.Claims != nil {
		return verdict{claims: chk.Claims}
	}
	v := verdict{reason: checkreason.String(chk.Reason)}
	if v.reason == "" {
		v.reason = checkreason.String(checkreason.InternalError)
	}
	if chk.EndReason != 0 {
		v.endReason = strings.ToLower(strings.TrimPrefix(chk.EndReason.String(), "END_REASON_"))
	}
	return v
}

// bearer returns the token of "Bearer <token>" (scheme case-insensitive).
func bearer(v string) (string, bool) {
	const scheme = "bearer "
	v = strings.TrimSpace(v)
	if len(v) <= len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	tok := strings.TrimSpace(v[len(scheme):])
	return tok, tok != ""
}

// identity is the identity headers' values of c, in IdentityHeaders order.
func identity(c *token.AccessClaims) []string {
	return []string{c.Subject, c.SessionID, c.TokenID, strings.Join(c.Roles, ","), c.OrgID,
		c.OrgType, c.Country, c.Platform, strconv.FormatInt(c.Expiration.Unix(), 10)}
}

// challenge is the WWW-Authenticate value of a refusal (RFC 6750 §3): no
// error attribute when no token was presented.
func (v verdict) challenge() string {
	if v.reason == "" {
		return `Bearer realm="sessiond"`
	}
	return `Bearer realm="sessiond", error="invalid_token", error_description="the access token is not active: ` + v.reason + `"`
}

// message says why a request is refused, for the body.
func (v verdict) message() string {
	switch {
	case v.reason == "":
		return "a bearer access token is required (Authorization: Bearer <token>)"
	case v.endReason != "":
		return "the access token is not active: " + v.reason + " (" + v.endReason + ")"
	}
	return "the access token is not active: " + v.reason
}

// cacheControl is the Cache-Control value of an allow for a token
// expiring at exp.
func (o Options) cacheControl(exp time.Time) string {
	if o.MaxAge <= 0 {
		return "no-store"
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	age := min(o.MaxAge, exp.Sub(now()))
	if age < time.Second {
		return "no-store"
	}
	return "max-age=" + strconv.Itoa(int(age/time.Second))
}

// Mux is where Register puts its routes (an *http.ServeMux fits).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Register mounts CheckPath and the ext_authz service on mux.
func Register(mux Mux, c Checker, rb Barrier, opts Options) {
	d := newDoor(c, rb, opts)
	mux.Handle(CheckPath, &forwardAuth{d})
	mux.Handle(d.authorizationHandler())
}
