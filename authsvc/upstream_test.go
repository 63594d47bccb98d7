package authsvc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/authsvctest"
	"github.com/sessiond/sessiond/authsvc/idp"
	"github.com/sessiond/sessiond/authsvc/idp/idptest"
	"github.com/sessiond/sessiond/authsvc/users"
	"github.com/sessiond/sessiond/clients/go/checkreason"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// Upstream login over the in-memory cluster, against local providers that
// speak real OpenID Connect (and WeChat's OAuth2).

const callbackBase = "https://auth.test/auth/callback/"

// upstreamEnv is an auth service with the given providers.
func upstreamEnv(t *testing.T, providers map[string]authsvc.UpstreamProvider) *authsvctest.Env {
	t.Helper()
	return authsvctest.New(t, authsvctest.Options{Deps: func(d *authsvc.Deps) {
		d.Upstream = &authsvc.Upstream{Providers: providers}
	}})
}

func oidcProvider(t *testing.T, name string, f *idptest.OIDC, rules authsvc.LinkRules, params map[string]string) authsvc.UpstreamProvider {
	t.Helper()
	p, err := idp.NewOIDC(idp.OIDCConfig{Name: name, Issuer: f.URL, ClientID: f.ClientID, ClientSecret: f.ClientSecret, AuthParams: params, UserInfo: true})
	if err != nil {
		t.Fatal(err)
	}
	return authsvc.UpstreamProvider{Provider: p, RedirectURL: callbackBase + name, Rules: rules}
}

var signupRules = authsvc.LinkRules{Signup: true, Org: "Upstream Org", Country: "KR", Roles: []string{"member"},
	OrgClaim: "org", CountryClaim: "country", RolesClaim: "groups", RoleMap: map[string][]string{"staff": {"staff"}}}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// authorize plays the browser at the provider: it follows the
// authorization URL and returns the callback's query.
func authorize(t *testing.T, authURL string) url.Values {
	t.Helper()
	resp, err := noRedirect.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("authorization: %s, Location %q", resp.Status, resp.Header.Get("Location"))
	}
	return loc.Query()
}

// begin starts a login and returns the cookie and the callback query.
func begin(t *testing.T, e *authsvctest.Env, provider string) (string, url.Values) {
	t.Helper()
	b, err := e.Svc.BeginUpstreamLogin(context.Background(), provider, authsvc.UpstreamStart{ReturnTo: "/app",
		Session: authsvc.SessionMeta{Platform: web, DeviceID: "browser"}})
	if err != nil {
		t.Fatalf("begin %s: %v", provider, err)
	}
	return b.Cookie, authorize(t, b.AuthURL)
}

// callers numbers the callbacks' source addresses: each finish comes from
// its own, so the tests' many refusals stay under the callback rate.
var callbackSources atomic.Uint32

func finish(e *authsvctest.Env, provider, cookie string, q url.Values) (*authsvc.UpstreamLogin, error) {
	n := callbackSources.Add(1)
	return finishFrom(e, provider, cookie, q, fmt.Sprintf("198.18.%d.%d", n/250, n%250+1))
}

func finishFrom(e *authsvctest.Env, provider, cookie string, q url.Values, ip string) (*authsvc.UpstreamLogin, error) {
	return e.Svc.FinishUpstreamLogin(context.Background(), authsvc.UpstreamCallback{Provider: provider, Cookie: cookie,
		State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error"), ErrorDescription: q.Get("error_description"),
		Client: authsvc.Client{IP: ip}})
}

func upstreamLogin(t *testing.T, e *authsvctest.Env, provider string) *authsvc.UpstreamLogin {
	t.Helper()
	cookie, q := begin(t, e, provider)
	l, err := finish(e, provider, cookie, q)
	if err != nil {
		t.Fatalf("upstream login with %s: %v", provider, err)
	}
	return l
}

