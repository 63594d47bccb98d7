package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sessiond/sessiond/api/authrpc"
	"github.com/sessiond/sessiond/api/upstreamlogin"
	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/idp"
	"github.com/sessiond/sessiond/authsvc/users"
)

// IdentityProvidersConfig is the identity_providers section: sign-in with
// upstream identity providers (docs/upstream-login.md).
//
//	identity_providers:
//	  public_url: https://auth.example.com   # callbacks: <public_url>/auth/callback/<name>
//	  return_origins: [https://app.example.com]
//	  revalidate_interval: 1h
//	  providers:
//	    google:
//	      type: oidc
//	      issuer: https://accounts.google.com
//	      client_id: 1234.apps.googleusercontent.com
//	      client_secret_file: /etc/sessiond/google-secret   # or client_secret_env
//	      auth_params: {access_type: offline, prompt: consent}
//	      link_verified_email: true
//	      signup: true
//	      org: Example Customers
//	      country: KR
type IdentityProvidersConfig struct {
	// PublicURL is this cluster's public base URL as the providers know it
	// (scheme and host, no path); each provider's redirect URI is
	// PublicURL + /auth/callback/<name>. Required with providers.
	PublicURL string `yaml:"public_url"`
	// ReturnOrigins are the origins besides PublicURL's that return_to may
	// name (no open redirect).
	ReturnOrigins []string `yaml:"return_origins"`
	// DefaultReturnTo is where a login without return_to ends ("/").
	DefaultReturnTo string `yaml:"default_return_to"`
	// StateTTL bounds a login from start to callback (default 10m, 1m-1h).
	StateTTL time.Duration `yaml:"state_ttl"`
	// RevalidateInterval is how often the leader asks each provider, with
	// the kept refresh tokens, whether it still accepts the users (default
	// 1h; 0 keeps the default, "off" is a negative value: -1s).
	RevalidateInterval time.Duration `yaml:"revalidate_interval"`
	// CallTimeout bounds every call to a provider (default 10s).
	CallTimeout time.Duration `yaml:"call_timeout"`
	// Providers by name (lower-case letters, digits, '-', '_').
	Providers map[string]ProviderConfig `yaml:"providers"`
}

// ProviderConfig is one upstream identity provider.
type ProviderConfig struct {
	// Type is oidc (any OpenID provider with discovery: Google, Kakao,
	// LINE, ...) or wechat.
	Type string `yaml:"type"`
	// Issuer (oidc) is the issuer URL whose discovery document is used.
	Issuer string `yaml:"issuer"`
	// ClientID is the OAuth client id (WeChat: the appid).
	ClientID string `yaml:"client_id"`
	// ClientSecretFile or ClientSecretEnv holds the client secret (WeChat:
	// the AppSecret); never in the YAML itself, never on the command line.
	ClientSecretFile string `yaml:"client_secret_file"`
	ClientSecretEnv  string `yaml:"client_secret_env"`
	// Scopes (oidc; default openid email profile; WeChat: snsapi_login).
	Scopes []string `yaml:"scopes"`
	// AuthParams are extra authorization parameters (Google:
	// access_type: offline, prompt: consent, for a refresh token).
	AuthParams map[string]string `yaml:"auth_params"`
	// UserInfo reads the userinfo endpoint for claims the ID token lacks.
	UserInfo bool `yaml:"userinfo"`
	// AuthURL and APIURL (wechat) override WeChat's endpoints.
	AuthURL string `yaml:"auth_url"`
	APIURL  string `yaml:"api_url"`
	// LinkVerifiedEmail links an identity to the existing user of the same
	// email when the provider marks the email verified.
	LinkVerifiedEmail bool `yaml:"link_verified_email"`
	// Signup creates users for identities that link to none; they join
	// Org (or the claim OrgClaim) in Country (or the claim CountryClaim)
	// with OrgType, Roles and RoleMap[v] for each value v of RolesClaim.
	Signup       bool                `yaml:"signup"`
	Org          string              `yaml:"org"`
	OrgClaim     string              `yaml:"org_claim"`
	Country      string              `yaml:"country"`
	CountryClaim string              `yaml:"country_claim"`
	OrgType      string              `yaml:"org_type"`
	Roles        []string            `yaml:"roles"`
	RolesClaim   string              `yaml:"roles_claim"`
	RoleMap      map[string][]string `yaml:"role_map"`
	// EmailDomain names users without a verified email (default
	// users.invalid).
	EmailDomain string `yaml:"email_domain"`
}

