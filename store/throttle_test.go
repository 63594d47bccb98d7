package store

import (
	"crypto/sha256"
	"testing"
	"time"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

func recordFailure(now time.Time, window time.Duration, keys ...[]byte) *storev1.Command {
	return &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_RecordLoginFailure{RecordLoginFailure: &storev1.RecordLoginFailure{
		Keys: keys, WindowNanos: int64(window)}}}
}

// Login-failure counts grow per key, restart after their window, are
// cleared on demand, and are purged once expired.
func TestLoginFailures(t *testing.T) {
	s := openTemp(t, "lf.db")
	a, b := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b"))
	count := func(k [32]byte, now time.Time) uint32 {
		t.Helper()
		n, _, err := s.LoginFailures(k[:], now)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i := range 3 {
		if res := applyOne(t, s, mustEncode(t, recordFailure(t0.Add(time.Duration(i)*time.Second), time.Minute, a[:], b[:]))); res.GetCode() != 0 {
			t.Fatalf("record: %v", res)
		}
	}
	applyOne(t, s, mustEncode(t, recordFailure(t0.Add(3*time.Second), time.Minute, a[:])))
	if n, last, _ := s.LoginFailures(a[:], t0.Add(3*time.Second)); n != 4 || !last.Equal(t0.Add(3*time.Second)) {
		t.Errorf("a: %d failures, last %v; want 4 at t0+3s", n, last)
	}
	if got := count(b, t0.Add(3*time.Second)); got != 3 {
		t.Errorf("b: %d failures, want 3", got)
	}
	// b's window ran out a minute after its last failure (t0+2s): absent
	// to reads, and a new failure starts from one.
	if got := count(b, t0.Add(62*time.Second)); got != 0 {
		t.Errorf("b after its window: %d, want 0", got)
	}
	applyOne(t, s, mustEncode(t, recordFailure(t0.Add(70*time.Second), time.Minute, b[:])))
	if got := count(b, t0.Add(70*time.Second)); got != 1 {
		t.Errorf("b after a new failure: %d, want 1", got)
	}
	clear := &storev1.Command{NowUnixNano: t0.Add(71 * time.Second).UnixNano(), Op: &storev1.Command_ClearLoginFailures{ClearLoginFailures: &storev1.ClearLoginFailures{Keys: [][]byte{b[:]}}}}
	if res := applyOne(t, s, mustEncode(t, clear)); res.GetCode() != 0 {
		t.Fatalf("clear: %v", res)
	}
	if got := count(b, t0.Add(71*time.Second)); got != 0 {
		t.Errorf("b after clear: %d, want 0", got)
	}
	// a expired at t0+63s: a purge deletes it.
	purge := &storev1.Command{NowUnixNano: t0.Add(2 * time.Minute).UnixNano(), Op: &storev1.Command_Purge{Purge: &storev1.Purge{Limit: 10}}}
	if res := applyOne(t, s, mustEncode(t, purge)); res.GetPurged() != 1 {
		t.Errorf("purge: %v, want 1 record purged", res)
	}
	if got := count(a, t0); got != 0 {
		t.Errorf("a after purge, read at t0: %d, want 0 (deleted)", got)
	}
}
