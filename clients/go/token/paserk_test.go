package token

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type paserkVectors struct {
	Tests []struct {
		Name   string  `json:"name"`
		Key    string  `json:"key"`
		PASERK *string `json:"paserk"`
	} `json:"tests"`
}

func loadVectors(t *testing.T, name string) paserkVectors {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var v paserkVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Tests) == 0 {
		t.Fatalf("%s has no tests", name)
	}
	return v
}

// TestPASERKVectors checks PublicKeyPASERK, ParsePublicPASERK and PID
// against the official paseto-standard test vectors (see testdata/SOURCES.md).
func TestPASERKVectors(t *testing.T) {
	for _, file := range []string{"k4.public.json", "k4.pid.json"} {
		for _, v := range loadVectors(t, file).Tests {
			key, err := hex.DecodeString(v.Key)
			if err != nil {
				t.Fatalf("%s: bad hex: %v", v.Name, err)
			}
			pub := ed25519.PublicKey(key)
			var got string
			if file == "k4.pid.json" {
				got = PID(pub)
			} else {
				got = PublicKeyPASERK(pub)
			}
			if v.PASERK == nil { // expected to fail: wrong-size keys
				if got != "" {
					t.Errorf("%s: got %q, want failure (empty string)", v.Name, got)
				}
				continue
			}
			if got != *v.PASERK {
				t.Errorf("%s: got %q, want %q", v.Name, got, *v.PASERK)
			}
			if file == "k4.public.json" {
				back, err := ParsePublicPASERK(*v.PASERK)
				if err != nil || !back.Equal(pub) {
					t.Errorf("%s: ParsePublicPASERK = %x, %v; want %x", v.Name, back, err, key)
				}
			} else if !validPID(got) {
				t.Errorf("%s: validPID(%q) = false", v.Name, got)
			}
		}
	}
}

func TestParsePublicPASERKRefuses(t *testing.T) {
	good := "k4.public.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8"
	for _, s := range []string{
		"",
		strings.Replace(good, "k4.", "k2.", 1),
		strings.Replace(good, "public", "secret", 1),
		strings.Replace(good, "k4.public.", "k4.pid.", 1),
		good[:len(good)-1],
		good + "A",
		strings.Replace(good, "jo8", "jo9", 1), // non-canonical trailing bits
		strings.Replace(good, "-", "+", 1),     // standard alphabet
		good[:len(good)-1] + "\n",
	} {
		if _, err := ParsePublicPASERK(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParsePublicPASERK(%q) err = %v, want ErrMalformed", s, err)
		}
	}
}
