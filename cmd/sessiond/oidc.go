package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sessiond/sessiond/api/authrpc"
	"github.com/sessiond/sessiond/api/oidcop"
	"github.com/sessiond/sessiond/api/upstreamlogin"
	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/store"
)

// OIDCConfig configures the OpenID Provider (auth.oidc; docs/sso.md).
type OIDCConfig struct {
	// Enabled serves the provider's endpoints (/oidc/...) and adds them to
	// the discovery document; the leader then keeps RS256 and ES256
	// ID-token keys in the keyring.
	Enabled bool `yaml:"enabled"`
	// CodeTTL is an authorization code's life (default 60s, at most 10m).
	CodeTTL time.Duration `yaml:"code_ttl"`
	// IDTokenTTL is an ID token's life (default 10m, at most 1h).
	IDTokenTTL time.Duration `yaml:"id_token_ttl"`
	// Clients are the registered relying parties.
	Clients []OIDCClientConfig `yaml:"clients"`
}

// OIDCClientConfig is one registered client.
type OIDCClientConfig struct {
	// ID is the client_id.
	ID string `yaml:"id"`
	// Name is shown on the login and consent pages.
	Name string `yaml:"name"`
	// AuthMethod: none (public: browser or mobile app), client_secret_basic
	// or private_key_jwt.
	AuthMethod string `yaml:"auth_method"`
	// SecretHash is the argon2id PHC string of the client secret
	// (`sessiond hash-secret`); never the secret itself.
	SecretHash string `yaml:"secret_hash"`
	// JWKS holds the client's public keys for private_key_jwt, as a JWK
	// Set ({"keys": [...]}) written in YAML or JSON.
	JWKS map[string]any `yaml:"jwks"`
	// RedirectURIs are matched exactly.
	RedirectURIs []string `yaml:"redirect_uris"`
	// PostLogoutRedirectURIs are matched exactly.
	PostLogoutRedirectURIs []string `yaml:"post_logout_redirect_uris"`
	// GrantTypes: authorization_code, refresh_token, client_credentials
	// (default the first two).
	GrantTypes []string `yaml:"grant_types"`
	// Scopes the client may ask for (default all the provider knows).
	Scopes []string `yaml:"scopes"`
	// BackchannelLogoutURI receives OIDC Back-Channel Logout tokens.
	BackchannelLogoutURI string `yaml:"backchannel_logout_uri"`
	// FirstParty clients skip the consent page.
	FirstParty bool `yaml:"first_party"`
	// IDTokenAlg: RS256 (default) or ES256.
	IDTokenAlg string `yaml:"id_token_signed_response_alg"`
}

// providerConfig converts and validates the configuration.
func (c OIDCConfig) providerConfig(issuer string) (authsvc.ProviderConfig, error) {
	pc := authsvc.ProviderConfig{CodeTTL: c.CodeTTL, IDTokenTTL: c.IDTokenTTL, TokenEndpoint: issuer + oidcop.TokenPath}
	for _, cl := range c.Clients {
		oc := authsvc.OIDCClient{ID: cl.ID, Name: cl.Name, AuthMethod: cl.AuthMethod, SecretHash: cl.SecretHash,
			RedirectURIs: cl.RedirectURIs, PostLogoutRedirectURIs: cl.PostLogoutRedirectURIs, GrantTypes: cl.GrantTypes,
			Scopes: cl.Scopes, BackchannelLogoutURI: cl.BackchannelLogoutURI, FirstParty: cl.FirstParty, IDTokenAlg: cl.IDTokenAlg}
		if cl.JWKS != nil {
			raw, err := json.Marshal(cl.JWKS)
			if err == nil {
				err = json.Unmarshal(raw, &oc.JWKS)
			}
			if err != nil {
				return pc, fmt.Errorf("auth.oidc client %q: jwks: %w", cl.ID, err)
			}
		}
		pc.Clients = append(pc.Clients, oc)
	}
	if err := pc.Validate(); err != nil {
		return pc, fmt.Errorf("auth.oidc: %w", err)
	}
	return pc, nil
}

// validate reports a bad auth.oidc section.
func (c OIDCConfig) validate(issuer string) []error {
	if !c.Enabled && len(c.Clients) == 0 {
		return nil
	}
	if _, err := c.providerConfig(issuer); err != nil {
		return []error{err}
	}
	return nil
}

// oidcState is the node's provider, set once the auth service exists and
// read from the store's apply path (end-of-session changes).
type oidcState struct {
	p    atomic.Pointer[authsvc.Provider]
	door *oidcop.Door
}

