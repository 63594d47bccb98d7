package idp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OIDCConfig configures a generic OpenID Connect provider.
type OIDCConfig struct {
	// Name is the provider's name in routes and links ("google").
	Name string
	// Issuer is the provider's issuer URL; its discovery document is read
	// from Issuer + "/.well-known/openid-configuration" and must name the
	// same issuer (Google: https://accounts.google.com, Kakao:
	// https://kauth.kakao.com, LINE: https://access.line.me).
	Issuer       string
	ClientID     string
	ClientSecret string
	// Scopes requested; default openid, email, profile. openid is always
	// added.
	Scopes []string
	// AuthParams are extra authorization request parameters (Google's
	// access_type=offline and prompt=consent for a refresh token).
	AuthParams map[string]string
	// UserInfo fetches the userinfo endpoint after the code exchange, for
	// the claims the ID token lacks (its sub must be the ID token's).
	UserInfo bool
	// HTTPClient is used for every call; nil means HTTPClient(10s, nil).
	HTTPClient *http.Client
	// Now is the clock of ID token expiry checks; nil means time.Now.
	Now func() time.Time
}

// OIDC is a Provider for any OpenID provider with discovery. The discovery
// document is read at first use and kept; a failed read is retried at the
// next use.
type OIDC struct {
	cfg OIDCConfig

	mu       sync.Mutex
	provider *oidc.Provider
}

var _ Provider = (*OIDC)(nil)

// NewOIDC returns the provider (no network access yet).
func NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	switch {
	case cfg.Name == "" || cfg.Issuer == "" || cfg.ClientID == "":
		return nil, errors.New("idp: an OIDC provider needs a name, an issuer and a client id")
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	}
	if !containsString(cfg.Scopes, oidc.ScopeOpenID) {
		cfg.Scopes = append([]string{oidc.ScopeOpenID}, cfg.Scopes...)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = HTTPClient(10*time.Second, nil)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &OIDC{cfg: cfg}, nil
}

// Name implements Provider.
func (p *OIDC) Name() string { return p.cfg.Name }

func (p *OIDC) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, p.cfg.HTTPClient)
}

// discover returns the provider's metadata, reading it once.
func (p *OIDC) discover(ctx context.Context) (*oidc.Provider, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.provider != nil {
		return p.provider, nil
	}
	prov, err := oidc.NewProvider(p.ctx(ctx), p.cfg.Issuer)
	if err != nil {
		return nil, errorf(CodeUnavailable, err, "the discovery document of %s could not be used: %s", p.cfg.Issuer, clip(err.Error()))
	}
	p.provider = prov
	return prov, nil
}

func (p *OIDC) oauth(prov *oidc.Provider, redirect string) *oauth2.Config {
	return &oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, Endpoint: prov.Endpoint(),
		RedirectURL: redirect, Scopes: p.cfg.Scopes}
}

