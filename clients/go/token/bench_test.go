package token

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

func BenchmarkSignAccess(b *testing.B) {
	a := newSigner(1)
	c := sampleAccess()
	for b.Loop() {
		if _, err := SignAccess(c, a.kid, a.priv); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAccessSigner is SignAccess with the key prepared once, as the
// daemon signs.
func BenchmarkAccessSigner(b *testing.B) {
	a := newSigner(1)
	c := sampleAccess()
	s, err := NewAccessSigner(a.kid, a.priv)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Sign(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyAccess(b *testing.B) {
	a := newSigner(1)
	keys, _ := lookup(a)
	tok := must(SignAccess(sampleAccess(), a.kid, a.priv))
	e := expectAt(t0.Add(time.Minute))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyAccess(tok, keys, e); err != nil {
			b.Fatal(err)
		}
	}
}

// pae is PASETO's pre-authentication encoding (an independent copy, used
// to build the exact message Ed25519 signs for a v4.public token).
func pae(pieces ...[]byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(pieces)))
	for _, p := range pieces {
		out = binary.LittleEndian.AppendUint64(out, uint64(len(p)))
		out = append(out, p...)
	}
	return out
}

// pasetoSigned returns the message and signature of a v4.public token.
func pasetoSigned(tb testing.TB, tok string) (msg, sig []byte) {
	tb.Helper()
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		tb.Fatal(err)
	}
	footer, err := base64.RawURLEncoding.DecodeString(parts[3])
	if err != nil {
		tb.Fatal(err)
	}
	body, sig := payload[:len(payload)-64], payload[len(payload)-64:]
	return pae([]byte("v4.public."), body, footer, nil), sig
}

// BenchmarkEd25519VerifyBare is the floor for BenchmarkVerifyAccess: a bare
// ed25519.Verify of the very message the access token signs.
func BenchmarkEd25519VerifyBare(b *testing.B) {
	a := newSigner(1)
	msg, sig := pasetoSigned(b, must(SignAccess(sampleAccess(), a.kid, a.priv)))
	for b.Loop() {
		if !ed25519.Verify(a.pub, msg, sig) {
			b.Fatal("verify failed")
		}
	}
}

func BenchmarkVerifyRefresh(b *testing.B) {
	a := newSigner(1)
	keys, _ := lookup(a)
	tok := must(SignRefresh(sampleRefresh(), a.kid, a.priv))
	e := Expectation{Issuer: testIssuer, Audience: testIssuer, Now: t0.Add(time.Minute)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyRefresh(tok, keys, e); err != nil {
			b.Fatal(err)
		}
	}
}

func TestIndependentPAEMatches(t *testing.T) {
	a := newSigner(1)
	msg, sig := pasetoSigned(t, must(SignAccess(sampleAccess(), a.kid, a.priv)))
	if !ed25519.Verify(a.pub, msg, sig) {
		t.Fatal("signature does not verify over PAE(header, body, footer, \"\") computed independently")
	}
}
