//go:build ignore

// Command gen writes access-v4.json: sessiond access tokens signed by
// sessiond's own token package (clients/go/token, and go-paseto for tokens it
// would refuse to sign), each with the reason sessiond's Go verifier
// (token.VerifyAccess, the code under CheckToken and the Go SDK) gives for
// it at a fixed time. Any client verifier must give the same answers.
// From the repository root:
//
//	go run ./clients/testdata/token-vectors/gen.go > clients/testdata/token-vectors/access-v4.json
//
// The Go SDK (clients/go/token) and the JS package (clients/js) both test
// their verifiers against the file.
package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log"
	"os"
	"strings"
	"time"

	"aidanwoods.dev/go-paseto"

	"github.com/sessiond/sessiond/clients/go/token"
)

type vector struct {
	Name   string          `json:"name"`
	Token  string          `json:"token"`
	Reason string          `json:"reason"` // "" when the token is accepted
	Claims json.RawMessage `json:"claims,omitempty"`
}

type key struct {
	Kid    string `json:"kid"`
	PASERK string `json:"paserk"`
}

type file struct {
	Comment  string `json:"comment"`
	Now      string `json:"now"`
	Issuer   string `json:"issuer"`
	Audience string `json:"audience"`
	// MaxLifetimeSeconds is the verifier's bound on exp - iat.
	MaxLifetimeSeconds int      `json:"max_lifetime_seconds"`
	Keys               []key    `json:"keys"`
	Vectors            []vector `json:"vectors"`
}

func keyFrom(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(label))
	return ed25519.NewKeyFromSeed(seed[:])
}

// reason maps a verification error as the Go SDK does (api/guard tokenReason).
func reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, token.ErrExpired):
		return "expired"
	case errors.Is(err, token.ErrNotYetValid):
		return "not_yet_valid"
	case errors.Is(err, token.ErrUnknownKey):
		return "unknown_key"
	case errors.Is(err, token.ErrBadSignature):
		return "invalid_signature"
	case errors.Is(err, token.ErrWrongAudience):
		return "wrong_audience"
	case errors.Is(err, token.ErrWrongIssuer):
		return "wrong_issuer"
	case errors.Is(err, token.ErrWrongPurpose):
		return "wrong_purpose"
	case errors.Is(err, token.ErrLifetimeTooLong):
		return "lifetime_too_long"
	default:
		return "malformed"
	}
}

