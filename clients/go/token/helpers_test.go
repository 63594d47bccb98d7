package token

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	testIssuer   = "https://auth.example.test"
	testAudience = "api.example.test"
)

// testSigner is a deterministic Ed25519 key and its k4.pid.
type testSigner struct {
	kid  string
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

func newSigner(fill byte) testSigner {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{fill}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	return testSigner{kid: PID(pub), priv: priv, pub: pub}
}

// lookup returns a KeyLookup knowing signers, and a counter of its calls.
func lookup(signers ...testSigner) (KeyLookup, *atomic.Int64) {
	m := map[string]ed25519.PublicKey{}
	for _, s := range signers {
		m[s.kid] = s.pub
	}
	var calls atomic.Int64
	return func(kid string) (ed25519.PublicKey, bool) {
		calls.Add(1)
		k, ok := m[kid]
		return k, ok
	}, &calls
}

func expectAt(now time.Time) Expectation {
	return Expectation{Issuer: testIssuer, Audience: testAudience, Now: now}
}

func sampleAccess() AccessClaims {
	return AccessClaims{
		Issuer: testIssuer, Subject: "user-123", Audience: testAudience,
		Expiration: t0.Add(15 * time.Minute), NotBefore: t0, IssuedAt: t0,
		TokenID: "at-1", SessionID: "sess-1", OrgID: "org-9", OrgType: "clinic", Country: "FR",
		Roles: []string{"admin", "viewer"}, Platform: "web",
	}
}

func sampleRefresh() RefreshClaims {
	return RefreshClaims{
		Issuer: testIssuer, Audience: testIssuer, Subject: "user-123", TokenID: "rt-1",
		SessionID: "sess-1", Family: "fam-1", IssuedAt: t0, Expiration: t0.Add(30 * 24 * time.Hour),
	}
}

var sentinels = []error{ErrMalformed, ErrUnknownKey, ErrBadSignature, ErrExpired, ErrNotYetValid, ErrWrongIssuer, ErrWrongAudience, ErrWrongPurpose}

// sentinelOf returns the single sentinel err wraps, failing if none or
// several.
func sentinelOf(t testing.TB, err error) error {
	t.Helper()
	var found []error
	for _, s := range sentinels {
		if errors.Is(err, s) {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("error %v wraps sentinels %v, want exactly one", err, found)
	}
	return found[0]
}

// must returns v, panicking on err; for building test inputs only.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
