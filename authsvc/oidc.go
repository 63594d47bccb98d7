package authsvc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/sessiond/sessiond/authsvc/notify"
	"github.com/sessiond/sessiond/authsvc/users"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	"github.com/sessiond/sessiond/store"
)

// The OpenID Provider (docs/sso.md). Flow logic lives here; the HTTP door
// is api/oidcop. Every write goes through the service's one write path
// (propose): authorization codes, browser SSO sessions, client sessions and
// one-time marks are replicated, so a flow started on one node finishes on
// any other.

// Grant types the provider serves.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
)

// Client authentication methods (OIDC Core §9).
const (
	AuthNone              = "none"
	AuthClientSecretBasic = "client_secret_basic"
	AuthPrivateKeyJWT     = "private_key_jwt"
)

// Scopes the provider knows: OpenID Connect's and the project's claims.
var knownScopes = []string{"openid", "profile", "email", "org", "country", "roles", "offline_access"}

// KnownScopes lists the scopes the provider serves (for discovery).
func KnownScopes() []string { return slices.Clone(knownScopes) }

// OIDCClient is a registered relying party.
type OIDCClient struct {
	// ID is the client_id: 1 to 255 characters of A-Z a-z 0-9 . _ ~ : + / = @ -.
	ID string
	// Name is shown on the login and consent pages.
	Name string
	// AuthMethod is none (a public client: a browser or mobile app),
	// client_secret_basic or private_key_jwt.
	AuthMethod string
	// SecretHash is the argon2id PHC string of the client secret
	// (client_secret_basic only); the secret itself is never stored.
	SecretHash string
	// JWKS are the client's public keys (private_key_jwt only).
	JWKS jose.JSONWebKeySet
	// RedirectURIs are matched exactly (RFC 9700 §2.1).
	RedirectURIs []string
	// PostLogoutRedirectURIs are matched exactly.
	PostLogoutRedirectURIs []string
	// GrantTypes the client may use; empty means authorization_code and
	// refresh_token.
	GrantTypes []string
	// Scopes the client may ask for; empty means every known scope.
	Scopes []string
	// BackchannelLogoutURI receives logout tokens (OIDC Back-Channel
	// Logout 1.0) when a session the client holds ends.
	BackchannelLogoutURI string
	// FirstParty clients skip the consent page.
	FirstParty bool
	// IDTokenAlg signs the client's ID tokens: RS256 (default) or ES256.
	IDTokenAlg string
}

func (c *OIDCClient) allowsGrant(g string) bool {
	if len(c.GrantTypes) == 0 {
		return g == GrantAuthorizationCode || g == GrantRefreshToken
	}
	return slices.Contains(c.GrantTypes, g)
}

func (c *OIDCClient) allowsScope(sc string) bool {
	if len(c.Scopes) == 0 {
		return slices.Contains(knownScopes, sc)
	}
	return slices.Contains(c.Scopes, sc)
}

// ProviderConfig configures the provider.
type ProviderConfig struct {
	// Clients are the registered clients.
	Clients []OIDCClient
	// TokenEndpoint is the token endpoint's URL: a client assertion's aud
	// must name it or the issuer.
	TokenEndpoint string
	// CodeTTL is an authorization code's life (default 60 s, at most 10 min).
	CodeTTL time.Duration
	// IDTokenTTL is an ID token's life (default 10 min).
	IDTokenTTL time.Duration
	// HTTPClient delivers back-channel logout tokens (default: 10 s timeout,
	// no redirects).
	HTTPClient *http.Client
	// BackchannelMaxElapsed bounds the retries of one delivery (default 5 min).
	BackchannelMaxElapsed time.Duration
}

var clientIDRE = regexp.MustCompile(`^[A-Za-z0-9._~:+/=@-]{1,255}$`)

