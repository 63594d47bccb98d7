package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/password"
	"github.com/sessiond/sessiond/clients/go/checkreason"
	"github.com/sessiond/sessiond/clients/go/token"
	"github.com/sessiond/sessiond/cluster/clustertest"
)

// This file holds the HTTP helpers of the auth tests (every name starts
// with auth) and the tests of the HTTP surface's edges: bad input,
// introspection (RFC 7662) and revocation (RFC 7009).

// authHTTP is the client of the auth tests.
var authHTTP = &http.Client{Timeout: 20 * time.Second}

// authResp is one HTTP answer.
type authResp struct {
	status int
	header http.Header
	body   []byte
}

// authErrBody is the JSON error body of every auth route.
type authErrBody struct {
	Error    string `json:"error"`
	Message  string `json:"message"`
	Existing *struct {
		SessionID string    `json:"session_id"`
		DeviceID  string    `json:"device_id"`
		Platform  string    `json:"platform"`
		Region    string    `json:"region"`
		Created   time.Time `json:"created"`
	} `json:"existing_session"`
}

// authPair is the JSON body of a successful login or refresh.
type authPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	SessionID    string `json:"session_id"`
	Index        uint64 `json:"index"`
}

// authDo sends one request. hdr is name, value pairs.
func authDo(t testing.TB, method, u, contentType string, body []byte, hdr ...string) authResp {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := authHTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, u, err)
	}
	return authResp{status: res.StatusCode, header: res.Header, body: b}
}

// authPost posts v as JSON.
func authPost(t testing.TB, base, path string, v any, hdr ...string) authResp {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return authDo(t, http.MethodPost, base+path, "application/json", b, hdr...)
}

// authBearer is the Authorization header pair of an access token.
func authBearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// authLoginBody is a login request.
func authLoginBody(email, pw, platform, device string, force bool) map[string]any {
	return map[string]any{"email": email, "password": pw, "platform": platform, "device_id": device, "force": force}
}

// authTryLogin logs in through base and returns the raw answer.
func authTryLogin(t testing.TB, base, email, pw, platform, device string, force bool) authResp {
	t.Helper()
	return authPost(t, base, "/auth/login", authLoginBody(email, pw, platform, device, force))
}

// authLogin logs in through base and fails the test unless it succeeds.
func authLogin(t testing.TB, base, email, pw, platform, device string) authPair {
	t.Helper()
	return authPairOf(t, "login", authTryLogin(t, base, email, pw, platform, device, false))
}

// authRefresh spends a refresh token at POST /auth/token.
func authRefresh(t testing.TB, base, refresh string) authResp {
	t.Helper()
	return authPost(t, base, "/auth/token", map[string]string{"refresh_token": refresh})
}

// authPairOf decodes a 200 answer into a token pair.
func authPairOf(t testing.TB, what string, r authResp) authPair {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("%s: got status %d (%s), want 200", what, r.status, r.body)
	}
	var p authPair
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("%s: decode %s: %v", what, r.body, err)
	}
	if p.AccessToken == "" || p.RefreshToken == "" || p.SessionID == "" || p.TokenType != "Bearer" {
		t.Fatalf("%s: incomplete pair %s", what, r.body)
	}
	return p
}

// authWantErr checks that r is a JSON error with status and code (code ""
// accepts any non-empty code) and returns the body.
func authWantErr(t testing.TB, what string, r authResp, status int, code string) authErrBody {
	t.Helper()
	var e authErrBody
	if r.status != status {
		t.Errorf("%s: got status %d (%s), want %d", what, r.status, r.body, status)
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Errorf("%s: error body %q is not JSON: %v", what, r.body, err)
		return e
	}
	if e.Error == "" || e.Message == "" {
		t.Errorf("%s: error body %s: want non-empty error and message", what, r.body)
	}
	if code != "" && e.Error != code {
		t.Errorf("%s: got error %q (%s), want %q", what, e.Error, e.Message, code)
	}
	return e
}

