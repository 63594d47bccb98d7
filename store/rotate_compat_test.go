package store

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// While a cluster is upgraded from layout 2 to 3, its nodes apply the same
// RotateRefresh commands with different rules: layout 2 marks the spent
// token used, layout 3 leaves it and records the current token on the
// session. The answers must be the same, or the nodes' states would part.
// This test applies one random history of logins, rotations, grace
// retries, reuses, logouts and time to two stores, one with today's rule
// and one with layout 2's (rotateRefreshLayout2, kept here as the
// reference), and wants every answer equal, and every token spent on one
// exactly when it is spent on the other.
func TestRotationAgreesWithLayout2(t *testing.T) {
	seen := map[string]int{}
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { rotationAgreement(t, seed, seen) })
	}
	// The histories went through every branch of the rule.
	for _, outcome := range []string{"rotated", "grace_retry", "REUSE", "NOT_FOUND", "ENDED"} {
		if seen[outcome] == 0 {
			t.Errorf("no rotation answered %s in the histories (%v): the test does not cover it", outcome, seen)
		}
	}
}

func rotationAgreement(t *testing.T, seed uint64, seen map[string]int) {
	rng := rand.New(rand.NewPCG(seed, 7))
	cur, ref := openTemp(t, "layout3.db"), openTemp(t, "layout2.db")
	now := t0
	grace := 10 * time.Second
	type sess struct {
		id   string
		toks []string // in generation order
	}
	var sessions []*sess
	names := 0
	fresh := func() string { names++; return fmt.Sprintf("tok%d", names) }
	normalize := func(r *storev1.Result) *storev1.Result {
		r.Index = 0
		if r.GetSession() != nil {
			r.Session.CurrentRefreshIdHash = nil
		}
		return r
	}
	for step := range 400 {
		var c *storev1.Command
		var what, nextName string
		switch k := rng.IntN(20); {
		case k < 3 || len(sessions) == 0:
			s := &sess{id: fmt.Sprintf("s%03d", step), toks: []string{fresh()}}
			user := fmt.Sprintf("u%d", rng.IntN(3))
			c = openCmd(now, s.id, user, storev1.Platform_PLATFORM_WEB, "d-"+s.id, s.toks[0], 2*time.Minute, time.Hour, true)
			sessions = append(sessions, s)
			what = "open " + s.id
		case k < 4:
			s := sessions[rng.IntN(len(sessions))]
			c = &storev1.Command{Op: &storev1.Command_EndSession{EndSession: &storev1.EndSession{SessionId: s.id, Reason: storev1.EndReason_END_REASON_LOGOUT}}}
			what = "end " + s.id
		case k < 6:
			now = now.Add(time.Duration(rng.IntN(15)) * time.Second)
			continue
		default:
			s := sessions[rng.IntN(len(sessions))]
			// Mostly the current token; else an earlier one, named with
			// its successor (an honest retry) or a new name.
			i := len(s.toks) - 1
			if rng.IntN(3) == 0 {
				i = rng.IntN(len(s.toks))
			}
			next := fresh()
			if i < len(s.toks)-1 && rng.IntN(2) == 0 {
				next = s.toks[i+1]
			}
			c = &storev1.Command{Op: &storev1.Command_RotateRefresh{RotateRefresh: &storev1.RotateRefresh{
				OldIdHash: tokHash(s.toks[i]), Next: &storev1.RefreshToken{IdHash: tokHash(next), ExpiresUnixNano: now.Add(time.Minute).UnixNano()},
				IdleExpiresUnixNano: now.Add(2 * time.Minute).UnixNano(), GraceNanos: int64(grace),
			}}}
			what = fmt.Sprintf("rotate %s gen %d of %d (next %s)", s.id, i+1, len(s.toks), next)
			nextName = next
		}
		c.NowUnixNano = now.UnixNano()
		got := normalize(applyOne(t, cur, mustEncode(t, c)))
		var want *storev1.Result
		if rot := c.GetRotateRefresh(); rot != nil {
			want = normalize(applyLayout2Rotation(t, ref, now, rot))
		} else {
			want = normalize(applyOne(t, ref, mustEncode(t, c)))
		}
		if d := cmp.Diff(want, got, protocmp.Transform()); d != "" {
			t.Fatalf("step %d, %s: the answers differ (-layout 2 +layout 3):\n%s", step, what, d)
		}
		if rot := c.GetRotateRefresh(); rot != nil {
			switch {
			case got.GetGraceRetry():
				seen["grace_retry"]++
			case got.GetCode() == storev1.ErrorCode_ERROR_CODE_UNSPECIFIED:
				seen["rotated"]++
			default:
				seen[strings.TrimPrefix(got.GetCode().String(), "ERROR_CODE_")]++
			}
		}
		if rot := c.GetRotateRefresh(); rot != nil && got.GetCode() == storev1.ErrorCode_ERROR_CODE_UNSPECIFIED && !got.GetGraceRetry() {
			for _, s := range sessions {
				if s.id == got.GetSession().GetId() {
					s.toks = append(s.toks, nextName)
				}
			}
		}
	}
	// Every token of a live session is spent on one store exactly when
	// it is on the other.
	for _, s := range sessions {
		sc, err1 := cur.Session(s.id, now)
		if err1 != nil || sc.GetEndedUnixNano() != 0 {
			continue
		}
		for _, name := range s.toks {
			a, err1 := cur.RefreshToken(tokHash(name), now)
			b, err2 := ref.RefreshToken(tokHash(name), now)
			if (err1 == nil) != (err2 == nil) {
				t.Fatalf("token %s of %s: found %v on layout 3, %v on layout 2", name, s.id, err1, err2)
			}
			if err1 == nil && RefreshSpent(a, sc) != (b.GetUsedUnixNano() != 0) {
				t.Fatalf("token %s of %s: spent %v on layout 3, %v on layout 2", name, s.id, RefreshSpent(a, sc), b.GetUsedUnixNano() != 0)
			}
		}
	}
}

