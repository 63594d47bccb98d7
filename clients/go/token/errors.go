// Package token issues and verifies the auth service's tokens:
//
//   - access tokens: PASETO v4.public (Ed25519) with a footer naming the key
//     as a PASERK k4.pid, or optionally EdDSA JWTs with the same claims;
//   - refresh tokens: EdDSA JWTs marked "token_use":"refresh";
//   - PASERK k4.public / k4.pid key serialization and JWK (OKP/Ed25519)
//     for publishing keys.
//
// Verification never trusts a token before its signature checks out: it
// bounds the size (MaxTokenSize), recognises the token type, reads the key
// id, looks the key up, verifies the signature and only then checks claims.
// Every refusal wraps exactly one of the sentinel errors below, so callers
// use errors.Is. Signing is deterministic: identical inputs give identical
// tokens.
package token

import "errors"

// Sentinel errors. Every error returned by a Verify function wraps one of
// them.
var (
	// ErrMalformed: empty, oversized, badly encoded, or missing required
	// claims / footer.
	ErrMalformed = errors.New("token: malformed")
	// ErrUnknownKey: the key id is well formed but not known to the lookup.
	ErrUnknownKey = errors.New("token: unknown signing key")
	// ErrBadSignature: the signature does not verify with the named key,
	// or the algorithm is not the one expected.
	ErrBadSignature = errors.New("token: bad signature")
	// ErrExpired: now >= exp + leeway.
	ErrExpired = errors.New("token: expired")
	// ErrNotYetValid: now < nbf - leeway, or now < iat - leeway.
	ErrNotYetValid = errors.New("token: not yet valid")
	// ErrWrongIssuer: iss differs from the expected issuer.
	ErrWrongIssuer = errors.New("token: wrong issuer")
	// ErrWrongAudience: aud does not name the expected audience.
	ErrWrongAudience = errors.New("token: wrong audience")
	// ErrWrongPurpose: a token of another kind (a refresh token where an
	// access token is expected or vice versa, PASETO v4.local, another
	// PASETO version, a JWT where a PASETO is expected...).
	ErrWrongPurpose = errors.New("token: wrong token type")
	// ErrLifetimeTooLong: exp - iat exceeds Expectation.MaxLifetime (a
	// token no issuer of this cluster would sign, e.g. one minted with a
	// stolen key to last years).
	ErrLifetimeTooLong = errors.New("token: lifetime too long")
)

// MaxTokenSize is the largest token, in bytes, any Verify function looks
// at; larger input is refused with ErrMalformed before any other work. Sign
// functions refuse to produce larger tokens.
const MaxTokenSize = 8 << 10