// authWaitReason waits until every running node's CheckToken answers tok
// with reason ("" means active).
func authWaitReason(t testing.TB, tc *testCluster, tok string, reason checkreason.Reason) {
	t.Helper()
	for i, nd := range tc.nodes {
		if nd.closed {
			continue
		}
		var last authsvc.Check
		clustertest.WaitFor(t, 10*time.Second, "node "+strconv.Itoa(i)+" to answer "+strconv.Quote(checkreason.String(reason)), func() bool {
			last = nd.auth.CheckToken(tok)
			return last.Reason == reason && last.Active == (reason == checkreason.None)
		})
	}
}

// authKid returns the kid of a PASETO v4.public token's footer.
func authKid(t testing.TB, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 4 {
		t.Fatalf("token %.20q...: want 4 dot-separated parts", tok)
	}
	f, err := base64.RawURLEncoding.DecodeString(parts[3])
	if err != nil {
		t.Fatalf("footer: %v", err)
	}
	var v struct{ Kid string }
	if err := json.Unmarshal(f, &v); err != nil || v.Kid == "" {
		t.Fatalf("footer %q: no kid (%v)", f, err)
	}
	return v.Kid
}

// authPublishedKeys fetches GET /.well-known/paserk from base and parses
// every key.
func authPublishedKeys(t testing.TB, base string) map[string]ed25519.PublicKey {
	t.Helper()
	r := authDo(t, http.MethodGet, base+"/.well-known/paserk", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /.well-known/paserk: got %d (%s), want 200", r.status, r.body)
	}
	var doc struct {
		Keys []struct {
			Kid    string `json:"kid"`
			PASERK string `json:"paserk"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("paserk document %s: %v", r.body, err)
	}
	out := map[string]ed25519.PublicKey{}
	for _, k := range doc.Keys {
		pub, err := token.ParsePublicPASERK(k.PASERK)
		if err != nil {
			t.Fatalf("ParsePublicPASERK(%q): %v", k.PASERK, err)
		}
		if got := token.PID(pub); got != k.Kid {
			t.Errorf("published kid %q, but the key's PASERK id is %q", k.Kid, got)
		}
		out[k.Kid] = pub
	}
	return out
}

// authLookup turns a key map into a token.KeyLookup.
func authLookup(m map[string]ed25519.PublicKey) token.KeyLookup {
	return func(kid string) (ed25519.PublicKey, bool) { k, ok := m[kid]; return k, ok }
}

// authSessionIDs lists the bearer's sessions through base, with the id of
// the one marked current.
func authSessionIDs(t testing.TB, base, bearer string) (ids []string, current string) {
	t.Helper()
	r := authDo(t, http.MethodGet, base+"/auth/sessions", "", nil, authBearer(bearer)...)
	if r.status != http.StatusOK {
		t.Fatalf("GET /auth/sessions: got %d (%s), want 200", r.status, r.body)
	}
	var doc struct {
		Sessions []struct {
			SessionID string `json:"session_id"`
			Current   bool   `json:"current"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("sessions %s: %v", r.body, err)
	}
	for _, s := range doc.Sessions {
		ids = append(ids, s.SessionID)
		if s.Current {
			if current != "" {
				t.Errorf("sessions %s: two sessions marked current", r.body)
			}
			current = s.SessionID
		}
	}
	return ids, current
}

// authForeignToken signs a well-formed access token for the cluster's
// issuer and audience with a key the cluster does not know. With kid
// empty, the footer names the foreign key's own id.
func authForeignToken(t testing.TB, issuer, sub, sid, kid string) string {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := token.SignAccess(token.AccessClaims{Issuer: issuer, Subject: sub, Audience: "sessiond",
		IssuedAt: now, NotBefore: now, Expiration: now.Add(10 * time.Minute), TokenID: "forged", SessionID: sid,
	}, token.PID(pub), priv)
	if err != nil {
		t.Fatal(err)
	}
	if kid != "" {
		// Swap the footer for one naming another key: the signature then
		// no longer matches what the named key would verify.
		parts := strings.Split(tok, ".")
		parts[3] = base64.RawURLEncoding.EncodeToString([]byte(`{"kid":"` + kid + `"}`))
		tok = strings.Join(parts, ".")
	}
	return tok
}

func TestAuthHTTPBadInput(t *testing.T) {
	tc := startTestCluster(t, 3, nil)
	const email, pw = "bad-input@example.com", "correct horse battery"
	u := tc.createUser(email, pw)
	base := tc.nodes[1].apiURL
	p := authLogin(t, base, email, pw, "web", "laptop")

	big := `{"email":"` + strings.Repeat("a", 70<<10) + `@example.com","password":"x","platform":"web","device_id":"d"}`
	login := func(m map[string]any) []byte { b, _ := json.Marshal(m); return b }
	ok := func() map[string]any { return authLoginBody(email, pw, "web", "laptop", false) }
	with := func(k string, v any) []byte { m := ok(); m[k] = v; return login(m) }
	without := func(k string) []byte { m := ok(); delete(m, k); return login(m) }
	// Change one base64url character inside the signed payload (to
	// another valid one, so that it still decodes).
	tampered := []byte(p.AccessToken)
	if i := len("v4.public.") + 10; tampered[i] == 'A' {
		tampered[i] = 'B'
	} else {
		tampered[i] = 'A'
	}
	currentKid := authKid(t, p.AccessToken)

	for _, c := range []struct {
		name, method, path, ct string
		body                   []byte
		hdr                    []string
		status                 int
		code                   string
	}{
		{"malformed JSON", "POST", "/auth/login", "application/json", []byte(`{"email":`), nil, 400, "invalid_request"},
		{"malformed JSON token", "POST", "/auth/token", "application/json", []byte(`{"refresh_token":}`), nil, 400, "invalid_request"},
		{"two JSON values", "POST", "/auth/login", "application/json", append(login(ok()), login(ok())...), nil, 400, "invalid_request"},
		{"JSON array", "POST", "/auth/login", "application/json", []byte(`[]`), nil, 400, "invalid_request"},
		{"wrong field type", "POST", "/auth/login", "application/json", with("force", "yes"), nil, 400, "invalid_request"},
		{"empty body", "POST", "/auth/login", "application/json", nil, nil, 400, "invalid_request"},
		{"text/plain", "POST", "/auth/login", "text/plain", login(ok()), nil, 415, "unsupported_media_type"},
		{"form body", "POST", "/auth/login", "application/x-www-form-urlencoded", []byte("email=a&password=b"), nil, 415, "unsupported_media_type"},
		{"no content type", "POST", "/auth/login", "", login(ok()), nil, 415, "unsupported_media_type"},
		{"oversized body", "POST", "/auth/login", "application/json", []byte(big), nil, 413, "request_too_large"},
		{"unknown field", "POST", "/auth/login", "application/json", with("admin", true), nil, 400, "invalid_request"},
		{"unknown field token", "POST", "/auth/token", "application/json", []byte(`{"refresh_token":"x","grant":"y"}`), nil, 400, "invalid_request"},
		{"missing email", "POST", "/auth/login", "application/json", without("email"), nil, 400, "invalid_request"},
		{"missing password", "POST", "/auth/login", "application/json", without("password"), nil, 400, "invalid_request"},
		{"missing device", "POST", "/auth/login", "application/json", without("device_id"), nil, 400, "invalid_request"},
		{"missing platform", "POST", "/auth/login", "application/json", without("platform"), nil, 400, "invalid_request"},
		{"overlong email", "POST", "/auth/login", "application/json", with("email", strings.Repeat("a", 250)+"@example.com"), nil, 400, "invalid_request"},
		{"overlong password", "POST", "/auth/login", "application/json", with("password", strings.Repeat("p", 1025)), nil, 400, "invalid_request"},
		{"overlong device", "POST", "/auth/login", "application/json", with("device_id", strings.Repeat("d", 129)), nil, 400, "invalid_request"},
		{"unknown platform", "POST", "/auth/login", "application/json", with("platform", "playstation"), nil, 400, "invalid_request"},
		{"unspecified platform", "POST", "/auth/login", "application/json", with("platform", "unspecified"), nil, 400, "invalid_request"},
		// Bad credentials: each counts against this node's per-IP budget
		// (20 free failures), so there are few of them.
		{"SQL in email", "POST", "/auth/login", "application/json", with("email", "' OR 1=1; DROP TABLE user_account; --@example.com"), nil, 401, "invalid_credentials"},
		{"SQL in password", "POST", "/auth/login", "application/json", with("password", "' OR '1'='1"), nil, 401, "invalid_credentials"},
		{"bidi override in email", "POST", "/auth/login", "application/json", with("email", "bad-input\u202e@example.com"), nil, 401, "invalid_credentials"},
		{"zero-width space in email", "POST", "/auth/login", "application/json", with("email", "bad\u200b-input@example.com"), nil, 401, "invalid_credentials"},
		{"NUL in email", "POST", "/auth/login", "application/json", with("email", "bad-input\u0000@example.com"), nil, 401, "invalid_credentials"},
		{"invalid UTF-8 in email", "POST", "/auth/login", "application/json", []byte("{\"email\":\"bad\xff\xfe@example.com\",\"password\":\"x\",\"platform\":\"web\",\"device_id\":\"d\"}"), nil, 401, "invalid_credentials"},
		{"invalid UTF-8 device", "POST", "/auth/login", "application/json", []byte("{\"email\":\"" + email + "\",\"password\":\"x\",\"platform\":\"web\",\"device_id\":\"\xff\"}"), nil, 401, ""},
		{"refresh as access", "GET", "/auth/sessions", "", nil, authBearer(p.RefreshToken), 401, "invalid_token"},
		{"access as refresh", "POST", "/auth/token", "application/json", []byte(`{"refresh_token":"` + p.AccessToken + `"}`), nil, 401, "invalid_refresh_token"},
		{"access as refresh logout", "POST", "/auth/logout", "application/json", []byte(`{"refresh_token":"` + p.AccessToken + `"}`), nil, 401, "invalid_refresh_token"},
		{"tampered access", "GET", "/auth/sessions", "", nil, authBearer(string(tampered)), 401, "invalid_token"},
		{"tampered logout", "POST", "/auth/logout", "", nil, authBearer(string(tampered)), 401, "invalid_token"},
		{"foreign key", "GET", "/auth/sessions", "", nil, authBearer(authForeignToken(t, tc.issuer, u.ID, p.SessionID, "")), 401, "invalid_token"},
		{"foreign key, our kid", "POST", "/auth/logout-all", "", nil, authBearer(authForeignToken(t, tc.issuer, u.ID, p.SessionID, currentKid)), 401, "invalid_token"},
		{"garbage bearer", "DELETE", "/auth/sessions/" + p.SessionID, "", nil, authBearer("v4.public.AAAA.BBBB"), 401, "invalid_token"},
		{"no credentials logout", "POST", "/auth/logout", "", nil, nil, 401, "unauthenticated"},
		{"no refresh token", "POST", "/auth/token", "application/json", []byte(`{}`), nil, 400, "invalid_request"},
		{"empty token body", "POST", "/auth/token", "", nil, nil, 400, "invalid_request"},
		{"no bearer sessions", "GET", "/auth/sessions", "", nil, nil, 401, "unauthenticated"},
		{"no bearer kick", "DELETE", "/auth/sessions/" + p.SessionID, "", nil, nil, 401, "unauthenticated"},
		{"signup disabled", "POST", "/auth/signup", "application/json", []byte(`{"email":"new@example.com","password":"long enough pw","platform":"web","device_id":"d","org_name":"X","country":"TH"}`), nil, 403, "signup_disabled"},
		{"introspect without client", "POST", "/oauth2/introspect", "application/x-www-form-urlencoded", []byte("token=" + url.QueryEscape(p.AccessToken)), nil, 401, "invalid_client"},
		{"revoke without client", "POST", "/oauth2/revoke", "application/x-www-form-urlencoded", []byte("token=" + url.QueryEscape(p.AccessToken)), nil, 401, "invalid_client"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := authDo(t, c.method, base+c.path, c.ct, c.body, c.hdr...)
			authWantErr(t, c.name, r, c.status, c.code)
		})
	}
	// Nothing changed: the one session is still live and its tokens work,
	// and the token checks name why the bad tokens are bad.
	ids, current := authSessionIDs(t, tc.nodes[2].apiURL, p.AccessToken)
	if len(ids) != 1 || current != p.SessionID {
		t.Errorf("after bad input: sessions %v (current %q), want only %q", ids, current, p.SessionID)
	}
	authWaitReason(t, tc, p.AccessToken, checkreason.None)
	for _, c := range []struct {
		name, tok string
		reason    checkreason.Reason
	}{
		{"tampered", string(tampered), checkreason.InvalidSignature},
		{"foreign key", authForeignToken(t, tc.issuer, u.ID, p.SessionID, ""), checkreason.UnknownKey},
		{"foreign key, our kid", authForeignToken(t, tc.issuer, u.ID, p.SessionID, currentKid), checkreason.InvalidSignature},
		{"refresh token", p.RefreshToken, checkreason.WrongPurpose},
		{"empty", "", checkreason.Malformed},
	} {
		if got := tc.nodes[0].auth.CheckToken(c.tok); got.Active || got.Reason != c.reason {
			t.Errorf("CheckToken(%s): got active=%v reason %v, want inactive %v", c.name, got.Active, got.Reason, c.reason)
		}
	}
	authPairOf(t, "refresh after bad input", authRefresh(t, tc.nodes[0].apiURL, p.RefreshToken))
}

