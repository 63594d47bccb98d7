package authsvc

import (
	"errors"
	"fmt"
	"time"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// Kind classifies an error of the auth service so that the API layer can
// map it to a status code without knowing the service's internals.
type Kind int

// The kinds of errors the service returns.
const (
	KindInternal        Kind = iota // a bug or an outage; details are logged, not returned
	KindInvalid                     // malformed input; 400
	KindUnauthenticated             // bad credentials or token; 401
	KindForbidden                   // authenticated but not allowed; 403
	KindNotFound                    // 404
	KindConflict                    // another device holds the platform; 409
	KindThrottled                   // too many attempts or too busy; 429
	KindUnavailable                 // no leader, no signing key yet; 503
)

// Error is the service's error: a kind, a code for machines and a message
// for humans that never holds a secret.
type Error struct {
	Kind    Kind
	Code    string // e.g. "invalid_credentials", "session_ended"
	Message string
	// RetryAfter is set for KindThrottled.
	RetryAfter time.Duration
	// Conflict is set for KindConflict: the session that holds the platform.
	Conflict *storev1.Session
	err      error
}

func (e *Error) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.err)
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.err }

func newErr(k Kind, code, msg string) *Error { return &Error{Kind: k, Code: code, Message: msg} }

func wrapErr(k Kind, code, msg string, err error) *Error {
	return &Error{Kind: k, Code: code, Message: msg, err: err}
}

// internal wraps an unexpected failure: its cause is logged here, and the
// caller only learns that something failed inside.
func (s *Service) internal(err error) *Error {
	s.d.Logger.Error("internal error", "err", err)
	return wrapErr(KindInternal, "internal", "internal error", err)
}

// ErrorKind returns the kind of err, KindInternal when it is not an *Error.
func ErrorKind(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

var (
	errInvalidCredentials = newErr(KindUnauthenticated, "invalid_credentials", "email or password is wrong")
	errSuspended          = newErr(KindForbidden, "account_suspended", "the account is suspended")
	errNoKey              = newErr(KindUnavailable, "no_signing_key", "the cluster has no signing key yet; retry shortly")
	errRefreshInvalid     = newErr(KindUnauthenticated, "invalid_refresh_token", "the refresh token is not valid")
	errRefreshReuse       = newErr(KindUnauthenticated, "refresh_token_reused", "the refresh token was already used; the session has ended")
	errSessionEnded       = newErr(KindUnauthenticated, "session_ended", "the session has ended")
	errSignupDisabled     = newErr(KindForbidden, "signup_disabled", "signup is not enabled on this cluster")
)
