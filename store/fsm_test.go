package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// randomLog builds n seeded pseudo-random log entries (mostly commands,
// some configuration entries) exercising every rule, including refusals.
func randomLog(t testing.TB, seed uint64, n int) []*raft.Log {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	now := t0
	var toks []string
	var sessions []string
	logs := make([]*raft.Log, 0, n)
	for i := 0; i < n; i++ {
		idx := uint64(i + 1)
		term := uint64(1 + i/500)
		if rng.IntN(50) == 0 {
			logs = append(logs, &raft.Log{Index: idx, Term: term, Type: raft.LogConfiguration, Data: []byte{1, 2, 3}})
			continue
		}
		now = now.Add(time.Duration(rng.IntN(120)) * time.Second)
		var c *storev1.Command
		switch k := rng.IntN(100); {
		case k < 30:
			sid := fmt.Sprintf("s%d", i)
			tok := fmt.Sprintf("t%d", i)
			c = openCmd(now, sid, fmt.Sprintf("u%d", rng.IntN(20)), storev1.Platform(1+rng.IntN(3)),
				fmt.Sprintf("d%d", rng.IntN(3)), tok, time.Duration(5+rng.IntN(60))*time.Minute,
				time.Duration(1+rng.IntN(4))*time.Hour, rng.IntN(2) == 0)
			sessions = append(sessions, sid)
			toks = append(toks, tok)
		case k < 60 && len(toks) > 0:
			old := toks[rng.IntN(len(toks))]
			if rng.IntN(3) > 0 {
				old = toks[len(toks)-1-rng.IntN(min(len(toks), 4))]
			}
			next := fmt.Sprintf("t%d", i)
			toks = append(toks, next)
			c = &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_RotateRefresh{RotateRefresh: &storev1.RotateRefresh{
				OldIdHash: tokHash(old), Next: &storev1.RefreshToken{IdHash: tokHash(next), ExpiresUnixNano: now.Add(time.Hour).UnixNano()},
				IdleExpiresUnixNano: now.Add(30 * time.Minute).UnixNano(), GraceNanos: int64(time.Duration(rng.IntN(300)) * time.Second),
			}}}
		case k < 68 && len(sessions) > 0:
			c = &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_EndSession{EndSession: &storev1.EndSession{
				SessionId: sessions[rng.IntN(len(sessions))], Reason: storev1.EndReason(1 + rng.IntN(7))}}}
		case k < 72:
			c = &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_EndUserSessions{EndUserSessions: &storev1.EndUserSessions{
				UserId: fmt.Sprintf("u%d", rng.IntN(20)), Reason: storev1.EndReason_END_REASON_LOGOUT_ALL, CutoffExpiresUnixNano: now.Add(time.Hour).UnixNano()}}}
		case k < 80:
			c = &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_RevokeToken{RevokeToken: &storev1.RevokeToken{Revocation: &storev1.Revocation{
				Jti: fmt.Sprintf("j%d", rng.IntN(200)), ExpiresUnixNano: now.Add(time.Duration(rng.IntN(90)) * time.Minute).UnixNano()}}}}
		case k < 83:
			c = &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_PutSigningKey{PutSigningKey: &storev1.PutSigningKey{Key: &storev1.SigningKey{
				Kid: fmt.Sprintf("k%d", rng.IntN(5)), PublicKey: []byte{byte(i)}, ExpiresUnixNano: now.Add(time.Duration(rng.IntN(300)) * time.Minute).UnixNano()}}}}
		case k < 88:
			c = &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_PutUser{PutUser: &storev1.PutUser{User: &storev1.User{
				Id: fmt.Sprintf("u%d", rng.IntN(20)), EmailKey: fmt.Sprintf("e%d@x", rng.IntN(25)), Roles: []string{"b", "a"}}}}}
		case k < 96:
			c = &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_Purge{Purge: &storev1.Purge{Limit: uint32(1 + rng.IntN(20))}}}
		case k < 98:
			logs = append(logs, &raft.Log{Index: idx, Term: term, Type: raft.LogCommand, Data: []byte{0xff, byte(i), 0x07}})
			continue
		default:
			c = &storev1.Command{NowUnixNano: now.UnixNano()}
		}
		if rng.IntN(4) == 0 {
			c.RequestId = fmt.Sprintf("r%d", rng.IntN(100))
		}
		logs = append(logs, &raft.Log{Index: idx, Term: term, Type: raft.LogCommand, Data: mustEncode(t, c)})
	}
	return logs
}

