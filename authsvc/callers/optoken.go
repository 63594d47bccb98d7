package callers

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

// OperatorTokenPrefix starts every operator token, so that secret scanners
// and the authenticator recognise one.
const OperatorTokenPrefix = "sdo_"

const (
	opIDBytes     = 12 // 24 hex digits
	opSecretBytes = 32 // 256 bits
	opIDLen       = 2 * opIDBytes
	opSecretLen   = 43 // base64url without padding of 32 bytes
	// OperatorTokenLen is the exact length of an operator token.
	OperatorTokenLen = len(OperatorTokenPrefix) + opIDLen + 1 + opSecretLen
)

// ErrMalformedToken is returned by ParseOperatorToken.
var ErrMalformedToken = errors.New("callers: malformed operator token")

// NewOperatorToken returns a fresh token, its id, and the hash to store.
func NewOperatorToken() (token, id string, hash [32]byte) {
	var idb [opIDBytes]byte
	var sec [opSecretBytes]byte
	if _, err := rand.Read(idb[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // the kernel's RNG does not fail
	}
	_, _ = rand.Read(sec[:])
	id = hex.EncodeToString(idb[:])
	token = OperatorTokenPrefix + id + "." + base64.RawURLEncoding.EncodeToString(sec[:])
	return token, id, HashOperatorToken(id, sec[:])
}

// ParseOperatorToken splits a token into its id and the raw bytes of its
// secret. Anything but the exact form is ErrMalformedToken.
func ParseOperatorToken(s string) (id string, secret []byte, err error) {
	if len(s) != OperatorTokenLen || !strings.HasPrefix(s, OperatorTokenPrefix) {
		return "", nil, ErrMalformedToken
	}
	rest := s[len(OperatorTokenPrefix):]
	id, sec := rest[:opIDLen], rest[opIDLen:]
	if sec[0] != '.' {
		return "", nil, ErrMalformedToken
	}
	for _, c := range []byte(id) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", nil, ErrMalformedToken
		}
	}
	secret, err = base64.RawURLEncoding.Strict().DecodeString(sec[1:])
	if err != nil || len(secret) != opSecretBytes {
		return "", nil, ErrMalformedToken
	}
	return id, secret, nil
}

// HashOperatorToken is what the store keeps of a token: SHA-256 over a
// label, the id and the secret. A token's secret has 256 bits of entropy,
// so a fast hash is the right one (nothing to brute-force).
func HashOperatorToken(id string, secret []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("sessiond operator token v1\x00"))
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write(secret)
	var out [32]byte
	h.Sum(out[:0])
	return out
}
