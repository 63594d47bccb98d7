package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/sessiond/sessiond/authsvc/password"
	"github.com/sessiond/sessiond/cluster/clustertest"
)

// The OpenID Provider driven by relying-party libraries no one here wrote
// (coreos/go-oidc and golang.org/x/oauth2) against a 3-node cluster: the
// issuer http://auth.test is a name whose connections a routing dialer
// sends to the node a step chooses, as a load balancer in front of the
// regions would, so a flow starts on one node and finishes on another.

const (
	opTestIssuer   = "http://auth.test"
	opWebClient    = "web"
	opWebSecret    = "web-client-secret-0123456789"
	opSPAClient    = "spa"
	opRedirectURI  = "https://app.test/cb"
	opPostLogout   = "https://app.test/bye"
	opUserEmail    = "sso@example.com"
	opUserPassword = "correct horse battery staple"
)

// opRouter dials every connection to the node chosen last.
type opRouter struct{ target atomic.Value }

func (r *opRouter) to(n *node) { r.target.Store(n.ln.Addr().String()) }

func (r *opRouter) client(jar http.CookieJar) *http.Client {
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, r.target.Load().(string))
	}}
	return &http.Client{Transport: tr, Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host != "auth.test" {
			return http.ErrUseLastResponse // the browser would go to the app: stop and look
		}
		return nil
	}}
}

// bcReceiver is a relying party's back-channel logout endpoint.
type bcReceiver struct {
	mu     sync.Mutex
	tokens []string
}

func (b *bcReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("logout_token") == "" {
		http.Error(w, "no logout_token", http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	b.tokens = append(b.tokens, r.PostForm.Get("logout_token"))
	b.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (b *bcReceiver) got() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.tokens...)
}

func opCluster(t testing.TB, bcURL string, webRedirects ...string) *testCluster {
	t.Helper()
	h, err := password.NewHasher(password.Config{Params: password.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := h.Hash(opWebSecret)
	if err != nil {
		t.Fatal(err)
	}
	def := defaultConfig().Auth.Password
	tc := startTestCluster(t, 3, func(_ int, c *Config) {
		if _, bench := t.(*testing.B); bench {
			c.Auth.Password = def // benchmarks compare with a real login's cost
		}
		c.Auth.Issuer = opTestIssuer
		c.Auth.OIDC = OIDCConfig{Enabled: true, Clients: []OIDCClientConfig{
			{ID: opWebClient, Name: "Back Office", AuthMethod: "client_secret_basic", SecretHash: hash,
				RedirectURIs: append([]string{opRedirectURI}, webRedirects...), PostLogoutRedirectURIs: []string{opPostLogout}, BackchannelLogoutURI: bcURL},
			{ID: opSPAClient, Name: "Portal", AuthMethod: "none", FirstParty: true, RedirectURIs: []string{opRedirectURI},
				BackchannelLogoutURI: bcURL, IDTokenAlg: "ES256"},
		}}
	})
	clustertest.WaitFor(t, 60*time.Second, "RS256 and ES256 ID-token keys in every node's JWKS", func() bool {
		for _, nd := range tc.nodes {
			resp, err := http.Get("http://" + nd.ln.Addr().String() + "/.well-known/jwks.json")
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), `"RS256"`) || !strings.Contains(string(b), `"ES256"`) {
				return false
			}
		}
		return true
	})
	return tc
}

var (
	csrfRE    = regexp.MustCompile(`name="csrf" value="([^"]*)"`)
	requestRE = regexp.MustCompile(`name="request" value="([^"]*)"`)
)

// formFields returns the hidden csrf and request fields of a page.
func formFields(t testing.TB, page string) url.Values {
	t.Helper()
	c, r := csrfRE.FindStringSubmatch(page), requestRE.FindStringSubmatch(page)
	if c == nil || r == nil {
		t.Fatalf("no csrf/request field in the page:\n%s", page)
	}
	return url.Values{"csrf": {html.UnescapeString(c[1])}, "request": {html.UnescapeString(r[1])}}
}

func readPage(t testing.TB, resp *http.Response) string {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b)
}

