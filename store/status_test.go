package store

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"google.golang.org/protobuf/proto"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// TestScanMatchesUnmarshal checks the field scanner against the real
// decoder on records with every field set, so a renumbered field in
// store.proto fails here rather than in production.
func TestScanMatchesUnmarshal(t *testing.T) {
	s := &storev1.Session{Id: "s1", UserId: "u1", IdleExpiresUnixNano: 11, AbsoluteExpiresUnixNano: 22,
		EndedUnixNano: 33, EndReason: storev1.EndReason_END_REASON_FORCED_OUT, NotBeforeUnixNano: 44,
		DeviceId: "d", Region: "hk", RefreshGeneration: 7, CreatedUnixNano: 5}
	b, err := proto.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	f, err := scanSession(b)
	if err != nil {
		t.Fatal(err)
	}
	want := sessionFields{idle: 11, absolute: 22, ended: 33, notBefore: 44, reason: storev1.EndReason_END_REASON_FORCED_OUT}
	if f != want {
		t.Errorf("scanSession = %+v, want %+v", f, want)
	}
	c, _ := proto.Marshal(&storev1.UserCutoff{UserId: "u1", NotBeforeUnixNano: 55, ExpiresUnixNano: 66, Reason: storev1.EndReason_END_REASON_ACCOUNT_SUSPENDED})
	wantCut := cutoffFields{notBefore: 55, expires: 66, reason: storev1.EndReason_END_REASON_ACCOUNT_SUSPENDED}
	if got, err := scanCutoff(c); err != nil || got != wantCut {
		t.Errorf("scanCutoff = %+v, %v; want %+v, nil", got, err, wantCut)
	}
	r, _ := proto.Marshal(&storev1.Revocation{Jti: "j", RevokedUnixNano: 1, ExpiresUnixNano: 77, Reason: "x"})
	if exp, err := scanVarintField(r, 3); err != nil || exp != 77 {
		t.Errorf("revocation expiry = %d, %v; want 77, nil", exp, err)
	}
	if _, err := scanSession([]byte{0xff, 0xff, 0xff}); err == nil {
		t.Error("scanSession accepted garbage")
	}
}

// TestTokenStatusFollowsState checks TokenStatus against the records the
// rules write: a live session, then ended; a user cut-off; a revocation;
// and expiry reading as absent.
func TestTokenStatusFollowsState(t *testing.T) {
	st := openTemp(t, "status.db")
	now := t0
	n := now.UnixNano()
	hour := int64(time.Hour)
	apply := func(cmd *storev1.Command) {
		t.Helper()
		if res := applyOne(t, st, mustEncode(t, cmd)); res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
			t.Fatalf("apply: %s %s", res.GetCode(), res.GetMessage())
		}
	}
	apply(openCmd(now, "s1", "u1", storev1.Platform_PLATFORM_WEB, "d1", "tok1", time.Hour, 2*time.Hour, false))
	got, err := st.TokenStatus("s1", "u1", "j1", now)
	if err != nil || !got.SessionFound || got.SessionEnded || got.Revoked || got.UserNotBefore != 0 {
		t.Fatalf("live session: got %+v, %v", got, err)
	}
	apply(&storev1.Command{NowUnixNano: n + 1, Op: &storev1.Command_RevokeToken{RevokeToken: &storev1.RevokeToken{
		Revocation: &storev1.Revocation{Jti: "j1", RevokedUnixNano: n + 1, ExpiresUnixNano: n + hour}}}})
	apply(&storev1.Command{NowUnixNano: n + 2, Op: &storev1.Command_EndUserSessions{EndUserSessions: &storev1.EndUserSessions{
		UserId: "u1", Reason: storev1.EndReason_END_REASON_LOGOUT_ALL, CutoffExpiresUnixNano: n + hour}}})
	got, err = st.TokenStatus("s1", "u1", "j1", now.Add(time.Second))
	if err != nil || !got.SessionFound || !got.SessionEnded || got.EndReason != storev1.EndReason_END_REASON_LOGOUT_ALL ||
		!got.Revoked || got.UserNotBefore != n+2 {
		t.Fatalf("after revocations: got %+v, %v", got, err)
	}
	got, err = st.TokenStatus("s1", "u1", "j1", now.Add(3*time.Hour))
	if err != nil || got.SessionFound || got.Revoked || got.UserNotBefore != 0 {
		t.Fatalf("after expiry: got %+v, %v; want everything absent", got, err)
	}
}

// indexMatchesDisk rebuilds a check index from the bbolt file and compares
// it with the one the store kept up to date through its applies.
func indexMatchesDisk(t *testing.T, s *Store) {
	t.Helper()
	fresh := newCheckIndex()
	if err := fresh.load(s.db); err != nil {
		t.Fatal(err)
	}
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	if diff := cmp.Diff(fresh.sessions, s.idx.sessions, cmp.AllowUnexported(sessionIndex{}, packedSession{}, sessionCheck{})); diff != "" {
		t.Errorf("sessions index differs from the file (-file +kept):\n%s", diff)
	}
	if diff := cmp.Diff(fresh.cutoffs, s.idx.cutoffs, cmp.AllowUnexported(cutoffFields{})); diff != "" {
		t.Errorf("cut-offs index differs from the file (-file +kept):\n%s", diff)
	}
	if diff := cmp.Diff(fresh.revoked, s.idx.revoked); diff != "" {
		t.Errorf("revocations index differs from the file (-file +kept):\n%s", diff)
	}
}

// The in-memory check index follows every kind of command (the random log
// of the determinism test, purges included) and is rebuilt by a restore.
func TestCheckIndexFollowsApplies(t *testing.T) {
	s := openTemp(t, "idx.db")
	applyInBatches(t, s, randomLog(t, 7, 3000), []int{1, 64, 512})
	if s.idx.sessions.len() == 0 {
		t.Fatal("the random log opened no session: the test checks nothing")
	}
	indexMatchesDisk(t, s)

	snap := persist(t, s)
	other := openTemp(t, "other.db")
	if err := other.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	indexMatchesDisk(t, other)
	if other.idx.sessions.len() != s.idx.sessions.len() {
		t.Errorf("restored index holds %d sessions, want %d", other.idx.sessions.len(), s.idx.sessions.len())
	}
}
