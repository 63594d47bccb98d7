package upstreamlogin_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/api/authrpc"
	"github.com/sessiond/sessiond/api/upstreamlogin"
	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/authsvctest"
	"github.com/sessiond/sessiond/authsvc/idp"
	"github.com/sessiond/sessiond/authsvc/idp/idptest"
	"github.com/sessiond/sessiond/clients/go/checkreason"
)

// site is the door over TLS (the cookies are Secure, __Host-) in front of
// an auth service, with a Google-like and a WeChat provider.
type site struct {
	srv    *httptest.Server
	env    *authsvctest.Env
	google *idptest.OIDC
	wechat *idptest.WeChat
}

func newSite(t *testing.T) *site {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	s := &site{srv: srv, google: idptest.NewOIDC(t, idptest.Google), wechat: idptest.NewWeChat(t)}
	gp, err := idp.NewOIDC(idp.OIDCConfig{Name: "google", Issuer: s.google.URL, ClientID: s.google.ClientID, ClientSecret: s.google.ClientSecret,
		AuthParams: map[string]string{"access_type": "offline"}})
	if err != nil {
		t.Fatal(err)
	}
	wp, err := idp.NewWeChat(idp.WeChatConfig{Name: "wechat", AppID: s.wechat.AppID, Secret: s.wechat.Secret, AuthURL: s.wechat.AuthURL(), APIURL: s.wechat.URL})
	if err != nil {
		t.Fatal(err)
	}
	rules := authsvc.LinkRules{Signup: true, Org: "Web Users", Country: "HK"}
	s.env = authsvctest.New(t, authsvctest.Options{Deps: func(d *authsvc.Deps) {
		d.Upstream = &authsvc.Upstream{Providers: map[string]authsvc.UpstreamProvider{
			"google": {Provider: gp, RedirectURL: srv.URL + "/auth/callback/google", Rules: rules},
			"wechat": {Provider: wp, RedirectURL: srv.URL + "/auth/callback/wechat", Rules: rules},
		}}
	}})
	upstreamlogin.Register(mux, s.env.Svc, upstreamlogin.Options{Cookie: authrpc.Cookie{HostPrefix: true}, MaxAge: time.Hour,
		HostPrefix: true, ReturnOrigins: []string{"https://app.example.com"}})
	mux.HandleFunc("GET /app", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "the app") })
	return s
}

// browser is a client with a cookie jar that follows redirects, as a
// browser does, and records where it went.
type browser struct {
	*http.Client
	visited []string
}

func (s *site) browser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{}
	c := s.srv.Client()
	c.Jar = jar
	c.Timeout = 20 * time.Second
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		b.visited = append(b.visited, req.URL.String())
		if req.URL.Host == "app.example.com" || req.URL.Host == "evil.example" {
			return http.ErrUseLastResponse
		}
		return nil
	}
	b.Client = c
	return b
}

func (b *browser) get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	resp, err := b.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (s *site) refreshCookie(b *browser) string {
	u, _ := url.Parse(s.srv.URL)
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == authrpc.HostRefreshCookie {
			return c.Value
		}
	}
	return ""
}

// A browser signs in with Google and with WeChat: it ends at return_to
// holding the __Host- refresh cookie of a live session, and the state
// cookie is gone.
func TestBrowserLogin(t *testing.T) {
	s := newSite(t)
	s.google.AddUser(idptest.User{Subject: "g-1", Email: "ana@gmail.test", EmailVerified: true, Name: "Ana"})
	s.wechat.AddUser(idptest.WeChatUser{OpenID: "o-1", UnionID: "un-1", Nickname: "Wei"})
	for _, p := range []string{"google", "wechat"} {
		t.Run(p, func(t *testing.T) {
			b := s.browser(t)
			resp, body := b.get(t, s.srv.URL+"/auth/login/"+p+"?return_to=/app")
			if resp.StatusCode != 200 || body != "the app" || resp.Request.URL.Path != "/app" {
				t.Fatalf("login: ended at %s with %s %q; want /app", resp.Request.URL, resp.Status, body)
			}
			rt := s.refreshCookie(b)
			if rt == "" {
				t.Fatal("no refresh cookie after the login")
			}
			tok, err := s.env.Svc.Refresh(t.Context(), rt, authsvc.Client{IP: "192.0.2.1"})
			if err != nil {
				t.Fatalf("the refresh cookie does not refresh: %v", err)
			}
			if c := s.env.Svc.CheckToken(tok.AccessToken); !c.Active {
				t.Errorf("access token from the cookie's session: %s", checkreason.String(c.Reason))
			}
			u, _ := url.Parse(s.srv.URL)
			for _, c := range b.Jar.Cookies(u) {
				if c.Name == upstreamlogin.HostStateCookie {
					t.Errorf("the state cookie outlived the callback")
				}
			}
		})
	}
}

