// Package idp holds sessiond's upstream identity providers: the services
// that can tell the auth service who a user is when the user signs in with
// them rather than with a password. Each provider is one implementation of
// Provider: OIDC is any OpenID provider found by discovery (Google, Kakao,
// LINE, Microsoft, Keycloak, ...) driven by coreos/go-oidc and
// golang.org/x/oauth2; WeChat is WeChat's OAuth2 web login, which is not
// OpenID Connect. A provider only verifies; linking the identity to a user
// and opening a session are the auth service's (authsvc).
//
// Nothing here logs or returns a token or a secret in an error message.
package idp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Identity is who an upstream provider says the user is.
type Identity struct {
	// Provider is the configured provider name ("google").
	Provider string
	// Subject is the provider's stable, unique id of the user: the ID
	// token's sub, WeChat's unionid (else openid).
	Subject string
	// Email and EmailVerified are what the provider says of the user's
	// address; EmailVerified is true only when the provider says so.
	Email         string
	EmailVerified bool
	// Name is a display name, when the provider gives one.
	Name string
	// Claims are the verified claims (ID token, then userinfo for the
	// names the ID token lacks), for the mapping rules.
	Claims map[string]any
}

// Grant is the outcome of a successful code exchange or refresh.
type Grant struct {
	Identity Identity
	// RefreshToken is the upstream refresh token ("" when none was given;
	// after a refresh, "" means the old one stays valid).
	RefreshToken string
}

// AuthRequest is one authorization request: the values the flow made and
// must find again at the callback.
type AuthRequest struct {
	State string
	// Nonce and Verifier (PKCE, RFC 7636, S256) are used by providers that
	// support them; others ignore them.
	Nonce       string
	Verifier    string
	RedirectURL string
}

// Provider is one upstream identity provider.
type Provider interface {
	// Name is the configured name, used in routes and links.
	Name() string
	// AuthURL returns where to send the browser to sign in.
	AuthURL(ctx context.Context, req AuthRequest) (string, error)
	// Exchange redeems the authorization code of req's callback and
	// returns the verified identity. Errors are *Error.
	Exchange(ctx context.Context, req AuthRequest, code string) (*Grant, error)
	// Refresh uses an upstream refresh token to ask whether the provider
	// still accepts the user; it returns ErrRevoked (wrapped) when the
	// provider answers that the grant is gone (invalid_grant: account
	// deleted or disabled, access revoked, token expired), another
	// *Error when it cannot tell. The Grant's Identity holds at least the
	// Subject when the provider says who it is.
	Refresh(ctx context.Context, refreshToken string) (*Grant, error)
}

// ErrRevoked: the provider no longer accepts the user's grant.
var ErrRevoked = errors.New("idp: the upstream provider revoked the grant")

// Error codes of *Error.
const (
	// CodeDenied: the user or the provider refused (error=access_denied).
	CodeDenied = "upstream_denied"
	// CodeInvalidToken: the ID token (or the answer standing for it) did
	// not verify: signature, issuer, audience, expiry, nonce.
	CodeInvalidToken = "upstream_invalid_token"
	// CodeExchange: the provider refused the code (invalid_grant: a code
	// used twice, expired, or not issued to us).
	CodeExchange = "upstream_code_refused"
	// CodeUnavailable: the provider could not be reached or answered
	// something unusable; a retry may work.
	CodeUnavailable = "upstream_unavailable"
)

// Error is a provider failure with a message fit for the user's error page
// and the audit log (it never holds a token or a secret).
type Error struct {
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

func errorf(code string, err error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// MaxResponseBytes bounds every answer read from a provider.
const MaxResponseBytes = 1 << 20

// HTTPClient returns the client providers use when none is given: a
// timeout per request and answers bounded to MaxResponseBytes.
func HTTPClient(timeout time.Duration, base http.RoundTripper) *http.Client {
	if base == nil {
		base = http.DefaultTransport
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &http.Client{Timeout: timeout, Transport: boundedTransport{base},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// boundedTransport cuts every response body at MaxResponseBytes.
type boundedTransport struct{ rt http.RoundTripper }

func (t boundedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, MaxResponseBytes), resp.Body}
	return resp, nil
}
