package authhttp

import (
	"net/http"
	"strings"
	"time"

	"github.com/sessiond/sessiond/api/authrpc"
	"github.com/sessiond/sessiond/authsvc"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

type loginBody struct {
	Email         string `json:"email"`
	Password      string `json:"password"`
	Platform      string `json:"platform"`
	DeviceID      string `json:"device_id"`
	Force         bool   `json:"force"`
	RefreshCookie bool   `json:"refresh_cookie"`
}

type signupBody struct {
	Email       string `json:"email"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name"`
	OrgName     string `json:"org_name"`
	Country     string `json:"country"`
	Platform    string `json:"platform"`
	DeviceID    string `json:"device_id"`
}

type tokenBody struct {
	RefreshToken string `json:"refresh_token"`
}

type pairBody struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	SessionID    string `json:"session_id"`
	Index        uint64 `json:"index"`
}

func platformName(p int32) string {
	return strings.ToLower(strings.TrimPrefix(storev1.Platform(p).String(), "PLATFORM_"))
}

func client(r *http.Request) authsvc.Client { return authrpc.ClientOf(r.RemoteAddr, r.Header) }

func (rt *routes) writePair(w http.ResponseWriter, t *authsvc.Tokens, cookie bool) {
	body := pairBody{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, TokenType: "Bearer",
		ExpiresIn: int64(t.ExpiresIn / time.Second), SessionID: t.SessionID, Index: t.Index}
	if cookie || rt.opts.CookieAlways {
		rt.opts.Cookie.Set(w.Header(), t.RefreshToken, rt.svc.RefreshTTL())
		body.RefreshToken = ""
	}
	writeJSON(w, http.StatusOK, body)
}

func parsePlatform(w http.ResponseWriter, name string) (storev1.Platform, bool) {
	p, ok := authsvc.ParsePlatform(name)
	if !ok {
		badRequest(w, "platform %q: want web, windows, mac, android, ios or other", sanitize(name))
	}
	return p, ok
}

func (rt *routes) login(w http.ResponseWriter, r *http.Request) {
	var b loginBody
	if !rt.decode(w, r, &b) {
		return
	}
	p, ok := parsePlatform(w, b.Platform)
	if !ok {
		return
	}
	t, err := rt.svc.Login(r.Context(), authsvc.LoginInput{Email: b.Email, Password: b.Password, Platform: p,
		DeviceID: b.DeviceID, Force: b.Force, Client: client(r)})
	if err != nil {
		fail(w, err)
		return
	}
	rt.writePair(w, t, b.RefreshCookie)
}

func (rt *routes) signup(w http.ResponseWriter, r *http.Request) {
	var b signupBody
	if !rt.decode(w, r, &b) {
		return
	}
	p, ok := parsePlatform(w, b.Platform)
	if !ok {
		return
	}
	t, err := rt.svc.Signup(r.Context(), authsvc.SignupInput{Email: b.Email, Password: b.Password,
		DisplayName: b.DisplayName, OrgName: b.OrgName, Country: b.Country, Platform: p, DeviceID: b.DeviceID, Client: client(r)})
	if err != nil {
		fail(w, err)
		return
	}
	rt.writePair(w, t, false)
}

// refreshToken reads the refresh token from a JSON body or, failing that,
// from the refresh cookie. It reports whether it came from the cookie.
func (rt *routes) refreshToken(w http.ResponseWriter, r *http.Request) (string, bool, bool) {
	if r.ContentLength != 0 && r.Header.Get("Content-Type") != "" {
		var b tokenBody
		if !rt.decode(w, r, &b) {
			return "", false, false
		}
		if b.RefreshToken != "" {
			return b.RefreshToken, false, true
		}
	}
	return rt.opts.Cookie.Value(r.Header), true, true
}

func (rt *routes) token(w http.ResponseWriter, r *http.Request) {
	tok, fromCookie, ok := rt.refreshToken(w, r)
	if !ok {
		return
	}
	t, err := rt.svc.Refresh(r.Context(), tok, client(r))
	if err != nil {
		fail(w, err)
		return
	}
	rt.writePair(w, t, fromCookie)
}

func (rt *routes) logout(w http.ResponseWriter, r *http.Request) {
	bearer := authrpc.Bearer(r.Header)
	var tok string
	if bearer == "" {
		var ok bool
		if tok, _, ok = rt.refreshToken(w, r); !ok {
			return
		}
	}
	if _, err := rt.svc.Logout(r.Context(), bearer, tok); err != nil {
		fail(w, err)
		return
	}
	rt.opts.Cookie.Set(w.Header(), "", 0)
	w.WriteHeader(http.StatusNoContent)
}

func (rt *routes) logoutAll(w http.ResponseWriter, r *http.Request) {
	n, _, err := rt.svc.LogoutAll(r.Context(), authrpc.Bearer(r.Header))
	if err != nil {
		fail(w, err)
		return
	}
	rt.opts.Cookie.Set(w.Header(), "", 0)
	writeJSON(w, http.StatusOK, map[string]int{"ended": n})
}

type sessionBody struct {
	SessionID     string    `json:"session_id"`
	Platform      string    `json:"platform"`
	DeviceID      string    `json:"device_id"`
	Region        string    `json:"region"`
	Created       time.Time `json:"created"`
	LastRefreshed time.Time `json:"last_refreshed"`
	Current       bool      `json:"current"`
	ClientIP      string    `json:"client_ip"`
	UserAgent     string    `json:"user_agent"`
}

func (rt *routes) sessions(w http.ResponseWriter, r *http.Request) {
	list, err := rt.svc.ListSessions(r.Context(), authrpc.Bearer(r.Header))
	if err != nil {
		fail(w, err)
		return
	}
	out := make([]sessionBody, 0, len(list))
	for _, v := range list {
		s := v.Session
		out = append(out, sessionBody{SessionID: s.GetId(), Platform: platformName(int32(s.GetPlatform())),
			DeviceID: s.GetDeviceId(), Region: s.GetRegion(), Created: time.Unix(0, s.GetCreatedUnixNano()).UTC(),
			LastRefreshed: time.Unix(0, s.GetLastRefreshedUnixNano()).UTC(), Current: v.Current,
			ClientIP: s.GetClientIp(), UserAgent: s.GetUserAgent()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

func (rt *routes) endSession(w http.ResponseWriter, r *http.Request) {
	if err := rt.svc.EndOwnSession(r.Context(), authrpc.Bearer(r.Header), r.PathValue("id")); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
