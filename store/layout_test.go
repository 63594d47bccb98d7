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
