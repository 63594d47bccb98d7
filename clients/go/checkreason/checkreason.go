// Package checkreason converts the check reasons of sessiond's one
// vocabulary, the proto enum sessiond.session.v1.CheckReason, to and from the
// strings written on the wire ("expired", "session_ended", ...).
//
// The wire string of a value is its enum name without the CHECK_REASON_
// prefix, in lower case. The table is built once from the enum's descriptor,
// so a value added to the proto has its string at once, and no string is
// written by hand anywhere else.
package checkreason

import (
	"strings"

	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
)

// Reason is a check reason: sessionv1.CheckReason.
type Reason = sessionv1.CheckReason

// The reasons, by their short names.
const (
	None             = sessionv1.CheckReason_CHECK_REASON_UNSPECIFIED
	Expired          = sessionv1.CheckReason_CHECK_REASON_EXPIRED
	NotYetValid      = sessionv1.CheckReason_CHECK_REASON_NOT_YET_VALID
	Revoked          = sessionv1.CheckReason_CHECK_REASON_REVOKED
	SessionEnded     = sessionv1.CheckReason_CHECK_REASON_SESSION_ENDED
	LoggedOutAll     = sessionv1.CheckReason_CHECK_REASON_USER_LOGGED_OUT_EVERYWHERE
	UnknownKey       = sessionv1.CheckReason_CHECK_REASON_UNKNOWN_KEY
	Malformed        = sessionv1.CheckReason_CHECK_REASON_MALFORMED
	InvalidSignature = sessionv1.CheckReason_CHECK_REASON_INVALID_SIGNATURE
	WrongAudience    = sessionv1.CheckReason_CHECK_REASON_WRONG_AUDIENCE
	WrongIssuer      = sessionv1.CheckReason_CHECK_REASON_WRONG_ISSUER
	WrongPurpose     = sessionv1.CheckReason_CHECK_REASON_WRONG_PURPOSE
	SessionNotFound  = sessionv1.CheckReason_CHECK_REASON_SESSION_NOT_FOUND
	MissingToken     = sessionv1.CheckReason_CHECK_REASON_MISSING_TOKEN
	InternalError    = sessionv1.CheckReason_CHECK_REASON_INTERNAL_ERROR
	AccountSuspended = sessionv1.CheckReason_CHECK_REASON_ACCOUNT_SUSPENDED
	AccountChanged   = sessionv1.CheckReason_CHECK_REASON_ACCOUNT_CHANGED
	LifetimeTooLong  = sessionv1.CheckReason_CHECK_REASON_LIFETIME_TOO_LONG
	UpstreamRevoked  = sessionv1.CheckReason_CHECK_REASON_UPSTREAM_REVOKED
)

const prefix = "CHECK_REASON_"

var (
	toWire   = map[Reason]string{}
	fromWire = map[string]Reason{}
)

func init() {
	values := sessionv1.CheckReason(0).Descriptor().Values()
	for i := range values.Len() {
		v := values.Get(i)
		r := Reason(v.Number())
		if r == None {
			continue
		}
		s := strings.ToLower(strings.TrimPrefix(string(v.Name()), prefix))
		toWire[r] = s
		fromWire[s] = r
	}
}

// String returns r's wire string: "" for None, "unknown" for a value this
// build does not know.
func String(r Reason) string {
	if r == None {
		return ""
	}
	if s, ok := toWire[r]; ok {
		return s
	}
	return "unknown"
}

// Parse returns the reason a wire string names, and false (with None) for ""
// or a string this build does not know.
func Parse(s string) (Reason, bool) {
	r, ok := fromWire[s]
	return r, ok
}

// All returns every reason but None, in enum order.
func All() []Reason {
	values := sessionv1.CheckReason(0).Descriptor().Values()
	out := make([]Reason, 0, values.Len())
	for i := range values.Len() {
		if r := Reason(values.Get(i).Number()); r != None {
			out = append(out, r)
		}
	}
	return out
}
