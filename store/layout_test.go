package store

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"
	"time"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	bolt "go.etcd.io/bbolt"
)

// setLayoutVersion rewrites the file's layout version, bypassing Open.
func setLayoutVersion(t *testing.T, path string, v uint32, also func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		if also != nil {
			if err := also(tx); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(metaVersion, binary.BigEndian.AppendUint32(nil, v))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A file of layout version 1 (live slots and session token lists in
// buckets of their own) opens as the current layout with the same state:
// the live sessions are found, a new login on the same device replaces the
// migrated slot's session and ends its token.
func TestOpenMigratesLayoutVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range []string{"u1", "u2", "a-much-longer-user-id-0123456789"} {
		c := openCmd(t0, "s"+u, u, storev1.Platform_PLATFORM_WEB, "d-"+u, "t"+u, time.Hour, 2*time.Hour, false)
		if res := applyOne(t, s, mustEncode(t, c)); res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
			t.Fatalf("open session %d: %v", i, res)
		}
	}
	want := stateHash(t, s, false)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Write the slots back as version 1 had them.
	setLayoutVersion(t, path, 1, func(tx *bolt.Tx) error {
		live, err := tx.CreateBucket(bucketLiveV1)
		if err != nil {
			return err
		}
		by := tx.Bucket(bucketUserSess)
		var slots [][2][]byte
		err = by.ForEach(func(k, v []byte) error {
			n := int(k[0])
			if rest := k[1+n:]; len(rest) == 2 && rest[0] == liveSlotMark {
				slots = append(slots, [2][]byte{bytes.Clone(k), bytes.Clone(v)})
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(slots) != 3 {
			t.Fatalf("%d live slots in sessions_by_user, want 3", len(slots))
		}
		for _, kv := range slots {
			k := kv[0]
			old := append(bytes.Clone(k[:len(k)-2]), k[len(k)-1])
			if err := live.Put(old, kv[1]); err != nil {
				return err
			}
			if err := by.Delete(k); err != nil {
				return err
			}
		}
		// And the token lists in their own bucket: lp(session) | hash.
		toks, err := tx.CreateBucket(bucketSessTokensV1)
		if err != nil {
			return err
		}
		sess := tx.Bucket(bucketSessions)
		var lists [][]byte
		err = sess.ForEach(func(k, _ []byte) error {
			if !isSessionKey(k) {
				lists = append(lists, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(lists) != 3 {
			t.Fatalf("%d token-list entries in sessions, want 3", len(lists))
		}
		for _, k := range lists {
			i := bytes.IndexByte(k, sessionTokenMark)
			if err := toks.Put(lp(string(k[:i]), k[i+1:]), nil); err != nil {
				return err
			}
			if err := sess.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("Open of a version 1 file: %v", err)
	}
	defer s.Close()
	if got := stateHash(t, s, false); got != want {
		t.Fatal("the migrated state differs from the state the current layout wrote")
	}
	if ls, err := s.LiveSession("u2", storev1.Platform_PLATFORM_WEB, t0); err != nil || ls.GetId() != "su2" {
		t.Fatalf("LiveSession(u2, web) after the migration = %v, %v; want su2", ls, err)
	}
	c := openCmd(t0.Add(time.Minute), "su2-next", "u2", storev1.Platform_PLATFORM_WEB, "d-u2", "tu2-next", time.Hour, 2*time.Hour, false)
	res := applyOne(t, s, mustEncode(t, c))
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED || len(res.GetEndedSessionIds()) != 1 || res.GetEndedSessionIds()[0] != "su2" {
		t.Fatalf("a new login on the migrated slot's device: %v; want su2 replaced", res)
	}
	// Ending the replaced session keeps its token as it was; refreshing it
	// says the session ended.
	if rt, err := s.RefreshToken(tokHash("tu2"), t0.Add(time.Minute)); err != nil || rt.GetSessionId() != "su2" {
		t.Fatalf("the replaced session's token after the migration: %v, %v; want it kept", rt, err)
	}
	rot := &storev1.Command{NowUnixNano: t0.Add(2 * time.Minute).UnixNano(), Op: &storev1.Command_RotateRefresh{RotateRefresh: &storev1.RotateRefresh{
		OldIdHash: tokHash("tu2"), Next: &storev1.RefreshToken{IdHash: tokHash("tu2-after"), ExpiresUnixNano: t0.Add(time.Hour).UnixNano()},
		IdleExpiresUnixNano: t0.Add(time.Hour).UnixNano(),
	}}}
	if res := applyOne(t, s, mustEncode(t, rot)); res.GetCode() != storev1.ErrorCode_ERROR_CODE_ENDED {
		t.Fatalf("refresh of the replaced session's token after the migration: %v; want ENDED", res)
	}
	err = s.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketLiveV1) != nil || tx.Bucket(bucketSessTokensV1) != nil {
			t.Error("a version 1 bucket is still there")
		}
		if v := tx.Bucket(bucketMeta).Get(metaVersion); binary.BigEndian.Uint32(v) != layoutVersion {
			t.Errorf("layout version after the migration = %x, want %d", v, layoutVersion)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesANewerLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	setLayoutVersion(t, path, layoutVersion+1, nil)
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "unsupported layout version") {
		t.Fatalf("Open of a newer layout: %v; want unsupported layout version", err)
	}
}

// A file of layout version 2 holds tokens spent the way version 2 spent
// them: marked used, with their successor. It opens as version 3, and
// those marks still decide: a retry within the grace window gets the
// successor, a later one is reuse and ends the session. Version 3 spends
// a token by its generation alone and leaves its record unchanged.
func TestLayout2SpentTokensStillDecide(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rotate := func(s *Store, at time.Time, old, next string) *storev1.Result {
		return applyOne(t, s, mustEncode(t, &storev1.Command{NowUnixNano: at.UnixNano(), Op: &storev1.Command_RotateRefresh{RotateRefresh: &storev1.RotateRefresh{
			OldIdHash: tokHash(old), Next: &storev1.RefreshToken{IdHash: tokHash(next), ExpiresUnixNano: at.Add(time.Hour).UnixNano()},
			IdleExpiresUnixNano: at.Add(time.Hour).UnixNano(), GraceNanos: int64(10 * time.Second),
		}}}))
	}
	for _, sid := range []string{"s1", "s2"} {
		c := openCmd(t0, sid, "u-"+sid, storev1.Platform_PLATFORM_WEB, "d", sid+"-t1", time.Hour, 2*time.Hour, false)
		if res := applyOne(t, s, mustEncode(t, c)); res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
			t.Fatalf("open %s: %v", sid, res)
		}
	}
	spentAt := t0.Add(time.Minute)
	for _, sid := range []string{"s1", "s2"} {
		if res := rotate(s, spentAt, sid+"-t1", sid+"-t2"); res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
			t.Fatalf("rotate %s: %v", sid, res)
		}
	}
	// Version 3 left t1's record as it was.
	if tk, err := s.RefreshToken(tokHash("s1-t1"), t0); err != nil || tk.GetUsedUnixNano() != 0 || len(tk.GetReplacedByHash()) != 0 {
		t.Fatalf("spent token after a rotation: %v, %v; want its record unchanged", tk, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Rewrite the rotations as version 2 recorded them.
	setLayoutVersion(t, path, 2, func(tx *bolt.Tx) error {
		bt, err := newBoltTxn(tx)
		if err != nil {
			return err
		}
		for _, sid := range []string{"s1", "s2"} {
			tk, err := bt.refresh(tokHash(sid + "-t1"))
			if err != nil {
				return err
			}
			tk.UsedUnixNano, tk.ReplacedByHash = spentAt.UnixNano(), tokHash(sid+"-t2")
			if err := bt.putRefresh(tk); err != nil {
				return err
			}
			ss, err := bt.session(sid)
			if err != nil {
				return err
			}
			ss.CurrentRefreshIdHash = nil
			if err := bt.putSession(ss); err != nil {
				return err
			}
		}
		return nil
	})
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("Open of a version 2 file: %v", err)
	}
	defer s.Close()
	err = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(metaVersion); binary.BigEndian.Uint32(v) != layoutVersion {
			t.Errorf("layout version after Open = %x, want %d", v, layoutVersion)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// s1: within the grace window, the successor version 2 recorded.
	res := rotate(s, spentAt.Add(5*time.Second), "s1-t1", "s1-t2-other")
	if !res.GetGraceRetry() || !bytes.Equal(res.GetRefresh().GetIdHash(), tokHash("s1-t2")) {
		t.Errorf("grace retry of a version 2 spent token: %v; want the recorded successor s1-t2", res)
	}
	// s2: after it, reuse.
	res = rotate(s, spentAt.Add(time.Minute), "s2-t1", "s2-t3")
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_REUSE {
		t.Errorf("a version 2 spent token after the grace window: %v; want REUSE", res)
	}
	// The successor rotates on, the version 3 way.
	if res := rotate(s, spentAt.Add(time.Minute), "s1-t2", "s1-t3"); res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		t.Fatalf("rotate s1-t2: %v", res)
	}
	if res := rotate(s, spentAt.Add(2*time.Minute), "s1-t2", "s1-t3x"); res.GetCode() != storev1.ErrorCode_ERROR_CODE_REUSE {
		t.Errorf("s1-t2 again after its grace window: %v; want REUSE", res)
	}
}
