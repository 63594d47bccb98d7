// Package console serves the operator console: a few static pages embedded
// in the binary (assets/, no CDN, no external fonts) at /console/, a login
// through sessiond itself for users holding an operator or admin role,
// and /console/rpc/<procedure>, which hands the console's calls to the
// node's own Connect API as the logged-in user (principal user/<email>
// with the scopes of the user's roles), so the API's caller rules, scope
// checks and audit apply to the console as to any other caller.
//
// The login is a sessiond session (platform "other", device
// "sessiond-console"): its access and refresh tokens live in two HttpOnly,
// SameSite=Strict cookies (__Host- prefixed and Secure over TLS). Every
// state-changing request must come from the console's own origin (Origin,
// or Sec-Fetch-Site when a browser sends no Origin) and carry the
// X-Sessiond-Console header, which no cross-site form can set and no
// cross-site script can send without a CORS preflight the node never
// grants.
package console

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/sessiond/sessiond/api/rpcerr"
	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/callers"
	"github.com/sessiond/sessiond/authsvc/users"
	"github.com/sessiond/sessiond/clients/go/checkreason"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

//go:embed assets
var assets embed.FS

// Prefix is where the console is served.
const Prefix = "/console/"

// Header is the header every state-changing console request carries.
const Header = "X-Sessiond-Console"

// Device is the device id of console sessions.
const Device = "sessiond-console"

// Cookie names: over TLS with the __Host- prefix (Path=/), on a plaintext
// API without (Path=/console).
const (
	accessCookie  = "sessiond_console"
	refreshCookie = "sessiond_console_refresh"
	hostPrefix    = "__Host-"
)

// RoleScopes are the caller scopes each console role grants: "admin" every
// scope, "operator" what the console's pages need (cluster status and
// membership, users and sessions, keys, audit, the revocation feed and
// metrics), not operator tokens.
var RoleScopes = map[string][]string{
	"admin":    {callers.ScopeAll},
	"operator": {callers.ScopeClusterWrite, callers.ScopeAdmin, callers.ScopeWatchDetails, callers.ScopeMetrics},
}

// Auth is what the console needs of the auth service; *authsvc.Service
// implements it.
type Auth interface {
	Login(ctx context.Context, in authsvc.LoginInput) (*authsvc.Tokens, error)
	Refresh(ctx context.Context, refreshToken string, c authsvc.Client) (*authsvc.Tokens, error)
	Logout(ctx context.Context, bearer, refreshToken string) (uint64, error)
	CheckToken(raw string) authsvc.Check
	UserByID(ctx context.Context, id string) (users.User, error)
}

// Options configure the console.
type Options struct {
	// Auth logs users in and checks their console sessions.
	Auth Auth
	// API serves the procedures the console calls (the node's handler in
	// front of which caller authentication runs; the console presets the
	// principal).
	API http.Handler
	// TLS says the API is served over TLS: cookies are __Host- prefixed.
	TLS bool
	// Origins are origins besides the node's own (scheme and Host of the
	// request) whose pages may send console requests: a TLS-terminating
	// proxy's address.
	Origins []string
	// Node and Region name the answering node on the pages.
	Node, Region string
	// Log receives refusals worth an operator's attention.
	Log *slog.Logger
}

// Mux is where the console's routes are registered.
type Mux interface {
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}

// Procedures are the API procedures the console may call through
// /console/rpc/; others are refused (the console is no general proxy).
var Procedures = []string{
	"/sessiond.cluster.v1.ClusterService/Status",
	"/sessiond.cluster.v1.ClusterService/TransferLeadership",
	"/sessiond.cluster.v1.ClusterService/Remove",
	"/sessiond.auth.v1.UserAdminService/ListUsers",
	"/sessiond.auth.v1.UserAdminService/CreateUser",
	"/sessiond.auth.v1.UserAdminService/SetUserStatus",
	"/sessiond.auth.v1.UserAdminService/SetUserPassword",
	"/sessiond.auth.v1.UserAdminService/SetUserRoles",
	"/sessiond.auth.v1.UserAdminService/SetUserOrg",
	"/sessiond.session.v1.SessionService/ListSessions",
	"/sessiond.session.v1.SessionService/RevokeSession",
	"/sessiond.session.v1.SessionService/RevokeUserSessions",
	"/sessiond.session.v1.SessionService/WatchRevocations",
	"/sessiond.operator.v1.OperatorService/WhoAmI",
	"/sessiond.operator.v1.OperatorService/ListSigningKeys",
	"/sessiond.operator.v1.OperatorService/RotateSigningKey",
	"/sessiond.operator.v1.OperatorService/QueryAudit",
	"/sessiond.operator.v1.OperatorService/Metrics",
}

type console struct {
	o      Options
	static http.Handler
}