// applyLayout2Rotation applies op to s with layout 2's rule, in a
// transaction of its own.
func applyLayout2Rotation(t *testing.T, s *Store, now time.Time, op *storev1.RotateRefresh) *storev1.Result {
	t.Helper()
	var res *storev1.Result
	err := s.db.Update(func(tx *bolt.Tx) error {
		bt, err := newBoltTxn(tx)
		if err != nil {
			return err
		}
		res, err = rotateRefreshLayout2(bt, now.UnixNano(), op, s.lim)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// rotateRefreshLayout2 is RotateRefresh as layout 2 applied it, the
// reference of TestRotationAgreesWithLayout2.
func rotateRefreshLayout2(t txn, now int64, op *storev1.RotateRefresh, lim limits) (*storev1.Result, error) {
	if len(op.GetOldIdHash()) != 32 {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "old_id_hash must be 32 bytes"), nil
	}
	if op.GetGraceNanos() < 0 {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "grace_nanos is negative"), nil
	}
	next := op.GetNext()
	if next == nil || len(next.GetIdHash()) != 32 {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "next.id_hash must be 32 bytes"), nil
	}
	if res := tooLarge("refresh token", next, lim); res != nil {
		return res, nil
	}
	tok, err := t.refresh(op.GetOldIdHash())
	if err != nil {
		return nil, err
	}
	if tok == nil || tok.GetExpiresUnixNano() <= now {
		return refuse(storev1.ErrorCode_ERROR_CODE_NOT_FOUND, "refresh token unknown or expired"), nil
	}
	s, err := t.session(tok.GetSessionId())
	if err != nil {
		return nil, err
	}
	if !isLive(s, now) {
		res := refuse(storev1.ErrorCode_ERROR_CODE_ENDED, "session ended or expired")
		if s != nil && sessionExpiry(s) > now {
			res.Session = s
		}
		return res, nil
	}
	if tok.GetUsedUnixNano() != 0 {
		succ, err := t.refresh(tok.GetReplacedByHash())
		if err != nil {
			return nil, err
		}
		if succ != nil && succ.GetUsedUnixNano() == 0 && succ.GetSessionId() == s.GetId() &&
			succ.GetGeneration() == s.GetRefreshGeneration() && succ.GetExpiresUnixNano() > now &&
			now-tok.GetUsedUnixNano() <= op.GetGraceNanos() {
			return &storev1.Result{Session: s, Refresh: succ, GraceRetry: true}, nil
		}
		if err := endSession(t, s, now, storev1.EndReason_END_REASON_REFRESH_REUSE, "", true); err != nil {
			return nil, err
		}
		return &storev1.Result{Code: storev1.ErrorCode_ERROR_CODE_REUSE, Message: "refresh token reused; session ended",
			Session: s, EndedSessionIds: []string{s.GetId()}}, nil
	}
	if next.GetExpiresUnixNano() <= now {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "next token already expired"), nil
	}
	if op.GetIdleExpiresUnixNano() <= now {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "idle_expires_unix_nano must be after now"), nil
	}
	if other, err := t.refresh(next.GetIdHash()); err != nil || other != nil {
		if err != nil {
			return nil, err
		}
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "next token id already used"), nil
	}

	n := proto.CloneOf(next)
	n.SessionId, n.FamilyId, n.UserId = s.GetId(), s.GetFamilyId(), s.GetUserId()
	n.Generation = tok.GetGeneration() + 1
	n.UsedUnixNano, n.ReplacedByHash = 0, nil
	if n.GetIssuedUnixNano() == 0 {
		n.IssuedUnixNano = now
	}
	n.ExpiresUnixNano = min(n.GetExpiresUnixNano(), s.GetAbsoluteExpiresUnixNano())

	tok.UsedUnixNano, tok.ReplacedByHash = now, n.GetIdHash()
	if err := t.putRefresh(tok); err != nil {
		return nil, err
	}
	if err := t.putRefresh(n); err != nil {
		return nil, err
	}
	s.RefreshGeneration = n.GetGeneration()
	s.LastRefreshedUnixNano = now
	s.IdleExpiresUnixNano = min(op.GetIdleExpiresUnixNano(), s.GetAbsoluteExpiresUnixNano())
	if err := t.putSession(s); err != nil {
		return nil, err
	}
	return &storev1.Result{Session: s, Refresh: n}, nil
}