// liveSessions counts the live sessions of every user.
func liveSessions(t *testing.T, e *authsvctest.Env) int {
	t.Helper()
	all, err := e.Dir.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, u := range all {
		ss, err := e.Store.UserSessions(u.ID, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ss {
			if s.GetEndedUnixNano() == 0 {
				n++
			}
		}
	}
	return n
}

// Each provider shape: the first login signs the user up with the mapped
// org, country and roles; the second finds the same user by its link.
func TestUpstreamLoginProviderShapes(t *testing.T) {
	google := idptest.NewOIDC(t, idptest.Google)
	kakao := idptest.NewOIDC(t, idptest.Kakao)
	line := idptest.NewOIDC(t, idptest.LINE)
	wc := idptest.NewWeChat(t)
	wcp, err := idp.NewWeChat(idp.WeChatConfig{Name: "wechat", AppID: wc.AppID, Secret: wc.Secret, AuthURL: wc.AuthURL(), APIURL: wc.URL})
	if err != nil {
		t.Fatal(err)
	}
	e := upstreamEnv(t, map[string]authsvc.UpstreamProvider{
		"google": oidcProvider(t, "google", google, signupRules, map[string]string{"access_type": "offline", "prompt": "consent"}),
		"kakao":  oidcProvider(t, "kakao", kakao, signupRules, nil),
		"line":   oidcProvider(t, "line", line, signupRules, nil),
		"wechat": {Provider: wcp, RedirectURL: callbackBase + "wechat", Rules: authsvc.LinkRules{Signup: true, Org: "WeChat Users", CountryClaim: "country", Country: "CN"}},
	})
	google.AddUser(idptest.User{Subject: "g-1", Email: "ana@gmail.test", EmailVerified: true, Name: "Ana",
		Extra: map[string]any{"org": "Ana Trading", "country": "th", "groups": []any{"staff", "other"}}})
	kakao.AddUser(idptest.User{Subject: "k-1", Email: "min@kakao.test", Name: "Min"})
	line.AddUser(idptest.User{Subject: "U-line-1", Email: "kenji@line.test", Name: "Kenji"})
	wc.AddUser(idptest.WeChatUser{OpenID: "o-1", UnionID: "un-1", Nickname: "Wei", Country: "CN"})

	for _, tc := range []struct {
		provider, email, org, country string
		roles                         []string
		offline                       bool
	}{
		{"google", "ana@gmail.test", "Ana Trading", "TH", []string{"member", "staff"}, true},
		// Kakao says nothing of verification: the address is not used.
		{"kakao", "", "Upstream Org", "KR", []string{"member"}, true},
		{"line", "", "Upstream Org", "KR", []string{"member"}, true},
		{"wechat", "", "WeChat Users", "CN", nil, true},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			l := upstreamLogin(t, e, tc.provider)
			if !l.Created || l.ReturnTo != "/app" {
				t.Errorf("first login: created=%v return_to=%q, want a signup returning to /app", l.Created, l.ReturnTo)
			}
			u := l.User
			if tc.email != "" && u.Email != tc.email {
				t.Errorf("email: got %q, want %q", u.Email, tc.email)
			}
			if tc.email == "" && !strings.HasSuffix(u.Email, "@users.invalid") {
				t.Errorf("email of an identity without a verified one: got %q, want a users.invalid address", u.Email)
			}
			if u.Org.Name != tc.org || u.Org.Country != tc.country || strings.Join(u.Roles, ",") != strings.Join(tc.roles, ",") {
				t.Errorf("mapped user: org %q %q roles %v, want %q %q %v", u.Org.Name, u.Org.Country, u.Roles, tc.org, tc.country, tc.roles)
			}
			wantCheck(t, e, l.Tokens.AccessToken, checkreason.None)
			again := upstreamLogin(t, e, tc.provider)
			if again.Created || again.User.ID != u.ID {
				t.Errorf("second login: user %s created=%v, want the linked user %s", again.User.ID, again.Created, u.ID)
			}
			var link *storev1.UpstreamLink
			_ = e.Store.UpstreamLinks(tc.provider, func(l *storev1.UpstreamLink) bool { link = l; return false })
			if link == nil || link.GetUserId() != u.ID || (len(link.GetSealedRefreshToken()) > 0) != tc.offline {
				t.Errorf("link: %v, want user %s and a sealed refresh token=%v", link, u.ID, tc.offline)
			}
		})
	}
}

