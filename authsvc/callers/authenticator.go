package callers

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sessiond/sessiond/authsvc/password"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// Code classifies an authentication or authorization failure.
type Code string

// The failure codes; the HTTP glue maps them to statuses (401, 403, 429,
// 503, 400).
const (
	CodeUnauthenticated Code = "unauthenticated"
	CodeForbidden       Code = "permission_denied"
	CodeThrottled       Code = "resource_exhausted"
	CodeUnavailable     Code = "unavailable"
	CodeInvalid         Code = "invalid_argument"
)

// Error is a refusal with a message that names what is wrong and never
// holds a secret.
type Error struct {
	Code    Code
	Message string
	// RetryAfter is set for CodeThrottled and CodeUnavailable.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// ServiceClient is a configured service credential: an id, its secret as an
// argon2id PHC string (may be empty for a service that authenticates with
// a certificate only), and its scopes. A service certificate naming
// service/<ID> gets the same scopes.
type ServiceClient struct {
	ID         string
	SecretHash string
	Scopes     []string
}

// DefaultServiceScopes are the scopes of a service certificate that no
// configured service client names.
var DefaultServiceScopes = []string{ScopeCheck, ScopeWatch}

// nodeScopes are the scopes of a node certificate on the client API. Nodes
// forward, join and read through each other's peer listener (package
// cluster), never through this API: a node certificate may read the
// cluster status, nothing more.
var nodeScopes = []string{ScopeClusterRead}

// CertIdentity is the identity a client certificate names (see
// cluster/pki: spiffe://<TrustDomain>/<Kind>/<Name>).
type CertIdentity struct {
	TrustDomain string
	Kind        string
	Name        string
}

// TokenStore finds operator token records; *store.Store implements it.
// It returns an error (store.ErrNotFound) for an unknown or expired id.
type TokenStore interface {
	OperatorToken(id string, now time.Time) (*storev1.OperatorToken, error)
}

// Throttle slows down guessing of service-client secrets; the
// authsvc/throttle Limiter implements it. Keys are "client\x00<id>" and the
// source address.
type Throttle interface {
	Check(account, ip string, now time.Time) (retryAfter time.Duration, ok bool, err error)
	Failure(ctx context.Context, account, ip string, now time.Time) (delayed bool, err error)
	Success(ctx context.Context, account, ip string, now time.Time) error
}

// Config configures an Authenticator. Every field but TrustDomain and
// CertIdentity (for certificates) is optional.
type Config struct {
	// TrustDomain is the identity domain of the cluster CA's certificates.
	TrustDomain string
	// CertIdentity reads the identity of a verified client certificate
	// (pki.IdentityFromCert, adapted); nil refuses certificates.
	CertIdentity func(*x509.Certificate) (CertIdentity, error)
	// Clients are the service clients.
	Clients []ServiceClient
	// Hasher verifies client secrets; required when Clients have secrets.
	Hasher *password.Hasher
	// Throttle, if set, throttles client-secret failures.
	Throttle Throttle
	// Tokens looks operator tokens up; nil refuses operator tokens.
	Tokens TokenStore
	// Sync, if set, is called once (rate-limited) when a well-formed
	// operator token's id is not found, in case it was created through
	// another node a moment ago; it makes the local state linearizable.
	Sync func(context.Context) error
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Logger receives refusals worth an operator's attention (nil: discard).
	Logger *slog.Logger
}

// Credentials are what a request carries.
type Credentials struct {
	// Authorization is the Authorization header's value.
	Authorization string
	// Chains are the TLS layer's verified client certificate chains.
	Chains [][]*x509.Certificate
	// IP is the client's address, for throttling.
	IP string
}

// Authenticator resolves credentials into principals. It is safe for
// concurrent use.
type Authenticator struct {
	cfg     Config
	clients map[string]ServiceClient
	// dummy is a PHC string with the clients' argon2id parameters that no
	// secret matches: an unknown client id is verified against it.
	dummy string

	mu       sync.Mutex
	verified map[string][32]byte // client id -> SHA-256 of its verified secret
	// syncs paces the read barriers that unknown operator token ids cause.
	syncs *rate.Limiter
}

// maxSyncsPerSecond bounds the read-index round trips that unknown operator
// token ids can cause, so random ids cannot load the leader. A miss beyond
// the budget waits for its turn (within the request's deadline) rather
// than being refused: a token created through another node a moment ago
// must work here too, however many calls present it at once.
const maxSyncsPerSecond = 20

// NewAuthenticator returns an authenticator for cfg.
func NewAuthenticator(cfg Config) *Authenticator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Authenticator{cfg: cfg, clients: map[string]ServiceClient{}, verified: map[string][32]byte{},
		syncs: rate.NewLimiter(maxSyncsPerSecond, maxSyncsPerSecond)}
	for _, c := range cfg.Clients {
		a.clients[c.ID] = c
		if a.dummy == "" && c.SecretHash != "" {
			if phc, err := password.ParsePHC(c.SecretHash); err == nil {
				phc.Salt = make([]byte, len(phc.Salt))
				phc.Hash = make([]byte, len(phc.Hash))
				a.dummy = phc.String()
			}
		}
	}
	return a
}

