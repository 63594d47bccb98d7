package idptest

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
)

// WeChatUser is an account of the fake WeChat.
type WeChatUser struct {
	OpenID, UnionID, Nickname, Country string
}

// WeChat is a fake WeChat Open Platform: /connect/qrconnect (logs the
// configured user in at once), /sns/oauth2/access_token,
// /sns/oauth2/refresh_token and /sns/userinfo, answering errors the way
// WeChat does: HTTP 200 with {"errcode":N,"errmsg":"..."}.
type WeChat struct {
	URL    string
	AppID  string
	Secret string

	mu       sync.Mutex
	users    map[string]WeChatUser // openid ->
	next     string
	codes    map[string]*wechatCode
	access   map[string]string // access token -> openid
	refresh  map[string]string // refresh token -> openid
	disabled map[string]bool
}

type wechatCode struct {
	openid string
	used   bool
}

// NewWeChat starts the fake; it stops with the test.
func NewWeChat(t testing.TB) *WeChat {
	t.Helper()
	w := &WeChat{AppID: "wx" + randToken()[:14], Secret: randToken(), users: map[string]WeChatUser{}, codes: map[string]*wechatCode{},
		access: map[string]string{}, refresh: map[string]string{}, disabled: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /connect/qrconnect", w.authorize)
	mux.HandleFunc("GET /sns/oauth2/access_token", w.accessToken)
	mux.HandleFunc("GET /sns/oauth2/refresh_token", w.refreshToken)
	mux.HandleFunc("GET /sns/userinfo", w.userinfo)
	srv := httptest.NewServer(mux)
	w.URL = srv.URL
	t.Cleanup(srv.Close)
	return w
}

// AuthURL is the fake's authorization URL (WeChatConfig.AuthURL).
func (w *WeChat) AuthURL() string { return w.URL + "/connect/qrconnect" }

// AddUser adds an account and makes it the next to log in.
func (w *WeChat) AddUser(u WeChatUser) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.users[u.OpenID] = u
	w.next = u.OpenID
}

// Disable makes the account's refresh tokens invalid (errcode 40030).
func (w *WeChat) Disable(openid string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.disabled[openid] = true
}

func (w *WeChat) authorize(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("appid") != w.AppID {
		writeJSON(rw, 200, map[string]any{"errcode": 40013, "errmsg": "invalid appid"})
		return
	}
	back, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || back.Host == "" {
		http.Error(rw, "redirect_uri", http.StatusBadRequest)
		return
	}
	w.mu.Lock()
	code := randToken()
	w.codes[code] = &wechatCode{openid: w.next}
	w.mu.Unlock()
	back.RawQuery = url.Values{"code": {code}, "state": {q.Get("state")}}.Encode()
	http.Redirect(rw, r, back.String(), http.StatusFound)
}

func (w *WeChat) accessToken(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("appid") != w.AppID || q.Get("secret") != w.Secret {
		writeJSON(rw, 200, map[string]any{"errcode": 40125, "errmsg": "invalid appsecret"})
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.codes[q.Get("code")]
	switch {
	case c == nil:
		writeJSON(rw, 200, map[string]any{"errcode": 40029, "errmsg": "invalid code"})
		return
	case c.used:
		writeJSON(rw, 200, map[string]any{"errcode": 40163, "errmsg": "code been used"})
		return
	}
	c.used = true
	writeJSON(rw, 200, w.tokens(c.openid))
}

// tokens answers a token grant; the caller holds w.mu.
func (w *WeChat) tokens(openid string) map[string]any {
	at, rt := randToken(), randToken()
	w.access[at], w.refresh[rt] = openid, openid
	out := map[string]any{"access_token": at, "expires_in": 7200, "refresh_token": rt, "openid": openid, "scope": "snsapi_login"}
	if u := w.users[openid]; u.UnionID != "" {
		out["unionid"] = u.UnionID
	}
	return out
}

func (w *WeChat) refreshToken(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	w.mu.Lock()
	defer w.mu.Unlock()
	openid, ok := w.refresh[q.Get("refresh_token")]
	switch {
	case q.Get("appid") != w.AppID:
		writeJSON(rw, 200, map[string]any{"errcode": 40013, "errmsg": "invalid appid"})
	case !ok || w.disabled[openid]:
		writeJSON(rw, 200, map[string]any{"errcode": 40030, "errmsg": "invalid refresh_token"})
	default:
		writeJSON(rw, 200, w.tokens(openid))
	}
}

func (w *WeChat) userinfo(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	w.mu.Lock()
	defer w.mu.Unlock()
	openid, ok := w.access[q.Get("access_token")]
	if !ok || openid != q.Get("openid") {
		writeJSON(rw, 200, map[string]any{"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"})
		return
	}
	u := w.users[openid]
	writeJSON(rw, 200, map[string]any{"openid": u.OpenID, "unionid": u.UnionID, "nickname": u.Nickname, "country": u.Country,
		"sex": 0, "province": "", "city": "", "headimgurl": "", "privilege": []string{}})
}
