// Package authhttp serves the auth service as plain HTTP/JSON routes for apps
// (/auth/...), RFC 7662 introspection and RFC 7009 revocation for services
// (/oauth2/...), and the public keys and the authorization server's
// metadata (/.well-known/...). Errors are {"error":"<code>","message":"…"} with the
// matching status. It is thin: decode, call authsvc, encode, map errors.
package authhttp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/sessiond/sessiond/api/authrpc"
	"github.com/sessiond/sessiond/authsvc"
)

// defaultMaxBody bounds every JSON or form body unless Options say
// otherwise.
const defaultMaxBody = 64 << 10

// Options configure the routes.
type Options struct {
	// CookieAlways sends refresh tokens as cookies to every client.
	CookieAlways bool
	// MaxBodyBytes bounds a JSON or form body (0: 64 KiB).
	MaxBodyBytes int64
	// Cookie names the refresh cookie and says which pages may present it.
	Cookie authrpc.Cookie
	// PasswordGrant lets POST /auth/token take grant_type=password (RFC
	// 6749 §4.3); off, it answers unsupported_grant_type. POST /auth/login
	// is there either way.
	PasswordGrant bool
	// JWTAccessTokens says the service issues JWT access tokens (for the
	// discovery document).
	JWTAccessTokens bool
	// Metadata, when set, amends the discovery document (the OpenID
	// Provider's endpoints, api/oidcop) before it is written.
	Metadata func(doc map[string]any)
	// ExtraJWKs, when set, lists more keys for /.well-known/jwks.json (the
	// OpenID Provider's ID-token keys).
	ExtraJWKs func() []any
}

type routes struct {
	svc  *authsvc.Service
	opts Options
}

// Register mounts the routes on mux. The /oauth2/* routes need a service
// client principal with the introspect or revoke scope in the request's
// context: mount the caller-authentication middleware (api/callerauth) in
// front of mux.
func Register(mux Mux, svc *authsvc.Service, opts Options) {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = defaultMaxBody
	}
	r := &routes{svc: svc, opts: opts}
	mux.HandleFunc("POST /auth/login", r.login)
	mux.HandleFunc("POST /auth/signup", r.signup)
	// The refresh cookie authenticates these two: another site's page may
	// not present it.
	mux.HandleFunc("POST /auth/token", r.sameSite(r.token))
	mux.HandleFunc("POST /auth/logout", r.sameSite(r.logout))
	mux.HandleFunc("POST /auth/logout-all", r.logoutAll)
	mux.HandleFunc("GET /auth/sessions", r.sessions)
	mux.HandleFunc("DELETE /auth/sessions/{id}", r.endSession)
	mux.HandleFunc("POST /oauth2/introspect", r.introspect)
	mux.HandleFunc("POST /oauth2/revoke", r.revoke)
	mux.HandleFunc("GET /.well-known/paserk", r.paserk)
	mux.HandleFunc("GET /.well-known/jwks.json", r.jwks)
	mux.HandleFunc("GET /.well-known/openid-configuration", r.discovery)
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", r.discovery)
}

// sameSite refuses a request that presents the refresh cookie from
// another site's page (403 cross_site_request) before h runs, so that
// nothing is rotated or ended.
func (rt *routes) sameSite(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := rt.opts.Cookie.CheckSite(r); err != nil {
			writeJSON(w, http.StatusForbidden, apiError{Error: authrpc.CodeCrossSite, Message: err.Error()})
			return
		}
		h(w, r)
	}
}

// Mux is where Register adds its routes: an *http.ServeMux, or a wrapper
// that also records the patterns.
type Mux interface {
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// apiError is the error body of every route.
type apiError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	// Existing describes the live session of a 409 login conflict.
	Existing *conflictBody `json:"existing_session,omitempty"`
}

type conflictBody struct {
	SessionID string    `json:"session_id"`
	DeviceID  string    `json:"device_id"`
	Platform  string    `json:"platform"`
	Region    string    `json:"region"`
	Created   time.Time `json:"created"`
}

// fail writes err as a JSON error with the status its kind maps to. It
// never writes an internal error's detail.
func fail(w http.ResponseWriter, err error) {
	var e *authsvc.Error
	if !errors.As(err, &e) {
		writeJSON(w, http.StatusInternalServerError, apiError{Error: "internal", Message: "internal error"})
		return
	}
	status := map[authsvc.Kind]int{
		authsvc.KindInvalid:         http.StatusBadRequest,
		authsvc.KindUnauthenticated: http.StatusUnauthorized,
		authsvc.KindForbidden:       http.StatusForbidden,
		authsvc.KindNotFound:        http.StatusNotFound,
		authsvc.KindConflict:        http.StatusConflict,
		authsvc.KindThrottled:       http.StatusTooManyRequests,
		authsvc.KindUnavailable:     http.StatusServiceUnavailable,
	}[e.Kind]
	if status == 0 {
		writeJSON(w, http.StatusInternalServerError, apiError{Error: "internal", Message: "internal error"})
		return
	}
	body := apiError{Error: e.Code, Message: e.Message}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	if s := e.Conflict; s != nil {
		body.Existing = &conflictBody{SessionID: s.GetId(), DeviceID: s.GetDeviceId(),
			Platform: platformName(int32(s.GetPlatform())), Region: s.GetRegion(),
			Created: time.Unix(0, s.GetCreatedUnixNano()).UTC()}
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	writeJSON(w, status, body)
}

func badRequest(w http.ResponseWriter, format string, args ...any) {
	writeJSON(w, http.StatusBadRequest, apiError{Error: "invalid_request", Message: fmt.Sprintf(format, args...)})
}

// decode reads a JSON body into v: application/json only, at most
// Options.MaxBodyBytes bytes, no unknown fields, exactly one value. It
// answers the error itself and returns false on bad input.
func (rt *routes) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, apiError{Error: "unsupported_media_type", Message: "send Content-Type: application/json"})
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, rt.opts.MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case rt.bodyError(w, err):
		case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
			badRequest(w, "malformed JSON")
		case errors.As(err, &typ):
			badRequest(w, "field %q: wrong type", typ.Field)
		case errors.Is(err, io.EOF):
			badRequest(w, "empty body")
		default:
			badRequest(w, "%s", sanitize(err.Error()))
		}
		return false
	}
	if dec.More() {
		badRequest(w, "one JSON object expected")
		return false
	}
	return true
}

// bodyError answers a body that was too large (413) or too slow (408, the
// read deadline of api/httplimit) and reports whether err was either.
func (rt *routes) bodyError(w http.ResponseWriter, err error) bool {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Error: "request_too_large",
			Message: fmt.Sprintf("the body exceeds %d bytes", min(tooBig.Limit, rt.opts.MaxBodyBytes))})
	case errors.Is(err, os.ErrDeadlineExceeded):
		w.Header().Set("Connection", "close")
		writeJSON(w, http.StatusRequestTimeout, apiError{Error: "request_timeout", Message: sanitize(err.Error())})
	default:
		return false
	}
	return true
}

// sanitize bounds a decoder message (it can quote an unknown field name).
func sanitize(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
