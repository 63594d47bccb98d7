package token

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

func TestRefreshRoundTrip(t *testing.T) {
	a := newSigner(1)
	keys, _ := lookup(a)
	c := sampleRefresh()
	tok := must(SignRefresh(c, a.kid, a.priv))
	parts := strings.Split(tok, ".")
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var h map[string]any
	if err := json.Unmarshal(hdr, &h); err != nil {
		t.Fatal(err)
	}
	if h["alg"] != "EdDSA" || h["kid"] != a.kid {
		t.Fatalf("header = %s, want alg EdDSA and kid %s", hdr, a.kid)
	}
	body, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"iss", "aud", "sub", "jti", "sid", "fam", "exp", "iat"} {
		if _, ok := m[k]; !ok {
			t.Errorf("payload %s lacks %q", body, k)
		}
	}
	if m["token_use"] != "refresh" {
		t.Errorf("token_use = %v, want refresh", m["token_use"])
	}
	got, err := VerifyRefresh(tok, keys, Expectation{Issuer: testIssuer, Audience: testIssuer, Now: t0.Add(time.Hour)})
	if err != nil {
		t.Fatalf("VerifyRefresh: %v", err)
	}
	if diff := cmp.Diff(&c, got); diff != "" {
		t.Fatalf("claims differ (-signed +verified):\n%s", diff)
	}
}

func TestAccessJWTRoundTrip(t *testing.T) {
	a := newSigner(1)
	keys, _ := lookup(a)
	c := sampleAccess()
	tok := must(SignAccessJWT(c, a.kid, a.priv))
	got, err := VerifyAccessJWT(tok, keys, expectAt(t0.Add(time.Minute)))
	if err != nil {
		t.Fatalf("VerifyAccessJWT: %v", err)
	}
	if diff := cmp.Diff(&c, got); diff != "" {
		t.Fatalf("claims differ (-signed +verified):\n%s", diff)
	}
}

// rawJWT signs arbitrary claims with header alg/kid, bypassing checks.
func rawJWT(t *testing.T, s testSigner, kid any, claims jwt.MapClaims) string {
	t.Helper()
	tk := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	if kid != nil {
		tk.Header["kid"] = kid
	}
	return must(tk.SignedString(s.priv))
}

