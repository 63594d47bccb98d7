// Package keys manages the Ed25519 signing keys of the auth service: their
// generation, their sealing at rest under a key-encryption key (KEK) with
// XChaCha20-Poly1305, a read-only Keyring answering "which key signs now"
// and "which public key has this kid", and rotation planning as a pure
// function. It knows nothing of the store: callers pass KeyInfo values.
package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// KEKSize is the size of a key-encryption key in bytes.
const KEKSize = 32

// sealVersion is the first byte of a sealed blob. It is also authenticated
// (prepended to the caller's AAD).
const sealVersion byte = 1

// SealedSize is the exact length of a blob returned by Seal: a version byte,
// a 24-byte nonce, the 32-byte Ed25519 seed and a 16-byte tag.
const SealedSize = 1 + chacha20poly1305.NonceSizeX + ed25519.SeedSize + chacha20poly1305.Overhead

var (
	// ErrKEK is returned (wrapped) for a KEK that cannot be parsed or has
	// the wrong size.
	ErrKEK = errors.New("keys: invalid key-encryption key")
	// ErrSealed is returned (wrapped) by Open when a blob is malformed, was
	// sealed under another KEK, was tampered with, or belongs to another
	// key id (AAD mismatch).
	ErrSealed = errors.New("keys: sealed key cannot be opened")
)

// KEK is a 32-byte key-encryption key. Its zero value is not a usable key
// (Seal and Open refuse it). Its String and GoString methods never reveal
// the key material.
type KEK struct {
	b   [KEKSize]byte
	set bool
}

// NewKEK returns a KEK holding a copy of b, which must be exactly KEKSize
// bytes.
func NewKEK(b []byte) (KEK, error) {
	if len(b) != KEKSize {
		return KEK{}, fmt.Errorf("%w: got %d bytes, want %d", ErrKEK, len(b), KEKSize)
	}
	var k KEK
	copy(k.b[:], b)
	k.set = true
	return k, nil
}

// ParseKEK parses a textual KEK, as found in an environment variable or a
// key file. Surrounding white space is ignored. Two encodings are accepted,
// told apart by length: 64 hexadecimal digits, or 44 characters of padded
// standard base64 (RFC 4648 §4, as printed by `openssl rand -base64 32`).
// A 64-character input is always read as hex.
// Any other input, including one that decodes to other than 32 bytes, is
// refused with an error wrapping ErrKEK that never contains the input.
func ParseKEK(s string) (KEK, error) {
	s = strings.TrimSpace(s)
	var (
		b   []byte
		err error
	)
	switch len(s) {
	case hex.EncodedLen(KEKSize):
		b, err = hex.DecodeString(s)
		if err != nil {
			return KEK{}, fmt.Errorf("%w: 64 characters but not hexadecimal", ErrKEK)
		}
	case base64.StdEncoding.EncodedLen(KEKSize):
		b, err = base64.StdEncoding.Strict().DecodeString(s)
		if err != nil {
			return KEK{}, fmt.Errorf("%w: 44 characters but not padded standard base64", ErrKEK)
		}
	default:
		return KEK{}, fmt.Errorf("%w: %d characters; want 64 hex digits or 44 base64 characters encoding %d bytes", ErrKEK, len(s), KEKSize)
	}
	return NewKEK(b)
}

// maxKEKFile bounds the size of a KEK file read by LoadKEKFile.
const maxKEKFile = 1024