// AuthURL implements Provider: an authorization code request with PKCE
// (S256), state and nonce.
func (p *OIDC) AuthURL(ctx context.Context, req AuthRequest) (string, error) {
	prov, err := p.discover(ctx)
	if err != nil {
		return "", err
	}
	opts := []oauth2.AuthCodeOption{oidc.Nonce(req.Nonce), oauth2.S256ChallengeOption(req.Verifier)}
	for k, v := range p.cfg.AuthParams {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	return p.oauth(prov, req.RedirectURL).AuthCodeURL(req.State, opts...), nil
}

func (p *OIDC) verifier(prov *oidc.Provider) *oidc.IDTokenVerifier {
	return prov.Verifier(&oidc.Config{ClientID: p.cfg.ClientID, Now: p.cfg.Now})
}

// Exchange implements Provider: it redeems the code with the PKCE
// verifier, verifies the ID token (signature by a key of the provider's
// JWKS with an algorithm it advertises, never "none"; issuer; audience;
// expiry; nonce; at_hash when present) and reads the identity.
func (p *OIDC) Exchange(ctx context.Context, req AuthRequest, code string) (*Grant, error) {
	prov, err := p.discover(ctx)
	if err != nil {
		return nil, err
	}
	ctx = p.ctx(ctx)
	tok, err := p.oauth(prov, req.RedirectURL).Exchange(ctx, code, oauth2.VerifierOption(req.Verifier))
	if err != nil {
		return nil, exchangeErr(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errorf(CodeInvalidToken, nil, "the provider answered without an ID token")
	}
	idt, err := p.verifier(prov).Verify(ctx, raw)
	if err != nil {
		return nil, errorf(CodeInvalidToken, err, "the provider's ID token was refused: %s", clip(err.Error()))
	}
	if idt.Nonce != req.Nonce {
		return nil, errorf(CodeInvalidToken, nil, "the provider's ID token was refused: its nonce is not this login's")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return nil, errorf(CodeInvalidToken, err, "the provider's ID token was refused: at_hash does not match the access token")
		}
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return nil, errorf(CodeInvalidToken, err, "the provider's ID token claims are unreadable")
	}
	if p.cfg.UserInfo && prov.UserInfoEndpoint() != "" {
		ui, err := prov.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return nil, errorf(CodeUnavailable, err, "the provider's userinfo endpoint failed: %s", clip(err.Error()))
		}
		if ui.Subject != idt.Subject {
			return nil, errorf(CodeInvalidToken, nil, "the provider's userinfo names another subject than its ID token")
		}
		extra := map[string]any{}
		if err := ui.Claims(&extra); err == nil {
			for k, v := range extra {
				if _, ok := claims[k]; !ok {
					claims[k] = v
				}
			}
		}
	}
	return &Grant{Identity: identityFromClaims(p.cfg.Name, idt.Subject, claims), RefreshToken: tok.RefreshToken}, nil
}

// Refresh implements Provider.
func (p *OIDC) Refresh(ctx context.Context, refreshToken string) (*Grant, error) {
	prov, err := p.discover(ctx)
	if err != nil {
		return nil, err
	}
	ctx = p.ctx(ctx)
	tok, err := p.oauth(prov, "").TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			return nil, fmt.Errorf("%w (%s answered invalid_grant)", ErrRevoked, p.cfg.Name)
		}
		return nil, exchangeErr(err)
	}
	g := &Grant{Identity: Identity{Provider: p.cfg.Name}}
	if tok.RefreshToken != refreshToken {
		g.RefreshToken = tok.RefreshToken
	}
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		idt, err := p.verifier(prov).Verify(ctx, raw)
		if err != nil {
			return nil, errorf(CodeInvalidToken, err, "the provider's refreshed ID token was refused: %s", clip(err.Error()))
		}
		claims := map[string]any{}
		_ = idt.Claims(&claims)
		g.Identity = identityFromClaims(p.cfg.Name, idt.Subject, claims)
	}
	return g, nil
}

// exchangeErr maps a token endpoint failure.
func exchangeErr(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		code := re.ErrorCode
		if code == "" {
			code = fmt.Sprintf("HTTP %d", re.Response.StatusCode)
		}
		if re.ErrorCode == "invalid_grant" {
			return errorf(CodeExchange, err, "the provider refused the authorization code (invalid_grant): it was used already, expired, or was not issued to this login")
		}
		return errorf(CodeExchange, err, "the provider's token endpoint refused the request (%s)", clip(code))
	}
	return errorf(CodeUnavailable, err, "the provider's token endpoint could not be reached")
}

// identityFromClaims reads the standard claims.
func identityFromClaims(provider, sub string, claims map[string]any) Identity {
	id := Identity{Provider: provider, Subject: sub, Claims: claims}
	id.Email, _ = claims["email"].(string)
	switch v := claims["email_verified"].(type) {
	case bool:
		id.EmailVerified = v
	case string: // some providers send "true"
		id.EmailVerified = v == "true"
	}
	id.Name, _ = claims["name"].(string)
	if id.Name == "" {
		id.Name, _ = claims["nickname"].(string)
	}
	return id
}

// clip bounds a message taken from a library error.
func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
