package keys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testKEK(t *testing.T, fill byte) KEK {
	t.Helper()
	k, err := NewKEK(bytes.Repeat([]byte{fill}, KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testKey(t *testing.T, fill byte) ed25519.PrivateKey {
	t.Helper()
	priv, err := Generate(bytes.NewReader(bytes.Repeat([]byte{fill}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func TestGenerateUsesReader(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	priv, err := Generate(bytes.NewReader(seed))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(priv.Seed(), seed) {
		t.Fatalf("seed = %x, want %x", priv.Seed(), seed)
	}
	if _, err := Generate(bytes.NewReader(seed[:10])); err == nil {
		t.Fatal("Generate with a short reader succeeded, want error")
	}
	a, err := Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate(nil)
	if a.Equal(b) {
		t.Fatal("two keys from crypto/rand are equal")
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	kek := testKEK(t, 1)
	priv := testKey(t, 2)
	sealed, err := Seal(kek, priv, []byte("kid-a"))
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != SealedSize {
		t.Fatalf("len(sealed) = %d, want %d", len(sealed), SealedSize)
	}
	if bytes.Contains(sealed, priv.Seed()) {
		t.Fatal("sealed blob contains the plaintext seed")
	}
	got, err := Open(kek, sealed, []byte("kid-a"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !got.Equal(priv) {
		t.Fatal("opened key differs from sealed key")
	}
	again, _ := Seal(kek, priv, []byte("kid-a"))
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of the same key are identical: nonce is not random")
	}
}

func TestOpenRefuses(t *testing.T) {
	kek := testKEK(t, 1)
	sealed, err := Seal(kek, testKey(t, 2), []byte("kid-a"))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}
	cases := []struct {
		name   string
		kek    KEK
		sealed []byte
		aad    string
		want   error
	}{
		{"other kid (swapped blob)", kek, sealed, "kid-b", ErrSealed},
		{"empty aad", kek, sealed, "", ErrSealed},
		{"other KEK", testKEK(t, 9), sealed, "kid-a", ErrSealed},
		{"zero KEK", KEK{}, sealed, "kid-a", ErrKEK},
		{"version byte", kek, flip(0), "kid-a", ErrSealed},
		{"nonce bit", kek, flip(5), "kid-a", ErrSealed},
		{"ciphertext bit", kek, flip(30), "kid-a", ErrSealed},
		{"tag bit", kek, flip(SealedSize - 1), "kid-a", ErrSealed},
		{"truncated", kek, sealed[:SealedSize-1], "kid-a", ErrSealed},
		{"extended", kek, append(bytes.Clone(sealed), 0), "kid-a", ErrSealed},
		{"empty", kek, nil, "kid-a", ErrSealed},
	}
	for _, c := range cases {
		if _, err := Open(c.kek, c.sealed, []byte(c.aad)); !errors.Is(err, c.want) {
			t.Errorf("%s: Open err = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestSealRefuses(t *testing.T) {
	if _, err := Seal(KEK{}, testKey(t, 1), nil); !errors.Is(err, ErrKEK) {
		t.Errorf("Seal with zero KEK: err = %v, want ErrKEK", err)
	}
	if _, err := Seal(testKEK(t, 1), ed25519.PrivateKey(make([]byte, 10)), nil); err == nil {
		t.Error("Seal of a 10-byte key succeeded, want error")
	}
}

func TestParseKEK(t *testing.T) {
	raw := bytes.Repeat([]byte{0xAB}, KEKSize)
	want, _ := NewKEK(raw)
	good := map[string]string{
		"hex":              hex.EncodeToString(raw),
		"HEX upper":        strings.ToUpper(hex.EncodeToString(raw)),
		"base64":           base64.StdEncoding.EncodeToString(raw),
		"trailing newline": base64.StdEncoding.EncodeToString(raw) + "\n",
	}
	for name, s := range good {
		got, err := ParseKEK(s)
		if err != nil || got != want {
			t.Errorf("%s: ParseKEK(%q) = %v, %v; want the key", name, s, got == want, err)
		}
	}
	bad := map[string]string{
		"empty":           "",
		"31 bytes hex":    hex.EncodeToString(raw[:31]),
		"33 bytes hex":    hex.EncodeToString(append(bytes.Clone(raw), 1)),
		"31 bytes base64": base64.StdEncoding.EncodeToString(raw[:31]),
		"48 bytes base64": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xFF}, 48)),
		"unpadded base64": base64.RawStdEncoding.EncodeToString(raw),
		"base64url":       strings.Repeat("_", 43) + "=",
		"64 non-hex":      strings.Repeat("z", 64),
		"passphrase":      "correct horse battery staple",
	}
	for name, s := range bad {
		_, err := ParseKEK(s)
		if !errors.Is(err, ErrKEK) {
			t.Errorf("%s: ParseKEK err = %v, want ErrKEK", name, err)
			continue
		}
		if len(s) > 8 && strings.Contains(err.Error(), strings.TrimSpace(s)) {
			t.Errorf("%s: error %q reveals the input", name, err)
		}
	}
}

func TestLoadKEKFile(t *testing.T) {
	dir := t.TempDir()
	raw := bytes.Repeat([]byte{3}, KEKSize)
	path := filepath.Join(dir, "kek")
	if err := os.WriteFile(path, []byte(hex.EncodeToString(raw)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadKEKFile(path)
	want, _ := NewKEK(raw)
	if err != nil || got != want {
		t.Fatalf("LoadKEKFile = %v, %v; want the key", got == want, err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("a"), 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKEKFile(big); !errors.Is(err, ErrKEK) {
		t.Fatalf("LoadKEKFile(4 KiB file) err = %v, want ErrKEK", err)
	}
	if _, err := LoadKEKFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadKEKFile(missing) err = %v, want os.ErrNotExist", err)
	}
}

func TestKEKNeverPrinted(t *testing.T) {
	raw := bytes.Repeat([]byte{0xCD}, KEKSize)
	k, _ := NewKEK(raw)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		out := fmt.Sprintf(verb, k)
		if strings.Contains(strings.ToLower(out), "cdcd") || strings.Contains(out, "205 205") {
			t.Errorf("fmt %s of a KEK = %q: reveals key bytes", verb, out)
		}
	}
}

func TestSealBytesRoundTripAndRefusals(t *testing.T) {
	kek, err := NewKEK(bytes.Repeat([]byte{7}, KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewKEK(bytes.Repeat([]byte{8}, KEKSize))
	plain := bytes.Repeat([]byte("der"), 400)
	sealed, err := SealBytes(kek, plain, []byte("kid-1"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenBytes(kek, sealed, []byte("kid-1"))
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("OpenBytes = %d bytes, %v; want the plaintext", len(got), err)
	}
	for name, try := range map[string]func() error{
		"other kid":      func() error { _, err := OpenBytes(kek, sealed, []byte("kid-2")); return err },
		"other KEK":      func() error { _, err := OpenBytes(other, sealed, []byte("kid-1")); return err },
		"ed25519 opener": func() error { _, err := Open(kek, sealed, []byte("kid-1")); return err },
	} {
		if err := try(); !errors.Is(err, ErrSealed) {
			t.Errorf("%s: err = %v, want ErrSealed", name, err)
		}
	}
}