// Register adds the console's routes to mux.
func Register(mux Mux, o Options) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	sub, _ := fs.Sub(assets, "assets")
	c := &console{o: o, static: http.FileServerFS(sub)}
	mux.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
	})
	mux.HandleFunc("GET /console/", c.serveAsset)
	mux.HandleFunc("POST /console/login", c.sameSite(c.login))
	mux.HandleFunc("POST /console/logout", c.sameSite(c.logout))
	mux.HandleFunc("POST /console/me", c.sameSite(c.me))
	mux.HandleFunc("POST /console/rpc/", c.sameSite(c.rpc))
}

// securityHeaders are set on every console answer: no framing, no
// inline or foreign script, no referrer, no sniffing.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

func (c *console) serveAsset(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	f := strings.TrimPrefix(r.URL.Path, Prefix)
	if f == "" {
		f = "index.html"
	}
	if f != path.Clean(f) || strings.HasPrefix(f, ".") {
		http.NotFound(w, r)
		return
	}
	if _, err := fs.Stat(assets, "assets/"+f); err != nil {
		http.NotFound(w, r)
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/" + f
	if f == "index.html" {
		// FileServer redirects /index.html to ./; serve it from the root.
		r2.URL.Path = "/"
	}
	c.static.ServeHTTP(w, r2)
}

type apiError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	securityHeaders(w.Header())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// CodeCrossSite is the error of a console request from another site.
const CodeCrossSite = "cross_site_request"

// sameSite refuses a request that does not come from the console's own
// origin or lacks the console header.
func (c *console) sameSite(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := checkSite(r, c.o.Origins); err != nil {
			c.o.Log.Warn("audit", "event", "console_cross_site_refused", "origin", trim(r.Header.Get("Origin")), "ip", remoteIP(r), "path", r.URL.Path)
			writeJSON(w, http.StatusForbidden, apiError{Error: CodeCrossSite, Message: err.Error()})
			return
		}
		h(w, r)
	}
}

func trim(s string) string {
	if len(s) > 200 {
		return s[:200]
	}
	return s
}

func checkSite(r *http.Request, others []string) error {
	own := "http://" + r.Host
	if r.TLS != nil {
		own = "https://" + r.Host
	}
	switch origin := r.Header.Get("Origin"); {
	case origin != "" && !strings.EqualFold(origin, own) && !slices.ContainsFunc(others, func(o string) bool { return strings.EqualFold(strings.TrimSuffix(o, "/"), origin) }):
		return errors.New("the console accepts requests only from its own origin " + own + ", not " + trim(origin))
	case origin == "":
		switch r.Header.Get("Sec-Fetch-Site") {
		case "", "same-origin", "none":
		default:
			return errors.New("the console accepts requests only from its own origin " + own)
		}
	}
	if r.Header.Get(Header) == "" {
		return errors.New("console requests carry the " + Header + " header")
	}
	return nil
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (c *console) cookieName(base string) string {
	if c.o.TLS {
		return hostPrefix + base
	}
	return base
}

func (c *console) setCookie(w http.ResponseWriter, base, value string) {
	ck := &http.Cookie{Name: c.cookieName(base), Value: value, Path: "/console", HttpOnly: true, Secure: c.o.TLS, SameSite: http.SameSiteStrictMode}
	if c.o.TLS {
		ck.Path = "/"
	}
	if value == "" {
		ck.MaxAge = -1
	}
	http.SetCookie(w, ck)
}

func (c *console) cookie(r *http.Request, base string) string {
	if ck, err := r.Cookie(c.cookieName(base)); err == nil {
		return ck.Value
	}
	return ""
}

// Who is the logged-in console user, as /console/me and /console/login
// answer.
type Who struct {
	ID     string   `json:"id"`
	Email  string   `json:"email"`
	Name   string   `json:"display_name"`
	Roles  []string `json:"roles"`
	Scopes []string `json:"scopes"`
	Node   string   `json:"node"`
	Region string   `json:"region"`
}

// scopesOf returns the scopes u's roles grant and whether any does.
func scopesOf(u users.User) ([]string, bool) {
	var out []string
	for _, r := range u.Roles {
		for _, s := range RoleScopes[r] {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out, len(out) > 0
}

const maxLoginBody = 4 << 10

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	// Force ends another device's session on platform other.
	Force bool `json:"force"`
}

func (c *console) login(w http.ResponseWriter, r *http.Request) {
	var in loginRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxLoginBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || in.Email == "" || in.Password == "" {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "invalid_request", Message: "want a JSON body {\"email\", \"password\", \"force\"} under 4 KiB"})
		return
	}
	client := authsvc.Client{IP: remoteIP(r), UserAgent: r.Header.Get("User-Agent")}
	tok, err := c.o.Auth.Login(r.Context(), authsvc.LoginInput{Email: in.Email, Password: in.Password,
		Platform: storev1.Platform_PLATFORM_OTHER, DeviceID: Device, Force: in.Force, Client: client})
	if err != nil {
		fail(w, err)
		return
	}
	chk := c.o.Auth.CheckToken(tok.AccessToken)
	var u users.User
	if chk.Claims != nil {
		u, err = c.o.Auth.UserByID(r.Context(), chk.Claims.Subject)
	}
	scopes, ok := scopesOf(u)
	if chk.Claims == nil || err != nil || !ok {
		// Not a console user: end the session just opened.
		_, _ = c.o.Auth.Logout(context.WithoutCancel(r.Context()), tok.AccessToken, tok.RefreshToken)
		c.o.Log.Warn("audit", "event", "console_login_refused", "user", u.ID, "ip", client.IP, "why", "no operator or admin role")
		writeJSON(w, http.StatusForbidden, apiError{Error: "not_an_operator", Message: "the console is for users with the operator or admin role"})
		return
	}
	c.setCookie(w, accessCookie, tok.AccessToken)
	c.setCookie(w, refreshCookie, tok.RefreshToken)
	writeJSON(w, http.StatusOK, c.who(u, scopes))
}

