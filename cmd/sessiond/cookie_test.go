package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/api/authrpc"
	authv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1/authv1connect"
	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1/sessionv1connect"
)

// The refresh cookie (issue 9): __Host- prefixed over TLS, and refused
// when another site's page presents it. Every identifier starts with ck.

// ckDo sends one request with hc; hdr is name, value pairs.
func ckDo(t *testing.T, hc *http.Client, method, u, contentType string, body []byte, hdr ...string) authResp {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return authResp{status: res.StatusCode, header: res.Header, body: b}
}

// ckCookie returns the refresh cookie an answer sets, failing unless it
// has the attributes the mode wants.
func ckCookie(t *testing.T, r authResp, name, path string) string {
	t.Helper()
	res := http.Response{Header: r.header}
	for _, c := range res.Cookies() {
		if c.Name != name {
			continue
		}
		if c.Path != path || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Domain != "" {
			t.Fatalf("cookie %s: path %q secure %t httponly %t samesite %v domain %q; want path %s, Secure, HttpOnly, SameSite=Strict, no Domain",
				name, c.Path, c.Secure, c.HttpOnly, c.SameSite, c.Domain, path)
		}
		return c.Value
	}
	t.Fatalf("no %s cookie in %q (status %d %s)", name, r.header.Values("Set-Cookie"), r.status, r.body)
	return ""
}

func TestRefreshCookieModes(t *testing.T) {
	t.Run("plaintext", func(t *testing.T) { ckTestCookie(t, false) })
	t.Run("TLS", func(t *testing.T) { ckTestCookie(t, true) })
}

// ckTestCookie: a page of another site (Origin https://evil.example, or
// Sec-Fetch-Site cross-site) presenting the refresh cookie is refused 403
// on every route the cookie authenticates and rotates or ends nothing
// (with no refresh grace, a rotation would have made the owner's next
// refresh a reuse); the API's own origin and a configured one are
// accepted. Over TLS the cookie is __Host-sessiond_refresh with Path=/,
// and the unprefixed name is ignored.
func ckTestCookie(t *testing.T, withTLS bool) {
	const app = "https://app.example"
	tc := startTestCluster(t, 1, func(_ int, c *Config) {
		c.plainAPI = !withTLS
		c.Auth.RefreshGrace = 0
		c.Auth.CookieOrigins = []string{app}
	})
	nd := tc.nodes[0]
	hc := &http.Client{Timeout: 20 * time.Second}
	name, path, base := authrpc.RefreshCookie, "/auth", "http://"+nd.ln.Addr().String()
	if withTLS {
		roots := x509.NewCertPool()
		roots.AddCert(tc.pki.CA.Cert)
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
		name, path, base = authrpc.HostRefreshCookie, "/", "https://"+nd.ln.Addr().String()
	}
	email := lmUser(t, tc)
	body, _ := json.Marshal(map[string]any{"email": email, "password": ptPassword, "platform": "web", "device_id": "browser", "refresh_cookie": true})
	login := ckDo(t, hc, http.MethodPost, base+"/auth/login", "application/json", body)
	cookie := ckCookie(t, login, name, path)
	access := authPairOfCookie(t, login).AccessToken

	cookieHdr := []string{"Cookie", name + "=" + cookie}
	attacks := []struct {
		what string
		hdr  []string
	}{
		{"Origin https://evil.example", []string{"Origin", "https://evil.example"}},
		{"Sec-Fetch-Site cross-site", []string{"Sec-Fetch-Site", "cross-site"}},
		{"Origin null", []string{"Origin", "null"}},
	}
	for _, a := range attacks {
		for _, route := range []string{"/auth/token", "/auth/logout"} {
			r := ckDo(t, hc, http.MethodPost, base+route, "", nil, append(append([]string{}, cookieHdr...), a.hdr...)...)
			e := authWantErr(t, a.what+" POST "+route, r, http.StatusForbidden, authrpc.CodeCrossSite)
			if !strings.Contains(e.Message, "refresh cookie") {
				t.Errorf("%s POST %s: message %q does not say the refresh cookie is refused", a.what, route, e.Message)
			}
			if len(r.header.Values("Set-Cookie")) != 0 {
				t.Errorf("%s POST %s: refused yet set a cookie: %q", a.what, route, r.header.Values("Set-Cookie"))
			}
		}
		// The same through Connect (AuthService.Refresh and Logout).
		client := authv1connect.NewAuthServiceClient(hc, base)
		req := connect.NewRequest(&authv1.RefreshRequest{})
		for i := 0; i+1 < len(cookieHdr); i += 2 {
			req.Header().Set(cookieHdr[i], cookieHdr[i+1])
		}
		for i := 0; i+1 < len(a.hdr); i += 2 {
			req.Header().Set(a.hdr[i], a.hdr[i+1])
		}
		if _, err := client.Refresh(context.Background(), req); connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Errorf("%s: Connect Refresh: %v; want permission_denied", a.what, err)
		}
	}
	// Nothing was ended: the access token is active.
	res, err := sessionsOver(hc, base).CheckToken(context.Background(), connect.NewRequest(&sessionv1.CheckTokenRequest{Token: access}))
	if err != nil || !res.Msg.GetActive() {
		t.Fatalf("after the refused cross-site requests: CheckToken %v %v; want active", res, err)
	}

	if withTLS { // a cookie without the prefix (set by a sibling host) is not read
		r := ckDo(t, hc, http.MethodPost, base+"/auth/token", "", nil, "Cookie", authrpc.RefreshCookie+"="+cookie)
		authWantErr(t, "unprefixed cookie over TLS", r, http.StatusBadRequest, "invalid_request") // as if no cookie
	}

	// The owner's page, then a configured origin: each refresh rotates
	// (nothing was spent by the attacks).
	for _, origin := range []string{base, app} {
		r := ckDo(t, hc, http.MethodPost, base+"/auth/token", "", nil, "Cookie", name+"="+cookie, "Origin", origin, "Sec-Fetch-Site", "same-origin")
		if r.status != http.StatusOK {
			t.Fatalf("refresh from %s: %d %s; want 200 (a refused cross-site request must rotate nothing)", origin, r.status, r.body)
		}
		cookie = ckCookie(t, r, name, path)
	}
}

// authPairOfCookie decodes a login answer whose refresh token went into the
// cookie.
func authPairOfCookie(t *testing.T, r authResp) authPair {
	t.Helper()
	var p authPair
	if r.status != http.StatusOK {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, &p); err != nil || p.AccessToken == "" || p.RefreshToken != "" {
		t.Fatalf("login with refresh_cookie: %s (%v); want an access token and no refresh token in the body", r.body, err)
	}
	return p
}

// sessionsOver is a SessionService client through hc (the test service
// client's credential added).
func sessionsOver(hc *http.Client, base string) sessionv1connect.SessionServiceClient {
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	return sessionv1connect.NewSessionServiceClient(&http.Client{Transport: basicAuth{id: tcServiceID, secret: tcServiceSecret, base: rt}}, base)
}