// An email links an identity to an existing user only when the provider
// says it is verified and the rules allow it; never the email alone.
func TestUpstreamEmailLinking(t *testing.T) {
	google := idptest.NewOIDC(t, idptest.Google)
	kakao := idptest.NewOIDC(t, idptest.Kakao)
	linkRules := authsvc.LinkRules{LinkVerifiedEmail: true}
	e := upstreamEnv(t, map[string]authsvc.UpstreamProvider{
		"google":   oidcProvider(t, "google", google, linkRules, nil),
		"kakao":    oidcProvider(t, "kakao", kakao, linkRules, nil),
		"nolinkgo": oidcProvider(t, "nolinkgo", google, authsvc.LinkRules{}, nil),
	})
	u := e.CreateUser(t, "ana@example.com", pw)

	google.AddUser(idptest.User{Subject: "g-unverified", Email: "ana@example.com", EmailVerified: false})
	cookie, q := begin(t, e, "google")
	_, err := finish(e, "google", cookie, q)
	wantCode(t, err, "not_linked")

	kakao.AddUser(idptest.User{Subject: "k-1", Email: "ana@example.com"}) // no email_verified claim
	cookie, q = begin(t, e, "kakao")
	_, err = finish(e, "kakao", cookie, q)
	wantCode(t, err, "not_linked")

	google.AddUser(idptest.User{Subject: "g-verified", Email: "ana@example.com", EmailVerified: true})
	cookie, q = begin(t, e, "nolinkgo")
	_, err = finish(e, "nolinkgo", cookie, q)
	wantCode(t, err, "not_linked")
	if n := liveSessions(t, e); n != 0 {
		t.Fatalf("refused logins opened %d sessions", n)
	}

	l := upstreamLogin(t, e, "google")
	if l.User.ID != u.ID || l.Created {
		t.Errorf("verified email with linking allowed: user %s created=%v, want %s", l.User.ID, l.Created, u.ID)
	}
}

// Every misbehaviour of a provider, and every replay, gets an error and no
// session.
func TestUpstreamLoginRefusals(t *testing.T) {
	f := idptest.NewOIDC(t, idptest.Google)
	e := upstreamEnv(t, map[string]authsvc.UpstreamProvider{"google": oidcProvider(t, "google", f, signupRules, nil)})
	f.AddUser(idptest.User{Subject: "g-1", Email: "ana@gmail.test", EmailVerified: true})

	for _, tc := range []struct {
		name string
		bad  idptest.Misbehaviour
		want string
	}{
		{"wrong iss", idptest.Misbehaviour{WrongIssuer: true}, "issued by a different provider"},
		{"wrong aud", idptest.Misbehaviour{WrongAudience: true}, "audience"},
		{"expired", idptest.Misbehaviour{Expired: true}, "expired"},
		{"alg none", idptest.Misbehaviour{Unsigned: true}, "ID token was refused"},
		{"wrong nonce", idptest.Misbehaviour{WrongNonce: true}, "nonce"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.Misbehave(tc.bad)
			defer f.Misbehave(idptest.Misbehaviour{})
			cookie, q := begin(t, e, "google")
			_, err := finish(e, "google", cookie, q)
			wantCode(t, err, idp.CodeInvalidToken)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("message %q does not say %q", err, tc.want)
			}
		})
	}
	t.Run("access_denied", func(t *testing.T) {
		f.DenyNext()
		cookie, q := begin(t, e, "google")
		_, err := finish(e, "google", cookie, q)
		wantCode(t, err, idp.CodeDenied)
		if !strings.Contains(err.Error(), "access_denied") {
			t.Errorf("message %q does not name access_denied", err)
		}
	})
	t.Run("replayed state", func(t *testing.T) {
		cookie, q := begin(t, e, "google")
		if _, err := finish(e, "google", cookie, q); err != nil {
			t.Fatal(err)
		}
		before := liveSessions(t, e)
		_, err := finish(e, "google", cookie, q)
		wantCode(t, err, "login_state_replayed")
		if n := liveSessions(t, e); n != before {
			t.Errorf("a replay changed the live sessions: %d, want %d", n, before)
		}
	})
	t.Run("code used twice", func(t *testing.T) {
		cookie, q := begin(t, e, "google")
		if _, err := finish(e, "google", cookie, q); err != nil {
			t.Fatal(err)
		}
		// A fresh login state of the same browser, with the spent code.
		cookie2, q2 := begin(t, e, "google")
		q2.Set("code", q.Get("code"))
		_, err := finish(e, "google", cookie2, q2)
		wantCode(t, err, idp.CodeExchange)
	})
	t.Run("state of another login", func(t *testing.T) {
		cookie, _ := begin(t, e, "google")
		_, q := begin(t, e, "google")
		_, err := finish(e, "google", cookie, q)
		wantCode(t, err, "login_state_invalid")
	})
	t.Run("no or forged cookie", func(t *testing.T) {
		_, q := begin(t, e, "google")
		_, err := finish(e, "google", "", q)
		wantCode(t, err, "login_state_invalid")
		_, err = finish(e, "google", "AAAA"+strings.Repeat("x", 100), q)
		wantCode(t, err, "login_state_invalid")
	})
	t.Run("expired login", func(t *testing.T) {
		cookie, q := begin(t, e, "google")
		e.Clock.Advance(11 * time.Minute)
		_, err := finish(e, "google", cookie, q)
		wantCode(t, err, "login_state_invalid")
	})
	t.Run("suspended user", func(t *testing.T) {
		f.AddUser(idptest.User{Subject: "g-suspended", Email: "sus@gmail.test", EmailVerified: true})
		l := upstreamLogin(t, e, "google")
		if err := e.Svc.SetUserStatus(context.Background(), l.User.Email, users.StatusSuspended); err != nil {
			t.Fatal(err)
		}
		cookie, q := begin(t, e, "google")
		_, err := finish(e, "google", cookie, q)
		wantCode(t, err, "account_suspended")
		f.LogInAs("g-1")
	})
	t.Run("unknown provider", func(t *testing.T) {
		_, err := e.Svc.BeginUpstreamLogin(context.Background(), "nope", authsvc.UpstreamStart{Session: authsvc.SessionMeta{Platform: web, DeviceID: "b"}})
		wantCode(t, err, "unknown_provider")
	})
}

