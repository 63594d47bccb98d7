// Package upstreamlogin is the browser door of upstream login ("sign in
// with Google, Kakao, LINE, WeChat, ..."): GET /auth/login/{provider}
// starts the flow and redirects to the provider; GET
// /auth/callback/{provider} finishes it and hands the browser back through
// a Completer (by default: the refresh cookie and a redirect to return_to).
// Every refusal is a small HTML error page, with no session opened.
package upstreamlogin

import (
	"context"
	"errors"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/api/authrpc"
	"github.com/sessiond/sessiond/api/rpcerr"
	"github.com/sessiond/sessiond/authsvc"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// Paths of the door's routes; {provider} is the configured name.
const (
	LoginPath    = "/auth/login/{provider}"
	CallbackPath = "/auth/callback/{provider}"
)

// State cookie names: over TLS the __Host- prefix pins it to this host.
const (
	StateCookie     = "sessiond_upstream"
	HostStateCookie = "__Host-sessiond_upstream"
)

// DefaultDeviceID is the device of a browser session opened without a
// device_id: a second login from a browser replaces the first (end reason
// REPLACED) rather than conflicting with it.
const DefaultDeviceID = "browser"

// Service is what the door needs of the auth service.
type Service interface {
	BeginUpstreamLogin(ctx context.Context, provider string, in authsvc.UpstreamStart) (*authsvc.UpstreamBegin, error)
	FinishUpstreamLogin(ctx context.Context, in authsvc.UpstreamCallback) (*authsvc.UpstreamLogin, error)
}

// Completer hands the browser back after a successful upstream login: it
// writes the whole response. returnTo has been checked (same origin or
// allowed). The default sets the refresh cookie and redirects; a browser
// SSO session (sessiond as OpenID provider) plugs in here.
type Completer interface {
	Complete(w http.ResponseWriter, r *http.Request, login *authsvc.UpstreamLogin, returnTo string)
}

// RefreshCookieCompleter sets the refresh cookie (authrpc.Cookie: HttpOnly,
// Secure, SameSite=Strict, __Host- under TLS) and redirects (303) to
// return_to.
type RefreshCookieCompleter struct {
	Cookie authrpc.Cookie
	// MaxAge of the cookie (the refresh token's lifetime).
	MaxAge time.Duration
}

// Complete implements Completer.
func (c RefreshCookieCompleter) Complete(w http.ResponseWriter, r *http.Request, login *authsvc.UpstreamLogin, returnTo string) {
	c.Cookie.Set(w.Header(), login.Tokens.RefreshToken, c.MaxAge)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, returnTo, http.StatusSeeOther)
}

// Options configure the door.
type Options struct {
	// Completer; nil means RefreshCookieCompleter with Cookie and MaxAge.
	Completer Completer
	Cookie    authrpc.Cookie
	MaxAge    time.Duration
	// ReturnOrigins are the origins ("https://app.example.com") besides
	// this API's own that return_to may name. Relative paths are always
	// allowed.
	ReturnOrigins []string
	// DefaultReturnTo is where to go without return_to (default "/").
	DefaultReturnTo string
	// StateTTL is the state cookie's Max-Age (default 10 minutes).
	StateTTL time.Duration
	// HostPrefix names the state cookie HostStateCookie (TLS).
	HostPrefix bool
	// PublicOrigin is this API's origin as browsers see it
	// ("https://auth.example.com", behind a load balancer); empty means
	// the request's own scheme and Host.
	PublicOrigin string
}

// Mux is where the routes are registered.
type Mux interface {
	HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request))
}

type door struct {
	svc  Service
	opts Options
}

// Register mounts the door's routes on mux.
func Register(mux Mux, svc Service, opts Options) {
	if opts.Completer == nil {
		opts.Completer = RefreshCookieCompleter{Cookie: opts.Cookie, MaxAge: opts.MaxAge}
	}
	if opts.DefaultReturnTo == "" {
		opts.DefaultReturnTo = "/"
	}
	if opts.StateTTL <= 0 {
		opts.StateTTL = 10 * time.Minute
	}
	d := &door{svc: svc, opts: opts}
	mux.HandleFunc("GET "+LoginPath, d.login)
	mux.HandleFunc("GET "+CallbackPath, d.callback)
}

func (d *door) cookieName() string {
	if d.opts.HostPrefix {
		return HostStateCookie
	}
	return StateCookie
}

// setState writes (value != "") or deletes the state cookie. SameSite=Lax:
// the provider's redirect back is a cross-site top-level GET, which a
// Strict cookie would not follow.
func (d *door) setState(w http.ResponseWriter, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: d.cookieName(), Value: value, Path: "/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(maxAge / time.Second)}
	if value == "" {
		c.MaxAge = -1
	}
	w.Header().Add("Set-Cookie", c.String())
}

