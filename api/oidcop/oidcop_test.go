package oidcop_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/api/oidcop"
	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/authsvctest"
)

type upstreams []oidcop.Upstream

func (u upstreams) Upstreams() []oidcop.Upstream { return u }

const redirect = "https://app.test/cb"

func door(t *testing.T) (*authsvctest.Env, *authsvc.Provider, *oidcop.Door, *http.ServeMux) {
	t.Helper()
	env := authsvctest.New(t, authsvctest.Options{})
	p, err := authsvc.NewProvider(env.Svc, authsvc.ProviderConfig{Clients: []authsvc.OIDCClient{
		{ID: "portal", AuthMethod: authsvc.AuthNone, FirstParty: true, RedirectURIs: []string{redirect}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.RunKeyRotation(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(30 * time.Second)
	for len(p.JWKS()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no ID-token keys")
		}
		time.Sleep(10 * time.Millisecond)
	}
	mux := http.NewServeMux()
	d := oidcop.Register(mux, p, oidcop.Options{Enabled: true, Secure: true,
		Upstreams: upstreams{{Name: "google", Label: "Google"}}})
	return env, p, d, mux
}

func authorizeQuery() string {
	return url.Values{"response_type": {"code"}, "client_id": {"portal"}, "redirect_uri": {redirect}, "scope": {"openid"},
		"state": {"s"}, "code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"}}.Encode()
}

// TestUpstreamLinksAndHandoff: the login page links each upstream provider
// with return_to set to this authorization request; a browser that comes
// back with the cookie an upstream login set (OpenBrowserSession +
// SetSSOCookie) gets its code without a password.
func TestUpstreamLinksAndHandoff(t *testing.T) {
	env, p, d, mux := door(t)
	u := env.CreateUser(t, "gina@example.com", "correct horse battery")

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/oidc/authorize?"+authorizeQuery(), nil))
	want := `href="/auth/login/google?return_to=` + url.QueryEscape("/oidc/authorize?"+authorizeQuery())
	if body := rec.Body.String(); rec.Code != http.StatusOK || !strings.Contains(body, strings.ReplaceAll(want, "&", "&amp;")) || !strings.Contains(body, ">Google</a>") {
		t.Fatalf("login page %d: want a Google link with return_to; body %s", rec.Code, body)
	}
	for _, c := range rec.Result().Cookies() {
		if !strings.HasPrefix(c.Name, "__Host-") || !c.Secure || !c.HttpOnly || c.Path != "/" {
			t.Errorf("cookie %s: want __Host-, Secure, HttpOnly, Path=/", c.Name)
		}
	}

	// The upstream callback's side of the handoff.
	value, err := p.OpenBrowserSession(context.Background(), u.ID, authsvc.Client{IP: "192.0.2.1"}, "google")
	if err != nil {
		t.Fatal(err)
	}
	cb := httptest.NewRecorder()
	d.SetSSOCookie(cb, value)
	req := httptest.NewRequest(http.MethodGet, "/oidc/authorize?"+authorizeQuery(), nil)
	for _, c := range cb.Result().Cookies() {
		req.AddCookie(c)
	}
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	loc, err := url.Parse(rec.Header().Get("Location"))
	if rec.Code != http.StatusSeeOther || err != nil || loc.Query().Get("code") == "" || !strings.HasPrefix(loc.String(), redirect+"?") {
		t.Fatalf("authorize after the handoff: %d to %q; want 303 to the client with a code", rec.Code, rec.Header().Get("Location"))
	}
}