// Offline access: when the provider disables the account, one
// revalidation pass ends the user's sessions, and checks say why.
func TestUpstreamRevalidationEndsSessions(t *testing.T) {
	f := idptest.NewOIDC(t, idptest.Google)
	wc := idptest.NewWeChat(t)
	wcp, err := idp.NewWeChat(idp.WeChatConfig{Name: "wechat", AppID: wc.AppID, Secret: wc.Secret, AuthURL: wc.AuthURL(), APIURL: wc.URL})
	if err != nil {
		t.Fatal(err)
	}
	e := upstreamEnv(t, map[string]authsvc.UpstreamProvider{
		"google": oidcProvider(t, "google", f, signupRules, map[string]string{"access_type": "offline"}),
		"wechat": {Provider: wcp, RedirectURL: callbackBase + "wechat", Rules: signupRules},
	})
	f.AddUser(idptest.User{Subject: "g-stays", Email: "stays@gmail.test", EmailVerified: true})
	stays := upstreamLogin(t, e, "google")
	f.AddUser(idptest.User{Subject: "g-leaves", Email: "leaves@gmail.test", EmailVerified: true})
	leaves := upstreamLogin(t, e, "google")
	wc.AddUser(idptest.WeChatUser{OpenID: "o-leaves", UnionID: "un-leaves", Nickname: "Wei"})
	wcLeaves := upstreamLogin(t, e, "wechat")

	res, err := e.Svc.RevalidateUpstream(context.Background(), 5*time.Second)
	if err != nil || res.Checked != 3 || res.Revoked != 0 {
		t.Fatalf("pass with every account enabled: %+v, %v; want 3 checked, none revoked", res, err)
	}
	f.Disable("g-leaves")
	wc.Disable("o-leaves")
	res, err = e.Svc.RevalidateUpstream(context.Background(), 5*time.Second)
	if err != nil || res.Revoked != 2 {
		t.Fatalf("pass after two accounts were disabled: %+v, %v; want 2 revoked", res, err)
	}
	for _, l := range []*authsvc.UpstreamLogin{leaves, wcLeaves} {
		c := wantCheck(t, e, l.Tokens.AccessToken, checkreason.UpstreamRevoked)
		if c.EndReason != storev1.EndReason_END_REASON_UPSTREAM_REVOKED {
			t.Errorf("end reason: got %s, want UPSTREAM_REVOKED", c.EndReason)
		}
		_, err := e.Svc.Refresh(context.Background(), l.Tokens.RefreshToken, authsvc.Client{IP: "192.0.2.9"})
		if err == nil {
			t.Errorf("refresh of %s's revoked session succeeded", l.User.Email)
		}
	}
	wantCheck(t, e, stays.Tokens.AccessToken, checkreason.None)
	// The revoked links are not asked again; a new login re-arms them.
	res, err = e.Svc.RevalidateUpstream(context.Background(), 5*time.Second)
	if err != nil || res.Checked != 1 {
		t.Errorf("pass after the revocations: %+v, %v; want only the remaining link checked", res, err)
	}
	f.LogInAs("g-stays")
	if l := upstreamLogin(t, e, "google"); l.User.ID != stays.User.ID {
		t.Errorf("login after the pass: user %s, want %s", l.User.ID, stays.User.ID)
	}
}