func (c *console) who(u users.User, scopes []string) Who {
	return Who{ID: u.ID, Email: u.Email, Name: u.DisplayName, Roles: u.Roles, Scopes: scopes, Node: c.o.Node, Region: c.o.Region}
}

func (c *console) logout(w http.ResponseWriter, r *http.Request) {
	if a, rt := c.cookie(r, accessCookie), c.cookie(r, refreshCookie); a != "" || rt != "" {
		_, _ = c.o.Auth.Logout(r.Context(), a, rt)
	}
	c.setCookie(w, accessCookie, "")
	c.setCookie(w, refreshCookie, "")
	writeJSON(w, http.StatusOK, struct{}{})
}

// errNotLoggedIn is the answer without a live console session.
var errNotLoggedIn = apiError{Error: "unauthenticated", Message: "log in to the console"}

// session resolves the request's console session, refreshing an expired
// access token with the refresh cookie, into the user and the principal
// the API sees. ok false means the answer was written.
func (c *console) session(w http.ResponseWriter, r *http.Request) (users.User, callers.Principal, bool) {
	access := c.cookie(r, accessCookie)
	chk := c.o.Auth.CheckToken(access)
	if !chk.Active && chk.Reason == checkreason.Expired {
		if rt := c.cookie(r, refreshCookie); rt != "" {
			tok, err := c.o.Auth.Refresh(r.Context(), rt, authsvc.Client{IP: remoteIP(r), UserAgent: r.Header.Get("User-Agent")})
			if err == nil {
				c.setCookie(w, accessCookie, tok.AccessToken)
				c.setCookie(w, refreshCookie, tok.RefreshToken)
				chk = c.o.Auth.CheckToken(tok.AccessToken)
			}
		}
	}
	if !chk.Active || chk.Claims == nil {
		c.setCookie(w, accessCookie, "")
		c.setCookie(w, refreshCookie, "")
		writeJSON(w, http.StatusUnauthorized, errNotLoggedIn)
		return users.User{}, callers.Principal{}, false
	}
	u, err := c.o.Auth.UserByID(r.Context(), chk.Claims.Subject)
	if err != nil {
		fail(w, err)
		return users.User{}, callers.Principal{}, false
	}
	scopes, ok := scopesOf(u)
	if !ok || u.Status != users.StatusActive {
		writeJSON(w, http.StatusForbidden, apiError{Error: "not_an_operator", Message: "the console is for users with the operator or admin role"})
		return users.User{}, callers.Principal{}, false
	}
	return u, callers.Principal{Kind: callers.KindUser, Name: u.Email, Method: callers.MethodConsole, Scopes: scopes}, true
}

func (c *console) me(w http.ResponseWriter, r *http.Request) {
	u, p, ok := c.session(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, c.who(u, p.Scopes))
}

// rpc calls the API procedure named in the path as the console user.
func (c *console) rpc(w http.ResponseWriter, r *http.Request) {
	proc := strings.TrimPrefix(r.URL.Path, "/console/rpc")
	if !slices.Contains(Procedures, proc) {
		writeJSON(w, http.StatusNotFound, apiError{Error: "not_found", Message: "the console does not call " + trim(proc)})
		return
	}
	_, p, ok := c.session(w, r)
	if !ok {
		return
	}
	r2 := r.Clone(callers.NewContext(r.Context(), p))
	r2.URL.Path, r2.URL.RawPath, r2.RequestURI = proc, "", proc
	// The API sees the console user's principal, not the browser's
	// cookies or headers meant for the console.
	r2.Header.Del("Cookie")
	r2.Header.Del("Authorization")
	r2.Header.Del(Header)
	securityHeaders(w.Header())
	c.o.API.ServeHTTP(w, r2)
}

// fail answers an auth service error.
func fail(w http.ResponseWriter, err error) {
	var e *authsvc.Error
	if !errors.As(err, &e) {
		writeJSON(w, http.StatusInternalServerError, apiError{Error: "internal", Message: "internal error"})
		return
	}
	status := rpcerr.HTTPStatus(err)
	if e.Kind == authsvc.KindInternal {
		writeJSON(w, status, apiError{Error: "internal", Message: "internal error"})
		return
	}
	writeJSON(w, status, apiError{Error: e.Code, Message: e.Message})
}
