package token

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// token_use values: they keep refresh and access JWTs apart.
const (
	useRefresh = "refresh"
	useAccess  = "access"
)

// RefreshClaims are the claims of a refresh token. All fields are required.
// Times have one-second precision on the wire.
type RefreshClaims struct {
	Issuer   string
	Audience string
	// Subject is the user id.
	Subject string
	// TokenID (jti) is unique per refresh token; the store keeps only
	// HashTokenID(TokenID).
	TokenID string
	// SessionID (sid) is the session the token renews.
	SessionID string
	// Family (fam) is the rotation family, for reuse detection.
	Family     string
	IssuedAt   time.Time
	Expiration time.Time
}

// refreshWire is the refresh JWT payload.
type refreshWire struct {
	jwt.RegisteredClaims
	SessionID string `json:"sid"`
	Family    string `json:"fam"`
	TokenUse  string `json:"token_use"`
}

// accessJWTWire is the access JWT payload.
type accessJWTWire struct {
	jwt.RegisteredClaims
	SessionID string   `json:"sid,omitempty"`
	OrgID     string   `json:"org_id,omitempty"`
	OrgType   string   `json:"org_type,omitempty"`
	Country   string   `json:"country,omitempty"`
	Roles     []string `json:"roles,omitempty"`
	Platform  string   `json:"platform,omitempty"`
	TokenUse  string   `json:"token_use"`
}

// HashTokenID returns SHA-256(jti): what the store keeps instead of a
// refresh token's id.
func HashTokenID(jti string) []byte {
	h := sha256.Sum256([]byte(jti))
	return h[:]
}

func numericDate(t time.Time) *jwt.NumericDate {
	if t.IsZero() {
		return nil
	}
	return jwt.NewNumericDate(t.Truncate(time.Second))
}

// SignRefresh signs c as a JWT with alg EdDSA, header kid (which must be
// PID(priv.Public())), and claims iss, aud, sub, jti, sid, fam, exp, iat and
// "token_use":"refresh". Identical inputs give identical tokens.
func SignRefresh(c RefreshClaims, kid string, priv ed25519.PrivateKey) (string, error) {
	if err := checkSigner(kid, priv); err != nil {
		return "", err
	}
	switch {
	case c.Issuer == "" || c.Audience == "" || c.Subject == "" || c.TokenID == "" || c.SessionID == "" || c.Family == "":
		return "", errors.New("token: refresh claims need Issuer, Audience, Subject, TokenID, SessionID and Family")
	case c.IssuedAt.IsZero() || !c.Expiration.After(c.IssuedAt):
		return "", errors.New("token: refresh claims need IssuedAt and a later Expiration")
	}
	return signJWT(refreshWire{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: c.Issuer, Subject: c.Subject, Audience: jwt.ClaimStrings{c.Audience}, ID: c.TokenID,
			ExpiresAt: numericDate(c.Expiration), IssuedAt: numericDate(c.IssuedAt),
		},
		SessionID: c.SessionID, Family: c.Family, TokenUse: useRefresh,
	}, kid, priv)
}

// VerifyRefresh verifies a refresh JWT and returns its claims. It refuses
// empty or oversized input (ErrMalformed) and PASETOs (ErrWrongPurpose),
// then parses with alg restricted to EdDSA, canonical base64, the header
// kid looked up (ErrMalformed if it is not a k4.pid, ErrUnknownKey if
// unknown), the signature verified (ErrBadSignature), then iss
// (ErrWrongIssuer), aud (ErrWrongAudience), exp required (ErrExpired), iat
// required and not in the future, nbf if present (ErrNotYetValid), and
// finally token_use must be "refresh" (ErrWrongPurpose) and sub, jti, sid,
// fam non-empty (ErrMalformed).
func VerifyRefresh(token string, keys KeyLookup, expect Expectation) (*RefreshClaims, error) {
	var w refreshWire
	if err := verifyJWT(token, keys, expect, &w); err != nil {
		return nil, err
	}
	if w.TokenUse != useRefresh {
		return nil, fmt.Errorf("%w: token_use is %q, want %q", ErrWrongPurpose, w.TokenUse, useRefresh)
	}
	if w.Subject == "" || w.ID == "" || w.SessionID == "" || w.Family == "" || len(w.Audience) == 0 {
		return nil, fmt.Errorf("%w: refresh token lacks sub, jti, sid, fam or aud", ErrMalformed)
	}
	return &RefreshClaims{
		Issuer: w.Issuer, Audience: w.Audience[0], Subject: w.Subject, TokenID: w.ID,
		SessionID: w.SessionID, Family: w.Family,
		IssuedAt: w.IssuedAt.UTC(), Expiration: w.ExpiresAt.UTC(),
	}, nil
}

