package store

import (
	"strings"
	"testing"
	"time"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// A login authenticated before a user cut-off (its session's created time
// is the moment it read the credentials) but applied after it opens
// nothing: the credentials it checked may be those the change revoked.
func TestOpenSessionAfterCutoffRefused(t *testing.T) {
	s := openTemp(t, "race.db")
	end := &storev1.Command{NowUnixNano: t0.Add(time.Second).UnixNano(), Op: &storev1.Command_EndUserSessions{EndUserSessions: &storev1.EndUserSessions{
		UserId: "u1", Reason: storev1.EndReason_END_REASON_ACCOUNT_CHANGED, CutoffExpiresUnixNano: t0.Add(time.Hour).UnixNano()}}}
	if res := applyOne(t, s, mustEncode(t, end)); res.GetCode() != 0 {
		t.Fatalf("end user sessions: %v", res)
	}
	stale := openCmd(t0, "s1", "u1", storev1.Platform_PLATFORM_WEB, "d1", "t1", 30*time.Minute, time.Hour, false)
	stale.NowUnixNano = t0.Add(2 * time.Second).UnixNano()
	if res := applyOne(t, s, mustEncode(t, stale)); res.GetCode() != storev1.ErrorCode_ERROR_CODE_ENDED || !strings.Contains(res.GetMessage(), "account_changed") {
		t.Errorf("a login authenticated before the cut-off: %v, want ENDED naming account_changed", res)
	}
	fresh := openCmd(t0.Add(3*time.Second), "s2", "u1", storev1.Platform_PLATFORM_WEB, "d1", "t2", 30*time.Minute, time.Hour, false)
	if res := applyOne(t, s, mustEncode(t, fresh)); res.GetCode() != 0 {
		t.Errorf("a login after the cut-off: %v, want it opened", res)
	}
}