func unauthenticated(msg string) *Error { return &Error{Code: CodeUnauthenticated, Message: msg} }

// Authenticate returns the principal c proves, Anonymous when c carries no
// credential, or an *Error for a credential that does not verify. An
// Authorization header wins over a client certificate. A bearer value that
// is not an operator token is ErrNotOurs (the caller decides whether that
// matters on its route: a user's access token on an open check).
func (a *Authenticator) Authenticate(ctx context.Context, c Credentials) (Principal, error) {
	auth := strings.TrimSpace(c.Authorization)
	switch {
	case auth == "":
	case hasScheme(auth, "Bearer "):
		return a.bearer(ctx, strings.TrimSpace(auth[len("Bearer "):]))
	case hasScheme(auth, "Basic "):
		return a.basic(ctx, auth[len("Basic "):], c.IP)
	default:
		return Principal{}, ErrNotOurs
	}
	if len(c.Chains) > 0 && len(c.Chains[0]) > 0 {
		return a.certificate(c.Chains[0][0])
	}
	return Anonymous, nil
}

// ErrNotOurs is returned for an Authorization header that is no credential
// of this package (a user's access token, another scheme).
var ErrNotOurs = &Error{Code: CodeUnauthenticated, Message: "the Authorization header holds no operator token or service-client Basic credential"}

func hasScheme(v, scheme string) bool {
	return len(v) >= len(scheme) && strings.EqualFold(v[:len(scheme)], scheme)
}

func (a *Authenticator) bearer(ctx context.Context, tok string) (Principal, error) {
	if !strings.HasPrefix(tok, OperatorTokenPrefix) {
		return Principal{}, ErrNotOurs
	}
	id, secret, err := ParseOperatorToken(tok)
	if err != nil {
		return Principal{}, unauthenticated("malformed operator token: want sdo_<24 hex digits>.<43 base64url characters>")
	}
	rec := a.lookupToken(ctx, id)
	sum := HashOperatorToken(id, secret)
	want := make([]byte, 32)
	if rec != nil {
		want = rec.GetSecretSha256()
	}
	if subtle.ConstantTimeCompare(sum[:], want) != 1 || rec == nil {
		return Principal{}, unauthenticated("unknown, revoked or expired operator token " + id)
	}
	// The record is shared (the store keeps it): clip, so an append copies.
	return Principal{Kind: KindOperator, Name: rec.GetName(), Method: MethodOperatorToken, Scopes: slices.Clip(rec.GetScopes()), TokenID: id}, nil
}

// lookupToken finds a live token record, syncing once on a miss (paced by
// a.syncs; the wait ends with ctx).
func (a *Authenticator) lookupToken(ctx context.Context, id string) *storev1.OperatorToken {
	if a.cfg.Tokens == nil {
		return nil
	}
	if rec, err := a.cfg.Tokens.OperatorToken(id, a.cfg.Now()); err == nil {
		return rec
	}
	if a.cfg.Sync == nil {
		return nil
	}
	if a.syncs.Wait(ctx) != nil || a.cfg.Sync(ctx) != nil {
		return nil
	}
	rec, err := a.cfg.Tokens.OperatorToken(id, a.cfg.Now())
	if err != nil {
		return nil
	}
	return rec
}

// clientAccount is the throttle key of a client id.
func clientAccount(id string) string { return "client\x00" + id }

