package store

import (
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

func linkCmd(now time.Time, provider, subject, user string, create bool) *storev1.Command {
	return &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_PutUpstreamLink{PutUpstreamLink: &storev1.PutUpstreamLink{
		Create: create,
		Link: &storev1.UpstreamLink{Provider: provider, Subject: subject, UserId: user,
			CreatedUnixNano: now.UnixNano(), UpdatedUnixNano: now.UnixNano(), SealedRefreshToken: []byte("sealed")},
	}}}
}

// An upstream subject links to one user: linking it to another is a
// CONFLICT that changes nothing; an update needs an existing link.
func TestUpstreamLinkNeverMoves(t *testing.T) {
	s := openTemp(t, "links.db")
	if res := applyOne(t, s, mustEncode(t, linkCmd(t0, "google", "sub-1", "u1", true))); res.GetCode() != 0 {
		t.Fatalf("first link: %v", res)
	}
	if res := applyOne(t, s, mustEncode(t, linkCmd(t0.Add(time.Second), "google", "sub-1", "u2", true))); res.GetCode() != storev1.ErrorCode_ERROR_CODE_CONFLICT {
		t.Errorf("link of the same subject to another user: got %v, want CONFLICT", res)
	}
	if res := applyOne(t, s, mustEncode(t, linkCmd(t0.Add(time.Second), "kakao", "sub-9", "u1", false))); res.GetCode() != storev1.ErrorCode_ERROR_CODE_NOT_FOUND {
		t.Errorf("update of a missing link: got %v, want NOT_FOUND", res)
	}
	if res := applyOne(t, s, mustEncode(t, linkCmd(t0.Add(2*time.Second), "google", "sub-1", "u1", false))); res.GetCode() != 0 {
		t.Errorf("update: %v", res)
	}
	l, err := s.UpstreamLink("google", "sub-1")
	if err != nil || l.GetUserId() != "u1" || l.GetCreatedUnixNano() != t0.UnixNano() || l.GetUpdatedUnixNano() != t0.Add(2*time.Second).UnixNano() {
		t.Errorf("link: got %v, %v; want u1, created at t0, updated at t0+2s", l, err)
	}
	if _, err := s.UpstreamLink("google", "sub-2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown subject: got %v, want ErrNotFound", err)
	}
	var n int
	if err := s.UpstreamLinks("google", func(*storev1.UpstreamLink) bool { n++; return true }); err != nil || n != 1 {
		t.Errorf("links of google: got %d, %v; want 1", n, err)
	}
	for _, bad := range []*storev1.Command{
		linkCmd(t0, "Google!", "sub", "u1", true),
		linkCmd(t0, "google", "", "u1", true),
		linkCmd(t0, "google", string(make([]byte, 300)), "u1", true),
	} {
		if res := applyOne(t, s, mustEncode(t, bad)); res.GetCode() != storev1.ErrorCode_ERROR_CODE_INVALID {
			t.Errorf("malformed link %v: got %v, want INVALID", bad.GetPutUpstreamLink().GetLink(), res)
		}
	}
}

// A login state is spent once; it is forgotten (purged) after it expires.
func TestUpstreamStateSpentOnce(t *testing.T) {
	s := openTemp(t, "states.db")
	h := sha256.Sum256([]byte("state"))
	cmd := func(now time.Time) []byte {
		return mustEncode(t, &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_ConsumeUpstreamState{ConsumeUpstreamState: &storev1.ConsumeUpstreamState{
			State: &storev1.UpstreamState{StateHash: h[:], ExpiresUnixNano: t0.Add(10 * time.Minute).UnixNano()}}}})
	}
	if res := applyOne(t, s, cmd(t0)); res.GetCode() != 0 {
		t.Fatalf("first use: %v", res)
	}
	if res := applyOne(t, s, cmd(t0.Add(time.Second))); res.GetCode() != storev1.ErrorCode_ERROR_CODE_CONFLICT {
		t.Errorf("second use: got %v, want CONFLICT", res)
	}
	purge := mustEncode(t, &storev1.Command{NowUnixNano: t0.Add(11 * time.Minute).UnixNano(), Op: &storev1.Command_Purge{Purge: &storev1.Purge{Limit: 100}}})
	if res := applyOne(t, s, purge); res.GetPurged() == 0 {
		t.Errorf("purge after expiry: %v, want the state purged", res)
	}
	long := mustEncode(t, &storev1.Command{NowUnixNano: t0.UnixNano(), Op: &storev1.Command_ConsumeUpstreamState{ConsumeUpstreamState: &storev1.ConsumeUpstreamState{
		State: &storev1.UpstreamState{StateHash: h[:], ExpiresUnixNano: t0.Add(2 * time.Hour).UnixNano()}}}})
	if res := applyOne(t, s, long); res.GetCode() != storev1.ErrorCode_ERROR_CODE_INVALID {
		t.Errorf("a state kept two hours: got %v, want INVALID", res)
	}
}
