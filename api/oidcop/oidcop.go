// Package oidcop is the HTTP door of the OpenID Provider (authsvc.Provider):
// the authorization endpoint with its login and consent pages, the token,
// userinfo and end-session endpoints, and the provider's entries of the
// discovery document and the JWKS (served by api/authhttp). It is thin:
// decode and bound the input, call authsvc, render or encode the answer.
//
// The pages are html/template files embedded in the binary, with no
// external asset; every form carries a CSRF token that must equal the
// value of a SameSite=Strict cookie (double submit), and a POST whose
// Origin names another origin is refused.
package oidcop

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/authsvc"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// Paths of the provider's endpoints.
const (
	AuthorizePath = "/oidc/authorize"
	LoginPath     = "/oidc/login"
	ConsentPath   = "/oidc/consent"
	TokenPath     = "/oidc/token"
	UserInfoPath  = "/oidc/userinfo"
	LogoutPath    = "/oidc/logout"
)

// maxFormBytes bounds every form body of the provider's routes.
const maxFormBytes = 32 << 10

//go:embed templates/*.html
var templateFS embed.FS

var pages = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range []string{"login", "consent", "logout", "message"} {
		out[name] = template.Must(template.ParseFS(templateFS, "templates/page.html", "templates/"+name+".html"))
	}
	return out
}()

// Upstream is an identity provider the login page offers (the
// relying-party side: /auth/login/{Name}).
type Upstream struct {
	// Name is the path segment of /auth/login/{Name}.
	Name string
	// Label is the link's text, e.g. "Google".
	Label string
}

// Upstreams lists the upstream identity providers to offer on the login
// page; nil offers none.
type Upstreams interface {
	Upstreams() []Upstream
}

// Options configure the door.
type Options struct {
	// Enabled serves the provider; off, its routes answer 404 and it adds
	// nothing to discovery or the JWKS.
	Enabled bool
	// Secure marks cookies Secure with the __Host- prefix (the API is
	// served over TLS).
	Secure bool
	// Upstreams are offered on the login page (may be nil).
	Upstreams Upstreams
}

// Mux is where Register adds its routes.
type Mux interface {
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}

// Door serves the provider.
type Door struct {
	p    *authsvc.Provider
	opts Options
}

// Register mounts the provider's routes on mux and returns the door (for
// the discovery and JWKS hooks and the upstream-login handoff). p may be
// nil when opts.Enabled is false.
func Register(mux Mux, p *authsvc.Provider, opts Options) *Door {
	d := &Door{p: p, opts: opts}
	mux.HandleFunc("GET "+AuthorizePath, d.on(d.authorize))
	mux.HandleFunc("POST "+AuthorizePath, d.on(d.authorize))
	mux.HandleFunc("POST "+LoginPath, d.on(d.login))
	mux.HandleFunc("POST "+ConsentPath, d.on(d.consent))
	mux.HandleFunc("POST "+TokenPath, d.on(d.token))
	mux.HandleFunc("GET "+UserInfoPath, d.on(d.userinfo))
	mux.HandleFunc("POST "+UserInfoPath, d.on(d.userinfo))
	mux.HandleFunc("GET "+LogoutPath, d.on(d.logout))
	mux.HandleFunc("POST "+LogoutPath, d.on(d.logout))
	return d
}

func (d *Door) on(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !d.opts.Enabled || d.p == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found", "error_description": "the OpenID Provider is not enabled (oidc.enabled)"})
			return
		}
		h(w, r)
	}
}

// --- cookies ---

func (d *Door) cookieName(base string) string {
	if d.opts.Secure {
		return "__Host-" + base
	}
	return base
}

const (
	ssoCookie  = "sessiond_sso"
	csrfCookie = "sessiond_csrf"
)

// SetSSOCookie sets the browser SSO cookie to value (from
// authsvc.Provider.PasswordLogin or OpenBrowserSession). This is the
// handoff for an upstream login: its callback opens a browser session,
// calls SetSSOCookie and redirects to the return_to the login page gave
// it (an AuthorizePath URL), where the flow goes on signed in.
func (d *Door) SetSSOCookie(w http.ResponseWriter, value string) {
	http.SetCookie(w, &http.Cookie{Name: d.cookieName(ssoCookie), Value: value, Path: "/", HttpOnly: true,
		Secure: d.opts.Secure, SameSite: http.SameSiteLaxMode})
}

func (d *Door) clearSSOCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: d.cookieName(ssoCookie), Value: "", Path: "/", HttpOnly: true,
		Secure: d.opts.Secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