var providerNameRE = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// loopbackHost reports whether a URL's host is a loopback address or
// localhost (plain http is allowed there, for tests and laptops).
func loopbackHost(u *url.URL) bool {
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func checkURL(what, s string, origin bool) error {
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return fmt.Errorf("%s %q: want an absolute https URL", what, s)
	case u.Scheme == "http" && !loopbackHost(u):
		return fmt.Errorf("%s %q: plain http is allowed on loopback only", what, s)
	case origin && (u.Path != "" && u.Path != "/" || u.RawQuery != ""):
		return fmt.Errorf("%s %q: want scheme://host[:port] without a path", what, s)
	}
	return nil
}

// validate reports every bad identity_providers setting.
func (c IdentityProvidersConfig) validate() []error {
	if len(c.Providers) == 0 {
		return nil
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("identity_providers."+format, args...))
	}
	if err := checkURL("public_url", c.PublicURL, true); err != nil {
		bad("%v", err)
	}
	for _, o := range c.ReturnOrigins {
		if err := checkURL("return_origins", o, true); err != nil {
			bad("%v", err)
		}
	}
	if c.StateTTL != 0 && (c.StateTTL < time.Minute || c.StateTTL > time.Hour) {
		bad("state_ttl %s: between 1m and 1h", c.StateTTL)
	}
	if c.RevalidateInterval > 0 && c.RevalidateInterval < time.Second {
		bad("revalidate_interval %s: at least 1s (negative: off)", c.RevalidateInterval)
	}
	if c.CallTimeout < 0 || c.CallTimeout > time.Minute {
		bad("call_timeout %s: between 0 (10s) and 1m", c.CallTimeout)
	}
	for name, p := range c.Providers {
		if !providerNameRE.MatchString(name) {
			bad("providers %q: a name is 1-64 of a-z, 0-9, '-', '_'", name)
		}
		pre := "providers." + name + "."
		switch p.Type {
		case "oidc":
			if err := checkURL(pre+"issuer", p.Issuer, false); err != nil {
				bad("%v", err)
			}
		case "wechat":
			for _, u := range []struct{ n, v string }{{"auth_url", p.AuthURL}, {"api_url", p.APIURL}} {
				if u.v != "" {
					if err := checkURL(pre+u.n, u.v, false); err != nil {
						bad("%v", err)
					}
				}
			}
		default:
			bad("%stype %q: want oidc or wechat", pre, p.Type)
		}
		if p.ClientID == "" {
			bad("%sclient_id: required", pre)
		}
		if (p.ClientSecretFile == "") == (p.ClientSecretEnv == "") {
			bad("%sclient_secret_file or client_secret_env: exactly one is required (the secret is never written in the YAML)", pre)
		}
		if p.Signup {
			if p.Org == "" && p.OrgClaim == "" || p.Org == "" {
				bad("%sorg: required with signup (the organization signed-up users join when the claim is absent)", pre)
			}
			if len(p.Country) != 2 {
				bad("%scountry %q: required with signup, ISO 3166-1 alpha-2", pre, p.Country)
			}
			if p.OrgType != "" && !users.OrgType(strings.ToUpper(p.OrgType)).Valid() {
				bad("%sorg_type %q: want customer, supplier or operator", pre, p.OrgType)
			}
		}
	}
	return errs
}

// clientSecret reads a provider's secret from its file or variable.
func (p ProviderConfig) clientSecret(getenv func(string) string) (string, error) {
	if p.ClientSecretFile != "" {
		s, err := readSecretFile(p.ClientSecretFile)
		if err != nil {
			return "", fmt.Errorf("client_secret_file: %w", err)
		}
		return s, nil
	}
	s := strings.TrimSpace(getenv(p.ClientSecretEnv))
	if s == "" {
		return "", fmt.Errorf("client_secret_env: %s is not set", p.ClientSecretEnv)
	}
	return s, nil
}

