package store

import (
	"crypto/sha256"
	"strings"
	"sync"
	"testing"
	"time"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

func claimCmd(now time.Time, key []byte, node string, window time.Duration) *storev1.Command {
	return &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_ClaimAlert{ClaimAlert: &storev1.ClaimAlert{
		Key: key, NodeId: node, WindowNanos: int64(window)}}}
}

// The first claim of a key wins for its window; a second node's claim
// within it is refused naming the holder; after the window the key can be
// claimed again, and the purger removes expired claims.
func TestClaimAlert(t *testing.T) {
	s := openTemp(t, "claims.db")
	k := sha256.Sum256([]byte("node_unreachable:seoul-1"))
	if res := applyOne(t, s, mustEncode(t, claimCmd(t0, k[:], "hk-1", time.Minute))); res.GetCode() != 0 {
		t.Fatalf("first claim: got %v, want success", res)
	}
	res := applyOne(t, s, mustEncode(t, claimCmd(t0.Add(30*time.Second), k[:], "tokyo-1", time.Minute)))
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_CONFLICT || !strings.Contains(res.GetMessage(), "hk-1") {
		t.Fatalf("second claim within the window: got %v, want CONFLICT naming hk-1", res)
	}
	// The refused claim did not extend the first one.
	if res := applyOne(t, s, mustEncode(t, claimCmd(t0.Add(61*time.Second), k[:], "tokyo-1", time.Minute))); res.GetCode() != 0 {
		t.Fatalf("claim after the window: got %v, want success", res)
	}
	purge := &storev1.Command{NowUnixNano: t0.Add(3 * time.Minute).UnixNano(), Op: &storev1.Command_Purge{Purge: &storev1.Purge{Limit: 10}}}
	if res := applyOne(t, s, mustEncode(t, purge)); res.GetPurged() != 1 {
		t.Errorf("purge: got %v, want 1 record purged", res)
	}
}

// Bad claims are refused INVALID and change nothing.
func TestClaimAlertInvalid(t *testing.T) {
	s := openTemp(t, "claims.db")
	k := sha256.Sum256([]byte("x"))
	for _, c := range []struct {
		name string
		cmd  *storev1.Command
		want string
	}{
		{"short key", claimCmd(t0, []byte("abc"), "n1", time.Minute), "key must be 32 bytes"},
		{"no node", claimCmd(t0, k[:], "", time.Minute), "node_id is empty"},
		{"zero window", claimCmd(t0, k[:], "n1", 0), "window_nanos"},
		{"window too long", claimCmd(t0, k[:], "n1", 8*24*time.Hour), "window_nanos"},
	} {
		res := applyOne(t, s, mustEncode(t, c.cmd))
		if res.GetCode() != storev1.ErrorCode_ERROR_CODE_INVALID || !strings.Contains(res.GetMessage(), c.want) {
			t.Errorf("%s: got %v, want INVALID naming %q", c.name, res, c.want)
		}
	}
	if res := applyOne(t, s, mustEncode(t, claimCmd(t0, k[:], "n1", time.Minute))); res.GetCode() != 0 {
		t.Errorf("a valid claim after the refused ones: got %v, want success", res)
	}
}

// A live session the purger removes is reported as ChangeSessionExpired,
// an ended one is not (it was reported when it ended).
func TestPurgeReportsExpiredSessions(t *testing.T) {
	var mu sync.Mutex
	var got []Change
	s := openTemp(t, "expired.db")
	s.opts.OnChanges = func(_ uint64, ch []Change) {
		mu.Lock()
		got = append(got, ch...)
		mu.Unlock()
	}
	applyOne(t, s, mustEncode(t, openCmd(t0, "s1", "u1", storev1.Platform_PLATFORM_WEB, "d1", "t1", time.Minute, time.Hour, false)))
	purge := &storev1.Command{NowUnixNano: t0.Add(2 * time.Minute).UnixNano(), Op: &storev1.Command_Purge{Purge: &storev1.Purge{Limit: 10}}}
	applyOne(t, s, mustEncode(t, purge))
	mu.Lock()
	defer mu.Unlock()
	var expired []string
	for _, c := range got {
		if c.Kind == ChangeSessionExpired {
			expired = append(expired, c.ID)
		}
	}
	if len(expired) != 1 || expired[0] != "s1" {
		t.Errorf("expired sessions reported: got %v, want [s1]", expired)
	}
}
