package guard

import (
	"errors"

	"github.com/sessiond/sessiond/clients/go/checkreason"
	"github.com/sessiond/sessiond/clients/go/token"
)

// Sentinel errors. Check's refusals wrap exactly one of ErrUnauthenticated
// (always as an *AuthError) or ErrStale; CheckAction adds ErrForbidden.
var (
	// ErrUnauthenticated: the token is not acceptable. The error is an
	// *AuthError, which also wraps the precise cause: one of the token
	// package sentinels (token.ErrExpired, token.ErrBadSignature, ...) or
	// ErrRevoked.
	ErrUnauthenticated = errors.New("guard: unauthenticated")
	// ErrRevoked: the token's session ended, its id was revoked, or its
	// user logged out everywhere after it was issued. Always wrapped with
	// ErrUnauthenticated in an *AuthError.
	ErrRevoked = errors.New("guard: token revoked")
	// ErrStale: the revocation watch has delivered nothing for longer than
	// Config.MaxStaleness (or has not loaded its first snapshot) and either
	// OnStale is FailClosed or no node answered the remote check. The token
	// may be fine; ask again later (HTTP 503 / Connect Unavailable).
	ErrStale = errors.New("guard: revocation state is stale")
	// ErrForbidden: the token is valid but the rules do not allow the
	// action on the resource.
	ErrForbidden = errors.New("guard: forbidden")
)

// AuthError is a refused token. errors.Is(err, ErrUnauthenticated) holds,
// and so does errors.Is(err, cause) for Err.
type AuthError struct {
	// Reason is why, in sessiond's one vocabulary of check reasons (the
	// proto enum sessiond.session.v1.CheckReason); checkreason.String gives
	// its wire string. It is checkreason.None only for a remote check whose
	// answer this build does not know (WireReason then gives it).
	Reason checkreason.Reason
	// Err is the cause: a token package sentinel (wrapped with detail),
	// ErrRevoked, or nil for an unrecognised remote reason.
	Err error
	// EndReason is the session's end reason when Reason is SessionEnded or
	// LoggedOutAll and the node said it (a watcher needs the watch:details
	// scope): logout, forced_out, admin_revoked, refresh_reuse, expired,
	// logout_all, replaced.
	EndReason string

	remote string // a remote reason this build does not know
}

// WireReason is the reason's wire string ("session_ended"), as sessiond's
// CheckToken, the HTTP middleware and the WebSocket close reason write it.
func (e *AuthError) WireReason() string {
	if e.Reason != checkreason.None {
		return checkreason.String(e.Reason)
	}
	if e.remote != "" {
		return e.remote
	}
	return "inactive"
}

// Error describes the refusal; it never contains the token.
func (e *AuthError) Error() string {
	s := "guard: access token not accepted: " + e.WireReason()
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns ErrUnauthenticated and the cause.
func (e *AuthError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrUnauthenticated}
	}
	return []error{ErrUnauthenticated, e.Err}
}

// tokenError wraps a token package verification error.
func tokenError(err error) *AuthError {
	return &AuthError{Reason: tokenReason(err), Err: err}
}

func tokenReason(err error) checkreason.Reason {
	switch {
	case errors.Is(err, token.ErrExpired):
		return checkreason.Expired
	case errors.Is(err, token.ErrNotYetValid):
		return checkreason.NotYetValid
	case errors.Is(err, token.ErrUnknownKey):
		return checkreason.UnknownKey
	case errors.Is(err, token.ErrBadSignature):
		return checkreason.InvalidSignature
	case errors.Is(err, token.ErrWrongAudience):
		return checkreason.WrongAudience
	case errors.Is(err, token.ErrWrongIssuer):
		return checkreason.WrongIssuer
	case errors.Is(err, token.ErrWrongPurpose):
		return checkreason.WrongPurpose
	case errors.Is(err, token.ErrLifetimeTooLong):
		return checkreason.LifetimeTooLong
	default:
		return checkreason.Malformed
	}
}

// remoteError turns a node's inactive answer into an *AuthError.
func remoteError(wire, endReason string) *AuthError {
	reason, _ := checkreason.Parse(wire)
	var cause error
	switch reason {
	case checkreason.Revoked, checkreason.SessionEnded, checkreason.LoggedOutAll, checkreason.SessionNotFound,
		checkreason.AccountSuspended, checkreason.AccountChanged, checkreason.UpstreamRevoked:
		cause = ErrRevoked
	case checkreason.Expired:
		cause = token.ErrExpired
	case checkreason.NotYetValid:
		cause = token.ErrNotYetValid
	case checkreason.UnknownKey:
		cause = token.ErrUnknownKey
	case checkreason.InvalidSignature:
		cause = token.ErrBadSignature
	case checkreason.WrongAudience:
		cause = token.ErrWrongAudience
	case checkreason.WrongIssuer:
		cause = token.ErrWrongIssuer
	case checkreason.WrongPurpose:
		cause = token.ErrWrongPurpose
	case checkreason.Malformed:
		cause = token.ErrMalformed
	case checkreason.LifetimeTooLong:
		cause = token.ErrLifetimeTooLong
	}
	if endReason != "" && cause != nil {
		cause = &detailError{cause, "session end reason " + endReason}
	}
	e := &AuthError{Reason: reason, Err: cause, EndReason: endReason}
	if reason == checkreason.None {
		e.remote = wire
	}
	return e
}

// detailError adds detail to a sentinel.
type detailError struct {
	err    error
	detail string
}

func (e *detailError) Error() string { return e.err.Error() + ": " + e.detail }
func (e *detailError) Unwrap() error { return e.err }
