package token

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fuzzSigned returns the tokens the fuzz key really signed. A Verify
// function may accept these and nothing else: the fuzzer cannot forge an
// Ed25519 signature, and encodings are canonical, so any other accepted
// input would be a verification bug.
func fuzzSigned() (access, refresh []string, signer testSigner) {
	a := newSigner(0x42)
	c := sampleAccess()
	access = append(access, must(SignAccess(c, a.kid, a.priv)))
	c.Roles, c.NotBefore = nil, time.Time{}
	access = append(access, must(SignAccess(c, a.kid, a.priv)))
	access = append(access, must(SignAccessJWT(c, a.kid, a.priv)))
	r := sampleRefresh()
	refresh = append(refresh, must(SignRefresh(r, a.kid, a.priv)))
	r.TokenID = "rt-2"
	refresh = append(refresh, must(SignRefresh(r, a.kid, a.priv)))
	return access, refresh, a
}

// hostileSeeds are inputs every fuzz target starts from besides the
// signed tokens.
var hostileSeeds = []string{
	"", "v4.public.", "v4.public..", "v4.local.AAAA", "v2.public.AAAA.AAAA", "eyJ.eyJ.", "eyJhbGciOiJub25lIn0.e30.",
	"v4.public." + strings.Repeat("A", 100) + ".eyJraWQiOiJrNC5waWQuIn0",
	strings.Repeat(".", 50), "\x00\xff", "v4.public.\n.\r",
}

func writeSeeds(t *testing.T, target string, seeds []string) {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range seeds {
		body := fmt.Sprintf("go test fuzz v1\nstring(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWriteFuzzSeeds regenerates testdata/fuzz when SESSIOND_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("SESSIOND_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set SESSIOND_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz")
	}
	access, refresh, _ := fuzzSigned()
	all := append(append(append([]string{}, access...), refresh...), hostileSeeds...)
	writeSeeds(t, "FuzzVerifyAccess", all)
	writeSeeds(t, "FuzzVerifyRefresh", all)
}

func fuzzVerify(f *testing.F, verify func(tok string, keys KeyLookup, e Expectation) error, accepted []string) {
	access, refresh, a := fuzzSigned()
	for _, s := range append(append(append([]string{}, access...), refresh...), hostileSeeds...) {
		f.Add(s)
	}
	ok := map[string]bool{}
	for _, s := range accepted {
		ok[s] = true
	}
	keys, _ := lookup(a)
	f.Fuzz(func(t *testing.T, tok string) {
		for _, aud := range []string{testAudience, testIssuer} {
			err := verify(tok, keys, Expectation{Issuer: testIssuer, Audience: aud, Now: t0.Add(time.Minute)})
			if err == nil && !ok[tok] {
				t.Fatalf("accepted a token the key never signed: %q", tok)
			}
			if err != nil {
				sentinelOf(t, err)
			}
		}
	})
}

func FuzzVerifyAccess(f *testing.F) {
	access, _, _ := fuzzSigned()
	fuzzVerify(f, func(tok string, keys KeyLookup, e Expectation) error {
		_, err := VerifyAccess(tok, keys, e)
		return err
	}, access)
}

func FuzzVerifyRefresh(f *testing.F) {
	_, refresh, _ := fuzzSigned()
	fuzzVerify(f, func(tok string, keys KeyLookup, e Expectation) error {
		_, err := VerifyRefresh(tok, keys, e)
		return err
	}, refresh)
}

// TestFuzzSeedsStillAccepted guards the corpus: the signed seeds must verify,
// so the fuzzer explores mutations of valid tokens.
func TestFuzzSeedsStillAccepted(t *testing.T) {
	access, refresh, a := fuzzSigned()
	keys, _ := lookup(a)
	if _, err := VerifyAccess(access[0], keys, expectAt(t0.Add(time.Minute))); err != nil {
		t.Fatalf("access seed refused: %v", err)
	}
	if _, err := VerifyRefresh(refresh[0], keys, Expectation{Issuer: testIssuer, Audience: testIssuer, Now: t0.Add(time.Minute)}); err != nil {
		t.Fatalf("refresh seed refused: %v", err)
	}
	if _, err := os.Stat(filepath.Join("testdata", "fuzz", "FuzzVerifyAccess", "seed00")); err != nil {
		t.Fatalf("seed corpus missing: %v", err)
	}
}