func applyInBatches(t testing.TB, s *Store, logs []*raft.Log, sizes []int) []interface{} {
	t.Helper()
	var resp []interface{}
	for i, j := 0, 0; i < len(logs); j++ {
		n := min(sizes[j%len(sizes)], len(logs)-i)
		r := s.ApplyBatch(logs[i : i+n])
		if len(r) != n {
			t.Fatalf("ApplyBatch returned %d responses for %d entries", len(r), n)
		}
		resp = append(resp, r...)
		i += n
	}
	return resp
}

func TestDeterminismBatchedVersusSingle(t *testing.T) {
	logs := randomLog(t, 42, 4000)
	a := openTemp(t, "a.db")
	b := openTemp(t, "b.db")
	ra := applyInBatches(t, a, logs, []int{1, 7, 64, 3, 512, 100})
	rb := make([]interface{}, len(logs))
	for i, l := range logs {
		rb[i] = b.Apply(l)
	}
	codes := map[storev1.ErrorCode]int{}
	for i := range logs {
		if logs[i].Type != raft.LogCommand {
			if ra[i] != nil || rb[i] != nil {
				t.Fatalf("entry %d (configuration): responses %v, %v, want nil", i+1, ra[i], rb[i])
			}
			continue
		}
		ba, oka := ra[i].([]byte)
		bb, okb := rb[i].([]byte)
		if !oka || !okb || !bytes.Equal(ba, bb) {
			t.Fatalf("entry %d: batched response %v, single %v; want equal []byte", i+1, ra[i], rb[i])
		}
		res, err := DecodeResult(ba)
		if err != nil {
			t.Fatal(err)
		}
		codes[res.GetCode()]++
	}
	// The generated log must reach the interesting paths, or the
	// comparison proves little.
	for _, c := range []storev1.ErrorCode{storev1.ErrorCode_ERROR_CODE_UNSPECIFIED, storev1.ErrorCode_ERROR_CODE_CONFLICT,
		storev1.ErrorCode_ERROR_CODE_REUSE, storev1.ErrorCode_ERROR_CODE_NOT_FOUND, storev1.ErrorCode_ERROR_CODE_ENDED,
		storev1.ErrorCode_ERROR_CODE_INVALID, storev1.ErrorCode_ERROR_CODE_UNKNOWN_COMMAND} {
		if codes[c] == 0 {
			t.Errorf("random log produced no %v result (codes: %v)", c, codes)
		}
	}
	if ha, hb := stateHash(t, a, true), stateHash(t, b, true); ha != hb {
		t.Fatalf("state hash batched %s, single %s; want equal", ha, hb)
	}
	if got, want := a.AppliedIndex(), uint64(len(logs)); got != want || b.AppliedIndex() != want {
		t.Fatalf("AppliedIndex = %d, %d; want %d", got, b.AppliedIndex(), want)
	}

	// Replaying the log (NoSnapshotRestoreOnStart after a restart) skips
	// every entry and changes nothing.
	before := stateHash(t, a, true)
	for i, r := range applyInBatches(t, a, logs, []int{300}) {
		if logs[i].Type == raft.LogCommand && !bytes.Equal(r.([]byte), skippedResult) {
			t.Fatalf("replayed entry %d: response %v, want the already-applied result", i+1, r)
		}
	}
	if got := stateHash(t, a, true); got != before {
		t.Fatalf("replay changed the state hash")
	}
}

