package store

import (
	"fmt"
	"testing"
	"time"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// bulkCmd is a BulkLoad of n new users (emails u<first+i>@x) each with a
// session, or of n sessions without users when users is false.
func bulkCmd(now time.Time, first, n int, users bool) *storev1.Command {
	op := &storev1.BulkLoad{}
	for i := first; i < first+n; i++ {
		uid := fmt.Sprintf("user-%d", i)
		if users {
			op.Users = append(op.Users, &storev1.User{Id: uid, Email: fmt.Sprintf("u%d@x", i), EmailKey: fmt.Sprintf("u%d@x", i),
				PasswordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA", Status: storev1.UserStatus_USER_STATUS_ACTIVE})
		}
		o := openCmd(now, fmt.Sprintf("s-%d", i), uid, storev1.Platform_PLATFORM_OTHER, "preload", fmt.Sprintf("t-%d", i), time.Hour, 2*time.Hour, false)
		op.Sessions = append(op.Sessions, o.GetOpenSession())
	}
	return &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_BulkLoad{BulkLoad: op}}
}

func TestBulkLoadOpensEverySessionAndUser(t *testing.T) {
	s := openTemp(t, "bulk.db")
	res := applyOne(t, s, mustEncode(t, bulkCmd(t0, 0, MaxBulkLoad, true)))
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED || res.GetLoaded() != MaxBulkLoad {
		t.Fatalf("BulkLoad: got code %v loaded %d (%s), want success with %d", res.GetCode(), res.GetLoaded(), res.GetMessage(), MaxBulkLoad)
	}
	for _, i := range []int{0, 17, MaxBulkLoad - 1} {
		if _, err := s.Session(fmt.Sprintf("s-%d", i), t0); err != nil {
			t.Errorf("session s-%d after the bulk load: %v", i, err)
		}
		if u, err := s.UserByEmail(fmt.Sprintf("u%d@x", i)); err != nil || u.GetId() != fmt.Sprintf("user-%d", i) {
			t.Errorf("user u%d@x after the bulk load: got %v, %v", i, u.GetId(), err)
		}
		if st, err := s.TokenStatus(fmt.Sprintf("s-%d", i), fmt.Sprintf("user-%d", i), "jti", t0); err != nil || !st.SessionFound || st.SessionEnded {
			t.Errorf("check index of s-%d: got %+v, %v; want a live session", i, st, err)
		}
	}
}

func TestBulkLoadRefusesTooManyAndChangesNothing(t *testing.T) {
	s := openTemp(t, "bulk.db")
	before := stateHash(t, s, false)
	res := applyOne(t, s, mustEncode(t, bulkCmd(t0, 0, MaxBulkLoad+1, false)))
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_INVALID {
		t.Fatalf("BulkLoad of %d: got code %v, want INVALID", MaxBulkLoad+1, res.GetCode())
	}
	if after := stateHash(t, s, false); after != before {
		t.Error("a refused bulk load changed the state")
	}
}

func TestBulkLoadWithATakenEmailChangesNothing(t *testing.T) {
	s := openTemp(t, "bulk.db")
	if res := applyOne(t, s, mustEncode(t, bulkCmd(t0, 0, 3, true))); res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		t.Fatalf("first bulk load: %v %s", res.GetCode(), res.GetMessage())
	}
	before := stateHash(t, s, false)
	// users 2..5: user 2's email is taken (by the same id: still not new).
	res := applyOne(t, s, mustEncode(t, bulkCmd(t0, 2, 4, true)))
	if res.GetCode() == storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		t.Fatal("a bulk load of a user that exists succeeded, want a refusal")
	}
	if after := stateHash(t, s, false); after != before {
		t.Error("a refused bulk load changed the state")
	}
	if _, err := s.Session("s-5", t0); err == nil {
		t.Error("session s-5 of the refused bulk load exists")
	}
}

func TestBulkLoadStopsAtTheFirstRefusedSession(t *testing.T) {
	s := openTemp(t, "bulk.db")
	cmd := bulkCmd(t0, 0, 4, false)
	ss := cmd.GetBulkLoad().GetSessions()
	ss[2].Session.Id = ss[1].GetSession().GetId() // session 2 reuses session 1's id
	res := applyOne(t, s, mustEncode(t, cmd))
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_INVALID || res.GetLoaded() != 2 {
		t.Fatalf("got code %v loaded %d (%s), want INVALID after 2", res.GetCode(), res.GetLoaded(), res.GetMessage())
	}
	if _, err := s.Session("s-3", t0); err == nil {
		t.Error("session s-3, after the refused one, was opened")
	}
}
