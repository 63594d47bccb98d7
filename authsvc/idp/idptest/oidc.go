// Package idptest runs local upstream identity providers for tests: HTTP
// servers that speak the real protocols (OpenID Connect discovery, JWKS,
// authorization and token endpoints with real RS256 or ES256 signatures,
// userinfo; WeChat's OAuth2 with its errcode JSON errors), shaped like
// Google, Kakao, LINE and WeChat, and able to misbehave on request (wrong
// issuer or audience, expired or unsigned ID tokens, error=access_denied).
// They stand in for the providers that cannot run here.
package idptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Shape is how a fake OpenID provider behaves like a real one.
type Shape struct {
	// Alg signs ID tokens: "RS256" or "ES256".
	Alg string
	// EmailVerifiedClaim says whether ID tokens carry email_verified.
	EmailVerifiedClaim bool
	// NameClaim is the claim holding the display name ("name", "nickname").
	NameClaim string
	// OfflineParam, when set, is the authorization parameter without
	// which no refresh token is issued (Google: access_type=offline).
	OfflineParam string
}

// The shapes of the providers sessiond is configured for in the field.
var (
	Google = Shape{Alg: "RS256", EmailVerifiedClaim: true, NameClaim: "name", OfflineParam: "access_type=offline"}
	Kakao  = Shape{Alg: "RS256", NameClaim: "nickname"}
	LINE   = Shape{Alg: "ES256", NameClaim: "name"}
)

// User is an account of a fake provider.
type User struct {
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
	// Extra claims (org, country, groups, ...).
	Extra map[string]any
}

// Misbehaviour makes the provider's next ID tokens wrong.
type Misbehaviour struct {
	WrongIssuer, WrongAudience, Expired, Unsigned, WrongNonce bool
}

type codeGrant struct {
	user      string
	nonce     string
	challenge string
	redirect  string
	offline   bool
	used      bool
	issued    []string // refresh tokens issued with it (revoked on reuse)
}

// OIDC is a fake OpenID provider.
type OIDC struct {
	// URL is the issuer (the server's base URL).
	URL          string
	ClientID     string
	ClientSecret string
	Shape        Shape
	srv          *httptest.Server
	signer       jose.Signer
	pub          jose.JSONWebKey

	mu       sync.Mutex
	users    map[string]User
	next     string // subject the authorization endpoint logs in
	deny     bool
	bad      Misbehaviour
	codes    map[string]*codeGrant
	refresh  map[string]string // refresh token -> subject
	access   map[string]string // access token -> subject
	disabled map[string]bool
	// Refreshes counts refresh_token grants answered.
	refreshes int
}

// NewOIDC starts a fake provider of shape; it stops with the test.
func NewOIDC(t testing.TB, shape Shape) *OIDC {
	t.Helper()
	var key crypto.Signer
	var alg jose.SignatureAlgorithm
	var err error
	switch shape.Alg {
	case "ES256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		alg = jose.ES256
	default:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
		alg = jose.RS256
	}
	if err != nil {
		t.Fatal(err)
	}
	kid := randToken()[:8]
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: string(alg)}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	p := &OIDC{ClientID: "client-" + randToken()[:6], ClientSecret: randToken(), Shape: shape, signer: signer,
		pub:   jose.JSONWebKey{Key: key.Public(), KeyID: kid, Algorithm: string(alg), Use: "sig"},
		users: map[string]User{}, codes: map[string]*codeGrant{}, refresh: map[string]string{}, access: map[string]string{}, disabled: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", p.jwks)
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	mux.HandleFunc("GET /userinfo", p.userinfo)
	p.srv = httptest.NewServer(mux)
	p.URL = p.srv.URL
	t.Cleanup(p.srv.Close)
	return p
}

// AddUser adds an account and makes it the one the next authorization
// logs in.
func (p *OIDC) AddUser(u User) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.users[u.Subject] = u
	p.next = u.Subject
}

// LogInAs makes subject the account the next authorization logs in.
func (p *OIDC) LogInAs(subject string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next = subject
}

// DenyNext makes the next authorization answer error=access_denied.
func (p *OIDC) DenyNext() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deny = true
}

// Misbehave sets how the next ID tokens are wrong (zero: correct).
func (p *OIDC) Misbehave(m Misbehaviour) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bad = m
}

// Disable disables an account: its refresh tokens get invalid_grant.
func (p *OIDC) Disable(subject string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.disabled[subject] = true
}

// Refreshes returns how many refresh grants were answered.
func (p *OIDC) Refreshes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refreshes
}

func (p *OIDC) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, 200, map[string]any{
		"issuer": p.URL, "authorization_endpoint": p.URL + "/authorize", "token_endpoint": p.URL + "/token",
		"userinfo_endpoint": p.URL + "/userinfo", "jwks_uri": p.URL + "/jwks",
		"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		"id_token_signing_alg_values_supported": []string{p.pub.Algorithm},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
	})
}

func (p *OIDC) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, 200, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{p.pub}})
}

