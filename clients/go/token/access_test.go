package token

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"aidanwoods.dev/go-paseto"
	"github.com/google/go-cmp/cmp"
)

func TestAccessRoundTrip(t *testing.T) {
	a := newSigner(1)
	keys, _ := lookup(a)
	c := sampleAccess()
	tok := must(SignAccess(c, a.kid, a.priv))
	if !strings.HasPrefix(tok, "v4.public.") {
		t.Fatalf("token %q does not start with v4.public.", tok)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 4 {
		t.Fatalf("token has %d parts, want 4", len(parts))
	}
	footer, err := base64.RawURLEncoding.DecodeString(parts[3])
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"kid":"` + a.kid + `"}`; string(footer) != want {
		t.Fatalf("footer = %s, want %s", footer, want)
	}
	got, err := VerifyAccess(tok, keys, expectAt(t0.Add(time.Minute)))
	if err != nil {
		t.Fatalf("VerifyAccess: %v", err)
	}
	if diff := cmp.Diff(&c, got); diff != "" {
		t.Fatalf("claims differ (-signed +verified):\n%s", diff)
	}
	if got.Expiration.Location() != time.UTC {
		t.Fatalf("Expiration location = %v, want UTC", got.Expiration.Location())
	}
}

func TestAccessPayloadUsesRFC3339(t *testing.T) {
	a := newSigner(1)
	c := sampleAccess()
	c.IssuedAt = time.Date(2030, 1, 1, 1, 0, 0, 999, time.FixedZone("X", 3600))
	tok := must(SignAccess(c, a.kid, a.priv))
	body, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[2])
	var m map[string]any
	if err := json.Unmarshal(body[:len(body)-64], &m); err != nil {
		t.Fatalf("payload is not JSON: %v", err)
	}
	if m["iat"] != "2030-01-01T00:00:00.000000999Z" || m["exp"] != "2030-01-01T00:15:00Z" {
		t.Fatalf("iat, exp = %v, %v; want RFC 3339 UTC, fraction kept", m["iat"], m["exp"])
	}
	keys, _ := lookup(a)
	got, err := VerifyAccess(tok, keys, Expectation{Issuer: c.Issuer, Audience: c.Audience, Now: c.IssuedAt})
	if err != nil {
		t.Fatalf("VerifyAccess: %v", err)
	}
	if !got.IssuedAt.Equal(c.IssuedAt) {
		t.Fatalf("verified iat = %v, want %v exactly", got.IssuedAt, c.IssuedAt)
	}
}

func TestSigningIsDeterministic(t *testing.T) {
	a := newSigner(1)
	c, r := sampleAccess(), sampleRefresh()
	for name, sign := range map[string]func() (string, error){
		"paseto access": func() (string, error) { return SignAccess(c, a.kid, a.priv) },
		"jwt access":    func() (string, error) { return SignAccessJWT(c, a.kid, a.priv) },
		"refresh":       func() (string, error) { return SignRefresh(r, a.kid, a.priv) },
	} {
		x, y := must(sign()), must(sign())
		if x != y {
			t.Errorf("%s: two signatures of the same input differ:\n%s\n%s", name, x, y)
		}
	}
	c2 := c
	c2.Roles = []string{"viewer"}
	if must(SignAccess(c, a.kid, a.priv)) == must(SignAccess(c2, a.kid, a.priv)) {
		t.Fatal("different claims gave the same token")
	}
	// A kept AccessSigner, used from many goroutines, signs as SignAccess.
	s, err := NewAccessSigner(a.kid, a.priv)
	if err != nil {
		t.Fatal(err)
	}
	want := must(SignAccess(c2, a.kid, a.priv))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if got := must(s.Sign(c2)); got != want {
				t.Errorf("AccessSigner.Sign gave\n%s\nSignAccess gave\n%s", got, want)
			}
		})
	}
	wg.Wait()
	if _, err := NewAccessSigner(newSigner(2).kid, a.priv); err == nil {
		t.Error("NewAccessSigner with another key's kid succeeded")
	}
}

func TestSignAccessRefuses(t *testing.T) {
	a, b := newSigner(1), newSigner(2)
	if _, err := SignAccess(sampleAccess(), b.kid, a.priv); err == nil {
		t.Error("SignAccess with another key's kid succeeded")
	}
	for name, mod := range map[string]func(*AccessClaims){
		"no issuer":         func(c *AccessClaims) { c.Issuer = "" },
		"no subject":        func(c *AccessClaims) { c.Subject = "" },
		"no audience":       func(c *AccessClaims) { c.Audience = "" },
		"no exp":            func(c *AccessClaims) { c.Expiration = time.Time{} },
		"no iat":            func(c *AccessClaims) { c.IssuedAt = time.Time{} },
		"exp before iat":    func(c *AccessClaims) { c.Expiration = c.IssuedAt.Add(-time.Second) },
		"larger than 8 KiB": func(c *AccessClaims) { c.Roles = []string{strings.Repeat("r", MaxTokenSize)} },
	} {
		c := sampleAccess()
		mod(&c)
		if _, err := SignAccess(c, a.kid, a.priv); err == nil {
			t.Errorf("%s: SignAccess succeeded, want error", name)
		}
	}
}

// rawPASETO signs arbitrary claims JSON and footer, bypassing SignAccess's
// checks, to build hostile tokens.
func rawPASETO(t *testing.T, s testSigner, claimsJSON, footer string) string {
	t.Helper()
	tok, err := paseto.NewTokenFromClaimsJSON([]byte(claimsJSON), []byte(footer))
	if err != nil {
		t.Fatal(err)
	}
	sk, err := paseto.NewV4AsymmetricSecretKeyFromEd25519(s.priv)
	if err != nil {
		t.Fatal(err)
	}
	return tok.V4Sign(sk, nil)
}

func replaceFooter(tok, footer string) string {
	i := strings.LastIndexByte(tok, '.')
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString([]byte(footer))
}

// flipPayloadChar changes one base64 character in the middle of the
// payload to another valid one.
func flipPayloadChar(tok string) string {
	parts := strings.Split(tok, ".")
	p := []byte(parts[2])
	i := len(p) / 3
	if p[i] == 'A' {
		p[i] = 'B'
	} else {
		p[i] = 'A'
	}
	parts[2] = string(p)
	return strings.Join(parts, ".")
}

func TestVerifyAccessRefusals(t *testing.T) {
	a, b, c := newSigner(1), newSigner(2), newSigner(3)
	keys, calls := lookup(a, b)
	good := must(SignAccess(sampleAccess(), a.kid, a.priv))
	now := t0.Add(time.Minute)

	future := sampleAccess()
	future.NotBefore = t0.Add(time.Hour)
	futureIat := sampleAccess()
	futureIat.IssuedAt, futureIat.NotBefore = t0.Add(time.Hour), time.Time{}
	futureIat.Expiration = t0.Add(2 * time.Hour)
	otherIss, otherAud := sampleAccess(), sampleAccess()
	otherIss.Issuer, otherAud.Audience = "https://evil.test", "other-api"

	v4local := paseto.NewToken()
	v4local.SetExpiration(t0.Add(time.Hour))
	localTok := v4local.V4Encrypt(paseto.NewV4SymmetricKey(), nil)
	v2sk, _ := paseto.NewV2AsymmetricSecretKeyFromEd25519(a.priv)
	v2Tok := v4local.V2Sign(v2sk)

	validClaims := `{"iss":"` + testIssuer + `","aud":"` + testAudience + `","sub":"u","iat":"2030-01-01T00:00:00Z","exp":"2030-01-01T00:15:00Z"}`
	footerA := `{"kid":"` + a.kid + `"}`

	cases := []struct {
		name       string
		token      string
		at         time.Time
		want       error
		noKeyCalls bool
	}{
		{"tampered payload", flipPayloadChar(good), now, ErrBadSignature, false},
		{"footer swapped to another known kid", replaceFooter(good, `{"kid":"`+b.kid+`"}`), now, ErrBadSignature, false},
		{"signed by another key claiming kid A", rawPASETO(t, c, validClaims, footerA), now, ErrBadSignature, false},
		{"unknown kid", must(SignAccess(sampleAccess(), c.kid, c.priv)), now, ErrUnknownKey, false},
		{"footer with extra field", replaceFooter(good, `{"kid":"`+a.kid+`","x":1}`), now, ErrMalformed, true},
		{"footer with spaces", replaceFooter(good, `{"kid": "`+a.kid+`"}`), now, ErrMalformed, true},
		{"footer kid not a pid", replaceFooter(good, `{"kid":"k4.lid.`+a.kid[7:]+`"}`), now, ErrMalformed, true},
		{"footer not JSON", replaceFooter(good, `kid`), now, ErrMalformed, true},
		{"no footer", good[:strings.LastIndexByte(good, '.')], now, ErrMalformed, true},
		{"huge footer", replaceFooter(good, strings.Repeat("x", 1000)), now, ErrMalformed, true},
		{"expired", good, t0.Add(15 * time.Minute), ErrExpired, false},
		{"nbf in future", must(SignAccess(future, a.kid, a.priv)), now, ErrNotYetValid, false},
		{"iat in future", must(SignAccess(futureIat, a.kid, a.priv)), now, ErrNotYetValid, false},
		{"wrong issuer", must(SignAccess(otherIss, a.kid, a.priv)), now, ErrWrongIssuer, false},
		{"wrong audience", must(SignAccess(otherAud, a.kid, a.priv)), now, ErrWrongAudience, false},
		{"refresh JWT as access", must(SignRefresh(sampleRefresh(), a.kid, a.priv)), now, ErrWrongPurpose, true},
		{"access JWT as PASETO access", must(SignAccessJWT(sampleAccess(), a.kid, a.priv)), now, ErrWrongPurpose, true},
		{"v4.local", localTok, now, ErrWrongPurpose, true},
		{"v2.public", v2Tok, now, ErrWrongPurpose, true},
		{"missing sub", rawPASETO(t, a, strings.Replace(validClaims, `"sub":"u",`, "", 1), footerA), now, ErrMalformed, false},
		{"missing exp", rawPASETO(t, a, strings.Replace(validClaims, `,"exp":"2030-01-01T00:15:00Z"`, "", 1), footerA), now, ErrMalformed, false},
		{"exp not RFC 3339", rawPASETO(t, a, strings.Replace(validClaims, `"2030-01-01T00:15:00Z"`, `1893457800`, 1), footerA), now, ErrMalformed, false},
		{"roles not a list", rawPASETO(t, a, strings.Replace(validClaims, `"sub":"u"`, `"sub":"u","roles":"admin"`, 1), footerA), now, ErrMalformed, false},
		{"garbage", "hello world", now, ErrMalformed, true},
		{"empty", "", now, ErrMalformed, true},
		{"huge", "v4.public." + strings.Repeat("A", MaxTokenSize), now, ErrMalformed, true},
		{"header only", "v4.public.", now, ErrMalformed, true},
		{"short payload", "v4.public.AAAA." + strings.Split(good, ".")[3], now, ErrMalformed, true},
		{"newline in payload", strings.Replace(good, "v4.public.", "v4.public.\n", 1), now, ErrMalformed, true},
	}
	for _, tc := range cases {
		calls.Store(0)
		got, err := VerifyAccess(tc.token, keys, expectAt(tc.at))
		if err == nil {
			t.Errorf("%s: VerifyAccess accepted it: %+v", tc.name, got)
			continue
		}
		if s := sentinelOf(t, err); s != tc.want {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
		if tc.noKeyCalls && calls.Load() != 0 {
			t.Errorf("%s: key lookup called %d times before the token's shape was checked", tc.name, calls.Load())
		}
	}
}

func TestVerifyAccessTimeBoundaries(t *testing.T) {
	a := newSigner(1)
	keys, _ := lookup(a)
	tok := must(SignAccess(sampleAccess(), a.kid, a.priv))
	exp := t0.Add(15 * time.Minute)
	cases := []struct {
		at     time.Time
		leeway time.Duration
		want   error
	}{
		{t0, 0, nil},
		{exp.Add(-time.Nanosecond), 0, nil},
		{exp, 0, ErrExpired},
		{exp.Add(20 * time.Second), 30 * time.Second, nil},
		{exp.Add(30 * time.Second), 30 * time.Second, ErrExpired},
		{t0.Add(-time.Nanosecond), 0, ErrNotYetValid},
		{t0.Add(-20 * time.Second), 30 * time.Second, nil},
	}
	for _, c := range cases {
		e := expectAt(c.at)
		e.Leeway = c.leeway
		_, err := VerifyAccess(tok, keys, e)
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("at %v leeway %v: err = %v, want %v", c.at, c.leeway, err, c.want)
		}
	}
}

func TestVerifyRefusesEmptyExpectation(t *testing.T) {
	a := newSigner(1)
	keys, _ := lookup(a)
	tok := must(SignAccess(sampleAccess(), a.kid, a.priv))
	jwtTok := must(SignAccessJWT(sampleAccess(), a.kid, a.priv))
	for _, e := range []Expectation{{Audience: testAudience, Now: t0}, {Issuer: testIssuer, Now: t0}} {
		if _, err := VerifyAccess(tok, keys, e); err == nil {
			t.Errorf("VerifyAccess with expectation %+v accepted the token", e)
		}
		if _, err := VerifyAccessJWT(jwtTok, keys, e); err == nil {
			t.Errorf("VerifyAccessJWT with expectation %+v accepted the token", e)
		}
	}
}