func (d *Door) ssoSession(r *http.Request) (string, bool) {
	c, err := r.Cookie(d.cookieName(ssoCookie))
	if err != nil || c.Value == "" {
		return "", false
	}
	return c.Value, true
}

// csrfToken returns the request's CSRF cookie value, setting a new one
// when there is none.
func (d *Door) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(d.cookieName(csrfCookie)); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{Name: d.cookieName(csrfCookie), Value: v, Path: "/", HttpOnly: true,
		Secure: d.opts.Secure, SameSite: http.SameSiteStrictMode})
	return v
}

// checkCSRF verifies a form post: the csrf field equals the CSRF cookie,
// and an Origin header, when sent, is the provider's own.
func (d *Door) checkCSRF(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		iss, err := url.Parse(d.p.Issuer())
		if err != nil || o != iss.Scheme+"://"+iss.Host {
			return false
		}
	}
	c, err := r.Cookie(d.cookieName(csrfCookie))
	if err != nil || len(c.Value) != 43 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostForm.Get("csrf"))) == 1
}

// --- pages ---

type pageData struct {
	Title, Client, Error, Message, Action, CSRF, Request, LoginHint string
	Scopes                                                          []string
	Upstreams                                                       []upstreamLink
}

type upstreamLink struct{ Label, URL string }

func render(w http.ResponseWriter, status int, name string, data pageData) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_ = pages[name].ExecuteTemplate(w, "page", data)
}

func errorPage(w http.ResponseWriter, status int, title, msg string) {
	render(w, status, "message", pageData{Title: title, Message: msg, Error: "1"})
}

func (d *Door) loginPage(w http.ResponseWriter, r *http.Request, status int, ar *authsvc.AuthorizeRequest, rawRequest, msg string) {
	data := pageData{Title: "Sign in", Client: clientName(ar.Client), Error: msg, Action: LoginPath,
		CSRF: d.csrfToken(w, r), Request: rawRequest, LoginHint: ar.LoginHint}
	if d.opts.Upstreams != nil {
		back := AuthorizePath + "?" + rawRequest
		for _, u := range d.opts.Upstreams.Upstreams() {
			data.Upstreams = append(data.Upstreams, upstreamLink{Label: u.Label,
				URL: "/auth/login/" + url.PathEscape(u.Name) + "?" + url.Values{"return_to": {back}}.Encode()})
		}
	}
	render(w, status, "login", data)
}

func (d *Door) consentPage(w http.ResponseWriter, r *http.Request, ar *authsvc.AuthorizeRequest, rawRequest string) {
	render(w, http.StatusOK, "consent", pageData{Title: "Allow access", Client: clientName(ar.Client), Action: ConsentPath,
		CSRF: d.csrfToken(w, r), Request: rawRequest, Scopes: describeScopes(ar.Scope)})
}

func clientName(c *authsvc.OIDCClient) string {
	if c == nil {
		return ""
	}
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

var scopeText = map[string]string{
	"openid": "your user id", "profile": "your name", "email": "your email address",
	"org": "your organization", "country": "your organization's country", "roles": "your roles",
	"offline_access": "access while you are away",
}

func describeScopes(scope string) []string {
	var out []string
	for _, sc := range strings.Fields(scope) {
		out = append(out, scopeText[sc])
	}
	return out
}

// --- authorization endpoint ---

// readForm parses a POST form body (bounded, urlencoded only) into
// r.PostForm; it answers the error itself.
func readForm(w http.ResponseWriter, r *http.Request, page bool) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		if page {
			errorPage(w, http.StatusUnsupportedMediaType, "Bad request", "send the form as application/x-www-form-urlencoded")
		} else {
			writeOAuthError(w, http.StatusBadRequest, authsvc.ErrCodeInvalidRequest, "send the body as application/x-www-form-urlencoded")
		}
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	body, err := readAll(r)
	if err == nil {
		r.PostForm, err = url.ParseQuery(body)
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		status, msg := http.StatusBadRequest, "the body is not a valid form"
		if errors.As(err, &tooBig) {
			status, msg = http.StatusRequestEntityTooLarge, "the body exceeds "+strconv.Itoa(maxFormBytes)+" bytes"
		}
		if page {
			errorPage(w, status, "Bad request", msg)
		} else {
			writeOAuthError(w, status, authsvc.ErrCodeInvalidRequest, msg)
		}
		return false
	}
	return true
}

func readAll(r *http.Request) (string, error) {
	b, err := io.ReadAll(r.Body)
	return string(b), err
}