// authServiceClient returns a service client's config with a secret
// hashed with cheap argon2id parameters.
func authServiceClient(t testing.TB, id, secret string, scopes ...string) ServiceClient {
	t.Helper()
	h, err := password.NewHasher(password.Config{Params: password.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := h.Hash(secret)
	if err != nil {
		t.Fatal(err)
	}
	return ServiceClient{ID: id, SecretHash: hash, Scopes: scopes}
}

// authForm posts an RFC 7662/7009 form with HTTP Basic credentials.
func authForm(t testing.TB, u, id, secret string, form url.Values) authResp {
	t.Helper()
	hdr := []string{}
	if id != "" {
		hdr = append(hdr, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(id+":"+secret)))
	}
	return authDo(t, http.MethodPost, u, "application/x-www-form-urlencoded", []byte(form.Encode()), hdr...)
}

// authIntrospect introspects tok through base as the billing client.
func authIntrospect(t testing.TB, base, tok, hint string) map[string]any {
	t.Helper()
	f := url.Values{"token": {tok}}
	if hint != "" {
		f.Set("token_type_hint", hint)
	}
	r := authForm(t, base+"/oauth2/introspect", "billing", "billing-secret-1", f)
	if r.status != http.StatusOK {
		t.Fatalf("introspect: got %d (%s), want 200", r.status, r.body)
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("introspect %s: %v", r.body, err)
	}
	return m
}

func TestAuthHTTPIntrospectRevoke(t *testing.T) {
	clients := []ServiceClient{
		authServiceClient(t, "billing", "billing-secret-1", "introspect", "revoke"),
		authServiceClient(t, "reader", "reader-secret-1", "introspect"),
	}
	tc := startTestCluster(t, 3, func(_ int, c *Config) { c.Auth.ServiceClients = clients })
	const email, pw = "intro@example.com", "correct horse battery"
	u := tc.createUser(email, pw)
	web := authLogin(t, tc.nodes[0].apiURL, email, pw, "web", "laptop")
	ios := authLogin(t, tc.nodes[0].apiURL, email, pw, "ios", "phone")

	// Active access token, on another node than the login.
	m := authIntrospect(t, tc.nodes[2].apiURL, web.AccessToken, "")
	if m["active"] != true || m["token_type"] != "access_token" || m["sub"] != u.ID || m["sid"] != web.SessionID || m["client_id"] != "billing" {
		t.Errorf("introspect access token: got %v, want active access_token of %s, session %s, client billing", m, u.ID, web.SessionID)
	}
	m = authIntrospect(t, tc.nodes[1].apiURL, web.RefreshToken, "refresh_token")
	if m["active"] != true || m["token_type"] != "refresh_token" || m["sid"] != web.SessionID {
		t.Errorf("introspect refresh token: got %v, want active refresh_token of session %s", m, web.SessionID)
	}
	for _, bad := range []string{"garbage", authForeignToken(t, tc.issuer, u.ID, web.SessionID, ""), web.AccessToken + "x"} {
		if m := authIntrospect(t, tc.nodes[1].apiURL, bad, ""); len(m) != 1 || m["active"] != false {
			t.Errorf("introspect %.30q: got %v, want exactly {active:false}", bad, m)
		}
	}

	// Client authentication.
	f := url.Values{"token": {web.AccessToken}}
	for _, c := range []struct{ what, id, secret, path string }{
		{"wrong secret", "billing", "billing-secret-2", "/oauth2/introspect"},
		{"unknown client", "nobody", "billing-secret-1", "/oauth2/introspect"},
		{"no credentials", "", "", "/oauth2/introspect"},
		{"wrong secret revoke", "billing", "nope", "/oauth2/revoke"},
		{"revoke without scope", "reader", "reader-secret-1", "/oauth2/revoke"},
	} {
		r := authForm(t, tc.nodes[1].apiURL+c.path, c.id, c.secret, f)
		authWantErr(t, c.what, r, http.StatusUnauthorized, "invalid_client")
		if r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate header", c.what)
		}
	}
	if r := authForm(t, tc.nodes[1].apiURL+"/oauth2/introspect", "reader", "reader-secret-1", f); r.status != http.StatusOK {
		t.Errorf("introspect as reader: got %d (%s), want 200", r.status, r.body)
	}
	authWantErr(t, "introspect without token", authForm(t, tc.nodes[1].apiURL+"/oauth2/introspect", "billing", "billing-secret-1", url.Values{}), 400, "invalid_request")
	// The wrong-credential attempts changed nothing.
	authWaitReason(t, tc, web.AccessToken, checkreason.None)

	// Revoking an access token: inactive on every node, its session lives on.
	r := authForm(t, tc.nodes[1].apiURL+"/oauth2/revoke", "billing", "billing-secret-1", url.Values{"token": {web.AccessToken}})
	if r.status != http.StatusOK {
		t.Fatalf("revoke access token: got %d (%s), want 200", r.status, r.body)
	}
	authWaitReason(t, tc, web.AccessToken, checkreason.Revoked)
	if m := authIntrospect(t, tc.nodes[2].apiURL, web.AccessToken, ""); m["active"] != false {
		t.Errorf("introspect revoked access token: got %v, want inactive", m)
	}
	next := authPairOf(t, "refresh after access revocation", authRefresh(t, tc.nodes[2].apiURL, web.RefreshToken))
	authWaitReason(t, tc, next.AccessToken, checkreason.None)

	// Revoking a refresh token ends its session.
	r = authForm(t, tc.nodes[2].apiURL+"/oauth2/revoke", "billing", "billing-secret-1", url.Values{"token": {ios.RefreshToken}, "token_type_hint": {"refresh_token"}})
	if r.status != http.StatusOK {
		t.Fatalf("revoke refresh token: got %d (%s), want 200", r.status, r.body)
	}
	authWaitReason(t, tc, ios.AccessToken, checkreason.SessionEnded)
	authWantErr(t, "refresh a revoked refresh token", authRefresh(t, tc.nodes[0].apiURL, ios.RefreshToken), 401, "")
	if m := authIntrospect(t, tc.nodes[0].apiURL, ios.RefreshToken, "refresh_token"); m["active"] != false {
		t.Errorf("introspect revoked refresh token: got %v, want inactive", m)
	}
	// RFC 7009: an invalid token is not an error.
	if r := authForm(t, tc.nodes[0].apiURL+"/oauth2/revoke", "billing", "billing-secret-1", url.Values{"token": {"not-a-token"}}); r.status != http.StatusOK {
		t.Errorf("revoke garbage: got %d (%s), want 200", r.status, r.body)
	}
	authWaitReason(t, tc, next.AccessToken, checkreason.None)
}