// login starts a flow: GET /auth/login/{provider}?return_to=&platform=&device_id=&force=
func (d *door) login(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k, v := range q {
		if len(v) > 1 {
			d.page(w, r, http.StatusBadRequest, "invalid_request", "the parameter "+clipParam(k)+" is given more than once", "")
			return
		}
	}
	returnTo, err := d.checkReturnTo(r, q.Get("return_to"))
	if err != nil {
		d.page(w, r, http.StatusBadRequest, "invalid_return_to", err.Error(), "")
		return
	}
	meta := authsvc.SessionMeta{Platform: storev1.Platform_PLATFORM_WEB, DeviceID: DefaultDeviceID}
	if p := q.Get("platform"); p != "" {
		pl, ok := authsvc.ParsePlatform(p)
		if !ok {
			d.page(w, r, http.StatusBadRequest, "invalid_request", "platform: want web, windows, mac, android, ios or other", returnTo)
			return
		}
		meta.Platform = pl
	}
	if v := q.Get("device_id"); v != "" {
		meta.DeviceID = v
	}
	switch q.Get("force") {
	case "", "0", "false":
	case "1", "true":
		meta.Force = true
	default:
		d.page(w, r, http.StatusBadRequest, "invalid_request", "force: want true or false", returnTo)
		return
	}
	b, err := d.svc.BeginUpstreamLogin(r.Context(), r.PathValue("provider"), authsvc.UpstreamStart{ReturnTo: returnTo, Session: meta})
	if err != nil {
		d.fail(w, r, err, returnTo)
		return
	}
	d.setState(w, b.Cookie, time.Until(b.Expires))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, b.AuthURL, http.StatusFound)
}

// callback finishes a flow: GET /auth/callback/{provider}?state=&code= (or
// error=&error_description=). The state cookie is deleted whatever happens.
func (d *door) callback(w http.ResponseWriter, r *http.Request) {
	d.setState(w, "", 0)
	w.Header().Set("Referrer-Policy", "no-referrer")
	q := r.URL.Query()
	for _, k := range []string{"state", "code", "error"} {
		if len(q[k]) > 1 {
			d.page(w, r, http.StatusBadRequest, "invalid_request", "the parameter "+k+" is given more than once", "")
			return
		}
	}
	var cookie string
	if c, err := r.Cookie(d.cookieName()); err == nil {
		cookie = c.Value
	}
	login, err := d.svc.FinishUpstreamLogin(r.Context(), authsvc.UpstreamCallback{
		Provider: r.PathValue("provider"), Cookie: cookie,
		State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error"), ErrorDescription: q.Get("error_description"),
		Client: authrpc.ClientOf(r.RemoteAddr, r.Header),
	})
	if err != nil {
		d.fail(w, r, err, "")
		return
	}
	returnTo, err := d.checkReturnTo(r, login.ReturnTo)
	if err != nil { // the allow-list changed meanwhile
		returnTo = d.opts.DefaultReturnTo
	}
	d.opts.Completer.Complete(w, r, login, returnTo)
}

// checkReturnTo accepts "" (the default), a path on this origin ("/x",
// never "//host" or "/\host"), or an absolute http(s) URL of this API's
// origin or of ReturnOrigins. Anything else would be an open redirect.
func (d *door) checkReturnTo(r *http.Request, s string) (string, error) {
	if s == "" {
		return d.opts.DefaultReturnTo, nil
	}
	if len(s) > 2048 {
		return "", errors.New("return_to: at most 2048 bytes")
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "", errors.New("return_to: control characters and backslashes are not allowed")
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", errors.New("return_to: not a URL")
	}
	if strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//") && u.Scheme == "" && u.Host == "" {
		return s, nil
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || u.User != nil {
		return "", errors.New("return_to: want a path on this site or an absolute URL of an allowed origin")
	}
	origin := u.Scheme + "://" + u.Host
	own := strings.TrimSuffix(d.opts.PublicOrigin, "/")
	if own == "" {
		own = "http://" + r.Host
		if r.TLS != nil {
			own = "https://" + r.Host
		}
	}
	if strings.EqualFold(origin, own) || slices.ContainsFunc(d.opts.ReturnOrigins, func(o string) bool { return strings.EqualFold(o, origin) }) {
		return s, nil
	}
	return "", errors.New("return_to: the origin " + clipParam(origin) + " is not allowed (auth.identity_providers.return_origins)")
}

// fail writes the error page of a service error.
func (d *door) fail(w http.ResponseWriter, r *http.Request, err error, back string) {
	var e *authsvc.Error
	if !errors.As(err, &e) {
		d.page(w, r, http.StatusInternalServerError, "internal", "internal error", back)
		return
	}
	status := rpcerr.HTTPStatus(err)
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	d.page(w, r, status, e.Code, e.Message, back)
}

var pageTmpl = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign-in failed</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#111}
code{background:#eee;padding:0 .25rem}a{color:#0645ad}</style></head>
<body><main><h1>Sign-in failed</h1>
<p role="alert" id="message">{{.Message}}</p>
<p>Error code: <code id="code">{{.Code}}</code></p>
{{if .Back}}<p><a href="{{.Back}}">Go back</a></p>{{end}}
</main></body></html>
`))

// page writes the HTML error page (no external assets, no script).
func (d *door) page(w http.ResponseWriter, _ *http.Request, status int, code, msg, back string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Sessiond-Error", code)
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, struct{ Code, Message, Back string }{code, msg, back})
}

func clipParam(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
