package authsvc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/cluster/clustertest"
)

const (
	opRedirect = "https://app.test/callback"
	opPublic   = "spa"
	opKeyed    = "backoffice"
)

// opCluster is a svcCluster whose nodes each run the OpenID Provider.
type opCluster struct {
	*svcCluster
	ops       []*authsvc.Provider
	clientKey *ecdsa.PrivateKey
	clock     *skewClock
}

// skewClock is the services' clock: real time plus an offset a test moves
// forward, so a rule of time (a grace window) is crossed without waiting.
type skewClock struct{ offset atomic.Int64 }

func (c *skewClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *skewClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

func newOPCluster(t *testing.T, n int) *opCluster {
	t.Helper()
	clock := &skewClock{}
	sc := newSvcCluster(t, n, builtinDir, func(_ int, _ *authsvc.Config, d *authsvc.Deps) { d.Now = clock.Now })
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	oc := &opCluster{svcCluster: sc, clientKey: key, clock: clock}
	cfg := authsvc.ProviderConfig{Clients: []authsvc.OIDCClient{
		{ID: opPublic, Name: "The SPA", AuthMethod: authsvc.AuthNone, RedirectURIs: []string{opRedirect}, FirstParty: true},
		{ID: opKeyed, AuthMethod: authsvc.AuthPrivateKeyJWT, RedirectURIs: []string{opRedirect},
			JWKS:       jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}},
			GrantTypes: []string{authsvc.GrantAuthorizationCode, authsvc.GrantRefreshToken, authsvc.GrantClientCredentials},
			IDTokenAlg: authsvc.AlgES256},
	}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, s := range sc.svcs {
		p, err := authsvc.NewProvider(s, cfg)
		if err != nil {
			t.Fatal(err)
		}
		oc.ops = append(oc.ops, p)
		go p.RunKeyRotation(ctx)
	}
	clustertest.WaitFor(t, 60*time.Second, "every node to publish RS256 and ES256 ID-token keys", func() bool {
		for _, p := range oc.ops {
			if len(p.JWKS()) < 2 {
				return false
			}
		}
		return true
	})
	return oc
}

func pkce(t *testing.T) (verifier, challenge string) {
	t.Helper()
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(h[:])
}

func authzQuery(client, challenge string) url.Values {
	return url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {opRedirect},
		"scope": {"openid profile email org country roles"}, "state": {"st-1"}, "nonce": {"n-1"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
}

// code runs the authorization step on node i for a browser signed in with
// cookie and returns the code from the redirect.
func (oc *opCluster) code(t *testing.T, i int, cookie string, q url.Values) string {
	t.Helper()
	ctx := context.Background()
	ar, aerr := oc.ops[i].ParseAuthorize(q)
	if aerr != nil {
		t.Fatalf("ParseAuthorize: %v", aerr)
	}
	sso, ok := oc.ops[i].BrowserSession(ctx, cookie)
	if !ok {
		t.Fatalf("node %d does not see the browser session", i)
	}
	loc, err := oc.ops[i].IssueCode(ctx, ar, sso)
	if err != nil {
		t.Fatalf("IssueCode: %v", err)
	}
	u, _ := url.Parse(loc)
	if got := u.Query().Get("state"); got != "st-1" {
		t.Errorf("redirect state = %q, want st-1", got)
	}
	if got := u.Query().Get("iss"); got != "https://auth.test" {
		t.Errorf("redirect iss = %q, want the issuer", got)
	}
	return u.Query().Get("code")
}

func tokenForm(kv ...string) url.Values {
	f := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Set(kv[i], kv[i+1])
	}
	return f
}

