package authhttp

import (
	"errors"
	"fmt"
	"mime"
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

// Grant types of POST /auth/token (RFC 6749 §4.3, §6).
const (
	grantRefresh  = "refresh_token"
	grantPassword = "password"
)

// Defaults of the password grant's extension parameters platform and
// device_id, for OAuth clients that know nothing of them.
const (
	grantDefaultPlatform = "other"
	grantDefaultDevice   = "oauth2-client"
)

// token is the token endpoint: an RFC 6749 form (grant_type refresh_token,
// or password when enabled), or the app's JSON {refresh_token}, or the
// refresh cookie alone.
func (rt *routes) token(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "application/x-www-form-urlencoded" {
		rt.tokenForm(w, r)
		return
	}
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

// oauthError writes an RFC 6749 §5.2 error.
func oauthError(w http.ResponseWriter, code, format string, args ...any) {
	writeJSON(w, http.StatusBadRequest, apiError{Error: code, Message: fmt.Sprintf(format, args...)})
}

// tokenForm is the RFC 6749 token endpoint for a form body. Errors are
// those of §5.2: invalid_request, invalid_grant (a refresh token or
// password that does not authenticate), unsupported_grant_type; throttling
// and conflicts keep their 429 and 409.
func (rt *routes) tokenForm(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, rt.opts.MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		if !rt.bodyError(w, err) {
			oauthError(w, "invalid_request", "malformed application/x-www-form-urlencoded body")
		}
		return
	}
	f := r.PostForm
	for k, v := range f {
		if len(v) > 1 { // RFC 6749 §3.2
			oauthError(w, "invalid_request", "parameter %q repeated", sanitize(k))
			return
		}
	}
	switch gt := f.Get("grant_type"); gt {
	case grantRefresh:
		tok, fromCookie := f.Get("refresh_token"), false
		if tok == "" {
			tok, fromCookie = rt.opts.Cookie.Value(r.Header), true
		}
		if tok == "" {
			oauthError(w, "invalid_request", "refresh_token: required")
			return
		}
		t, err := rt.svc.Refresh(r.Context(), tok, client(r))
		if err != nil {
			grantFail(w, err)
			return
		}
		rt.writePair(w, t, fromCookie)
	case grantPassword:
		if !rt.opts.PasswordGrant {
			oauthError(w, "unsupported_grant_type", "the password grant is off on this server (auth.password_grant); apps log in with POST /auth/login")
			return
		}
		name, device := f.Get("platform"), f.Get("device_id")
		if name == "" {
			name = grantDefaultPlatform
		}
		if device == "" {
			device = grantDefaultDevice
		}
		p, ok := authsvc.ParsePlatform(name)
		if !ok {
			oauthError(w, "invalid_request", "platform %q: want web, windows, mac, android, ios or other", sanitize(name))
			return
		}
		t, err := rt.svc.Login(r.Context(), authsvc.LoginInput{Email: f.Get("username"), Password: f.Get("password"),
			Platform: p, DeviceID: device, Client: client(r)})
		if err != nil {
			grantFail(w, err)
			return
		}
		rt.writePair(w, t, false)
	case "":
		oauthError(w, "invalid_request", "grant_type: required (%s)", strings.Join(rt.grants(), " or "))
	default:
		oauthError(w, "unsupported_grant_type", "grant_type %q: this server supports %s", sanitize(gt), strings.Join(rt.grants(), " and "))
	}
}

// grants are the grant types the token endpoint takes.
func (rt *routes) grants() []string {
	if rt.opts.PasswordGrant {
		return []string{grantRefresh, grantPassword}
	}
	return []string{grantRefresh}
}

// grantFail answers a failed grant: a credential that does not
// authenticate is invalid_grant, bad input invalid_request (RFC 6749
// §5.2); other failures keep their status.
func grantFail(w http.ResponseWriter, err error) {
	var e *authsvc.Error
	if errors.As(err, &e) {
		switch e.Kind {
		case authsvc.KindUnauthenticated, authsvc.KindForbidden:
			oauthError(w, "invalid_grant", "%s", e.Message)
			return
		case authsvc.KindInvalid:
			oauthError(w, "invalid_request", "%s", e.Message)
			return
		}
	}
	fail(w, err)
}