// Validate checks the configuration: each client's id, method, secret or
// keys, redirect URIs (absolute, no fragment; https unless loopback),
// grants and scopes.
func (c *ProviderConfig) Validate() error {
	seen := map[string]bool{}
	for i := range c.Clients {
		cl := &c.Clients[i]
		where := fmt.Sprintf("oidc client %q", cl.ID)
		if !clientIDRE.MatchString(cl.ID) {
			return fmt.Errorf("%s: id: want 1-255 characters of A-Z a-z 0-9 . _ ~ : + / = @ -", where)
		}
		if seen[cl.ID] {
			return fmt.Errorf("%s: duplicate id", where)
		}
		seen[cl.ID] = true
		switch cl.AuthMethod {
		case AuthNone:
			if cl.SecretHash != "" || len(cl.JWKS.Keys) != 0 {
				return fmt.Errorf("%s: a public client (auth_method none) has no secret and no keys", where)
			}
			if slices.Contains(cl.GrantTypes, GrantClientCredentials) {
				return fmt.Errorf("%s: a public client cannot use client_credentials", where)
			}
		case AuthClientSecretBasic:
			if !strings.HasPrefix(cl.SecretHash, "$argon2id$") {
				return fmt.Errorf("%s: client_secret_basic needs secret_hash, an argon2id PHC string (sessiond hash-secret)", where)
			}
		case AuthPrivateKeyJWT:
			if len(cl.JWKS.Keys) == 0 {
				return fmt.Errorf("%s: private_key_jwt needs the client's public keys (jwks)", where)
			}
			for _, k := range cl.JWKS.Keys {
				if !k.IsPublic() || !k.Valid() {
					return fmt.Errorf("%s: jwks: key %q is not a valid public key", where, k.KeyID)
				}
			}
		default:
			return fmt.Errorf("%s: auth_method %q: want none, client_secret_basic or private_key_jwt", where, cl.AuthMethod)
		}
		for _, u := range append(slices.Clone(cl.RedirectURIs), cl.PostLogoutRedirectURIs...) {
			if err := checkClientURI(u); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
		}
		if cl.BackchannelLogoutURI != "" {
			if err := checkClientURI(cl.BackchannelLogoutURI); err != nil {
				return fmt.Errorf("%s: backchannel_logout_uri: %w", where, err)
			}
		}
		if cl.allowsGrant(GrantAuthorizationCode) && len(cl.RedirectURIs) == 0 {
			return fmt.Errorf("%s: the authorization_code grant needs at least one redirect URI", where)
		}
		for _, g := range cl.GrantTypes {
			if g != GrantAuthorizationCode && g != GrantRefreshToken && g != GrantClientCredentials {
				return fmt.Errorf("%s: grant %q: want authorization_code, refresh_token or client_credentials", where, g)
			}
		}
		for _, sc := range cl.Scopes {
			if !slices.Contains(knownScopes, sc) {
				return fmt.Errorf("%s: scope %q: want one of %s", where, sc, strings.Join(knownScopes, " "))
			}
		}
		switch cl.IDTokenAlg {
		case "":
			cl.IDTokenAlg = AlgRS256
		case AlgRS256, AlgES256:
		default:
			return fmt.Errorf("%s: id_token_signed_response_alg %q: want RS256 or ES256", where, cl.IDTokenAlg)
		}
	}
	if c.CodeTTL < 0 || c.CodeTTL > time.Duration(store.MaxAuthCodeLife) {
		return fmt.Errorf("oidc: code TTL %s: want at most 10m", c.CodeTTL)
	}
	if c.IDTokenTTL < 0 || c.IDTokenTTL > time.Hour {
		return fmt.Errorf("oidc: ID token TTL %s: want at most 1h", c.IDTokenTTL)
	}
	return nil
}

// checkClientURI accepts an absolute URI without a fragment: https, or
// http on a loopback host (native apps, RFC 8252 §7.3), or a private-use
// scheme with a dot (RFC 8252 §7.1).
func checkClientURI(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs() || len(raw) > 2048:
		return fmt.Errorf("URI %q: want an absolute URI of at most 2048 bytes", raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("URI %q: no fragment allowed", raw)
	case u.Scheme == "https":
	case u.Scheme == "http":
		h := u.Hostname()
		if h != "localhost" && h != "127.0.0.1" && h != "::1" {
			return fmt.Errorf("URI %q: http only on a loopback host; use https", raw)
		}
	case strings.Contains(u.Scheme, "."):
	default:
		return fmt.Errorf("URI %q: want https, loopback http or a reverse-domain private scheme", raw)
	}
	return nil
}

// Provider is the OpenID Provider built on a Service.
type Provider struct {
	s       *Service
	cfg     ProviderConfig
	clients map[string]*OIDCClient
	keys    *oidcKeyCache
	bc      *backchannel
	// verified maps a client id and its secret hash to the SHA-256 of its
	// last verified secret (a re-registered client starts afresh).
	verified sync.Map
}

// NewProvider returns the provider of s with cfg (validated).
func NewProvider(s *Service, cfg ProviderConfig) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.CodeTTL == 0 {
		cfg.CodeTTL = time.Minute
	}
	if cfg.IDTokenTTL == 0 {
		cfg.IDTokenTTL = 10 * time.Minute
	}
	if cfg.TokenEndpoint == "" {
		cfg.TokenEndpoint = s.cfg.Issuer + "/oauth2/token"
	}
	p := &Provider{s: s, cfg: cfg, clients: map[string]*OIDCClient{}, keys: newOIDCKeyCache(s)}
	for i := range cfg.Clients {
		c := cfg.Clients[i]
		p.clients[c.ID] = &c
	}
	p.bc = newBackchannel(p)
	return p, nil
}

// Issuer is the provider's issuer identifier.
func (p *Provider) Issuer() string { return p.s.cfg.Issuer }

// --- browser SSO sessions ---

// ssoDevice is the device id of browser SSO sessions.
const ssoDevice = "sso-browser"

// PasswordLogin checks a password (throttled like every login) and opens
// a browser SSO session; it returns the value of the SSO cookie.
func (p *Provider) PasswordLogin(ctx context.Context, email, password string, c Client) (string, error) {
	in := LoginInput{Email: email, Password: password, Platform: storev1.Platform_PLATFORM_WEB, DeviceID: ssoDevice, Client: c}
	if err := validateLogin(&in); err != nil {
		return "", err
	}
	now := p.s.now()
	u, err := p.s.authenticate(ctx, in.Email, in.Password, c, now)
	if err != nil {
		return "", err
	}
	return p.openBrowserSession(ctx, u, c, now, "password")
}