// Refusals are HTML pages with the right status and code, and set no
// refresh cookie.
func TestBrowserLoginRefusals(t *testing.T) {
	s := newSite(t)
	s.google.AddUser(idptest.User{Subject: "g-1", Email: "ana@gmail.test", EmailVerified: true})
	page := func(t *testing.T, b *browser, u string, status int, code string) string {
		t.Helper()
		resp, body := b.get(t, u)
		if resp.StatusCode != status || resp.Header.Get("X-Sessiond-Error") != code || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("GET %s: %s %s %q; want %d with code %s", u, resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("X-Sessiond-Error"), status, code)
		}
		if !strings.Contains(body, "Sign-in failed") || !strings.Contains(body, code) {
			t.Errorf("page does not say what failed: %s", body)
		}
		if s.refreshCookie(b) != "" {
			t.Errorf("a refused login set the refresh cookie")
		}
		return body
	}
	t.Run("access_denied", func(t *testing.T) {
		s.google.DenyNext()
		body := page(t, s.browser(t), s.srv.URL+"/auth/login/google", 403, idp.CodeDenied)
		if !strings.Contains(body, "access_denied") {
			t.Errorf("page does not name access_denied: %s", body)
		}
	})
	for name, bad := range map[string]idptest.Misbehaviour{
		"wrong iss": {WrongIssuer: true}, "wrong aud": {WrongAudience: true}, "expired id token": {Expired: true},
		"alg none": {Unsigned: true}, "wrong nonce": {WrongNonce: true},
	} {
		t.Run(name, func(t *testing.T) {
			s.google.Misbehave(bad)
			defer s.google.Misbehave(idptest.Misbehaviour{})
			page(t, s.browser(t), s.srv.URL+"/auth/login/google", 401, idp.CodeInvalidToken)
		})
	}
	t.Run("code used twice", func(t *testing.T) {
		b := s.browser(t)
		var callback string
		b.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.Path, "/auth/callback/") {
				callback = req.URL.String()
			}
			return nil
		}
		if resp, _ := b.get(t, s.srv.URL+"/auth/login/google?return_to=/app"); resp.Request.URL.Path != "/app" {
			t.Fatalf("first login ended at %s", resp.Request.URL)
		}
		spent, _ := url.Parse(callback)
		// A new login of another browser, finished with the spent code.
		b2 := s.browser(t)
		b2.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.Path, "/auth/callback/") {
				q := req.URL.Query()
				q.Set("code", spent.Query().Get("code"))
				req.URL.RawQuery = q.Encode()
			}
			return nil
		}
		page(t, b2, s.srv.URL+"/auth/login/google", 401, idp.CodeExchange)
	})
	t.Run("unknown provider", func(t *testing.T) {
		page(t, s.browser(t), s.srv.URL+"/auth/login/myspace", 404, "unknown_provider")
	})
	t.Run("callback without the cookie", func(t *testing.T) {
		page(t, s.browser(t), s.srv.URL+"/auth/callback/google?state=x&code=y", 400, "login_state_invalid")
	})
	t.Run("replayed callback", func(t *testing.T) {
		b := s.browser(t)
		// Stop at the callback to keep its URL, then replay it with the
		// same state cookie (an attacker who captured both).
		var callback string
		var stateCookie *http.Cookie
		b.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.Path, "/auth/callback/") {
				callback = req.URL.String()
				u, _ := url.Parse(s.srv.URL)
				for _, c := range b.Jar.Cookies(u) {
					if c.Name == upstreamlogin.HostStateCookie {
						stateCookie = c
					}
				}
			}
			return nil
		}
		resp, _ := b.get(t, s.srv.URL+"/auth/login/google?return_to=/app")
		if resp.Request.URL.Path != "/app" || callback == "" || stateCookie == nil {
			t.Fatalf("first login ended at %s (callback %q)", resp.Request.URL, callback)
		}
		replay := s.browser(t)
		u, _ := url.Parse(s.srv.URL)
		replay.Jar.SetCookies(u, []*http.Cookie{stateCookie})
		page(t, replay, callback, 400, "login_state_replayed")
	})
	t.Run("open redirect", func(t *testing.T) {
		for _, rt := range []string{"https://evil.example/x", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "https://app.example.com.evil.example/"} {
			page(t, s.browser(t), s.srv.URL+"/auth/login/google?return_to="+url.QueryEscape(rt), 400, "invalid_return_to")
		}
	})
	t.Run("allowed origin", func(t *testing.T) {
		b := s.browser(t)
		resp, _ := b.get(t, s.srv.URL+"/auth/login/google?return_to="+url.QueryEscape("https://app.example.com/home"))
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "https://app.example.com/home" {
			t.Errorf("allowed return_to: %s to %q", resp.Status, resp.Header.Get("Location"))
		}
	})
}

// A flood of forged callbacks from one address gets 429 with Retry-After.
func TestBrowserCallbackFloodThrottled(t *testing.T) {
	s := newSite(t)
	b := s.browser(t)
	for i := 0; i < 50; i++ {
		resp, _ := b.get(t, s.srv.URL+"/auth/callback/google?state=x&code=y")
		if resp.StatusCode == http.StatusTooManyRequests {
			if resp.Header.Get("Retry-After") == "" || resp.Header.Get("X-Sessiond-Error") != "too_many_attempts" {
				t.Errorf("429 without Retry-After or its code: %v", resp.Header)
			}
			return
		}
	}
	t.Fatal("50 forged callbacks were never throttled")
}
