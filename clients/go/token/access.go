package token

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"aidanwoods.dev/go-paseto"
)

// KeyLookup returns the public key for a key id (a k4.pid), and whether it
// is known. It must be safe for concurrent use.
type KeyLookup func(kid string) (ed25519.PublicKey, bool)

// Expectation is what a verifier requires of a token's claims. Issuer and
// Audience are required: an Expectation lacking either refuses every token
// (ErrWrongIssuer / ErrWrongAudience).
type Expectation struct {
	// Issuer must equal the token's iss exactly.
	Issuer string
	// Audience must equal the token's aud (PASETO), or be one of its aud
	// values (JWT).
	Audience string
	// Now is the verification time; zero means time.Now().
	Now time.Time
	// Leeway tolerates clock skew: a token is accepted until exp+Leeway and
	// from nbf-Leeway / iat-Leeway.
	Leeway time.Duration
	// MaxLifetime, when positive, bounds an access token's lifetime: a
	// token whose exp - iat exceeds it is refused with ErrLifetimeTooLong,
	// whatever its signature.
	MaxLifetime time.Duration
}

// checkLifetime refuses claims whose lifetime exceeds e.MaxLifetime.
func (e Expectation) checkLifetime(c *AccessClaims) error {
	if e.MaxLifetime > 0 {
		if d := c.Expiration.Sub(c.IssuedAt); d > e.MaxLifetime {
			return fmt.Errorf("%w: exp - iat is %s, at most %s accepted", ErrLifetimeTooLong, d, e.MaxLifetime)
		}
	}
	return nil
}

// check refuses an expectation without issuer or audience, which would
// otherwise accept any issuer in a JWT.
func (e Expectation) check() error {
	switch {
	case e.Issuer == "":
		return fmt.Errorf("%w: the expectation names no issuer", ErrWrongIssuer)
	case e.Audience == "":
		return fmt.Errorf("%w: the expectation names no audience", ErrWrongAudience)
	}
	return nil
}

func (e Expectation) now() time.Time {
	if e.Now.IsZero() {
		return time.Now()
	}
	return e.Now
}

// AccessClaims are the claims of an access token. Times have one-second
// precision on the wire (RFC 3339 for PASETO, NumericDate for JWT) and are
// returned in UTC.
type AccessClaims struct {
	// Issuer (iss), Subject (sub: user id) and Audience (aud) are required.
	Issuer   string
	Subject  string
	Audience string
	// Expiration (exp) and IssuedAt (iat) are required; NotBefore (nbf) is
	// optional (zero = absent).
	Expiration time.Time
	NotBefore  time.Time
	IssuedAt   time.Time
	// TokenID (jti) and SessionID (sid) identify the token and its session.
	TokenID   string
	SessionID string
	// OrgID, OrgType, Country, Roles and Platform describe the user's
	// organisation and client for authorization decisions.
	OrgID    string
	OrgType  string
	Country  string
	Roles    []string
	Platform string
}

// accessPayload is the PASETO claims JSON. Times are RFC 3339 strings, as
// PASETO's registered claims require.
type accessPayload struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      string   `json:"aud"`
	Exp      string   `json:"exp"`
	Nbf      string   `json:"nbf,omitempty"`
	Iat      string   `json:"iat"`
	Jti      string   `json:"jti,omitempty"`
	Sid      string   `json:"sid,omitempty"`
	OrgID    string   `json:"org_id,omitempty"`
	OrgType  string   `json:"org_type,omitempty"`
	Country  string   `json:"country,omitempty"`
	Roles    []string `json:"roles,omitempty"`
	Platform string   `json:"platform,omitempty"`
}

const pasetoV4Public = "v4.public."

// maxFooterEncoded bounds the encoded footer: `{"kid":"k4.pid.<44>"}` is
// 60 bytes, 80 base64url characters.
const maxFooterEncoded = 128

// footerFor returns the exact footer `{"kid":"<kid>"}`.
func footerFor(kid string) []byte { return []byte(`{"kid":"` + kid + `"}`) }