// A later login without a new upstream refresh token (Google gives one
// only at consent) keeps the one the link holds.
func TestUpstreamLoginKeepsRefreshToken(t *testing.T) {
	f := idptest.NewOIDC(t, idptest.Google)
	params := map[string]string{"access_type": "offline"}
	e := upstreamEnv(t, map[string]authsvc.UpstreamProvider{"google": oidcProvider(t, "google", f, signupRules, params)})
	f.AddUser(idptest.User{Subject: "g-1", Email: "ana@gmail.test", EmailVerified: true})
	upstreamLogin(t, e, "google")
	delete(params, "access_type")
	upstreamLogin(t, e, "google")
	l, err := e.Store.UpstreamLink("google", "g-1")
	if err != nil || len(l.GetSealedRefreshToken()) == 0 {
		t.Fatalf("link after an online login: %v, %v; want the sealed refresh token kept", l, err)
	}
	if res, err := e.Svc.RevalidateUpstream(context.Background(), 5*time.Second); err != nil || res.Checked != 1 || res.Failed != 0 {
		t.Errorf("revalidation with the kept token: %+v, %v", res, err)
	}
}

// No token, code, state, cookie or client secret reaches the audit log.
func TestUpstreamLoginLogsNoSecrets(t *testing.T) {
	var buf strings.Builder
	f := idptest.NewOIDC(t, idptest.Google)
	p := oidcProvider(t, "google", f, signupRules, map[string]string{"access_type": "offline"})
	e := authsvctest.New(t, authsvctest.Options{Deps: func(d *authsvc.Deps) {
		d.Upstream = &authsvc.Upstream{Providers: map[string]authsvc.UpstreamProvider{"google": p}}
		d.Logger = slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}})
	f.AddUser(idptest.User{Subject: "g-1", Email: "ana@gmail.test", EmailVerified: true})
	cookie, q := begin(t, e, "google")
	l, err := finish(e, "google", cookie, q)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = finish(e, "google", cookie, q) // a replay, refused
	f.Misbehave(idptest.Misbehaviour{Expired: true})
	c2, q2 := begin(t, e, "google")
	_, _ = finish(e, "google", c2, q2)
	f.Disable("g-1")
	if _, err := e.Svc.RevalidateUpstream(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	log := buf.String()
	if !strings.Contains(log, "upstream_login") || !strings.Contains(log, "upstream_revoked") {
		t.Fatalf("the audit log lacks the upstream events: %s", log)
	}
	for what, secret := range map[string]string{"client secret": f.ClientSecret, "code": q.Get("code"), "state": q.Get("state"),
		"state cookie": cookie, "refresh token": l.Tokens.RefreshToken, "access token": l.Tokens.AccessToken, "code 2": q2.Get("code")} {
		if secret != "" && strings.Contains(log, secret) {
			t.Errorf("the %s is in the log", what)
		}
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// WeChat's errors are HTTP 200 with an errcode: a code used twice
// (40163) or unknown (40029) is refused with no session, and a wrong app
// secret (40125) is named without the secret.
func TestUpstreamWeChatErrors(t *testing.T) {
	wc := idptest.NewWeChat(t)
	good, err := idp.NewWeChat(idp.WeChatConfig{Name: "wechat", AppID: wc.AppID, Secret: wc.Secret, AuthURL: wc.AuthURL(), APIURL: wc.URL})
	if err != nil {
		t.Fatal(err)
	}
	const wrongSecret = "not-the-app-secret-0123456789"
	bad, err := idp.NewWeChat(idp.WeChatConfig{Name: "wechatbad", AppID: wc.AppID, Secret: wrongSecret, AuthURL: wc.AuthURL(), APIURL: wc.URL})
	if err != nil {
		t.Fatal(err)
	}
	down, err := idp.NewWeChat(idp.WeChatConfig{Name: "wechatdown", AppID: wc.AppID, Secret: wc.Secret, AuthURL: wc.AuthURL(), APIURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	e := upstreamEnv(t, map[string]authsvc.UpstreamProvider{
		"wechat":     {Provider: good, RedirectURL: callbackBase + "wechat", Rules: signupRules},
		"wechatbad":  {Provider: bad, RedirectURL: callbackBase + "wechatbad", Rules: signupRules},
		"wechatdown": {Provider: down, RedirectURL: callbackBase + "wechatdown", Rules: signupRules},
	})
	wc.AddUser(idptest.WeChatUser{OpenID: "o-1", Nickname: "Wei"})

	cookie, q := begin(t, e, "wechat")
	if _, err := finish(e, "wechat", cookie, q); err != nil {
		t.Fatal(err)
	}
	sessions := liveSessions(t, e)
	cookie2, q2 := begin(t, e, "wechat")
	q2.Set("code", q.Get("code"))
	_, err = finish(e, "wechat", cookie2, q2)
	wantCode(t, err, idp.CodeExchange)
	if !strings.Contains(err.Error(), "40163") {
		t.Errorf("code used twice: %q does not name errcode 40163", err)
	}
	cookie3, q3 := begin(t, e, "wechat")
	q3.Set("code", "made-up")
	_, err = finish(e, "wechat", cookie3, q3)
	wantCode(t, err, idp.CodeExchange)

	cookie4, q4 := begin(t, e, "wechatbad")
	_, err = finish(e, "wechatbad", cookie4, q4)
	wantCode(t, err, idp.CodeExchange)
	if !strings.Contains(err.Error(), "40125") || strings.Contains(err.Error(), wrongSecret) {
		t.Errorf("wrong secret: %q; want errcode 40125 named, the secret not", err)
	}
	// An unreachable API: the URL (which holds the secret) is not in the error.
	cookie5, q5 := begin(t, e, "wechatdown")
	_, err = finish(e, "wechatdown", cookie5, q5)
	wantCode(t, err, idp.CodeUnavailable)
	var chain []string
	for x := err; x != nil; x = errors.Unwrap(x) {
		chain = append(chain, x.Error())
	}
	if strings.Contains(strings.Join(chain, " "), wc.Secret) {
		t.Errorf("an unreachable WeChat: the error chain %q holds the app secret", chain)
	}
	if n := liveSessions(t, e); n != sessions {
		t.Errorf("refused WeChat logins changed the live sessions: %d, want %d", n, sessions)
	}
}

// Forged callbacks from one address are bounded before they cost a write
// or a provider call: past the throttle's burst they get
// too_many_attempts, while another address still signs in.
func TestUpstreamCallbackRateBounded(t *testing.T) {
	f := idptest.NewOIDC(t, idptest.Google)
	e := upstreamEnv(t, map[string]authsvc.UpstreamProvider{"google": oidcProvider(t, "google", f, signupRules, nil)})
	f.AddUser(idptest.User{Subject: "g-1", Email: "ana@gmail.test", EmailVerified: true})
	var throttled bool
	for i := 0; i < 50 && !throttled; i++ {
		_, err := finishFrom(e, "google", "forged", url.Values{"state": {"x"}, "code": {"y"}}, "203.0.113.66")
		var ae *authsvc.Error
		if errors.As(err, &ae) && ae.Code == "too_many_attempts" {
			throttled = ae.Kind == authsvc.KindThrottled && ae.RetryAfter > 0
		}
	}
	if !throttled {
		t.Fatal("50 forged callbacks from one address were never throttled")
	}
	cookie, q := begin(t, e, "google")
	if _, err := finishFrom(e, "google", cookie, q, "203.0.113.77"); err != nil {
		t.Errorf("another address: %v", err)
	}
}

// LoginVerified is the one way into a session: it checks the session's
// description and refuses a user who is not active, whoever verified it.
func TestLoginVerified(t *testing.T) {
	e := authsvctest.New(t, authsvctest.Options{})
	u := e.CreateUser(t, "ver@example.com", pw)
	ctx := context.Background()
	tok, err := e.Svc.LoginVerified(ctx, u, authsvc.SessionMeta{Platform: web, DeviceID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	wantCheck(t, e, tok.AccessToken, checkreason.None)
	_, err = e.Svc.LoginVerified(ctx, u, authsvc.SessionMeta{Platform: 0, DeviceID: "d1"})
	wantCode(t, err, "invalid_request")
	_, err = e.Svc.LoginVerified(ctx, u, authsvc.SessionMeta{Platform: web, DeviceID: strings.Repeat("d", 200)})
	wantCode(t, err, "invalid_request")
	if err := e.Svc.SetUserStatus(ctx, u.Email, users.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	u.Status = users.StatusSuspended
	_, err = e.Svc.LoginVerified(ctx, u, authsvc.SessionMeta{Platform: web, DeviceID: "d1"})
	wantCode(t, err, "account_suspended")
}
