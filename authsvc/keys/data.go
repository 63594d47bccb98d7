package keys

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// dataSealVersion is the first byte of a blob sealed by SealData.
const dataSealVersion = 0x02

// MaxSealData bounds the plaintext SealData accepts.
const MaxSealData = 64 << 10

// dataKey derives the XChaCha20-Poly1305 key of purpose from kek (HKDF-SHA256),
// so that data sealed for one purpose (an upstream refresh token, a login
// state cookie) never opens as another, nor as a signing key.
func dataKey(kek KEK, purpose string) ([]byte, error) {
	if kek.IsZero() {
		return nil, fmt.Errorf("%w: zero KEK", ErrKEK)
	}
	return hkdf.Key(sha256.New, kek.b[:], nil, "sessiond data seal v1: "+purpose, chacha20poly1305.KeySize)
}

// SealData encrypts plaintext (at most MaxSealData bytes) with
// XChaCha20-Poly1305 under a key derived from kek for purpose, with a
// random nonce; aad is authenticated: OpenData with another purpose or aad
// fails. The blob is version (1) || nonce (24) || ciphertext+tag.
func SealData(kek KEK, purpose string, plaintext, aad []byte) ([]byte, error) {
	if len(plaintext) > MaxSealData {
		return nil, fmt.Errorf("keys: %d bytes to seal, at most %d", len(plaintext), MaxSealData)
	}
	k, err := dataKey(kek, purpose)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = dataSealVersion
	if _, err := io.ReadFull(rand.Reader, out[1:]); err != nil {
		return nil, fmt.Errorf("keys: reading nonce: %w", err)
	}
	return aead.Seal(out, out[1:], plaintext, append([]byte{dataSealVersion}, aad...)), nil
}

// OpenData reverses SealData. Any failure wraps ErrSealed (ErrKEK for a
// zero KEK).
func OpenData(kek KEK, purpose string, sealed, aad []byte) ([]byte, error) {
	k, err := dataKey(kek, purpose)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	if len(sealed) < 1+aead.NonceSize()+aead.Overhead() || len(sealed) > 1+aead.NonceSize()+aead.Overhead()+MaxSealData {
		return nil, fmt.Errorf("%w: %d bytes", ErrSealed, len(sealed))
	}
	if sealed[0] != dataSealVersion {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrSealed, sealed[0])
	}
	nonce := sealed[1 : 1+aead.NonceSize()]
	out, err := aead.Open(nil, nonce, sealed[1+aead.NonceSize():], append([]byte{dataSealVersion}, aad...))
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed (wrong KEK, purpose or context, or tampered)", ErrSealed)
	}
	return out, nil
}
