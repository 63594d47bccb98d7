package token_test

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/sessiond/sessiond/clients/go/token"
)

// vectorFile is clients/testdata/token-vectors/access-v4.json, the access
// tokens and answers every client verifier (this package, the JS package)
// must agree on.
type vectorFile struct {
	Now                string `json:"now"`
	Issuer             string `json:"issuer"`
	Audience           string `json:"audience"`
	MaxLifetimeSeconds int    `json:"max_lifetime_seconds"`
	Keys               []struct {
		Kid    string `json:"kid"`
		PASERK string `json:"paserk"`
	} `json:"keys"`
	Vectors []struct {
		Name   string `json:"name"`
		Token  string `json:"token"`
		Reason string `json:"reason"`
		Claims *struct {
			Subject   string `json:"subject"`
			SessionID string `json:"sessionId"`
		} `json:"claims"`
	} `json:"vectors"`
}

// TestSharedVectors: VerifyAccess gives every vector's answer, the same
// file the JS verifier is tested with.
func TestSharedVectors(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/token-vectors/access-v4.json")
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("the shared vectors live in the sessiond repository, not in the published module")
	}
	if err != nil {
		t.Fatal(err)
	}
	var f vectorFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	now, err := time.Parse(time.RFC3339, f.Now)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range f.Keys {
		pub, err := token.ParsePublicPASERK(k.PASERK)
		if err != nil {
			t.Fatalf("key %s: %v", k.Kid, err)
		}
		keys[k.Kid] = pub
	}
	lookup := func(kid string) (ed25519.PublicKey, bool) { k, ok := keys[kid]; return k, ok }
	expect := token.Expectation{Issuer: f.Issuer, Audience: f.Audience, Now: now, MaxLifetime: time.Duration(f.MaxLifetimeSeconds) * time.Second}
	if len(f.Vectors) < 20 {
		t.Fatalf("only %d vectors", len(f.Vectors))
	}
	for _, v := range f.Vectors {
		c, err := token.VerifyAccess(v.Token, lookup, expect)
		if got := vectorReason(err); got != v.Reason {
			t.Errorf("%s: got %q (%v), want %q", v.Name, got, err, v.Reason)
			continue
		}
		if v.Claims != nil && (c.Subject != v.Claims.Subject || c.SessionID != v.Claims.SessionID) {
			t.Errorf("%s: claims sub %q sid %q, want %q %q", v.Name, c.Subject, c.SessionID, v.Claims.Subject, v.Claims.SessionID)
		}
	}
}

// vectorReason is the wire reason of a verification error.
func vectorReason(err error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{token.ErrExpired, "expired"}, {token.ErrNotYetValid, "not_yet_valid"}, {token.ErrUnknownKey, "unknown_key"},
		{token.ErrBadSignature, "invalid_signature"}, {token.ErrWrongAudience, "wrong_audience"},
		{token.ErrWrongIssuer, "wrong_issuer"}, {token.ErrWrongPurpose, "wrong_purpose"},
		{token.ErrLifetimeTooLong, "lifetime_too_long"},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	if err != nil {
		return "malformed"
	}
	return ""
}
