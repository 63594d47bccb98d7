package guard

import (
	"errors"

	"github.com/sessiond/sessiond/authsvc/token"
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

// Reasons an *AuthError gives, the same strings sessiond's CheckToken
// answers with.
const (
	ReasonExpired         = "expired"
	ReasonNotYetValid     = "not_yet_valid"
	ReasonRevoked         = "revoked"
	ReasonSessionEnded    = "session_ended"
	ReasonLoggedOutAll    = "user_logged_out_everywhere"
	ReasonUnknownKey      = "unknown_key"
	ReasonMalformed       = "malformed"
	ReasonBadSignature    = "invalid_signature"
	ReasonWrongAudience   = "wrong_audience"
	ReasonWrongIssuer     = "wrong_issuer"
	ReasonWrongPurpose    = "wrong_purpose"
	ReasonSessionNotFound = "session_not_found"
	ReasonMissing         = "missing_token"
	ReasonLifetimeTooLong = "lifetime_too_long"
)

// AuthError is a refused token. errors.Is(err, ErrUnauthenticated) holds,
// and so does errors.Is(err, cause) for Err.
type AuthError struct {
	// Reason is one of the Reason constants (or, from a remote check, any
	// reason string the node gave).
	Reason string
	// Err is the cause: a token package sentinel (wrapped with detail),
	// ErrRevoked, or nil for an unrecognised remote reason.
	Err error
}

// Error describes the refusal; it never contains the token.
func (e *AuthError) Error() string {
	s := "guard: access token not accepted: " + e.Reason
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

func tokenReason(err error) string {
	switch {
	case errors.Is(err, token.ErrExpired):
		return ReasonExpired
	case errors.Is(err, token.ErrNotYetValid):
		return ReasonNotYetValid
	case errors.Is(err, token.ErrUnknownKey):
		return ReasonUnknownKey
	case errors.Is(err, token.ErrBadSignature):
		return ReasonBadSignature
	case errors.Is(err, token.ErrWrongAudience):
		return ReasonWrongAudience
	case errors.Is(err, token.ErrWrongIssuer):
		return ReasonWrongIssuer
	case errors.Is(err, token.ErrWrongPurpose):
		return ReasonWrongPurpose
	case errors.Is(err, token.ErrLifetimeTooLong):
		return ReasonLifetimeTooLong
	default:
		return ReasonMalformed
	}
}

// remoteError turns a node's inactive answer into an *AuthError.
func remoteError(reason, endReason string) *AuthError {
	var cause error
	switch reason {
	case ReasonRevoked, ReasonSessionEnded, ReasonLoggedOutAll, ReasonSessionNotFound:
		cause = ErrRevoked
	case ReasonExpired:
		cause = token.ErrExpired
	case ReasonNotYetValid:
		cause = token.ErrNotYetValid
	case ReasonUnknownKey:
		cause = token.ErrUnknownKey
	case ReasonBadSignature:
		cause = token.ErrBadSignature
	case ReasonWrongAudience:
		cause = token.ErrWrongAudience
	case ReasonWrongIssuer:
		cause = token.ErrWrongIssuer
	case ReasonWrongPurpose:
		cause = token.ErrWrongPurpose
	case ReasonMalformed:
		cause = token.ErrMalformed
	case ReasonLifetimeTooLong:
		cause = token.ErrLifetimeTooLong
	}
	if reason == "" {
		reason = "inactive"
	}
	if endReason != "" && cause != nil {
		cause = &detailError{cause, "session end reason " + endReason}
	}
	return &AuthError{Reason: reason, Err: cause}
}

// detailError adds detail to a sentinel.
type detailError struct {
	err    error
	detail string
}

func (e *detailError) Error() string { return e.err.Error() + ": " + e.detail }
func (e *detailError) Unwrap() error { return e.err }
