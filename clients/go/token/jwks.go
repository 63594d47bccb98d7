package token

import (
	"crypto/ed25519"
	"encoding/base64"
)

// PublicJWK is an Ed25519 public key as a JSON Web Key (RFC 8037): kty
// "OKP", crv "Ed25519", x = base64url(public key), alg "EdDSA", use "sig".
type PublicJWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKSet is the document served at /.well-known/jwks.json.
type JWKSet struct {
	Keys []PublicJWK `json:"keys"`
}

// JWK returns the JWK for pub under kid. X is empty if pub is not 32 bytes.
func JWK(kid string, pub ed25519.PublicKey) PublicJWK {
	x := ""
	if len(pub) == ed25519.PublicKeySize {
		x = base64.RawURLEncoding.EncodeToString(pub)
	}
	return PublicJWK{Kty: "OKP", Crv: "Ed25519", X: x, Kid: kid, Alg: "EdDSA", Use: "sig"}
}