func TestVerifyRefreshRefusals(t *testing.T) {
	a, b, c := newSigner(1), newSigner(2), newSigner(3)
	keys, calls := lookup(a, b)
	rc := sampleRefresh()
	good := must(SignRefresh(rc, a.kid, a.priv))
	now := t0.Add(time.Hour)
	exp := Expectation{Issuer: testIssuer, Audience: testIssuer, Now: now}

	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		m := jwt.MapClaims{"iss": testIssuer, "aud": testIssuer, "sub": "u", "jti": "j", "sid": "s", "fam": "f",
			"iat": t0.Unix(), "exp": t0.Add(24 * time.Hour).Unix(), "token_use": "refresh"}
		mod(m)
		return m
	}
	otherIss, otherAud := rc, rc
	otherIss.Issuer, otherAud.Audience = "https://evil.test", "elsewhere"
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(func(jwt.MapClaims) {}))
	hs.Header["kid"] = a.kid
	hsTok := must(hs.SignedString([]byte(a.pub))) // HMAC keyed with the public key: classic confusion
	none := jwt.NewWithClaims(jwt.SigningMethodNone, claims(func(jwt.MapClaims) {}))
	none.Header["kid"] = a.kid
	noneTok := must(none.SignedString(jwt.UnsafeAllowNoneSignatureType))
	parts := strings.Split(good, ".")
	swappedKid := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","kid":"`+b.kid+`","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2]

	cases := []struct {
		name  string
		token string
		at    time.Time
		want  error
	}{
		{"tampered payload (other sub)", parts[0] + "." + tamperJWTPayload(t, parts[1]) + "." + parts[2], now, ErrBadSignature},
		{"tampered payload (broken JSON)", parts[0] + "." + flipJWTChar(parts[1]) + "." + parts[2], now, ErrMalformed},
		{"tampered signature", parts[0] + "." + parts[1] + "." + flipJWTChar(parts[2]), now, ErrBadSignature},
		{"header kid swapped", swappedKid, now, ErrBadSignature},
		{"unknown kid", must(SignRefresh(rc, c.kid, c.priv)), now, ErrUnknownKey},
		{"no kid", rawJWT(t, a, nil, claims(func(jwt.MapClaims) {})), now, ErrMalformed},
		{"kid not a pid", rawJWT(t, a, "key-1", claims(func(jwt.MapClaims) {})), now, ErrMalformed},
		{"kid not a string", rawJWT(t, a, 7, claims(func(jwt.MapClaims) {})), now, ErrMalformed},
		{"HS256 with public key", hsTok, now, ErrBadSignature},
		{"alg none", noneTok, now, ErrBadSignature},
		{"expired", good, rc.Expiration, ErrExpired},
		{"iat in future", good, t0.Add(-time.Minute), ErrNotYetValid},
		{"nbf in future", rawJWT(t, a, a.kid, claims(func(m jwt.MapClaims) { m["nbf"] = now.Add(time.Hour).Unix() })), now, ErrNotYetValid},
		{"no exp", rawJWT(t, a, a.kid, claims(func(m jwt.MapClaims) { delete(m, "exp") })), now, ErrMalformed},
		{"no iat", rawJWT(t, a, a.kid, claims(func(m jwt.MapClaims) { delete(m, "iat") })), now, ErrMalformed},
		{"no fam", rawJWT(t, a, a.kid, claims(func(m jwt.MapClaims) { delete(m, "fam") })), now, ErrMalformed},
		{"no token_use", rawJWT(t, a, a.kid, claims(func(m jwt.MapClaims) { delete(m, "token_use") })), now, ErrWrongPurpose},
		{"wrong issuer", must(SignRefresh(otherIss, a.kid, a.priv)), now, ErrWrongIssuer},
		{"wrong audience", must(SignRefresh(otherAud, a.kid, a.priv)), now, ErrWrongAudience},
		{"access JWT as refresh", must(SignAccessJWT(sampleAccess(), a.kid, a.priv)), t0.Add(time.Minute), ErrWrongPurpose},
		{"access PASETO as refresh", must(SignAccess(sampleAccess(), a.kid, a.priv)), t0.Add(time.Minute), ErrWrongPurpose},
		{"garbage", "not.a.jwt", now, ErrMalformed},
		{"empty", "", now, ErrMalformed},
		{"huge", "eyJ" + strings.Repeat("A", MaxTokenSize) + ".a.b", now, ErrMalformed},
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], now, ErrMalformed},
	}
	for _, tc := range cases {
		calls.Store(0)
		e := exp
		e.Now = tc.at
		if strings.Contains(tc.name, "access JWT") {
			e.Audience = testAudience
		}
		got, err := VerifyRefresh(tc.token, keys, e)
		if err == nil {
			t.Errorf("%s: VerifyRefresh accepted it: %+v", tc.name, got)
			continue
		}
		if s := sentinelOf(t, err); s != tc.want {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	// Refresh JWT given to the JWT access verifier.
	if _, err := VerifyAccessJWT(good, keys, Expectation{Issuer: testIssuer, Audience: testIssuer, Now: now}); sentinelOf(t, err) != ErrWrongPurpose {
		t.Errorf("refresh as access JWT: err = %v, want ErrWrongPurpose", err)
	}
	if _, err := VerifyAccessJWT(must(SignAccess(sampleAccess(), a.kid, a.priv)), keys, expectAt(t0)); sentinelOf(t, err) != ErrWrongPurpose {
		t.Errorf("PASETO as access JWT: err = %v, want ErrWrongPurpose", err)
	}
}

// tamperJWTPayload changes the subject inside a valid JSON payload.
func tamperJWTPayload(t *testing.T, seg string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	m := strings.Replace(string(b), "user-123", "user-124", 1)
	if m == string(b) {
		t.Fatal("payload has no user-123")
	}
	return base64.RawURLEncoding.EncodeToString([]byte(m))
}

func flipJWTChar(seg string) string {
	p := []byte(seg)
	i := len(p) / 2
	if p[i] == 'A' {
		p[i] = 'B'
	} else {
		p[i] = 'A'
	}
	return string(p)
}

func TestSignRefreshRefuses(t *testing.T) {
	a, b := newSigner(1), newSigner(2)
	if _, err := SignRefresh(sampleRefresh(), b.kid, a.priv); err == nil {
		t.Error("SignRefresh with another key's kid succeeded")
	}
	for name, mod := range map[string]func(*RefreshClaims){
		"no jti":         func(c *RefreshClaims) { c.TokenID = "" },
		"no family":      func(c *RefreshClaims) { c.Family = "" },
		"no session":     func(c *RefreshClaims) { c.SessionID = "" },
		"exp before iat": func(c *RefreshClaims) { c.Expiration = c.IssuedAt },
	} {
		c := sampleRefresh()
		mod(&c)
		if _, err := SignRefresh(c, a.kid, a.priv); err == nil {
			t.Errorf("%s: SignRefresh succeeded, want error", name)
		}
	}
}

func TestHashTokenID(t *testing.T) {
	got := hex.EncodeToString(HashTokenID("abc"))
	if want := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Fatalf("HashTokenID(abc) = %s, want %s (SHA-256)", got, want)
	}
}

func TestJWK(t *testing.T) {
	a := newSigner(1)
	j := JWK(a.kid, a.pub)
	b, err := json.Marshal(JWKSet{Keys: []PublicJWK{j}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + base64.RawURLEncoding.EncodeToString(a.pub) + `","kid":"` + a.kid + `","alg":"EdDSA","use":"sig"}]}`
	if string(b) != want {
		t.Fatalf("JWKS = %s\nwant  %s", b, want)
	}
	x, _ := base64.RawURLEncoding.DecodeString(j.X)
	if !ed25519.PublicKey(x).Equal(a.pub) {
		t.Fatal("x does not decode to the public key")
	}
	if JWK("k", a.pub[:31]).X != "" {
		t.Fatal("JWK of a 31-byte key has x set")
	}
}