func (d *Door) authorize(w http.ResponseWriter, r *http.Request) {
	var q url.Values
	raw := r.URL.RawQuery
	if r.Method == http.MethodPost {
		if !readForm(w, r, true) {
			return
		}
		q, raw = r.PostForm, r.PostForm.Encode()
	} else {
		var err error
		if q, err = url.ParseQuery(raw); err != nil {
			errorPage(w, http.StatusBadRequest, "Bad request", "the query string is malformed")
			return
		}
	}
	if len(raw) > 16<<10 {
		errorPage(w, http.StatusBadRequest, "Bad request", "the request is too long")
		return
	}
	ar, aerr := d.p.ParseAuthorize(q)
	if aerr != nil {
		d.refuse(w, r, aerr)
		return
	}
	d.continueAuthorize(w, r, ar, raw)
}

// refuse answers a refused authorization request: a redirect to a
// registered redirect URI, else an error page (never a redirect).
func (d *Door) refuse(w http.ResponseWriter, r *http.Request, aerr *authsvc.AuthorizeError) {
	if loc := aerr.Location(d.p.Issuer()); loc != "" {
		http.Redirect(w, r, loc, http.StatusSeeOther)
		return
	}
	errorPage(w, http.StatusBadRequest, "Sign-in request refused", aerr.Code+": "+aerr.Description)
}

// continueAuthorize runs an accepted authorization request: sign in,
// consent, then the code. Upstream logins come back here (return_to).
func (d *Door) continueAuthorize(w http.ResponseWriter, r *http.Request, ar *authsvc.AuthorizeRequest, raw string) {
	cookie, _ := d.ssoSession(r)
	sso, ok := d.p.BrowserSession(r.Context(), cookie)
	if !ok {
		sso = nil
	}
	if d.p.NeedsLogin(ar, sso) {
		if ar.Prompt["none"] {
			d.refuse(w, r, &authsvc.AuthorizeError{Code: "login_required", Description: "the user is not signed in", RedirectURI: ar.RedirectURI, State: ar.State})
			return
		}
		d.loginPage(w, r, http.StatusOK, ar, stripPrompt(raw), "")
		return
	}
	if d.p.NeedsConsent(ar) {
		if ar.Prompt["none"] {
			d.refuse(w, r, &authsvc.AuthorizeError{Code: "consent_required", Description: "the user must consent", RedirectURI: ar.RedirectURI, State: ar.State})
			return
		}
		d.consentPage(w, r, ar, stripPrompt(raw))
		return
	}
	d.issue(w, r, ar, sso)
}

// stripPrompt removes prompt=login (and max_age) from a request carried
// through the login form: the user is about to authenticate, so the
// continuation must not ask again.
func stripPrompt(raw string) string {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return raw
	}
	if q.Get("prompt") == "login" {
		q.Del("prompt")
	}
	q.Del("max_age")
	return q.Encode()
}

func (d *Door) issue(w http.ResponseWriter, r *http.Request, ar *authsvc.AuthorizeRequest, sso *storev1.Session) {
	loc, err := d.p.IssueCode(r.Context(), ar, sso)
	if err != nil {
		errorPage(w, statusOf(err), "Sign-in failed", messageOf(err))
		return
	}
	http.Redirect(w, r, loc, http.StatusSeeOther)
}

// carried re-validates the authorization request a form carried.
func (d *Door) carried(w http.ResponseWriter, r *http.Request) (*authsvc.AuthorizeRequest, string, bool) {
	raw := r.PostForm.Get("request")
	q, err := url.ParseQuery(raw)
	if err != nil || len(raw) > 16<<10 {
		errorPage(w, http.StatusBadRequest, "Bad request", "the sign-in request is malformed; start again from the application")
		return nil, "", false
	}
	ar, aerr := d.p.ParseAuthorize(q)
	if aerr != nil {
		d.refuse(w, r, aerr)
		return nil, "", false
	}
	return ar, raw, true
}

