package authhttp_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/api/authhttp"
	"github.com/sessiond/sessiond/api/authrpc"
	"github.com/sessiond/sessiond/api/callerauth"
	"github.com/sessiond/sessiond/authsvc/callers"
)

// Fuzz targets of the form bodies (RFC 6749 token endpoint, RFC 7662
// introspection, RFC 7009 revocation) and of the refresh cookie headers,
// against the real handlers of a one-node cluster. Seeds are real
// requests: a real refresh and access token from a login.

// formLogin logs in through h and returns the pair's JSON fields.
func formLogin(t testing.TB, h http.Handler) (access, refresh string) {
	t.Helper()
	body := `{"email":"` + authFuzzEmail + `","password":"` + authFuzzPW + `","platform":"web","device_id":"seed"}`
	req := httptest.NewRequest(http.MethodPost, "/auth/login", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var p struct{ AccessToken, RefreshToken string }
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("seed login: %d %s", rec.Code, rec.Body)
	}
	return p.AccessToken, p.RefreshToken
}

// formCheck sends one request to h and fails on a 5xx, a 4xx that is not a
// JSON {"error","message"}, or a 200 pair without an access token.
func formCheck(t *testing.T, h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	req.RemoteAddr = "192.0.2.1:1234"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	switch code := rec.Code; {
	case code >= 500:
		t.Fatalf("%s %s: got %d %s, want no 5xx", req.Method, req.URL.Path, code, rec.Body)
	case code >= 400:
		var e struct{ Error, Message string }
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" || e.Message == "" {
			t.Fatalf("%s %s: got %d with body %q, want a JSON error and message", req.Method, req.URL.Path, code, rec.Body)
		}
	}
	return rec
}

// FuzzTokenForm drives POST /auth/token (password grant on) and
// /oauth2/introspect and /oauth2/revoke (as a service client with both
// scopes) with arbitrary form bodies.
func FuzzTokenForm(f *testing.F) {
	h := authHandlerWith(f, authhttp.Options{PasswordGrant: true})
	access, refresh := formLogin(f, h)
	for _, v := range []url.Values{
		{"grant_type": {"refresh_token"}, "refresh_token": {refresh}},
		{"grant_type": {"password"}, "username": {authFuzzEmail}, "password": {authFuzzPW}, "platform": {"ios"}, "device_id": {"phone"}},
		{"grant_type": {"password"}, "username": {authFuzzEmail}, "password": {"wrong"}},
		{"grant_type": {"client_credentials"}},
		{"grant_type": {"refresh_token", "password"}},
		{"token": {access}},
		{"token": {refresh}, "token_type_hint": {"refresh_token"}},
		{"token": {"v4.public.AAAA"}, "token_type_hint": {"access_token"}},
	} {
		f.Add([]byte(v.Encode()))
	}
	f.Add([]byte("grant_type=refresh_token&refresh_token=%zz"))
	f.Add([]byte("grant_type=password&username=" + strings.Repeat("a", 300)))
	f.Add([]byte(";;&&=="))
	svc := callerauth.WithPrincipal(callers.Principal{Kind: callers.KindService, Name: "fuzz",
		Scopes: []string{callers.ScopeIntrospect, callers.ScopeRevoke}}, h)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/auth/token", "/oauth2/introspect", "/oauth2/revoke"} {
			req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			rec := formCheck(t, svc, req)
			if path == "/auth/token" && rec.Code == http.StatusOK && !strings.Contains(rec.Body.String(), `"access_token":"v4.public.`) {
				t.Fatalf("form %q: 200 without an access token: %s", body, rec.Body)
			}
		}
	})
}

// FuzzRefreshCookie drives /auth/token and /auth/logout with arbitrary
// Cookie, Origin and Sec-Fetch-Site headers (TLS cookie name): never a
// 5xx, and a request from https://evil.example never rotates (200).
func FuzzRefreshCookie(f *testing.F) {
	cookie := authrpc.Cookie{HostPrefix: true}
	h := authHandlerWith(f, authhttp.Options{Cookie: cookie})
	_, refresh := formLogin(f, h)
	f.Add(authrpc.HostRefreshCookie+"="+refresh, "https://evil.example", "cross-site")
	f.Add(authrpc.HostRefreshCookie+"="+refresh, "", "same-origin")
	f.Add(authrpc.RefreshCookie+"="+refresh, "", "")
	f.Add(authrpc.HostRefreshCookie+"="+refresh+"; "+authrpc.HostRefreshCookie+"=x", "http://example.com", "none")
	f.Add(authrpc.HostRefreshCookie+"=\"\x00\"", "null", "same-site")
	f.Fuzz(func(t *testing.T, cookieHdr, origin, site string) {
		for _, path := range []string{"/auth/token", "/auth/logout"} {
			req := httptest.NewRequest(http.MethodPost, "http://example.com"+path, nil)
			req.Header = http.Header{"Cookie": {cookieHdr}, "Origin": {origin}, "Sec-Fetch-Site": {site}}
			rec := formCheck(t, h, req)
			if origin == "https://evil.example" && rec.Code < 300 {
				t.Fatalf("%s with cookie %q from https://evil.example: %d %s", path, cookieHdr, rec.Code, rec.Body)
			}
		}
	})
}