// OpenBrowserSession opens a browser SSO session for a user another
// identity provider already verified (the relying-party side's upstream
// login) and returns the SSO cookie's value. The caller sets it with the
// door's cookie (api/oidcop Door.SetSSOCookie) and sends the browser back
// to the authorization request it came from.
func (p *Provider) OpenBrowserSession(ctx context.Context, userID string, c Client, method string) (string, error) {
	u, err := p.s.d.Directory.ByID(ctx, userID)
	switch {
	case err != nil:
		return "", wrapErr(KindNotFound, "not_found", "no such user", err)
	case u.Status != users.StatusActive:
		return "", errSuspended
	}
	return p.openBrowserSession(ctx, u, c, p.s.now(), method)
}

func (p *Provider) openBrowserSession(ctx context.Context, u users.User, c Client, now time.Time, method string) (string, error) {
	secret := randomID() + randomID()
	sum := sha256.Sum256([]byte(secret))
	sid := randomID()
	absolute := now.Add(p.s.cfg.SessionAbsolute)
	sess := &storev1.Session{
		Id: sid, UserId: u.ID, OrgId: u.Org.ID, Platform: storev1.Platform_PLATFORM_WEB, DeviceId: ssoDevice,
		CreatedUnixNano: now.UnixNano(), LastRefreshedUnixNano: now.UnixNano(),
		IdleExpiresUnixNano: minTime(now.Add(p.s.cfg.SessionIdle), absolute).UnixNano(), AbsoluteExpiresUnixNano: absolute.UnixNano(),
		Region: p.s.cfg.Region, NodeId: p.s.cfg.NodeID, ClientIp: c.IP, UserAgent: truncate(c.UserAgent, maxUALen),
		BrowserSecretSha256: sum[:], AuthTimeUnixNano: now.UnixNano(),
	}
	// The store wants a first refresh token; an SSO session's is never
	// handed out (its id is random and forgotten).
	rt := &storev1.RefreshToken{IdHash: hashOf(randomID()), IssuedUnixNano: now.UnixNano(), ExpiresUnixNano: absolute.UnixNano(), UserId: u.ID}
	_, res, err := p.s.propose(ctx, now, &storev1.Command{Op: &storev1.Command_OpenSession{OpenSession: &storev1.OpenSession{Session: sess, Refresh: rt}}})
	if err != nil {
		return "", err
	}
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		return "", p.s.resultErr(res)
	}
	p.s.audit(ctx, "sso_login", slog.String("user", u.ID), slog.String("session", sid), slog.String("method", method), slog.String("ip", c.IP))
	return sid + "." + secret, nil
}

// BrowserSession returns the live SSO session a cookie value names. A
// session opened a moment ago through another node costs one read barrier.
func (p *Provider) BrowserSession(ctx context.Context, cookie string) (*storev1.Session, bool) {
	sid, secret, ok := strings.Cut(cookie, ".")
	if !ok || sid == "" || len(cookie) > 200 {
		return nil, false
	}
	now := p.s.now()
	ss, err := p.s.d.State.Session(sid, now)
	if err != nil {
		if p.s.d.Cluster.Sync(ctx) != nil {
			return nil, false
		}
		if ss, err = p.s.d.State.Session(sid, now); err != nil {
			return nil, false
		}
	}
	sum := sha256.Sum256([]byte(secret))
	if ss.GetEndedUnixNano() != 0 || len(ss.GetBrowserSecretSha256()) != 32 ||
		subtle.ConstantTimeCompare(sum[:], ss.GetBrowserSecretSha256()) != 1 {
		return nil, false
	}
	return ss, true
}

// EndBrowserSession ends an SSO session (and, in the store, every client
// session issued under it; their clients get back-channel logout tokens).
func (p *Provider) EndBrowserSession(ctx context.Context, sid string) error {
	now := p.s.now()
	_, res, err := p.s.propose(ctx, now, &storev1.Command{Op: &storev1.Command_EndSession{EndSession: &storev1.EndSession{
		SessionId: sid, Reason: storev1.EndReason_END_REASON_LOGOUT}}})
	if err != nil {
		return err
	}
	switch res.GetCode() {
	case storev1.ErrorCode_ERROR_CODE_UNSPECIFIED, storev1.ErrorCode_ERROR_CODE_ENDED, storev1.ErrorCode_ERROR_CODE_NOT_FOUND:
	default:
		return p.s.resultErr(res)
	}
	p.s.audit(ctx, "sso_logout", slog.String("session", sid), slog.Any("ended", res.GetEndedSessionIds()))
	return nil
}

func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// s256 is the PKCE S256 transform (RFC 7636 §4.2).
func s256(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// alertEvent is a security event of the provider for the notifiers.
func alertEvent(kind, clientID string, at time.Time) notify.Event {
	return notify.Event{Kind: kind, Detail: "client " + clientID, At: at}
}