// checkSigner validates the claims common to all tokens and that kid is the
// k4.pid of priv's public key, so that verifiers find the right key.
func checkSigner(kid string, priv ed25519.PrivateKey) error {
	if len(priv) != ed25519.PrivateKeySize {
		return fmt.Errorf("token: private key is %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	if want := PID(priv.Public().(ed25519.PublicKey)); kid != want {
		return fmt.Errorf("token: kid %q is not the k4.pid of the signing key (%q)", kid, want)
	}
	return nil
}

func (c *AccessClaims) check() error {
	switch {
	case c.Issuer == "" || c.Subject == "" || c.Audience == "":
		return errors.New("token: access claims need Issuer, Subject and Audience")
	case c.Expiration.IsZero() || c.IssuedAt.IsZero():
		return errors.New("token: access claims need Expiration and IssuedAt")
	case !c.Expiration.After(c.IssuedAt):
		return errors.New("token: access Expiration must be after IssuedAt")
	}
	return nil
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// SignAccess signs c as a PASETO v4.public token with footer exactly
// `{"kid":"<kid>"}`. kid must be PID(priv.Public()). Times are encoded in
// RFC 3339 UTC with the fraction of a second kept (RFC3339Nano), so that
// an issue time compares exactly with a nanosecond cut-off such as a
// logout-everywhere. Issuer,
// Subject, Audience, Expiration and IssuedAt are required. Identical inputs
// give identical tokens. A program that signs many tokens with one key
// should keep an AccessSigner instead.
func SignAccess(c AccessClaims, kid string, priv ed25519.PrivateKey) (string, error) {
	s, err := NewAccessSigner(kid, priv)
	if err != nil {
		return "", err
	}
	return s.Sign(c)
}

// AccessSigner signs access tokens with one key, as SignAccess does. It
// checks and prepares the key once: go-paseto checks a key pair by
// deriving the public key from the seed, which costs a quarter of a
// signature and which SignAccess repeats on every call. It is safe for
// concurrent use.
type AccessSigner struct {
	footer string
	sk     paseto.V4AsymmetricSecretKey
}

// NewAccessSigner returns the signer of key priv, whose kid must be
// PID(priv.Public()).
func NewAccessSigner(kid string, priv ed25519.PrivateKey) (*AccessSigner, error) {
	if err := checkSigner(kid, priv); err != nil {
		return nil, err
	}
	sk, err := paseto.NewV4AsymmetricSecretKeyFromEd25519(priv)
	if err != nil {
		return nil, fmt.Errorf("token: signing key: %w", err)
	}
	return &AccessSigner{footer: string(footerFor(kid)), sk: sk}, nil
}

// Sign signs c (see SignAccess).
func (s *AccessSigner) Sign(c AccessClaims) (string, error) {
	if err := c.check(); err != nil {
		return "", err
	}
	body, err := json.Marshal(accessPayload{
		Iss: c.Issuer, Sub: c.Subject, Aud: c.Audience,
		Exp: rfc3339(c.Expiration), Nbf: rfc3339(c.NotBefore), Iat: rfc3339(c.IssuedAt),
		Jti: c.TokenID, Sid: c.SessionID, OrgID: c.OrgID, OrgType: c.OrgType, Country: c.Country,
		Roles: c.Roles, Platform: c.Platform,
	})
	if err != nil {
		return "", fmt.Errorf("token: encoding claims: %w", err)
	}
	tok, err := paseto.NewTokenFromClaimsJSON(body, []byte(s.footer))
	if err != nil {
		return "", fmt.Errorf("token: building PASETO: %w", err)
	}
	out := tok.V4Sign(s.sk, nil)
	if len(out) > MaxTokenSize {
		return "", fmt.Errorf("token: access token would be %d bytes, above MaxTokenSize %d", len(out), MaxTokenSize)
	}
	return out, nil
}

// VerifyAccess verifies a PASETO v4.public access token and returns its
// claims. In order, it:
//  1. refuses empty input or input above MaxTokenSize (ErrMalformed);
//  2. refuses anything but "v4.public." (ErrWrongPurpose for other PASETO
//     versions/purposes and for JWTs, ErrMalformed otherwise);
//  3. reads the unverified footer, which must be byte-exactly
//     {"kid":"k4.pid.<44 base64url chars>"} (ErrMalformed);
//  4. looks the kid up (ErrUnknownKey);
//  5. verifies the signature with go-paseto (ErrBadSignature), then the
//     rules iss (ErrWrongIssuer), aud (ErrWrongAudience), exp required and
//     now < exp+Leeway (ErrExpired), nbf if present and iat required with
//     now >= nbf-Leeway, now >= iat-Leeway (ErrNotYetValid);
//  6. decodes the claims; sub is required (ErrMalformed);
//  7. with expect.MaxLifetime set, refuses exp - iat above it
//     (ErrLifetimeTooLong).
func VerifyAccess(token string, keys KeyLookup, expect Expectation) (*AccessClaims, error) {
	if err := checkSize(token); err != nil {
		return nil, err
	}
	if err := expect.check(); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(token, pasetoV4Public) {
		return nil, notOurKind(token, "a PASETO v4.public token")
	}
	parts := strings.Split(token[len(pasetoV4Public):], ".")
	if len(parts) != 2 {
		return nil, fmt.Errorf("%w: want payload and footer after %q", ErrMalformed, pasetoV4Public)
	}
	payload, err := decodeB64(parts[0])
	if err != nil || len(payload) < ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: payload is not base64url of at least %d bytes", ErrMalformed, ed25519.SignatureSize)
	}
	kid, err := parseFooter(parts[1])
	if err != nil {
		return nil, err
	}
	pub, ok := keys(kid)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownKey, kid)
	}
	pk, err := paseto.NewV4AsymmetricPublicKeyFromEd25519(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: key %s is not a valid Ed25519 public key", ErrUnknownKey, kid)
	}
	now := expect.now()
	parser := paseto.MakeParser([]paseto.Rule{
		issuerRule(expect.Issuer), audienceRule(expect.Audience), timeRule(now, expect.Leeway),
	})
	tok, err := parser.ParseV4Public(pk, token, nil)
	if err != nil {
		return nil, classifyPASETO(err)
	}
	var p accessPayload
	if err := json.Unmarshal(tok.ClaimsJSON(), &p); err != nil {
		return nil, fmt.Errorf("%w: claims: %w", ErrMalformed, err)
	}
	if p.Sub == "" {
		return nil, fmt.Errorf("%w: sub is required", ErrMalformed)
	}
	c := &AccessClaims{
		Issuer: p.Iss, Subject: p.Sub, Audience: p.Aud,
		TokenID: p.Jti, SessionID: p.Sid, OrgID: p.OrgID, OrgType: p.OrgType, Country: p.Country,
		Roles: p.Roles, Platform: p.Platform,
	}
	// The rules already parsed these; errors cannot happen here.
	c.Expiration, _ = time.Parse(time.RFC3339, p.Exp)
	c.IssuedAt, _ = time.Parse(time.RFC3339, p.Iat)
	if p.Nbf != "" {
		c.NotBefore, _ = time.Parse(time.RFC3339, p.Nbf)
	}
	c.Expiration, c.IssuedAt = c.Expiration.UTC(), c.IssuedAt.UTC()
	if !c.NotBefore.IsZero() {
		c.NotBefore = c.NotBefore.UTC()
	}
	if err := expect.checkLifetime(c); err != nil {
		return nil, err
	}
	return c, nil
}