func oauthCode(err error) string {
	var e *authsvc.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// TestOIDCCodeFlowAcrossNodes: a browser signs in on node 0, authorizes on
// node 1 and the client redeems on node 2; the ID token verifies with the
// published keys and carries nonce, sid, at_hash and the scope's claims;
// userinfo, refresh and a first-party refresh of the client's token
// behave as specified.
func TestOIDCCodeFlowAcrossNodes(t *testing.T) {
	oc := newOPCluster(t, 3)
	u := oc.createUser("alice@example.com", "correct horse battery")
	ctx := context.Background()
	cookie, err := oc.ops[0].PasswordLogin(ctx, "alice@example.com", "correct horse battery", authsvc.Client{IP: "192.0.2.7"})
	if err != nil {
		t.Fatalf("PasswordLogin: %v", err)
	}
	verifier, challenge := pkce(t)
	code := oc.code(t, 1, cookie, authzQuery(opPublic, challenge))
	res, err := oc.ops[2].Token(ctx, authsvc.TokenRequest{Form: tokenForm("grant_type", "authorization_code", "code", code,
		"redirect_uri", opRedirect, "code_verifier", verifier, "client_id", opPublic)})
	if err != nil {
		t.Fatalf("Token on node 2: %v", err)
	}
	if res.IDToken == "" || res.AccessToken == "" || res.RefreshToken == "" || res.TokenType != "Bearer" {
		t.Fatalf("token response %+v: want id, access and refresh tokens", res)
	}
	tok, err := jwt.ParseSigned(res.IDToken, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	var key jose.JSONWebKey
	for _, k := range oc.ops[0].JWKS() {
		if k.KeyID == tok.Headers[0].KeyID {
			key = k
		}
	}
	var claims struct {
		jwt.Claims
		Nonce   string   `json:"nonce"`
		SID     string   `json:"sid"`
		AtHash  string   `json:"at_hash"`
		Email   string   `json:"email"`
		Country string   `json:"country"`
		Roles   []string `json:"roles"`
		Auth    int64    `json:"auth_time"`
	}
	if err := tok.Claims(key.Key, &claims); err != nil {
		t.Fatalf("ID token signature with the published key %q: %v", tok.Headers[0].KeyID, err)
	}
	h := sha256.Sum256([]byte(res.AccessToken))
	sso, _ := oc.ops[0].BrowserSession(ctx, cookie)
	switch {
	case claims.Issuer != "https://auth.test" || claims.Subject != u.ID || !claims.Audience.Contains(opPublic):
		t.Errorf("iss/sub/aud = %q %q %v", claims.Issuer, claims.Subject, claims.Audience)
	case claims.Nonce != "n-1":
		t.Errorf("nonce = %q, want n-1", claims.Nonce)
	case claims.SID != sso.GetId():
		t.Errorf("sid = %q, want the SSO session %q", claims.SID, sso.GetId())
	case claims.AtHash != base64.RawURLEncoding.EncodeToString(h[:16]):
		t.Errorf("at_hash = %q does not match the access token", claims.AtHash)
	case claims.Email != "alice@example.com" || claims.Country != "TH" || claims.Roles == nil || claims.Auth == 0:
		t.Errorf("claims email %q country %q roles %v auth_time %d", claims.Email, claims.Country, claims.Roles, claims.Auth)
	}
	info, err := oc.ops[0].UserInfo(ctx, res.AccessToken)
	if err != nil || info["sub"] != u.ID || info["email"] != "alice@example.com" || info["org_name"] != "Org" {
		t.Errorf("UserInfo = %v, %v", info, err)
	}
	// The first-party refresh route refuses the client's refresh token
	// (only the client, at the token endpoint, may use it).
	if _, err := oc.svcs[1].Refresh(ctx, res.RefreshToken, authsvc.Client{}); err == nil {
		t.Errorf("Service.Refresh accepted a refresh token issued to an OIDC client")
	}
	next, err := oc.ops[1].Token(ctx, authsvc.TokenRequest{Form: tokenForm("grant_type", "refresh_token", "refresh_token", res.RefreshToken, "client_id", opPublic)})
	if err != nil || next.IDToken == "" || next.RefreshToken == res.RefreshToken {
		t.Fatalf("refresh at the token endpoint: %+v, %v", next, err)
	}
	// The spent token presented again after the grace window is theft.
	oc.clock.Advance(1100 * time.Millisecond) // past RefreshGrace (1 s)
	if _, err := oc.ops[2].Token(ctx, authsvc.TokenRequest{Form: tokenForm("grant_type", "refresh_token", "refresh_token", res.RefreshToken, "client_id", opPublic)}); oauthCode(err) != authsvc.ErrCodeInvalidGrant {
		t.Errorf("reused refresh token: %v, want invalid_grant", err)
	}
}

// TestOIDCCodeReuseRevokesTokens: RFC 6749 §4.1.2 — a code redeemed twice
// fails the second time and revokes the tokens the first produced.
func TestOIDCCodeReuseRevokesTokens(t *testing.T) {
	oc := newOPCluster(t, 1)
	oc.createUser("bob@example.com", "correct horse battery")
	ctx := context.Background()
	cookie, err := oc.ops[0].PasswordLogin(ctx, "bob@example.com", "correct horse battery", authsvc.Client{})
	if err != nil {
		t.Fatal(err)
	}
	verifier, challenge := pkce(t)
	code := oc.code(t, 0, cookie, authzQuery(opPublic, challenge))
	form := tokenForm("grant_type", "authorization_code", "code", code, "redirect_uri", opRedirect, "code_verifier", verifier, "client_id", opPublic)
	// A wrong verifier is refused and does not spend the code.
	bad := tokenForm("grant_type", "authorization_code", "code", code, "redirect_uri", opRedirect, "code_verifier", strings.Repeat("A", 43), "client_id", opPublic)
	if _, err := oc.ops[0].Token(ctx, authsvc.TokenRequest{Form: bad}); oauthCode(err) != authsvc.ErrCodeInvalidGrant || !strings.Contains(err.Error(), "code_verifier") {
		t.Errorf("PKCE mismatch: %v, want invalid_grant naming code_verifier", err)
	}
	first, err := oc.ops[0].Token(ctx, authsvc.TokenRequest{Form: form})
	if err != nil {
		t.Fatalf("first redemption: %v", err)
	}
	if c := oc.svcs[0].CheckToken(first.AccessToken); !c.Active {
		t.Fatalf("access token inactive before the reuse: %+v", c)
	}
	if _, err := oc.ops[0].Token(ctx, authsvc.TokenRequest{Form: form}); oauthCode(err) != authsvc.ErrCodeInvalidGrant {
		t.Fatalf("second redemption: %v, want invalid_grant", err)
	}
	if c := oc.svcs[0].CheckToken(first.AccessToken); c.Active {
		t.Errorf("the access token of a reused code is still active")
	}
	if _, err := oc.ops[0].Token(ctx, authsvc.TokenRequest{Form: tokenForm("grant_type", "refresh_token", "refresh_token", first.RefreshToken, "client_id", opPublic)}); err == nil {
		t.Errorf("the refresh token of a reused code still refreshes")
	}
	// The browser's SSO session is untouched: the user can sign in to
	// another client without a password.
	if _, ok := oc.ops[0].BrowserSession(ctx, cookie); !ok {
		t.Errorf("the SSO session ended with the reused code's client session")
	}
}

// assertion signs a private_key_jwt client assertion.
func (oc *opCluster) assertion(t *testing.T, jti string, aud string, exp time.Duration) string {
	t.Helper()
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: oc.clientKey, KeyID: "k1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	raw, err := jwt.Signed(sg).Claims(jwt.Claims{Issuer: opKeyed, Subject: opKeyed, Audience: jwt.Audience{aud}, ID: jti,
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(exp))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestOIDCPrivateKeyJWT: RFC 7523 client authentication; a replayed
// assertion (same jti) is refused on another node, as are a wrong
// audience, a long-lived assertion and one signed by another key.
func TestOIDCPrivateKeyJWT(t *testing.T) {
	oc := newOPCluster(t, 3)
	ctx := context.Background()
	cc := func(node int, assertion string) error {
		_, err := oc.ops[node].Token(ctx, authsvc.TokenRequest{Form: tokenForm("grant_type", "client_credentials",
			"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion", assertion)})
		return err
	}
	a := oc.assertion(t, "jti-1", "https://auth.test/oauth2/token", time.Minute)
	if err := cc(0, a); err != nil {
		t.Fatalf("client_credentials with a fresh assertion: %v", err)
	}
	if err := cc(2, a); oauthCode(err) != authsvc.ErrCodeInvalidClient || !strings.Contains(err.Error(), "replay") {
		t.Errorf("replayed assertion on another node: %v, want invalid_client (replay)", err)
	}
	if err := cc(1, oc.assertion(t, "jti-2", "https://elsewhere.test", time.Minute)); oauthCode(err) != authsvc.ErrCodeInvalidClient {
		t.Errorf("wrong aud: %v, want invalid_client", err)
	}
	if err := cc(1, oc.assertion(t, "jti-3", "https://auth.test", time.Hour)); oauthCode(err) != authsvc.ErrCodeInvalidClient {
		t.Errorf("exp an hour ahead: %v, want invalid_client", err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	oc.clientKey = other
	if err := cc(1, oc.assertion(t, "jti-4", "https://auth.test", time.Minute)); oauthCode(err) != authsvc.ErrCodeInvalidClient {
		t.Errorf("assertion signed by another key: %v, want invalid_client", err)
	}
}