func (d *Door) login(w http.ResponseWriter, r *http.Request) {
	if !readForm(w, r, true) {
		return
	}
	if !d.checkCSRF(r) {
		errorPage(w, http.StatusForbidden, "Request refused", "the form expired or came from another site; start again from the application")
		return
	}
	ar, raw, ok := d.carried(w, r)
	if !ok {
		return
	}
	value, err := d.p.PasswordLogin(r.Context(), r.PostForm.Get("email"), r.PostForm.Get("password"), clientOf(r))
	if err != nil {
		d.loginPage(w, r, statusOf(err), ar, raw, messageOf(err))
		return
	}
	if old, ok := d.ssoSession(r); ok {
		if s, ok := d.p.BrowserSession(r.Context(), old); ok {
			_ = d.p.EndBrowserSession(r.Context(), s.GetId())
		}
	}
	d.SetSSOCookie(w, value)
	sso, ok := d.p.BrowserSession(r.Context(), value)
	if !ok {
		errorPage(w, http.StatusServiceUnavailable, "Sign-in failed", "the new session is not readable yet; retry")
		return
	}
	if d.p.NeedsConsent(ar) {
		d.consentPage(w, r, ar, raw)
		return
	}
	d.issue(w, r, ar, sso)
}

func (d *Door) consent(w http.ResponseWriter, r *http.Request) {
	if !readForm(w, r, true) {
		return
	}
	if !d.checkCSRF(r) {
		errorPage(w, http.StatusForbidden, "Request refused", "the form expired or came from another site; start again from the application")
		return
	}
	ar, raw, ok := d.carried(w, r)
	if !ok {
		return
	}
	cookie, _ := d.ssoSession(r)
	sso, ok := d.p.BrowserSession(r.Context(), cookie)
	if !ok {
		d.loginPage(w, r, http.StatusOK, ar, raw, "")
		return
	}
	switch r.PostForm.Get("decision") {
	case "allow":
		d.issue(w, r, ar, sso)
	case "deny":
		http.Redirect(w, r, d.p.Deny(ar), http.StatusSeeOther)
	default:
		errorPage(w, http.StatusBadRequest, "Bad request", "decision: want allow or deny")
	}
}

// --- token and userinfo endpoints ---

func (d *Door) token(w http.ResponseWriter, r *http.Request) {
	if !readForm(w, r, false) {
		return
	}
	user, pass, basic := r.BasicAuth()
	if !basic && r.Header.Get("Authorization") != "" {
		writeOAuthError(w, http.StatusUnauthorized, authsvc.ErrCodeInvalidClient, "Authorization: only Basic client authentication is accepted here")
		return
	}
	res, err := d.p.Token(r.Context(), authsvc.TokenRequest{Form: r.PostForm, BasicUser: user, BasicPass: pass, HasBasic: basic, HTTPClient: clientOf(r)})
	if err != nil {
		var e *authsvc.Error
		if !errors.As(err, &e) {
			writeOAuthError(w, http.StatusInternalServerError, "server_error", "internal error")
			return
		}
		status := statusOf(err)
		if e.Code == authsvc.ErrCodeInvalidClient {
			status = http.StatusUnauthorized
			if basic {
				w.Header().Set("WWW-Authenticate", `Basic realm="sessiond"`)
			}
		} else if status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusNotFound {
			status = http.StatusBadRequest
		}
		if e.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
		}
		code := e.Code
		switch status {
		case http.StatusServiceUnavailable, http.StatusTooManyRequests:
			code = "temporarily_unavailable"
		case http.StatusInternalServerError:
			code = "server_error"
		}
		writeOAuthError(w, status, code, e.Message)
		return
	}
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, res)
}

func (d *Door) userinfo(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || tok == "" || len(tok) > 4096 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sessiond"`)
		writeOAuthError(w, http.StatusUnauthorized, "invalid_token", "send the access token as Authorization: Bearer")
		return
	}
	claims, err := d.p.UserInfo(r.Context(), tok)
	if err != nil {
		var e *authsvc.Error
		errors.As(err, &e)
		switch {
		case e != nil && e.Kind == authsvc.KindForbidden:
			w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope"`)
			writeOAuthError(w, http.StatusForbidden, "insufficient_scope", e.Message)
		case e != nil && e.Kind == authsvc.KindUnauthenticated:
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			writeOAuthError(w, http.StatusUnauthorized, "invalid_token", e.Message)
		default:
			writeOAuthError(w, statusOf(err), "server_error", messageOf(err))
		}
		return
	}
	writeJSON(w, http.StatusOK, claims)
}

// --- end-session endpoint ---

