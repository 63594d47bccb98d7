package checkreason

import (
	"testing"

	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
)

// TestRoundTrip: every enum value maps to one wire string and back, and no
// two values share a string.
func TestRoundTrip(t *testing.T) {
	seen := map[string]Reason{}
	all := All()
	if got, exp := len(all), len(sessionv1.CheckReason_name)-1; got != exp {
		t.Fatalf("All: got %d reasons, exp %d", got, exp)
	}
	for _, r := range all {
		s := String(r)
		if s == "" || s == "unknown" {
			t.Errorf("String(%v) = %q", r, s)
		}
		if prev, dup := seen[s]; dup {
			t.Errorf("String(%v) = %q, also the string of %v", r, s, prev)
		}
		seen[s] = r
		if got, ok := Parse(s); !ok || got != r {
			t.Errorf("Parse(%q) = %v, %v; exp %v, true", s, got, ok, r)
		}
	}
	if s := String(None); s != "" {
		t.Errorf("String(None) = %q, exp empty", s)
	}
	if r, ok := Parse(""); ok || r != None {
		t.Errorf(`Parse("") = %v, %v; exp None, false`, r, ok)
	}
	if r, ok := Parse("no_such_reason"); ok || r != None {
		t.Errorf(`Parse("no_such_reason") = %v, %v; exp None, false`, r, ok)
	}
	if s := String(Reason(999)); s != "unknown" {
		t.Errorf("String(999) = %q, exp unknown", s)
	}
}

// TestWireCompatible pins the strings sessiond answered with before the enum
// existed: clients in the field compare against them.
func TestWireCompatible(t *testing.T) {
	for r, exp := range map[Reason]string{
		Expired: "expired", NotYetValid: "not_yet_valid", Revoked: "revoked",
		SessionEnded: "session_ended", LoggedOutAll: "user_logged_out_everywhere",
		UnknownKey: "unknown_key", Malformed: "malformed", InvalidSignature: "invalid_signature",
		WrongAudience: "wrong_audience", WrongIssuer: "wrong_issuer", WrongPurpose: "wrong_purpose",
		SessionNotFound: "session_not_found", MissingToken: "missing_token", InternalError: "internal_error",
	} {
		if got := String(r); got != exp {
			t.Errorf("String(%v): got %q, exp %q", r, got, exp)
		}
	}
}
