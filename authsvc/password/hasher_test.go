package password

import (
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// cheap are small parameters so that tests stay fast under -race.
var cheap = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func newHasher(t testing.TB, cfg Config) *Hasher {
	t.Helper()
	h, err := NewHasher(cfg)
	if err != nil {
		t.Fatalf("NewHasher: %v", err)
	}
	return h
}

func TestDefaultParamsAreOWASPMinimum(t *testing.T) {
	got := DefaultParams()
	want := Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
	if got != want {
		t.Fatalf("DefaultParams() = %+v, want %+v", got, want)
	}
}

func TestHashFormatWithDefaultParams(t *testing.T) {
	h := newHasher(t, Config{})
	s, err := h.Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !re.MatchString(s) {
		t.Fatalf("Hash() = %q, want match of %s", s, re)
	}
	ok, rehash, err := h.Verify("correct horse battery staple", s)
	if !ok || rehash || err != nil {
		t.Fatalf("Verify(own hash) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
}

// Vectors produced by the reference C implementation (Debian's argon2 CLI:
// `echo -n PASSWORD | argon2 SALT -id -t T -k M -p P -l L -e`).
func TestVerifyReferenceVectors(t *testing.T) {
	h := newHasher(t, Config{Params: DefaultParams()})
	cases := []struct {
		password, phc string
		rehash        bool
	}{
		{"correct horse battery staple", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0MTZieQ$c98h7V86AxtghMLup35X9LOt5fCLrEhoSEBeiMUo/AI", false},
		// 15-byte salt: matches, but differs from the hasher's SaltLen.
		{"correct horse battery staple", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0MTZi$ruW22rZ+Z2oQpc09UDt/snC/wUlvZib0deQGUp52TIc", true},
		{"password", "$argon2id$v=19$m=64,t=1,p=2$c29tZXNhbHRzb21lc2FsdA$YDWZ7SC7/FISnTlw8W9X9w", true},
	}
	for _, c := range cases {
		ok, rehash, err := h.Verify(c.password, c.phc)
		if !ok || rehash != c.rehash || err != nil {
			t.Errorf("Verify(%q, %q) = %v, %v, %v; want true, %v, nil", c.password, c.phc, ok, rehash, err, c.rehash)
		}
		ok, _, err = h.Verify(c.password+"x", c.phc)
		if ok || !errors.Is(err, ErrMismatch) {
			t.Errorf("Verify(wrong password) = %v, %v; want false, ErrMismatch", ok, err)
		}
	}
}

func TestRoundTripAndMismatch(t *testing.T) {
	h := newHasher(t, Config{Params: cheap})
	s, err := h.Hash("hunter2")
	if err != nil {
		t.Fatal(err)
	}
	if ok, rehash, err := h.Verify("hunter2", s); !ok || rehash || err != nil {
		t.Fatalf("Verify(right) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	if ok, _, err := h.Verify("hunter3", s); ok || !errors.Is(err, ErrMismatch) {
		t.Fatalf("Verify(wrong) = %v, %v; want false, ErrMismatch", ok, err)
	}
	s2, err := h.Hash("hunter2")
	if err != nil {
		t.Fatal(err)
	}
	if s2 == s {
		t.Fatalf("two hashes of the same password are equal (%q): salt is not random", s)
	}
}

func TestNeedsRehash(t *testing.T) {
	old := newHasher(t, Config{Params: cheap})
	s, err := old.Hash("pw")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Params{
		{Memory: 128, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 2, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 32, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 64},
	} {
		h := newHasher(t, Config{Params: p})
		ok, rehash, err := h.Verify("pw", s)
		if !ok || !rehash || err != nil {
			t.Errorf("hasher %+v: Verify(old hash) = %v, %v, %v; want true, true, nil", p, ok, rehash, err)
		}
	}
}

func TestVerifyDummyReportsMismatch(t *testing.T) {
	h := newHasher(t, Config{Params: cheap})
	ok, err := h.VerifyDummy("anything")
	if ok || !errors.Is(err, ErrMismatch) {
		t.Fatalf("VerifyDummy = %v, %v; want false, ErrMismatch", ok, err)
	}
	// The dummy hash has the hasher's own parameters, so it costs what
	// Verify of a current hash costs.
	if h.dummy.Params != h.params {
		t.Fatalf("dummy params = %+v, want %+v", h.dummy.Params, h.params)
	}
}

func TestVerifyRefusesMalformed(t *testing.T) {
	h := newHasher(t, Config{Params: cheap})
	for _, s := range []string{
		"",
		"plaintext",
		"$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
		"$argon2id$v=19$m=2097152,t=2,p=1$c2FsdHNhbHRzYWx0MTZi$ruW22rZ+Z2oQpc09UDt/snC/wUlvZib0deQGUp52TIc",
	} {
		ok, _, err := h.Verify("pw", s)
		if ok || !errors.Is(err, ErrMalformedHash) {
			t.Errorf("Verify(%q) = %v, %v; want false, ErrMalformedHash", s, ok, err)
		}
	}
}

func TestBusyWhenAllSlotsTaken(t *testing.T) {
	h := newHasher(t, Config{Params: cheap, MaxConcurrent: 1, MaxWait: 5 * time.Millisecond})
	h.sem <- struct{}{} // occupy the only slot
	if _, err := h.Hash("pw"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Hash with all slots taken: err = %v, want ErrBusy", err)
	}
	if _, _, err := h.Verify("pw", "$argon2id$v=19$m=64,t=1,p=2$c29tZXNhbHRzb21lc2FsdA$YDWZ7SC7/FISnTlw8W9X9w"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Verify with all slots taken: err = %v, want ErrBusy", err)
	}
	if _, err := h.VerifyDummy("pw"); !errors.Is(err, ErrBusy) {
		t.Fatalf("VerifyDummy with all slots taken: err = %v, want ErrBusy", err)
	}
	<-h.sem
	if _, err := h.Hash("pw"); err != nil {
		t.Fatalf("Hash after slot freed: %v", err)
	}
}

func TestWaiterGetsSlotWhenFreed(t *testing.T) {
	h := newHasher(t, Config{Params: cheap, MaxConcurrent: 1, MaxWait: time.Minute})
	h.sem <- struct{}{}
	done := make(chan error, 1)
	go func() {
		_, err := h.Hash("pw")
		done <- err
	}()
	// Whether the goroutine is already waiting is not observable; freeing
	// the slot at any point must let it through.
	<-h.sem
	if err := <-done; err != nil {
		t.Fatalf("Hash after slot freed: %v, want nil", err)
	}
}

func TestConcurrencyNeverExceedsBound(t *testing.T) {
	const bound = 2
	h := newHasher(t, Config{Params: cheap, MaxConcurrent: bound, MaxWait: time.Minute})
	var wg sync.WaitGroup
	var mu sync.Mutex
	maxSeen := 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.Hash("pw"); err != nil {
				t.Errorf("Hash: %v", err)
			}
			mu.Lock()
			if n := len(h.sem); n > maxSeen {
				maxSeen = n
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if maxSeen > bound {
		t.Fatalf("observed %d slots in use, bound %d", maxSeen, bound)
	}
	if cap(h.sem) != bound {
		t.Fatalf("cap(sem) = %d, want %d", cap(h.sem), bound)
	}
}

func TestNewHasherRefusesBadParams(t *testing.T) {
	for _, p := range []Params{
		{Memory: 2 << 20, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 0, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 8},
	} {
		if _, err := NewHasher(Config{Params: p}); err == nil {
			t.Errorf("NewHasher(%+v) succeeded, want error", p)
		}
	}
}

func TestParsePHCStrict(t *testing.T) {
	good := "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0MTZi$ruW22rZ+Z2oQpc09UDt/snC/wUlvZib0deQGUp52TIc"
	h, err := ParsePHC(good)
	if err != nil {
		t.Fatalf("ParsePHC(good): %v", err)
	}
	if got := h.String(); got != good {
		t.Fatalf("round trip = %q, want %q", got, good)
	}
	if want := (Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 15, KeyLen: 32}); h.Params != want {
		t.Fatalf("params = %+v, want %+v", h.Params, want)
	}
	bad := map[string]string{
		"empty":             "",
		"argon2i":           strings.Replace(good, "argon2id", "argon2i", 1),
		"no version":        strings.Replace(good, "$v=19", "", 1),
		"version 16":        strings.Replace(good, "v=19", "v=16", 1),
		"param order":       strings.Replace(good, "m=19456,t=2", "t=2,m=19456", 1),
		"leading zero":      strings.Replace(good, "m=19456", "m=019456", 1),
		"plus sign":         strings.Replace(good, "t=2", "t=+2", 1),
		"memory 4GiB":       strings.Replace(good, "m=19456", "m=4294967295", 1),
		"memory overflow":   strings.Replace(good, "m=19456", "m=99999999999", 1),
		"memory > 1GiB":     strings.Replace(good, "m=19456", "m=1048577", 1),
		"time 0":            strings.Replace(good, "t=2", "t=0", 1),
		"time huge":         strings.Replace(good, "t=2", "t=1000000", 1),
		"threads 0":         strings.Replace(good, "p=1", "p=0", 1),
		"threads 256":       strings.Replace(good, "p=1", "p=256", 1),
		"padded salt":       strings.Replace(good, "MTZi$", "MTZi==$", 1),
		"non-canonical b64": strings.Replace(good, "TIc", "TId", 1),
		"short salt":        strings.Replace(good, "c2FsdHNhbHRzYWx0MTZi", "c2FsdA", 1),
		"extra field":       good + "$x",
		"trailing newline":  good + "\n",
		"huge":              good + strings.Repeat("A", MaxPHCLen),
		"key params":        strings.Replace(good, "p=1", "p=1,keyid=x", 1),
	}
	for name, s := range bad {
		if _, err := ParsePHC(s); !errors.Is(err, ErrMalformedHash) {
			t.Errorf("%s: ParsePHC(%q) err = %v, want ErrMalformedHash", name, s, err)
		}
	}
}

func FuzzParsePHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0MTZi$ruW22rZ+Z2oQpc09UDt/snC/wUlvZib0deQGUp52TIc")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParsePHC(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("ParsePHC(%q) err = %v, want it to wrap ErrMalformedHash", s, err)
			}
			return
		}
		if err := h.Params.Validate(); err != nil {
			t.Fatalf("ParsePHC(%q) accepted out-of-bounds params: %v", s, err)
		}
		if h.Params.Memory > MaxMemoryKiB {
			t.Fatalf("ParsePHC(%q) accepted memory %d KiB", s, h.Params.Memory)
		}
		// Parsing is strict, so an accepted string is canonical.
		if got := h.String(); got != s {
			t.Fatalf("ParsePHC(%q).String() = %q, want the input back", s, got)
		}
	})
}

// BenchmarkHash measures hashes per second with DefaultParams: the ceiling
// for password logins per core.
func BenchmarkHash(b *testing.B) {
	h := newHasher(b, Config{Params: DefaultParams()})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}