// upstream builds the auth service's upstream providers (nil: none).
func (c IdentityProvidersConfig) upstream() (*authsvc.Upstream, error) {
	if len(c.Providers) == 0 {
		return nil, nil
	}
	timeout := c.CallTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	base := strings.TrimSuffix(c.PublicURL, "/")
	out := &authsvc.Upstream{Providers: map[string]authsvc.UpstreamProvider{}, StateTTL: c.StateTTL}
	names := make([]string, 0, len(c.Providers))
	for n := range c.Providers {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		p := c.Providers[name]
		secret, err := p.clientSecret(os.Getenv)
		if err != nil {
			return nil, fmt.Errorf("identity_providers.providers.%s: %w", name, err)
		}
		client := idp.HTTPClient(timeout, nil)
		var prov idp.Provider
		switch p.Type {
		case "wechat":
			scope := ""
			if len(p.Scopes) > 0 {
				scope = strings.Join(p.Scopes, ",")
			}
			prov, err = idp.NewWeChat(idp.WeChatConfig{Name: name, AppID: p.ClientID, Secret: secret, Scope: scope,
				AuthURL: p.AuthURL, APIURL: p.APIURL, HTTPClient: client})
		default:
			prov, err = idp.NewOIDC(idp.OIDCConfig{Name: name, Issuer: p.Issuer, ClientID: p.ClientID, ClientSecret: secret,
				Scopes: p.Scopes, AuthParams: p.AuthParams, UserInfo: p.UserInfo, HTTPClient: client})
		}
		if err != nil {
			return nil, fmt.Errorf("identity_providers.providers.%s: %w", name, err)
		}
		out.Providers[name] = authsvc.UpstreamProvider{Provider: prov, RedirectURL: base + "/auth/callback/" + name,
			Rules: authsvc.LinkRules{LinkVerifiedEmail: p.LinkVerifiedEmail, Signup: p.Signup,
				Org: p.Org, OrgClaim: p.OrgClaim, Country: strings.ToUpper(p.Country), CountryClaim: p.CountryClaim,
				OrgType: users.OrgType(strings.ToUpper(p.OrgType)), Roles: p.Roles, RolesClaim: p.RolesClaim, RoleMap: p.RoleMap,
				EmailDomain: p.EmailDomain}}
	}
	return out, nil
}

// revalidateInterval is the revalidation period (0: off).
func (c IdentityProvidersConfig) revalidateInterval() time.Duration {
	switch {
	case c.RevalidateInterval < 0:
		return 0
	case c.RevalidateInterval == 0:
		return time.Hour
	}
	return c.RevalidateInterval
}

// upstreamRoutes mounts /auth/login/{provider} and /auth/callback/{provider}.
func (n *node) upstreamRoutes(mux *routeMux, cookie authrpc.Cookie) {
	c := n.cfg.IdentityProviders
	upstreamlogin.Register(mux, n.auth, upstreamlogin.Options{
		Cookie: cookie, MaxAge: n.cfg.Auth.RefreshTTL, ReturnOrigins: c.ReturnOrigins, DefaultReturnTo: c.DefaultReturnTo,
		StateTTL: c.StateTTL, HostPrefix: cookie.HostPrefix, PublicOrigin: c.PublicURL,
		// A login started from the OpenID Provider's login page continues
		// there with a browser SSO session (oidc.go).
		Completer: oidcCompleter{n: n, fallback: upstreamlogin.RefreshCookieCompleter{Cookie: cookie, MaxAge: n.cfg.Auth.RefreshTTL}},
	})
}

// runUpstreamRevalidation runs the leader's revalidation loop.
func (n *node) runUpstreamRevalidation(ctx context.Context) {
	c := n.cfg.IdentityProviders
	if every := c.revalidateInterval(); every > 0 {
		n.auth.RunUpstreamRevalidation(ctx, every, c.CallTimeout)
	}
}
