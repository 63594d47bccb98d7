package authrpc

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1/authv1connect"
	"github.com/sessiond/sessiond/clients/go/guard"
)

// RefreshCookie is the name of the cookie that carries a browser's refresh
// token on a plaintext API (a laptop): HttpOnly, Secure, SameSite=Strict,
// scoped to /auth. Over TLS it is HostRefreshCookie.
const RefreshCookie = guard.RefreshCookie

// HostRefreshCookie is the refresh cookie's name when the API is served
// over TLS: the __Host- prefix makes browsers accept it only from this
// host, Secure, with Path=/ and no Domain, so no sibling subdomain can set
// or overwrite it (RFC 6265bis §4.1.3.2).
const HostRefreshCookie = guard.HostRefreshCookie

// CodeCrossSite is the error code of a cookie-authenticated request sent
// from another site.
const CodeCrossSite = "cross_site_request"

// Cookie says how the refresh cookie is named and which pages may present
// it. The zero value is the plaintext form with only the API's own origin
// allowed.
type Cookie struct {
	// HostPrefix names the cookie HostRefreshCookie with Path=/ (the API is
	// served over TLS); the unprefixed name is then ignored.
	HostPrefix bool
	// Origins are the origins ("https://app.example.com") besides the
	// API's own whose pages may send requests that the cookie
	// authenticates.
	Origins []string
}

// Name returns the cookie's name.
func (c Cookie) Name() string {
	if c.HostPrefix {
		return HostRefreshCookie
	}
	return RefreshCookie
}

// Value returns the refresh cookie's value from request headers.
func (c Cookie) Value(h http.Header) string {
	r := http.Request{Header: h}
	if v, err := r.Cookie(c.Name()); err == nil {
		return v.Value
	}
	return ""
}

// Set writes the refresh cookie header; an empty value deletes it.
func (c Cookie) Set(h http.Header, value string, maxAge time.Duration) {
	v := &http.Cookie{Name: c.Name(), Value: value, Path: "/auth", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(maxAge / time.Second)}
	if c.HostPrefix {
		v.Path = "/"
	}
	if value == "" {
		v.MaxAge = -1
	}
	h.Add("Set-Cookie", v.String())
}

// CheckSite refuses a request that presents the refresh cookie but comes
// from a page of another site, so that an attacker's page cannot make a
// browser refresh or log out with it (the cookie's SameSite=Strict is then
// not the only defence). With an Origin header, the origin must be the
// API's own (scheme and Host of r) or one of Origins; without one,
// Sec-Fetch-Site must be absent (not a browser), same-origin or none. A
// request without the cookie passes: it is not cookie-authenticated.
func (c Cookie) CheckSite(r *http.Request) error {
	if c.Value(r.Header) == "" {
		return nil
	}
	origin, site := r.Header.Get("Origin"), r.Header.Get("Sec-Fetch-Site")
	if origin == "" {
		switch site {
		case "", "same-origin", "none":
			return nil
		}
		return &SiteError{Message: "the refresh cookie is not accepted from a " + site + " request (Sec-Fetch-Site); send it from the API's own origin" + c.allowedHint()}
	}
	own := "http://" + r.Host
	if r.TLS != nil {
		own = "https://" + r.Host
	}
	if strings.EqualFold(origin, own) || slices.ContainsFunc(c.Origins, func(o string) bool { return strings.EqualFold(o, origin) }) {
		return nil
	}
	shown := origin
	if u, err := url.Parse(origin); err != nil || len(origin) > 200 || u.Host == "" {
		shown = "an unparsable origin"
	}
	return &SiteError{Message: "the refresh cookie is not accepted from origin " + shown + "; allowed: " + own + c.allowedHint()}
}

func (c Cookie) allowedHint() string {
	if len(c.Origins) == 0 {
		return ""
	}
	return ", " + strings.Join(c.Origins, ", ")
}

// SiteError is a cookie-authenticated request from another site.
type SiteError struct{ Message string }

func (e *SiteError) Error() string { return e.Message }

// cookieProcedures are the AuthService procedures the refresh cookie
// authenticates.
var cookieProcedures = []string{authv1connect.AuthServiceRefreshProcedure, authv1connect.AuthServiceLogoutProcedure}

// checkSite wraps the AuthService handler: a cookie-authenticated
// procedure called from another site is refused with PERMISSION_DENIED
// before the handler runs.
func (c Cookie) checkSite(next http.Handler) http.Handler {
	errw := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slices.Contains(cookieProcedures, r.URL.Path) {
			if err := c.CheckSite(r); err != nil {
				ce := connect.NewError(connect.CodePermissionDenied, err)
				ce.Meta().Set("Cache-Control", "no-store")
				if errw.IsSupported(r) {
					_ = errw.Write(w, r, ce)
				} else {
					http.Error(w, err.Error(), http.StatusForbidden)
				}
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