// SignAccessJWT signs c as an EdDSA JWT access token: header kid (which
// must be PID(priv.Public())), the registered claims of c, sid, org_id,
// org_type, country, roles, platform and "token_use":"access". It has the
// same requirements as SignAccess.
func SignAccessJWT(c AccessClaims, kid string, priv ed25519.PrivateKey) (string, error) {
	if err := checkSigner(kid, priv); err != nil {
		return "", err
	}
	if err := c.check(); err != nil {
		return "", err
	}
	return signJWT(accessJWTWire{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: c.Issuer, Subject: c.Subject, Audience: jwt.ClaimStrings{c.Audience}, ID: c.TokenID,
			ExpiresAt: numericDate(c.Expiration), IssuedAt: numericDate(c.IssuedAt), NotBefore: numericDate(c.NotBefore),
		},
		SessionID: c.SessionID, OrgID: c.OrgID, OrgType: c.OrgType, Country: c.Country,
		Roles: c.Roles, Platform: c.Platform, TokenUse: useAccess,
	}, kid, priv)
}

// VerifyAccessJWT verifies a JWT access token made by SignAccessJWT, with
// the checks of VerifyRefresh except that token_use must be "access" and
// sub is required.
func VerifyAccessJWT(token string, keys KeyLookup, expect Expectation) (*AccessClaims, error) {
	var w accessJWTWire
	if err := verifyJWT(token, keys, expect, &w); err != nil {
		return nil, err
	}
	if w.TokenUse != useAccess {
		return nil, fmt.Errorf("%w: token_use is %q, want %q", ErrWrongPurpose, w.TokenUse, useAccess)
	}
	if w.Subject == "" || len(w.Audience) == 0 {
		return nil, fmt.Errorf("%w: access token lacks sub or aud", ErrMalformed)
	}
	c := &AccessClaims{
		Issuer: w.Issuer, Subject: w.Subject, Audience: expect.Audience,
		Expiration: w.ExpiresAt.UTC(), IssuedAt: w.IssuedAt.UTC(),
		TokenID: w.ID, SessionID: w.SessionID, OrgID: w.OrgID, OrgType: w.OrgType, Country: w.Country,
		Roles: w.Roles, Platform: w.Platform,
	}
	if w.NotBefore != nil {
		c.NotBefore = w.NotBefore.UTC()
	}
	if err := expect.checkLifetime(c); err != nil {
		return nil, err
	}
	return c, nil
}

func signJWT(claims jwt.Claims, kid string, priv ed25519.PrivateKey) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = kid
	s, err := t.SignedString(priv)
	if err != nil {
		return "", fmt.Errorf("token: signing JWT: %w", err)
	}
	if len(s) > MaxTokenSize {
		return "", fmt.Errorf("token: JWT would be %d bytes, above MaxTokenSize %d", len(s), MaxTokenSize)
	}
	return s, nil
}

// verifyJWT parses and verifies token into claims; see VerifyRefresh.
func verifyJWT(token string, keys KeyLookup, expect Expectation, claims jwt.Claims) error {
	if err := checkSize(token); err != nil {
		return err
	}
	if err := expect.check(); err != nil {
		return err
	}
	if kind := kindOf(token); kind != "a JWT" {
		return notOurKind(token, "a JWT")
	}
	now := expect.now()
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithStrictDecoding(),
		jwt.WithIssuer(expect.Issuer),
		jwt.WithAudience(expect.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(expect.Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	keyfunc := func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if !validPID(kid) {
			return nil, fmt.Errorf("%w: header kid is not a k4.pid", ErrMalformed)
		}
		pub, ok := keys(kid)
		if !ok {
			return nil, fmt.Errorf("%w: %s", ErrUnknownKey, kid)
		}
		return pub, nil
	}
	if _, err := p.ParseWithClaims(token, claims, keyfunc); err != nil {
		return classifyJWT(err)
	}
	// jwt.WithIssuedAt only checks iat when present; we require it.
	iat, err := claims.GetIssuedAt()
	if err != nil || iat == nil {
		return fmt.Errorf("%w: iat is required", ErrMalformed)
	}
	return nil
}

// classifyJWT maps golang-jwt errors to our sentinels. The order matters:
// errors from our keyfunc first, then signature, then claims.
func classifyJWT(err error) error {
	pairs := []struct{ theirs, ours error }{
		{ErrMalformed, ErrMalformed},
		{ErrUnknownKey, ErrUnknownKey},
		{jwt.ErrTokenMalformed, ErrMalformed},
		{jwt.ErrTokenSignatureInvalid, ErrBadSignature},
		{jwt.ErrTokenUnverifiable, ErrBadSignature},
		{jwt.ErrTokenRequiredClaimMissing, ErrMalformed},
		{jwt.ErrTokenExpired, ErrExpired},
		{jwt.ErrTokenNotValidYet, ErrNotYetValid},
		{jwt.ErrTokenUsedBeforeIssued, ErrNotYetValid},
		{jwt.ErrTokenInvalidIssuer, ErrWrongIssuer},
		{jwt.ErrTokenInvalidAudience, ErrWrongAudience},
	}
	for _, p := range pairs {
		if errors.Is(err, p.theirs) {
			if p.theirs == p.ours {
				return err
			}
			return fmt.Errorf("%w: %v", p.ours, err)
		}
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}