// startOIDC builds the provider when enabled.
func (n *node) startOIDC() error {
	c := n.cfg.Auth.OIDC
	if !c.Enabled {
		return nil
	}
	pc, err := c.providerConfig(n.cfg.Auth.Issuer)
	if err != nil {
		return err
	}
	p, err := authsvc.NewProvider(n.auth, pc)
	if err != nil {
		return err
	}
	n.oidc.p.Store(p)
	return nil
}

// oidcClients is the provider as the admin API's client registry, or nil
// when it is off.
func (n *node) oidcClients() authrpc.OIDCClients {
	if p := n.oidc.p.Load(); p != nil {
		return p
	}
	return nil
}

// runOIDC starts the provider's loops: ID-token key rotation (on the
// leader) and back-channel logout delivery.
func (n *node) runOIDC(bg context.Context) {
	p := n.oidc.p.Load()
	if p == nil {
		return
	}
	n.go_(func(context.Context) { p.RunKeyRotation(bg) })
	n.go_(func(context.Context) { p.RunBackchannel(bg, 4) })
}

// oidcSessionsEnded feeds the provider the store's end-of-session
// changes (the leader delivers back-channel logout tokens).
func (n *node) oidcSessionsEnded(ch []store.Change) {
	p := n.oidc.p.Load()
	if p == nil {
		return
	}
	p.SessionsEnded(ch)
}

// registerOIDC mounts the provider's door (its routes answer 404 when the
// provider is off) and returns it for the discovery and JWKS hooks.
func (n *node) registerOIDC(mux *routeMux) *oidcop.Door {
	n.oidc.door = oidcop.Register(mux, n.oidc.p.Load(), oidcop.Options{
		Enabled: n.oidc.p.Load() != nil, Secure: n.tls != nil && n.apiTLS() != nil, Upstreams: oidcUpstreams{n},
	})
	return n.oidc.door
}

// devOIDC is the provider of `sessiond dev --oidc-redirect-uri`: one
// public first-party client, dev-app, with backchannel (when set) as its
// backchannel_logout_uri.
func devOIDC(redirects []string, backchannel string) OIDCConfig {
	return OIDCConfig{Enabled: true, Clients: []OIDCClientConfig{{ID: "dev-app", Name: "Dev App", AuthMethod: authsvc.AuthNone,
		FirstParty: true, RedirectURIs: redirects, PostLogoutRedirectURIs: redirects, BackchannelLogoutURI: backchannel}}}
}

// oidcUpstreams lists the configured upstream identity providers on the
// provider's login page (links to /auth/login/{name}).
type oidcUpstreams struct{ n *node }

func (u oidcUpstreams) Upstreams() []oidcop.Upstream {
	var out []oidcop.Upstream
	for _, name := range u.n.auth.UpstreamProviders() {
		label := name
		if name != "" {
			label = strings.ToUpper(name[:1]) + name[1:]
		}
		out = append(out, oidcop.Upstream{Name: name, Label: label})
	}
	return out
}

// oidcCompleter hands a browser back after an upstream login: when it
// came from the provider's login page (return_to is an authorization
// request), it opens a browser SSO session, sets the SSO cookie, ends the
// app session the upstream login opened (the browser holds no refresh
// token for it) and continues the authorization request; otherwise it
// does what the upstream door does by default.
type oidcCompleter struct {
	n        *node
	fallback upstreamlogin.Completer
}

func (c oidcCompleter) Complete(w http.ResponseWriter, r *http.Request, login *authsvc.UpstreamLogin, returnTo string) {
	p := c.n.oidc.p.Load()
	if p == nil || c.n.oidc.door == nil || !strings.HasPrefix(returnTo, oidcop.AuthorizePath+"?") {
		c.fallback.Complete(w, r, login, returnTo)
		return
	}
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	value, err := p.OpenBrowserSession(r.Context(), login.User.ID, authsvc.Client{IP: ip, UserAgent: r.UserAgent()}, "upstream")
	if err != nil {
		http.Error(w, "the sign-in could not be completed; retry", http.StatusServiceUnavailable)
		return
	}
	if login.Tokens != nil && login.Tokens.RefreshToken != "" {
		if _, err := c.n.auth.Logout(r.Context(), "", login.Tokens.RefreshToken); err != nil {
			c.n.log.Warn("the upstream login's app session was not ended", "err", err)
		}
	}
	c.n.oidc.door.SetSSOCookie(w, value)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, returnTo, http.StatusSeeOther)
}
