package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/testing/protocmp"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// While a cluster is upgraded from layout 3 to 4, its nodes end sessions
// with different index rules: layout 3 removes an ended session's slot and
// mark from sessions_by_user at once, layout 4 leaves them until a later
// login of the user or the session's purge. The answers and the reads must be the same, or the
// nodes' states would part. This test applies one random history of
// logins (same device, another device, forced), logouts, logouts
// everywhere, rotations (reuse ends a session too), time and purges to two
// stores, one with today's rule and one through layout3Txn, and wants
// every answer and every user's live sessions equal, layout 4 to hold
// stale entries on the way, and none left on either once all is purged.
func TestEndedSessionsAnswerAsLayout3(t *testing.T) {
	seen := map[string]int{}
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { userIndexAgreement(t, seed, seen) })
	}
	// The histories went through every way a session ends, with an ended
	// session's entries left behind on layout 4.
	for _, outcome := range []string{"REPLACED", "FORCED_OUT", "CONFLICT", "LOGOUT", "LOGOUT_ALL", "REUSE", "purged", "stale entries"} {
		if seen[outcome] == 0 {
			t.Errorf("the histories never saw %s (%v): the test does not cover it", outcome, seen)
		}
	}
}

func userIndexAgreement(t *testing.T, seed uint64, seen map[string]int) {
	rng := rand.New(rand.NewPCG(seed, 11))
	cur, ref := openTemp(t, "layout4.db"), openTemp(t, "layout3.db")
	now := t0
	users := []string{"u0", "u1", "u2"}
	platforms := []storev1.Platform{storev1.Platform_PLATFORM_WEB, storev1.Platform_PLATFORM_IOS}
	type sess struct{ id, tok string }
	var sessions []*sess
	names := 0
	fresh := func() string { names++; return fmt.Sprintf("tok%d", names) }
	apply := func(c *storev1.Command, what string) *storev1.Result {
		t.Helper()
		c.NowUnixNano = now.UnixNano()
		got := applyOne(t, cur, mustEncode(t, c))
		want := applyLayout3(t, ref, mustEncode(t, c))
		got.Index, want.Index = 0, 0
		if d := cmp.Diff(want, got, protocmp.Transform()); d != "" {
			t.Fatalf("%s: the answers differ (-layout 3 +layout 4):\n%s", what, d)
		}
		for _, s := range got.GetEndedSessionIds() {
			if e, err := cur.Session(s, now); err == nil {
				seen[strings.TrimPrefix(e.GetEndReason().String(), "END_REASON_")]++
			}
		}
		if code := got.GetCode(); code != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
			seen[strings.TrimPrefix(code.String(), "ERROR_CODE_")]++
		}
		if got.GetPurged() > 0 {
			seen["purged"]++
		}
		return got
	}
	for step := range 300 {
		var what string
		switch k := rng.IntN(20); {
		case k < 6 || len(sessions) == 0:
			s := &sess{id: fmt.Sprintf("s%03d", step), tok: fresh()}
			user, p := users[rng.IntN(len(users))], platforms[rng.IntN(len(platforms))]
			dev, force := fmt.Sprintf("d%d", rng.IntN(2)), rng.IntN(3) == 0
			what = fmt.Sprintf("step %d: open %s for %s on %v from %s (force %v)", step, s.id, user, p, dev, force)
			if res := apply(openCmd(now, s.id, user, p, dev, s.tok, 2*time.Minute, time.Hour, force), what); res.GetCode() == storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
				sessions = append(sessions, s)
			}
		case k < 9:
			s := sessions[rng.IntN(len(sessions))]
			what = fmt.Sprintf("step %d: end %s", step, s.id)
			apply(&storev1.Command{Op: &storev1.Command_EndSession{EndSession: &storev1.EndSession{SessionId: s.id, Reason: storev1.EndReason_END_REASON_LOGOUT}}}, what)
		case k < 10:
			user := users[rng.IntN(len(users))]
			what = fmt.Sprintf("step %d: end every session of %s", step, user)
			apply(&storev1.Command{Op: &storev1.Command_EndUserSessions{EndUserSessions: &storev1.EndUserSessions{
				UserId: user, Reason: storev1.EndReason_END_REASON_LOGOUT_ALL, CutoffExpiresUnixNano: now.Add(time.Hour).UnixNano(),
			}}}, what)
		case k < 14:
			s := sessions[rng.IntN(len(sessions))]
			next := fresh()
			what = fmt.Sprintf("step %d: rotate %s", step, s.id)
			res := apply(&storev1.Command{Op: &storev1.Command_RotateRefresh{RotateRefresh: &storev1.RotateRefresh{
				OldIdHash: tokHash(s.tok), Next: &storev1.RefreshToken{IdHash: tokHash(next), ExpiresUnixNano: now.Add(time.Minute).UnixNano()},
				IdleExpiresUnixNano: now.Add(2 * time.Minute).UnixNano(),
			}}}, what)
			// Mostly keep the chain; sometimes present the spent token
			// again later (a reuse).
			if res.GetCode() == storev1.ErrorCode_ERROR_CODE_UNSPECIFIED && rng.IntN(4) > 0 {
				s.tok = next
			}
		case k < 18:
			now = now.Add(time.Duration(rng.IntN(40)) * time.Second)
			continue
		default:
			what = fmt.Sprintf("step %d: purge", step)
			apply(&storev1.Command{Op: &storev1.Command_Purge{Purge: &storev1.Purge{Limit: uint32(1 + rng.IntN(5))}}}, what)
		}
		for _, u := range users {
			compareUserReads(t, cur, ref, u, platforms, now, what)
		}
		if userIndexKeys(t, cur) > userIndexKeys(t, ref) {
			seen["stale entries"]++
		}
	}
	// Once every session has expired and been purged, neither store
	// keeps a key of them in sessions_by_user.
	now = now.Add(2 * time.Hour)
	for range 100 {
		res := apply(&storev1.Command{Op: &storev1.Command_Purge{Purge: &storev1.Purge{Limit: MaxPurgeLimit}}}, "final purge")
		if !res.GetMore() {
			break
		}
	}
	if a, b := userIndexKeys(t, cur), userIndexKeys(t, ref); a != 0 || b != 0 {
		t.Fatalf("after the last purge sessions_by_user holds %d keys on layout 4 and %d on layout 3, want none", a, b)
	}
	if a, b := stateHash(t, cur, false), stateHash(t, ref, false); a != b {
		t.Fatalf("after the last purge the two stores differ")
	}
}