// authorize logs the configured user in at once and redirects back.
func (p *OIDC) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect := q.Get("redirect_uri")
	if q.Get("client_id") != p.ClientID || redirect == "" {
		http.Error(w, "unknown client or no redirect_uri", http.StatusBadRequest)
		return
	}
	back, _ := url.Parse(redirect)
	v := url.Values{"state": {q.Get("state")}}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.deny:
		p.deny = false
		v.Set("error", "access_denied")
		v.Set("error_description", "The user denied access")
	case q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		v.Set("error", "invalid_request")
		v.Set("error_description", "PKCE S256 is required")
	case !strings.Contains(" "+q.Get("scope")+" ", " openid "):
		v.Set("error", "invalid_scope")
	default:
		code := randToken()
		offline := true
		if k, want, ok := strings.Cut(p.Shape.OfflineParam, "="); ok {
			offline = q.Get(k) == want
		}
		p.codes[code] = &codeGrant{user: p.next, nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirect: redirect, offline: offline}
		v.Set("code", code)
	}
	back.RawQuery = v.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func oauthErr(w http.ResponseWriter, code, desc string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": desc})
}

func (p *OIDC) clientOK(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	return id == p.ClientID && subtle.ConstantTimeCompare([]byte(secret), []byte(p.ClientSecret)) == 1
}

func (p *OIDC) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthErr(w, "invalid_request", "bad form")
		return
	}
	if !p.clientOK(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	f := r.PostForm
	switch f.Get("grant_type") {
	case "authorization_code":
		g := p.codes[f.Get("code")]
		switch {
		case g == nil:
			oauthErr(w, "invalid_grant", "unknown code")
			return
		case g.used:
			// RFC 6749 §4.1.2: a code used twice revokes what it gave.
			for _, rt := range g.issued {
				delete(p.refresh, rt)
			}
			oauthErr(w, "invalid_grant", "code already used")
			return
		case g.redirect != f.Get("redirect_uri"):
			oauthErr(w, "invalid_grant", "redirect_uri mismatch")
			return
		}
		sum := sha256.Sum256([]byte(f.Get("code_verifier")))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
			oauthErr(w, "invalid_grant", "PKCE verifier mismatch")
			return
		}
		g.used = true
		out := p.tokens(g.user, g.nonce, g.offline)
		if rt, ok := out["refresh_token"].(string); ok {
			g.issued = append(g.issued, rt)
		}
		writeJSON(w, 200, out)
	case "refresh_token":
		sub, ok := p.refresh[f.Get("refresh_token")]
		if !ok || p.disabled[sub] {
			oauthErr(w, "invalid_grant", "Token has been expired or revoked.")
			return
		}
		p.refreshes++
		out := p.tokens(sub, "", false)
		writeJSON(w, 200, out)
	default:
		oauthErr(w, "unsupported_grant_type", "")
	}
}

// tokens issues an access token, an ID token and (offline) a refresh
// token for sub. The caller holds p.mu.
func (p *OIDC) tokens(sub, nonce string, offline bool) map[string]any {
	at := randToken()
	p.access[at] = sub
	out := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": 3600, "id_token": p.idToken(sub, nonce, at)}
	if offline {
		rt := randToken()
		p.refresh[rt] = sub
		out["refresh_token"] = rt
	}
	return out
}

func (p *OIDC) claims(u User) map[string]any {
	c := map[string]any{"sub": u.Subject}
	if u.Email != "" {
		c["email"] = u.Email
		if p.Shape.EmailVerifiedClaim {
			c["email_verified"] = u.EmailVerified
		}
	}
	if u.Name != "" && p.Shape.NameClaim != "" {
		c[p.Shape.NameClaim] = u.Name
	}
	for k, v := range u.Extra {
		c[k] = v
	}
	return c
}

func (p *OIDC) idToken(sub, nonce, accessToken string) string {
	now := time.Now()
	c := p.claims(p.users[sub])
	c["iss"], c["aud"], c["iat"], c["exp"] = p.URL, p.ClientID, now.Unix(), now.Add(time.Hour).Unix()
	if nonce != "" {
		c["nonce"] = nonce
	}
	h := sha256.Sum256([]byte(accessToken))
	if p.pub.Algorithm == "RS256" || p.pub.Algorithm == "ES256" {
		c["at_hash"] = base64.RawURLEncoding.EncodeToString(h[:16])
	}
	switch {
	case p.bad.WrongIssuer:
		c["iss"] = "https://evil.example"
	case p.bad.WrongAudience:
		c["aud"] = "someone-else"
	case p.bad.Expired:
		c["iat"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
	case p.bad.WrongNonce:
		c["nonce"] = "not-this-login"
	}
	payload, _ := json.Marshal(c)
	if p.bad.Unsigned {
		hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
		return hdr + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
	}
	jws, err := p.signer.Sign(payload)
	if err != nil {
		panic(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return s
}

func (p *OIDC) userinfo(w http.ResponseWriter, r *http.Request) {
	at, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	p.mu.Lock()
	defer p.mu.Unlock()
	sub, known := p.access[at]
	if !ok || !known {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	writeJSON(w, 200, p.claims(p.users[sub]))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
