package token

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/blake2b"
)

// PASERK headers (https://github.com/paseto-standard/paserk).
const (
	paserkPublicHeader = "k4.public."
	paserkPIDHeader    = "k4.pid."
	pidHashSize        = 33
)

// b64url is PASETO/PASERK base64: URL alphabet, no padding, canonical.
var b64url = base64.RawURLEncoding.Strict()

// pidLen is the length of a k4.pid string: header plus 44 base64url chars.
var pidLen = len(paserkPIDHeader) + b64url.EncodedLen(pidHashSize)

// PublicKeyPASERK returns the PASERK "k4.public." + base64url(pub) of an
// Ed25519 public key, or "" if pub is not 32 bytes.
func PublicKeyPASERK(pub ed25519.PublicKey) string {
	if len(pub) != ed25519.PublicKeySize {
		return ""
	}
	return paserkPublicHeader + b64url.EncodeToString(pub)
}

// ParsePublicPASERK parses a "k4.public." PASERK into an Ed25519 public key.
// Other versions or types, non-canonical base64 and wrong sizes are refused
// with an error wrapping ErrMalformed.
func ParsePublicPASERK(s string) (ed25519.PublicKey, error) {
	data, ok := strings.CutPrefix(s, paserkPublicHeader)
	if !ok {
		return nil, fmt.Errorf("%w: not a k4.public PASERK", ErrMalformed)
	}
	if len(data) != b64url.EncodedLen(ed25519.PublicKeySize) {
		return nil, fmt.Errorf("%w: k4.public data has %d characters, want %d", ErrMalformed, len(data), b64url.EncodedLen(ed25519.PublicKeySize))
	}
	b, err := decodeB64(data)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: k4.public data is not canonical base64url of %d bytes", ErrMalformed, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// PID returns the PASERK public key id of pub: with h = "k4.pid." and
// p = PublicKeyPASERK(pub), the result is h || base64url(BLAKE2b-264(h || p))
// (PASERK operations/ID.md, versions 2 and 4). It returns "" if pub is not
// 32 bytes.
func PID(pub ed25519.PublicKey) string {
	p := PublicKeyPASERK(pub)
	if p == "" {
		return ""
	}
	d, err := blake2b.New(pidHashSize, nil)
	if err != nil { // only for sizes outside 1..64
		return ""
	}
	d.Write([]byte(paserkPIDHeader))
	d.Write([]byte(p))
	return paserkPIDHeader + b64url.EncodeToString(d.Sum(nil))
}

// validPID reports whether s has the shape of a k4.pid: the header and 44
// canonical base64url characters (33 bytes).
func validPID(s string) bool {
	if len(s) != pidLen || !strings.HasPrefix(s, paserkPIDHeader) {
		return false
	}
	b, err := decodeB64(s[len(paserkPIDHeader):])
	return err == nil && len(b) == pidHashSize
}

// decodeB64 decodes canonical unpadded base64url, refusing the line breaks
// that encoding/base64 would otherwise skip.
func decodeB64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("line break in base64")
	}
	return b64url.DecodeString(s)
}
