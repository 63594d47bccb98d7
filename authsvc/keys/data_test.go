package keys

import (
	"bytes"
	"errors"
	"testing"
)

// Sealed data opens only with the same KEK, purpose and context, and any
// change to the blob is detected.
func TestSealData(t *testing.T) {
	kek, err := NewKEK(bytes.Repeat([]byte{1}, KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewKEK(bytes.Repeat([]byte{2}, KEKSize))
	msg := []byte("upstream refresh token")
	sealed, err := SealData(kek, "purpose", msg, []byte("google:sub"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, msg) {
		t.Fatal("the plaintext is visible in the sealed blob")
	}
	got, err := OpenData(kek, "purpose", sealed, []byte("google:sub"))
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("open: %q, %v", got, err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for name, try := range map[string]func() ([]byte, error){
		"other KEK":     func() ([]byte, error) { return OpenData(other, "purpose", sealed, []byte("google:sub")) },
		"other purpose": func() ([]byte, error) { return OpenData(kek, "login state", sealed, []byte("google:sub")) },
		"other context": func() ([]byte, error) { return OpenData(kek, "purpose", sealed, []byte("google:sub2")) },
		"tampered":      func() ([]byte, error) { return OpenData(kek, "purpose", tampered, []byte("google:sub")) },
		"truncated":     func() ([]byte, error) { return OpenData(kek, "purpose", sealed[:10], []byte("google:sub")) },
	} {
		if out, err := try(); !errors.Is(err, ErrSealed) || out != nil {
			t.Errorf("%s: got %q, %v; want ErrSealed", name, out, err)
		}
	}
	if _, err := SealData(KEK{}, "purpose", msg, nil); !errors.Is(err, ErrKEK) {
		t.Errorf("zero KEK: %v, want ErrKEK", err)
	}
	if _, err := SealData(kek, "purpose", make([]byte, MaxSealData+1), nil); err == nil {
		t.Error("sealing more than MaxSealData succeeded")
	}
}