// codeFrom checks a redirect to the app and returns its code.
func codeFrom(t *testing.T, resp *http.Response, state string) string {
	t.Helper()
	loc, err := resp.Location()
	if resp.StatusCode != http.StatusSeeOther || err != nil || !strings.HasPrefix(loc.String(), opRedirectURI+"?") {
		t.Fatalf("answer %d to %v; want 303 to %s with a code; body %s", resp.StatusCode, loc, opRedirectURI, readPage(t, resp))
	}
	q := loc.Query()
	if q.Get("state") != state || q.Get("iss") != opTestIssuer || q.Get("code") == "" {
		t.Fatalf("redirect %s: want state %s, iss %s and a code", loc, state, opTestIssuer)
	}
	return q.Get("code")
}

func randomString(t *testing.T) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestOIDCProviderWithGoOIDC: a third-party confidential client and a
// first-party public client sign one user in through three nodes with
// go-oidc and x/oauth2; the second needs no password; RP-initiated logout
// ends both and each client receives a back-channel logout token.
func TestOIDCProviderWithGoOIDC(t *testing.T) {
	bc := &bcReceiver{}
	rp := httptest.NewServer(bc)
	defer rp.Close()
	tc := opCluster(t, rp.URL+"/backchannel")
	tc.createUser(opUserEmail, opUserPassword, "customs-agent")
	hk, seoul, tokyo := tc.nodes[0], tc.nodes[1], tc.nodes[2]

	router := &opRouter{}
	router.to(hk)
	jar, _ := cookiejar.New(nil)
	browser := router.client(jar)
	ctx := oidc.ClientContext(context.Background(), router.client(nil))
	provider, err := oidc.NewProvider(ctx, opTestIssuer)
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	web := oauth2.Config{ClientID: opWebClient, ClientSecret: opWebSecret, Endpoint: provider.Endpoint(), RedirectURL: opRedirectURI,
		Scopes: []string{oidc.ScopeOpenID, "profile", "email", "roles"}}
	if web.Endpoint.AuthStyle = oauth2.AuthStyleInHeader; provider.Endpoint().TokenURL != opTestIssuer+"/oidc/token" {
		t.Fatalf("discovered token endpoint %q", provider.Endpoint().TokenURL)
	}

	// 1. The confidential client: authorize on hk, sign in and consent on
	// seoul, redeem on tokyo.
	state, nonce, verifier := randomString(t), randomString(t), oauth2.GenerateVerifier()
	resp, err := browser.Get(web.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("authorize: %v %v", resp, err)
	}
	page := readPage(t, resp)
	if !strings.Contains(page, "<label for=\"password\">") || !strings.Contains(page, "Back Office") {
		t.Fatalf("authorize without a session: want the login page naming the client, got\n%s", page)
	}
	form := formFields(t, page)
	form.Set("email", opUserEmail)
	form.Set("password", opUserPassword)
	router.to(seoul)
	resp, err = browser.PostForm(opTestIssuer+"/oidc/login", form)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %v %v", resp, err)
	}
	page = readPage(t, resp)
	if !strings.Contains(page, "Allow access?") {
		t.Fatalf("a third-party client after login: want the consent page, got\n%s", page)
	}
	consent := formFields(t, page)
	consent.Set("decision", "allow")
	resp, err = browser.PostForm(opTestIssuer+"/oidc/consent", consent)
	if err != nil {
		t.Fatal(err)
	}
	code := codeFrom(t, resp, state)
	router.to(tokyo)
	tok, err := web.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("x/oauth2 exchange on tokyo: %v", err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: opWebClient}).Verify(ctx, rawID)
	if err != nil {
		t.Fatalf("go-oidc ID token verification: %v", err)
	}
	if idt.Nonce != nonce {
		t.Errorf("ID token nonce %q, want %q", idt.Nonce, nonce)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("at_hash: %v", err)
	}
	var idClaims struct {
		SID   string   `json:"sid"`
		Email string   `json:"email"`
		Roles []string `json:"roles"`
	}
	if err := idt.Claims(&idClaims); err != nil || idClaims.SID == "" || idClaims.Email != opUserEmail || len(idClaims.Roles) != 1 {
		t.Errorf("ID token claims %+v, %v", idClaims, err)
	}
	router.to(hk)
	info, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil || info.Email != opUserEmail {
		t.Fatalf("go-oidc userinfo: %+v, %v", info, err)
	}
	// The refresh token works through x/oauth2 (rotation on seoul).
	router.to(seoul)
	refreshed, err := web.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil || refreshed.AccessToken == "" || refreshed.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh through x/oauth2: %+v, %v", refreshed, err)
	}

	// 2. The first-party public client in the same browser: no password,
	// no consent, a code at once (PKCE, no secret).
	spa := oauth2.Config{ClientID: opSPAClient, Endpoint: provider.Endpoint(), RedirectURL: opRedirectURI, Scopes: []string{oidc.ScopeOpenID, "email"}}
	spa.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	state2, nonce2, verifier2 := randomString(t), randomString(t), oauth2.GenerateVerifier()
	router.to(tokyo)
	resp, err = browser.Get(spa.AuthCodeURL(state2, oidc.Nonce(nonce2), oauth2.S256ChallengeOption(verifier2)))
	if err != nil {
		t.Fatal(err)
	}
	code2 := codeFrom(t, resp, state2)
	router.to(hk)
	tok2, err := spa.Exchange(ctx, code2, oauth2.VerifierOption(verifier2))
	if err != nil {
		t.Fatalf("public client exchange: %v", err)
	}
	idt2, err := provider.Verifier(&oidc.Config{ClientID: opSPAClient, SupportedSigningAlgs: []string{"ES256"}}).Verify(ctx, tok2.Extra("id_token").(string))
	if err != nil {
		t.Fatalf("ES256 ID token: %v", err)
	}
	var c2 struct {
		SID string `json:"sid"`
	}
	_ = idt2.Claims(&c2)
	if c2.SID != idClaims.SID {
		t.Errorf("the second client's sid %q differs from the first's %q: not one SSO session", c2.SID, idClaims.SID)
	}

	// 3. RP-initiated logout with the ID token as hint: both clients'
	// sessions end and both get a back-channel logout token.
	router.to(seoul)
	lq := url.Values{"id_token_hint": {rawID}, "post_logout_redirect_uri": {opPostLogout}, "state": {"bye"}}
	resp, err = browser.Get(opTestIssuer + "/oidc/logout?" + lq.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if loc, _ := resp.Location(); resp.StatusCode != http.StatusSeeOther || loc == nil || loc.String() != opPostLogout+"?state=bye" {
		t.Fatalf("logout: %d to %v; want 303 to %s?state=bye", resp.StatusCode, loc, opPostLogout)
	}
	clustertest.WaitFor(t, 30*time.Second, "a back-channel logout token for each client", func() bool { return len(bc.got()) >= 2 })
	jwks := fetchJWKS(t, tc.nodes[0])
	auds := map[string]bool{}
	for _, raw := range bc.got() {
		lt, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
		if err != nil {
			t.Fatalf("logout token: %v", err)
		}
		keys := jwks.Key(lt.Headers[0].KeyID)
		if len(keys) != 1 {
			t.Fatalf("logout token key %q not in the JWKS", lt.Headers[0].KeyID)
		}
		var lc struct {
			jwt.Claims
			SID    string                    `json:"sid"`
			Events map[string]map[string]any `json:"events"`
			Nonce  *string                   `json:"nonce"`
		}
		if err := lt.Claims(keys[0].Key, &lc); err != nil {
			t.Fatalf("logout token signature: %v", err)
		}
		if lc.Issuer != opTestIssuer || lc.SID != idClaims.SID || lc.Nonce != nil || lc.ID == "" ||
			lc.Events["http://schemas.openid.net/event/backchannel-logout"] == nil {
			t.Errorf("logout token claims %+v", lc)
		}
		auds[lc.Audience[0]] = true
	}
	if !auds[opWebClient] || !auds[opSPAClient] {
		t.Errorf("logout tokens for %v, want both clients", auds)
	}
	for _, at := range []string{refreshed.AccessToken, tok2.AccessToken} {
		if _, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: at})); err == nil {
			t.Errorf("userinfo still answers an access token after the logout")
		}
	}
	// Once for the cluster: the leader delivered one token per client
	// session, not one per node.
	if got := len(bc.got()); got != 2 {
		t.Errorf("%d back-channel logout tokens, want 2 (one per client, not one per node)", got)
	}
	// The browser is signed out: the next authorization shows the login page.
	resp, err = browser.Get(spa.AuthCodeURL("s3", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(readPage(t, resp), "Sign in") {
		t.Errorf("authorize after logout: %v %v; want the login page", resp, err)
	}
}

func fetchJWKS(t *testing.T, nd *node) jose.JSONWebKeySet {
	t.Helper()
	resp, err := http.Get("http://" + nd.ln.Addr().String() + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	for _, k := range raw.Keys {
		var jk jose.JSONWebKey
		if err := jk.UnmarshalJSON(k); err == nil {
			set.Keys = append(set.Keys, jk)
		}
	}
	return set
}

// TestOIDCDoorRefusals: bad input at the HTTP door gets the right status
// and a message naming what is wrong; an unregistered redirect URI is
// never redirected to; forms without the CSRF cookie or from another
// origin are refused; the node keeps serving.
func TestOIDCDoorRefusals(t *testing.T) {
	tc := opCluster(t, "")
	tc.createUser(opUserEmail, opUserPassword)
	base := "http://" + tc.nodes[1].ln.Addr().String()
	noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	_, challenge := pkceChallenge()
	authz := func(change func(q url.Values)) url.Values {
		q := url.Values{"response_type": {"code"}, "client_id": {opWebClient}, "redirect_uri": {opRedirectURI}, "scope": {"openid"},
			"state": {"s1"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
		change(q)
		return q
	}
	for _, tc := range []struct {
		name    string
		query   string
		mention string
	}{
		{"unregistered redirect", authz(func(q url.Values) { q.Set("redirect_uri", "https://evil.test/cb") }).Encode(), "redirect_uri"},
		{"redirect twice", authz(func(q url.Values) { q.Add("redirect_uri", "https://evil.test/cb") }).Encode(), "redirect_uri"},
		{"unknown client", authz(func(q url.Values) { q.Set("client_id", "evil") }).Encode(), "client_id"},
		{"client twice", authz(func(q url.Values) { q.Add("client_id", opSPAClient) }).Encode(), "client_id"},
		{"malformed query", "client_id=%zz", "malformed"},
	} {
		resp, err := noFollow.Get(base + "/oidc/authorize?" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		body := readPage(t, resp)
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(body, tc.mention) ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d Location %q; want a 400 HTML page naming %q, no redirect; body %s", tc.name, resp.StatusCode, resp.Header.Get("Location"), tc.mention, body)
		}
	}
	// With a registered redirect URI, other errors go back to the client.
	resp, err := noFollow.Get(base + "/oidc/authorize?" + authz(func(q url.Values) { q.Del("code_challenge") }).Encode())
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := resp.Location()
	if resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Query().Get("error") != "invalid_request" ||
		!strings.Contains(loc.Query().Get("error_description"), "code_challenge") || loc.Query().Get("state") != "s1" {
		t.Errorf("missing code_challenge: %d to %v; want 303 to the client with invalid_request naming code_challenge and the state", resp.StatusCode, loc)
	}
	// prompt=none without a session: login_required, back to the client.
	resp, err = noFollow.Get(base + "/oidc/authorize?" + authz(func(q url.Values) { q.Set("prompt", "none") }).Encode())
	if err != nil {
		t.Fatal(err)
	}
	if loc, _ := resp.Location(); resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Query().Get("error") != "login_required" {
		t.Errorf("prompt=none without a session: %d to %v; want 303 with login_required", resp.StatusCode, loc)
	}
	// The login form: no CSRF cookie, or another origin, is refused and
	// opens no session.
	page, err := noFollow.Get(base + "/oidc/authorize?" + authz(func(url.Values) {}).Encode())
	if err != nil {
		t.Fatal(err)
	}
	fields := formFields(t, readPage(t, page))
	fields.Set("email", opUserEmail)
	fields.Set("password", opUserPassword)
	for name, hdr := range map[string][2]string{"no CSRF cookie": {}, "other origin": {"Origin", "https://evil.test"}} {
		req, _ := http.NewRequest(http.MethodPost, base+"/oidc/login", strings.NewReader(fields.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if hdr[0] != "" {
			req.Header.Set(hdr[0], hdr[1])
			for _, c := range page.Cookies() {
				req.AddCookie(c)
			}
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readPage(t, resp)
		if resp.StatusCode != http.StatusForbidden || strings.Contains(resp.Header.Get("Set-Cookie"), "sessiond_sso=") {
			t.Errorf("login with %s: %d, Set-Cookie %q; want 403 and no SSO cookie", name, resp.StatusCode, resp.Header.Get("Set-Cookie"))
		}
	}
	// The token endpoint.
	post := func(ctype, body string, basic ...string) (int, map[string]string, http.Header) {
		req, _ := http.NewRequest(http.MethodPost, base+"/oidc/token", strings.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		if len(basic) == 2 {
			req.SetBasicAuth(basic[0], basic[1])
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out, resp.Header
	}
	if st, out, _ := post("application/json", `{"grant_type":"client_credentials"}`); st != http.StatusBadRequest || out["error"] != "invalid_request" {
		t.Errorf("JSON body: %d %v; want 400 invalid_request", st, out)
	}
	if st, out, _ := post("application/x-www-form-urlencoded", "grant_type=x&pad="+strings.Repeat("a", 40<<10)); st != http.StatusRequestEntityTooLarge {
		t.Errorf("40 KiB body: %d %v; want 413", st, out)
	}
	if st, out, h := post("application/x-www-form-urlencoded", "grant_type=authorization_code&code=x&redirect_uri=x&code_verifier="+strings.Repeat("a", 43), opWebClient, "wrong"); st != http.StatusUnauthorized || out["error"] != "invalid_client" || h.Get("WWW-Authenticate") == "" {
		t.Errorf("wrong client secret: %d %v; want 401 invalid_client with WWW-Authenticate", st, out)
	}
	if st, out, _ := post("application/x-www-form-urlencoded", "grant_type=authorization_code&grant_type=refresh_token", opWebClient, opWebSecret); st != http.StatusBadRequest || !strings.Contains(out["error_description"], "grant_type") {
		t.Errorf("grant_type twice: %d %v; want 400 naming grant_type", st, out)
	}
	if resp, err := noFollow.Get(base + "/oidc/userinfo"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("userinfo without a token: %v %v; want 401", resp, err)
	}
	lq := url.Values{"client_id": {opWebClient}, "post_logout_redirect_uri": {"https://evil.test/bye"}}
	if resp, err := noFollow.Get(base + "/oidc/logout?" + lq.Encode()); err != nil || resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Errorf("logout to an unregistered URI: %v %v; want 400, no redirect", resp, err)
	}
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("the node after the refusals: %v %v", resp, err)
	}
}

func pkceChallenge() (string, string) {
	v := oauth2.GenerateVerifier()
	return v, oauth2.S256ChallengeFromVerifier(v)
}

// TestOIDCDisabledAnswers404: with auth.oidc off (the default) the
// provider's routes answer 404 naming the setting.
func TestOIDCDisabledAnswers404(t *testing.T) {
	n := &node{cfg: defaultConfig(), log: slog.New(slog.DiscardHandler), reg: prometheus.NewRegistry()}
	mux, _ := n.mux()
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/oidc/authorize?client_id=x", nil))
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "oidc.enabled") {
		t.Errorf("GET /oidc/authorize with the provider off: %d %s; want 404 naming oidc.enabled", rec.Code, rec.Body)
	}
}

// TestOIDCClientSecretHashRedacted: /debug/config never shows an OIDC
// client's secret hash, and redacting leaves the running config intact.
func TestOIDCClientSecretHashRedacted(t *testing.T) {
	c := defaultConfig()
	c.Auth.OIDC.Clients = []OIDCClientConfig{{ID: "web", SecretHash: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA"}}
	r := c.redacted()
	if r.Auth.OIDC.Clients[0].SecretHash != redactedValue {
		t.Errorf("redacted secret_hash = %q", r.Auth.OIDC.Clients[0].SecretHash)
	}
	if c.Auth.OIDC.Clients[0].SecretHash == redactedValue {
		t.Errorf("redacting changed the running configuration")
	}
}
