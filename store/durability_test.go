package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// withBootID makes currentBootID answer id for the test's duration.
func withBootID(t *testing.T, id string) {
	t.Helper()
	prev := currentBootID
	t.Cleanup(func() { currentBootID = prev })
	currentBootID = func() ([]byte, error) { return []byte(id), nil }
}

// crash ends s the way a killed process does: the bbolt handle goes (its
// lock with it) but nothing is synced and the marker stays.
func crash(t *testing.T, s *Store) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
}

// deferredWithSession opens a DeferSync store at a new path and opens one
// session in it (entry 1).
func deferredWithSession(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{DeferSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if !s.unsynced {
		t.Fatal("DeferSync with a boot id: commits are still synced")
	}
	c := openCmd(t0, "s1", "u1", storev1.Platform_PLATFORM_WEB, "d1", "t1", time.Hour, 2*time.Hour, false)
	if res := applyOne(t, s, mustEncode(t, c)); res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		t.Fatalf("open session: %v", res)
	}
	if _, err := os.Stat(openMarkerPath(path)); err != nil {
		t.Fatalf("no marker while the file has unsynced commits: %v", err)
	}
	return s, path
}

func TestDeferSyncKeepsTheFileAfterTheProcessDies(t *testing.T) {
	withBootID(t, "boot-1")
	s, path := deferredWithSession(t)
	crash(t, s)

	s, err := Open(path, Options{DeferSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Discarded() || s.AppliedIndex() != 1 {
		t.Fatalf("after a process crash in the same boot: discarded %v, applied %d; want the file kept at 1", s.Discarded(), s.AppliedIndex())
	}
	if _, err := s.Session("s1", t0); err != nil {
		t.Fatalf("the session committed before the crash: %v", err)
	}
}

func TestDeferSyncDiscardsTheFileAfterTheMachineStops(t *testing.T) {
	withBootID(t, "boot-1")
	s, path := deferredWithSession(t)
	crash(t, s)
	// A power loss may leave anything in the unsynced file.
	if err := os.Truncate(path, 4096*3); err != nil {
		t.Fatal(err)
	}

	withBootID(t, "boot-2")
	s, err := Open(path, Options{DeferSync: true})
	if err != nil {
		t.Fatalf("Open after a machine stop: %v (want the file moved aside, not an error)", err)
	}
	defer s.Close()
	if !s.Discarded() || s.AppliedIndex() != 0 {
		t.Fatalf("after a machine stop: discarded %v, applied %d; want a new empty store", s.Discarded(), s.AppliedIndex())
	}
	if _, err := os.Stat(UncleanPath(path)); err != nil {
		t.Fatalf("the discarded file is not kept aside: %v", err)
	}
	if _, err := s.Session("s1", t0); err == nil {
		t.Fatal("the new store serves a session from the discarded file")
	}
}

func TestDeferSyncCleanCloseSurvivesAMachineStop(t *testing.T) {
	withBootID(t, "boot-1")
	s, path := deferredWithSession(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(openMarkerPath(path)); !os.IsNotExist(err) {
		t.Fatalf("marker after a clean close: %v, want none", err)
	}

	withBootID(t, "boot-2")
	s, err := Open(path, Options{DeferSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Discarded() || s.AppliedIndex() != 1 {
		t.Fatalf("after a clean close and a reboot: discarded %v, applied %d; want the file kept at 1", s.Discarded(), s.AppliedIndex())
	}
}

// A tool that opens the file synced (sessiond recover) after a crash of the
// same boot syncs what the page cache holds and drops the marker; a later
// machine stop then keeps the file.
func TestSyncedOpenAfterACrashSyncsAndClearsTheMarker(t *testing.T) {
	withBootID(t, "boot-1")
	s, path := deferredWithSession(t)
	crash(t, s)

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(openMarkerPath(path)); !os.IsNotExist(err) {
		t.Fatalf("marker after a synced open: %v, want none", err)
	}
	crash(t, s)
	withBootID(t, "boot-2")
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Discarded() || s.AppliedIndex() != 1 {
		t.Fatalf("discarded %v, applied %d; want the synced file kept at 1", s.Discarded(), s.AppliedIndex())
	}
}

func TestDeferSyncWithoutABootIDSyncsEveryCommit(t *testing.T) {
	prev := currentBootID
	t.Cleanup(func() { currentBootID = prev })
	currentBootID = func() ([]byte, error) { return nil, os.ErrNotExist }
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{DeferSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.unsynced || s.db.NoSync {
		t.Fatal("without a boot id the store does not fsync its commits")
	}
	if _, err := os.Stat(openMarkerPath(path)); !os.IsNotExist(err) {
		t.Fatalf("marker without a boot id: %v, want none", err)
	}
}