// parseFooter checks the encoded footer and returns its kid.
func parseFooter(enc string) (string, error) {
	if len(enc) > maxFooterEncoded {
		return "", fmt.Errorf("%w: footer longer than %d characters", ErrMalformed, maxFooterEncoded)
	}
	f, err := decodeB64(enc)
	if err != nil {
		return "", fmt.Errorf("%w: footer is not canonical base64url", ErrMalformed)
	}
	kid, ok := strings.CutPrefix(string(f), `{"kid":"`)
	if ok {
		kid, ok = strings.CutSuffix(kid, `"}`)
	}
	if !ok || !validPID(kid) {
		return "", fmt.Errorf("%w: footer must be exactly {\"kid\":\"k4.pid.…\"}", ErrMalformed)
	}
	return kid, nil
}

// classifyPASETO maps a go-paseto parse error to our sentinels. Our rules
// wrap our sentinels; format problems were caught before calling go-paseto,
// so any remaining token error is a signature failure.
func classifyPASETO(err error) error {
	for _, s := range []error{ErrWrongIssuer, ErrWrongAudience, ErrExpired, ErrNotYetValid, ErrMalformed} {
		if errors.Is(err, s) {
			return fmt.Errorf("%w: %v", s, err)
		}
	}
	if errors.Is(err, paseto.RuleError{}) {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return fmt.Errorf("%w: %v", ErrBadSignature, err)
}

func issuerRule(want string) paseto.Rule {
	return func(t paseto.Token) error {
		iss, err := t.GetIssuer()
		if err != nil || iss != want {
			return fmt.Errorf("%w: want %q", ErrWrongIssuer, want)
		}
		return nil
	}
}

func audienceRule(want string) paseto.Rule {
	return func(t paseto.Token) error {
		aud, err := t.GetAudience()
		if err != nil || aud != want {
			return fmt.Errorf("%w: want %q", ErrWrongAudience, want)
		}
		return nil
	}
}

// timeRule checks exp (required), iat (required) and nbf (optional) at now.
func timeRule(now time.Time, leeway time.Duration) paseto.Rule {
	return func(t paseto.Token) error {
		exp, err := t.GetExpiration()
		if err != nil {
			return fmt.Errorf("%w: exp missing or not RFC 3339", ErrMalformed)
		}
		iat, err := t.GetIssuedAt()
		if err != nil {
			return fmt.Errorf("%w: iat missing or not RFC 3339", ErrMalformed)
		}
		var nbf time.Time
		if t.Get("nbf", new(json.RawMessage)) == nil {
			if nbf, err = t.GetNotBefore(); err != nil {
				return fmt.Errorf("%w: nbf not RFC 3339", ErrMalformed)
			}
		}
		if !now.Before(exp.Add(leeway)) {
			return fmt.Errorf("%w: expired at %s", ErrExpired, exp.UTC().Format(time.RFC3339))
		}
		if now.Before(iat.Add(-leeway)) {
			return fmt.Errorf("%w: issued at %s, in the future", ErrNotYetValid, iat.UTC().Format(time.RFC3339))
		}
		if !nbf.IsZero() && now.Before(nbf.Add(-leeway)) {
			return fmt.Errorf("%w: not before %s", ErrNotYetValid, nbf.UTC().Format(time.RFC3339))
		}
		return nil
	}
}

// checkSize refuses empty and oversized tokens.
func checkSize(token string) error {
	switch {
	case token == "":
		return fmt.Errorf("%w: empty", ErrMalformed)
	case len(token) > MaxTokenSize:
		return fmt.Errorf("%w: %d bytes, above %d", ErrMalformed, len(token), MaxTokenSize)
	}
	return nil
}

// notOurKind explains why token is not the kind wanted: ErrWrongPurpose if
// it is recognisably another kind of token, ErrMalformed otherwise.
func notOurKind(token, want string) error {
	switch kind := kindOf(token); kind {
	case "":
		return fmt.Errorf("%w: not %s", ErrMalformed, want)
	default:
		return fmt.Errorf("%w: got %s, want %s", ErrWrongPurpose, kind, want)
	}
}

// kindOf names a recognisable token kind, or "".
func kindOf(token string) string {
	for _, v := range []string{"v1.", "v2.", "v3.", "v4."} {
		if strings.HasPrefix(token, v) {
			for _, purpose := range []string{"local.", "public."} {
				if strings.HasPrefix(token[len(v):], purpose) {
					return "a PASETO " + v + strings.TrimSuffix(purpose, ".") + " token"
				}
			}
			return "a PASETO " + strings.TrimSuffix(v, ".") + " token"
		}
	}
	if strings.HasPrefix(token, "eyJ") && strings.Count(token, ".") == 2 {
		return "a JWT"
	}
	return ""
}