// LoadKEKFile reads a KEK from the file at path, in one of the encodings
// accepted by ParseKEK (a trailing newline is fine).
func LoadKEKFile(path string) (KEK, error) {
	f, err := os.Open(path)
	if err != nil {
		return KEK{}, fmt.Errorf("keys: reading KEK file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKEKFile+1))
	if err != nil {
		return KEK{}, fmt.Errorf("keys: reading KEK file %s: %w", path, err)
	}
	if len(b) > maxKEKFile {
		return KEK{}, fmt.Errorf("%w: file %s is larger than %d bytes", ErrKEK, path, maxKEKFile)
	}
	k, err := ParseKEK(string(b))
	if err != nil {
		return KEK{}, fmt.Errorf("file %s: %w", path, err)
	}
	return k, nil
}

// IsZero reports whether k holds no key.
func (k KEK) IsZero() bool { return !k.set }

// String returns a fixed placeholder; it never reveals the key.
func (k KEK) String() string { return "KEK(redacted)" }

// GoString returns a fixed placeholder; it never reveals the key.
func (k KEK) GoString() string { return "keys.KEK(redacted)" }

// Generate returns a new Ed25519 private key whose 32-byte seed is read from
// r (nil means crypto/rand.Reader).
func Generate(r io.Reader) (ed25519.PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(r, seed); err != nil {
		return nil, fmt.Errorf("keys: reading random seed: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// Seal encrypts priv's seed under kek with XChaCha20-Poly1305 and a random
// 24-byte nonce. aad must be the key id: Open with any other aad fails, so a
// sealed blob cannot be moved to another key's record. The result is
// SealedSize bytes: version (1) || nonce || ciphertext+tag.
func Seal(kek KEK, priv ed25519.PrivateKey, aad []byte) ([]byte, error) {
	if kek.IsZero() {
		return nil, fmt.Errorf("%w: zero KEK", ErrKEK)
	}
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("keys: private key is %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	aead, err := chacha20poly1305.NewX(kek.b[:])
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	out := make([]byte, 1+aead.NonceSize(), SealedSize)
	out[0] = sealVersion
	if _, err := io.ReadFull(rand.Reader, out[1:]); err != nil {
		return nil, fmt.Errorf("keys: reading nonce: %w", err)
	}
	return aead.Seal(out, out[1:], priv.Seed(), fullAAD(aad)), nil
}

// Open reverses Seal: it authenticates and decrypts sealed under kek with
// the same aad (the key id) and returns the private key. Any failure wraps
// ErrSealed (or ErrKEK for a zero KEK).
func Open(kek KEK, sealed, aad []byte) (ed25519.PrivateKey, error) {
	if kek.IsZero() {
		return nil, fmt.Errorf("%w: zero KEK", ErrKEK)
	}
	if len(sealed) != SealedSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrSealed, len(sealed), SealedSize)
	}
	if sealed[0] != sealVersion {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrSealed, sealed[0])
	}
	aead, err := chacha20poly1305.NewX(kek.b[:])
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	nonce := sealed[1 : 1+aead.NonceSize()]
	seed, err := aead.Open(nil, nonce, sealed[1+aead.NonceSize():], fullAAD(aad))
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed (wrong KEK, wrong key id, or tampered)", ErrSealed)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// fullAAD binds the format version to the caller's AAD.
func fullAAD(aad []byte) []byte {
	return bytes.Join([][]byte{{sealVersion}, aad}, nil)
}

// sealBytesVersion is the first byte of a blob sealed by SealBytes (any
// length of plaintext, e.g. a DER private key of the OpenID Provider).
const sealBytesVersion byte = 2

// maxSealBytes bounds what SealBytes seals and OpenBytes opens.
const maxSealBytes = 8 << 10

// SealBytes encrypts plain (at most 8 KiB, e.g. a PKCS #8 private key)
// under kek like Seal, with aad the key id: version 2 || nonce ||
// ciphertext+tag.
func SealBytes(kek KEK, plain, aad []byte) ([]byte, error) {
	if kek.IsZero() {
		return nil, fmt.Errorf("%w: zero KEK", ErrKEK)
	}
	if len(plain) == 0 || len(plain) > maxSealBytes {
		return nil, fmt.Errorf("keys: %d bytes to seal; want 1 to %d", len(plain), maxSealBytes)
	}
	aead, err := chacha20poly1305.NewX(kek.b[:])
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plain)+aead.Overhead())
	out[0] = sealBytesVersion
	if _, err := io.ReadFull(rand.Reader, out[1:]); err != nil {
		return nil, fmt.Errorf("keys: reading nonce: %w", err)
	}
	return aead.Seal(out, out[1:], plain, bytesAAD(aad)), nil
}

// OpenBytes reverses SealBytes; any failure wraps ErrSealed (or ErrKEK).
func OpenBytes(kek KEK, sealed, aad []byte) ([]byte, error) {
	if kek.IsZero() {
		return nil, fmt.Errorf("%w: zero KEK", ErrKEK)
	}
	n := 1 + chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
	if len(sealed) <= n || len(sealed) > n+maxSealBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrSealed, len(sealed))
	}
	if sealed[0] != sealBytesVersion {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrSealed, sealed[0])
	}
	aead, err := chacha20poly1305.NewX(kek.b[:])
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	nonce := sealed[1 : 1+aead.NonceSize()]
	plain, err := aead.Open(nil, nonce, sealed[1+aead.NonceSize():], bytesAAD(aad))
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed (wrong KEK, wrong key id, or tampered)", ErrSealed)
	}
	return plain, nil
}

func bytesAAD(aad []byte) []byte {
	return bytes.Join([][]byte{{sealBytesVersion}, aad}, nil)
}