func TestAppliedIndexSurvivesReopenAndCountsConfiguration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := openCmd(t0, "s1", "u1", storev1.Platform_PLATFORM_WEB, "d1", "t1", time.Hour, 2*time.Hour, false)
	resp := s.ApplyBatch([]*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogCommand, Data: mustEncode(t, c)},
		{Index: 2, Term: 2, Type: raft.LogConfiguration, Data: []byte("cfg")},
	})
	if resp[1] != nil {
		t.Fatalf("configuration response = %v, want nil", resp[1])
	}
	if got := s.AppliedIndex(); got != 2 {
		t.Fatalf("AppliedIndex = %d, want 2", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session("s1", t0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Session after Close: err = %v, want ErrClosed", err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.AppliedIndex(); got != 2 {
		t.Fatalf("AppliedIndex after reopen = %d, want 2", got)
	}
	if _, err := s.Session("s1", t0); err != nil {
		t.Fatalf("Session after reopen: %v", err)
	}
	// Entry 1 again (replay) is skipped: the session is not opened twice.
	res := applyOneAt(t, s, 1, mustEncode(t, c))
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED || res.GetSession() != nil {
		t.Fatalf("replayed entry result = %v, want the bare already-applied result", res)
	}
}

func applyOneAt(t testing.TB, s *Store, idx uint64, data []byte) *storev1.Result {
	t.Helper()
	b, ok := s.Apply(&raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data}).([]byte)
	if !ok {
		t.Fatalf("Apply response is not []byte")
	}
	res, err := DecodeResult(b)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestStorageFailureIsSticky(t *testing.T) {
	s := openTemp(t, "s.db")
	c := mustEncode(t, openCmd(t0, "s1", "u1", storev1.Platform_PLATFORM_WEB, "d1", "t1", time.Hour, 2*time.Hour, false))
	// Simulate an I/O failure: the bbolt handle goes away underneath.
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	resp := s.Apply(&raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: c})
	if _, ok := resp.(error); !ok {
		t.Fatalf("Apply response = %T, want error", resp)
	}
	if s.Err() == nil {
		t.Fatalf("Err() = nil after a failed apply")
	}
	if got := s.AppliedIndex(); got != 0 {
		t.Fatalf("AppliedIndex = %d after a failed apply, want 0", got)
	}
	if err, ok := s.Apply(&raft.Log{Index: 2, Term: 1, Type: raft.LogCommand, Data: c}).(error); !ok || !errors.Is(err, s.Err()) {
		t.Fatalf("second Apply response = %v, want the sticky error", err)
	}
}

// A write the cluster retried (its answer lost on the way back) reaches the
// log twice. The repeat changes nothing and answers the first result,
// including the index of the entry that opened the session: a reader that
// saw the session at that index must not be told it was opened later.
func TestRepeatedRequestAnswersTheFirstEntrysIndex(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := openCmd(t0, "s1", "u1", storev1.Platform_PLATFORM_WEB, "d1", "t1", time.Hour, 2*time.Hour, false)
	c.RequestId = "req-1"
	first := applyOneAt(t, s, 7, mustEncode(t, c))
	if first.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED || first.GetIndex() != 7 {
		t.Fatalf("first apply: code %v index %d, want success at index 7", first.GetCode(), first.GetIndex())
	}
	other := openCmd(t0, "s2", "u2", storev1.Platform_PLATFORM_WEB, "d2", "t2", time.Hour, 2*time.Hour, false)
	other.RequestId = "req-2"
	if res := applyOneAt(t, s, 8, mustEncode(t, other)); res.GetIndex() != 8 {
		t.Fatalf("another write at index 8 answered index %d", res.GetIndex())
	}
	repeat := applyOneAt(t, s, 9, mustEncode(t, c))
	if repeat.GetIndex() != 7 || repeat.GetSession().GetId() != "s1" {
		t.Fatalf("repeat at index 9: index %d session %q, want the first answer (index 7, session s1)", repeat.GetIndex(), repeat.GetSession().GetId())
	}
	if got := s.AppliedIndex(); got != 9 {
		t.Fatalf("AppliedIndex = %d, want 9 (the repeat is applied, as a no-op)", got)
	}
}