// compareUserReads wants the same live sessions of user, on every
// platform and in all, from both stores.
func compareUserReads(t *testing.T, cur, ref *Store, user string, platforms []storev1.Platform, now time.Time, what string) {
	t.Helper()
	for _, p := range platforms {
		a, errA := cur.LiveSession(user, p, now)
		b, errB := ref.LiveSession(user, p, now)
		if a.GetId() != b.GetId() || (errA == nil) != (errB == nil) {
			t.Fatalf("%s: live session of %s on %v: %q (%v) on layout 4, %q (%v) on layout 3", what, user, p, a.GetId(), errA, b.GetId(), errB)
		}
	}
	ids := func(s *Store) []string {
		list, err := s.UserSessions(user, now)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range list {
			out = append(out, x.GetId())
		}
		return out
	}
	if a, b := ids(cur), ids(ref); !slices.Equal(a, b) {
		t.Fatalf("%s: sessions of %s: %v on layout 4, %v on layout 3", what, user, a, b)
	}
}

// userIndexKeys counts the keys of sessions_by_user.
func userIndexKeys(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	if err := s.view(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketUserSess).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// applyLayout3 applies one command to s as layout 3 did (layout3Txn), in
// a transaction of its own.
func applyLayout3(t *testing.T, s *Store, data []byte) *storev1.Result {
	t.Helper()
	res, err := DecodeResult(applyInTxn(t, s, true, 0, data)[0])
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// applyInTxn applies cmds, the first at log index first, in one
// transaction of s, through layout3Txn if layout3 is set, and returns
// their encoded results.
func applyInTxn(tb testing.TB, s *Store, layout3 bool, first uint64, cmds ...[]byte) [][]byte {
	tb.Helper()
	out := make([][]byte, len(cmds))
	err := s.db.Update(func(tx *bolt.Tx) error {
		bt, err := newBoltTxn(tx)
		if err != nil {
			return err
		}
		var t txn = bt
		if layout3 {
			t = layout3Txn{bt}
		}
		for i, c := range cmds {
			if out[i], err = applyCommand(t, first+uint64(i), c, s.lim); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// layout3Txn is the transaction as layout 3 used it: a session that ends
// leaves sessions_by_user (its slot, if it holds it, and its mark) in the
// same transaction.
type layout3Txn struct{ *boltTxn }

func (t layout3Txn) putSession(s *storev1.Session) error {
	old, err := t.session(s.GetId())
	if err != nil {
		return err
	}
	if err := t.boltTxn.putSession(s); err != nil {
		return err
	}
	if s.GetEndedUnixNano() == 0 || old == nil || old.GetEndedUnixNano() != 0 {
		return nil
	}
	return leaveUserIndex(t, s)
}

// A user who logs in and out in a loop does not grow sessions_by_user: each
// login drops the entries of the user's ended sessions (it writes the
// user's keys anyway), so a logout everywhere, which reads every session
// the index names, reads a few and not one per login of the last two weeks.
func TestLoginLogoutLoopKeepsTheUserIndexSmall(t *testing.T) {
	s := openTemp(t, "loop.db")
	now := t0
	for i := range 200 {
		id := fmt.Sprintf("s%04d", i)
		platform := []storev1.Platform{storev1.Platform_PLATFORM_WEB, storev1.Platform_PLATFORM_IOS}[i%2]
		if res := applyOne(t, s, mustEncode(t, openCmd(now, id, "u1", platform, "d1", "t-"+id, 14*24*time.Hour, 30*24*time.Hour, false))); res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
			t.Fatalf("login %d: %v %s", i, res.GetCode(), res.GetMessage())
		}
		res := applyOne(t, s, mustEncode(t, &storev1.Command{NowUnixNano: now.UnixNano(),
			Op: &storev1.Command_EndSession{EndSession: &storev1.EndSession{SessionId: id, Reason: storev1.EndReason_END_REASON_LOGOUT}}}))
		if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
			t.Fatalf("logout %d: %v %s", i, res.GetCode(), res.GetMessage())
		}
		now = now.Add(time.Second)
	}
	// The last login's session (ended) and its slot, and at most the one
	// before on the other platform: 4 keys, where 200 marks and 2 slots
	// would be without the pruning.
	if n := userIndexKeys(t, s); n > 4 {
		t.Fatalf("after 200 logins and logouts sessions_by_user holds %d keys, want at most 4", n)
	}
	if list, err := s.UserSessions("u1", now); err != nil || len(list) != 0 {
		t.Fatalf("UserSessions = %v, %v; want none live", list, err)
	}
}