func main() {
	priv, other := keyFrom("sessiond access token vectors: signing key"), keyFrom("sessiond access token vectors: another key")
	pub := priv.Public().(ed25519.PublicKey)
	kid, otherKid := token.PID(pub), token.PID(other.Public().(ed25519.PublicKey))
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	const iss, aud = "https://auth.example.com", "sessiond"
	const maxLifetime = 30 * time.Minute // auth.max_access_lifetime's default
	base := token.AccessClaims{Issuer: iss, Subject: "user-1", Audience: aud,
		IssuedAt: now.Add(-time.Minute + 123456789), Expiration: now.Add(14 * time.Minute),
		TokenID: "jti-1", SessionID: "sess-1", OrgID: "org-1", OrgType: "customer", Country: "KR",
		Roles: []string{"user", "customs-agent"}, Platform: "web"}
	sign := func(c token.AccessClaims) string {
		t, err := token.SignAccess(c, kid, priv)
		if err != nil {
			log.Fatal(err)
		}
		return t
	}
	raw := func(claims string, footer string, k ed25519.PrivateKey) string {
		t, err := paseto.NewTokenFromClaimsJSON([]byte(claims), []byte(footer))
		if err != nil {
			log.Fatal(err)
		}
		sk, err := paseto.NewV4AsymmetricSecretKeyFromEd25519(k)
		if err != nil {
			log.Fatal(err)
		}
		return t.V4Sign(sk, nil)
	}
	with := func(f func(*token.AccessClaims)) token.AccessClaims { c := base; f(&c); return c }
	valid := sign(base)
	parts := strings.Split(valid, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[2])
	flip := func(i int) string {
		p := append([]byte(nil), payload...)
		p[i] ^= 1
		return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(p) + "." + parts[3]
	}
	good := `{"iss":"` + iss + `","sub":"user-1","aud":"` + aud + `","exp":"2030-01-02T03:18:05Z","iat":"2030-01-02T03:03:05Z","sid":"s"}`
	cases := []struct{ name, tok, want string }{
		{"valid", valid, ""},
		{"valid_with_nbf_now", sign(with(func(c *token.AccessClaims) { c.NotBefore = now })), ""},
		{"expired", sign(with(func(c *token.AccessClaims) {
			c.IssuedAt, c.Expiration = now.Add(-15*time.Minute), now.Add(-time.Second)
		})), "expired"},
		{"expires_exactly_now", sign(with(func(c *token.AccessClaims) { c.IssuedAt, c.Expiration = now.Add(-15*time.Minute), now })), "expired"},
		{"issued_in_the_future", sign(with(func(c *token.AccessClaims) { c.IssuedAt, c.Expiration = now.Add(time.Minute), now.Add(15*time.Minute) })), "not_yet_valid"},
		{"not_before_in_the_future", sign(with(func(c *token.AccessClaims) { c.NotBefore = now.Add(time.Minute) })), "not_yet_valid"},
		{"wrong_audience", sign(with(func(c *token.AccessClaims) { c.Audience = "billing" })), "wrong_audience"},
		{"wrong_issuer", sign(with(func(c *token.AccessClaims) { c.Issuer = "https://evil.example.com" })), "wrong_issuer"},
		{"wrong_issuer_and_expired", sign(with(func(c *token.AccessClaims) {
			c.Issuer, c.IssuedAt, c.Expiration = "https://evil.example.com", now.Add(-15*time.Minute), now.Add(-time.Second)
		})), "wrong_issuer"},
		{"signature_bit_flipped", flip(len(payload) - 1), "invalid_signature"},
		{"claims_bit_flipped", flip(2), "invalid_signature"},
		{"other_key_claiming_known_kid", raw(good, `{"kid":"`+kid+`"}`, other), "invalid_signature"},
		{"unknown_kid", raw(good, `{"kid":"`+otherKid+`"}`, other), "unknown_key"},
		{"footer_not_exact", raw(good, `{"kid": "`+kid+`"}`, priv), "malformed"},
		{"footer_extra_field", raw(good, `{"kid":"`+kid+`","x":1}`, priv), "malformed"},
		{"no_footer", strings.Join(parts[:3], "."), "malformed"},
		{"missing_sub", raw(strings.Replace(good, `"sub":"user-1",`, "", 1), `{"kid":"`+kid+`"}`, priv), "malformed"},
		{"missing_iat", raw(strings.Replace(good, `,"iat":"2030-01-02T03:03:05Z"`, "", 1), `{"kid":"`+kid+`"}`, priv), "malformed"},
		{"missing_exp", raw(strings.Replace(good, `"exp":"2030-01-02T03:18:05Z",`, "", 1), `{"kid":"`+kid+`"}`, priv), "malformed"},
		{"v2_local", "v2.local.QAxIpVe-ECVNI1z4xQbm_qQYomyT3h8FtV8bxkz8pBJWkT8f7HtlOpbroPDEZUKop_vaglyp76CzYy375cHmKCW8e1CCkV0Lflu4GTDyXMqQdpZMM1E6OaoQW27gaRSvWBrR3IgbFIa0AkuUFw.UGFyYWdvbiBJbml0aWF0aXZlIEVudGVycHJpc2Vz", "wrong_purpose"},
		{"jwt", "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl", "wrong_purpose"},
		{"garbage", "not-a-token", "malformed"},
		{"lifetime_ten_years", sign(with(func(c *token.AccessClaims) { c.Expiration = c.IssuedAt.Add(10 * 365 * 24 * time.Hour) })), "lifetime_too_long"},
	}
	lookup := func(k string) (ed25519.PublicKey, bool) { return pub, k == kid }
	out := file{
		Comment: "Generated by gen.go from sessiond's Go token package; every client verifier must give these answers at `now`.",
		Now:     now.Format(time.RFC3339), Issuer: iss, Audience: aud, MaxLifetimeSeconds: int(maxLifetime.Seconds()),
		Keys: []key{{Kid: kid, PASERK: token.PublicKeyPASERK(pub)}},
	}
	for _, c := range cases {
		claims, err := token.VerifyAccess(c.tok, lookup, token.Expectation{Issuer: iss, Audience: aud, Now: now, MaxLifetime: maxLifetime})
		if got := reason(err); got != c.want {
			log.Fatalf("%s: the Go verifier says %q (%v), the vector wants %q", c.name, got, err, c.want)
		}
		v := vector{Name: c.name, Token: c.tok, Reason: c.want}
		if err == nil {
			v.Claims, _ = json.Marshal(map[string]any{"subject": claims.Subject, "sessionId": claims.SessionID,
				"tokenId": claims.TokenID, "issuedAt": claims.IssuedAt.Format(time.RFC3339Nano), "roles": claims.Roles,
				"orgId": claims.OrgID, "country": claims.Country, "platform": claims.Platform})
		}
		out.Vectors = append(out.Vectors, v)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		log.Fatal(err)
	}
}