func (d *Door) logout(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	confirmed := false
	if r.Method == http.MethodPost {
		if !readForm(w, r, true) {
			return
		}
		q = r.PostForm
		if r.PostForm.Get("confirm") != "" {
			if !d.checkCSRF(r) {
				errorPage(w, http.StatusForbidden, "Request refused", "the form expired or came from another site")
				return
			}
			var err error
			if q, err = url.ParseQuery(r.PostForm.Get("request")); err != nil {
				errorPage(w, http.StatusBadRequest, "Bad request", "the sign-out request is malformed")
				return
			}
			confirmed = true
		}
	}
	er, err := d.p.ParseEndSession(q)
	if err != nil {
		errorPage(w, http.StatusBadRequest, "Sign-out request refused", messageOf(err))
		return
	}
	cookie, _ := d.ssoSession(r)
	sso, live := d.p.BrowserSession(r.Context(), cookie)
	if live && !confirmed && (er.HintSessionID == "" || er.HintSessionID != sso.GetId()) {
		render(w, http.StatusOK, "logout", pageData{Title: "Sign out", Client: clientName(er.Client), Action: LogoutPath,
			CSRF: d.csrfToken(w, r), Request: q.Encode()})
		return
	}
	if live {
		if err := d.p.EndBrowserSession(r.Context(), sso.GetId()); err != nil {
			errorPage(w, statusOf(err), "Sign-out failed", messageOf(err))
			return
		}
	}
	d.clearSSOCookie(w)
	if loc := er.Location(); loc != "" {
		http.Redirect(w, r, loc, http.StatusSeeOther)
		return
	}
	render(w, http.StatusOK, "message", pageData{Title: "Signed out", Message: "You are signed out."})
}

// --- discovery and JWKS ---

// Metadata adds the provider's entries to the discovery document (OpenID
// Connect Discovery 1.0, RFC 8414): exactly what this door serves.
func (d *Door) Metadata(doc map[string]any) {
	if !d.opts.Enabled || d.p == nil {
		return
	}
	iss := d.p.Issuer()
	doc["authorization_endpoint"] = iss + AuthorizePath
	doc["token_endpoint"] = iss + TokenPath
	doc["userinfo_endpoint"] = iss + UserInfoPath
	doc["end_session_endpoint"] = iss + LogoutPath
	doc["response_types_supported"] = []string{"code"}
	doc["response_modes_supported"] = []string{"query"}
	doc["grant_types_supported"] = []string{authsvc.GrantAuthorizationCode, authsvc.GrantRefreshToken, authsvc.GrantClientCredentials}
	doc["subject_types_supported"] = []string{"public"}
	doc["id_token_signing_alg_values_supported"] = []string{authsvc.AlgRS256, authsvc.AlgES256}
	doc["userinfo_signing_alg_values_supported"] = []string{"none"}
	doc["token_endpoint_auth_methods_supported"] = []string{authsvc.AuthClientSecretBasic, authsvc.AuthPrivateKeyJWT, authsvc.AuthNone}
	doc["token_endpoint_auth_signing_alg_values_supported"] = []string{"RS256", "PS256", "ES256", "EdDSA"}
	doc["code_challenge_methods_supported"] = []string{"S256"}
	doc["scopes_supported"] = authsvc.KnownScopes()
	doc["prompt_values_supported"] = []string{"none", "login", "consent"}
	doc["claims_supported"] = []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "at_hash", "azp",
		"name", "email", "org_id", "org_name", "org_type", "country", "roles"}
	doc["authorization_response_iss_parameter_supported"] = true
	doc["backchannel_logout_supported"] = true
	doc["backchannel_logout_session_supported"] = true
	doc["request_parameter_supported"] = false
	doc["request_uri_parameter_supported"] = false
	doc["claims_parameter_supported"] = false
}

// JWKS returns the provider's ID-token keys for the JWKS document.
func (d *Door) JWKS() []any {
	if !d.opts.Enabled || d.p == nil {
		return nil
	}
	var out []any
	for _, k := range d.p.JWKS() {
		out = append(out, k)
	}
	return out
}

// --- helpers ---

func clientOf(r *http.Request) authsvc.Client {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	return authsvc.Client{IP: ip, UserAgent: r.UserAgent()}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func statusOf(err error) int {
	var e *authsvc.Error
	if !errors.As(err, &e) {
		return http.StatusInternalServerError
	}
	switch e.Kind {
	case authsvc.KindInvalid:
		return http.StatusBadRequest
	case authsvc.KindUnauthenticated:
		return http.StatusUnauthorized
	case authsvc.KindForbidden:
		return http.StatusForbidden
	case authsvc.KindNotFound:
		return http.StatusNotFound
	case authsvc.KindConflict:
		return http.StatusConflict
	case authsvc.KindThrottled:
		return http.StatusTooManyRequests
	case authsvc.KindUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func messageOf(err error) string {
	var e *authsvc.Error
	if !errors.As(err, &e) || e.Kind == authsvc.KindInternal {
		return "internal error"
	}
	return e.Message
}