func (a *Authenticator) basic(ctx context.Context, enc, ip string) (Principal, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return Principal{}, unauthenticated("malformed Basic credential: want base64 of <client id>:<secret>")
	}
	id, secret, ok := strings.Cut(string(raw), ":")
	if !ok || id == "" || len(id) > 255 || len(secret) > 1024 {
		return Principal{}, unauthenticated("malformed Basic credential: want base64 of <client id>:<secret>")
	}
	c, known := a.clients[id]
	sum := sha256.Sum256([]byte(secret))
	a.mu.Lock()
	prev, seen := a.verified[id]
	a.mu.Unlock()
	if known && seen && subtle.ConstantTimeCompare(prev[:], sum[:]) == 1 {
		// Verified before: no argon2id, and no lockout an attacker could
		// impose on the real client by failing on purpose.
		return servicePrincipal(c, MethodClientSecret), nil
	}
	now := a.cfg.Now()
	account := clientAccount(id)
	if a.cfg.Throttle != nil {
		wait, ok, err := a.cfg.Throttle.Check(account, ip, now)
		if err != nil {
			a.cfg.Logger.Warn("client secret throttle unreadable; attempt refused", "err", err)
		}
		if !ok {
			return Principal{}, &Error{Code: CodeThrottled, Message: "too many failed attempts for this client or address; retry later", RetryAfter: wait}
		}
	}
	if a.cfg.Hasher == nil {
		return Principal{}, unauthenticated("no service clients are configured")
	}
	var match bool
	switch {
	case known && c.SecretHash != "":
		match, _, err = a.cfg.Hasher.Verify(secret, c.SecretHash)
	case a.dummy != "":
		_, _, err = a.cfg.Hasher.Verify(secret, a.dummy)
	default:
		_, err = a.cfg.Hasher.VerifyDummy(secret)
	}
	if errors.Is(err, password.ErrBusy) {
		return Principal{}, &Error{Code: CodeUnavailable, Message: "too many secret verifications in progress; retry", RetryAfter: time.Second}
	}
	if !match || !known {
		if a.cfg.Throttle != nil {
			delayed, err := a.cfg.Throttle.Failure(ctx, account, ip, now)
			if err != nil {
				a.cfg.Logger.Warn("client secret failure not recorded by the throttle", "err", err)
			}
			if delayed {
				a.cfg.Logger.Warn("service client delayed after repeated failures", "client", id, "ip", ip)
			}
		}
		return Principal{}, unauthenticated("invalid service client id or secret")
	}
	if a.cfg.Throttle != nil {
		if err := a.cfg.Throttle.Success(ctx, account, ip, now); err != nil {
			a.cfg.Logger.Warn("client secret throttle not cleared", "err", err)
		}
	}
	a.mu.Lock()
	a.verified[id] = sum
	a.mu.Unlock()
	return servicePrincipal(c, MethodClientSecret), nil
}

func servicePrincipal(c ServiceClient, m Method) Principal {
	return Principal{Kind: KindService, Name: c.ID, Method: m, Scopes: c.Scopes}
}

func (a *Authenticator) certificate(leaf *x509.Certificate) (Principal, error) {
	if a.cfg.CertIdentity == nil {
		return Principal{}, unauthenticated("client certificates are not accepted here")
	}
	id, err := a.cfg.CertIdentity(leaf)
	if err != nil {
		return Principal{}, unauthenticated("the client certificate names no sessiond identity: " + err.Error())
	}
	if id.TrustDomain != a.cfg.TrustDomain {
		return Principal{}, unauthenticated("the client certificate is of trust domain " + quote(id.TrustDomain) + ", not " + quote(a.cfg.TrustDomain))
	}
	switch Kind(id.Kind) {
	case KindOperator:
		return Principal{Kind: KindOperator, Name: id.Name, Method: MethodCertificate, Scopes: []string{ScopeAll}}, nil
	case KindNode:
		return Principal{Kind: KindNode, Name: id.Name, Method: MethodCertificate, Scopes: nodeScopes}, nil
	case KindService:
		if c, ok := a.clients[id.Name]; ok {
			return servicePrincipal(c, MethodCertificate), nil
		}
		return Principal{Kind: KindService, Name: id.Name, Method: MethodCertificate, Scopes: DefaultServiceScopes}, nil
	}
	return Principal{}, unauthenticated("the client certificate's kind " + quote(id.Kind) + " is unknown")
}
