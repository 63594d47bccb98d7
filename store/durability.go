package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Deferred sync (Options.DeferSync).
//
// The store is derived state: every command it applies is first in Raft's
// log, which is fsynced before an entry commits, and Raft keeps the log
// from the newest snapshot on. So the store need not fsync each commit to
// lose nothing acknowledged; it needs only to know when its file cannot be
// trusted. bbolt writes a commit with pwrite, and whatever a process wrote
// stays in the kernel's page cache when the process dies (kill -9, panic,
// OOM kill): after such a crash the file is exactly as committed. Only a
// stop of the machine itself (power loss, kernel crash) can drop writes
// that were never synced, and that leaves the file with a meta page that
// may point at pages that never reached the disk.
//
// A machine stop changes the kernel's boot id. While the file is open
// unsynced, a marker beside it (<path>.open) holds the boot id, written
// and fsynced before the first unsynced commit. Open finds it:
//   - absent: the file was closed cleanly (Close fsyncs, then removes the
//     marker), or never used unsynced;
//   - the current boot id: the process died but the machine did not; the
//     page cache holds every commit, and Open fsyncs them;
//   - another boot id: the machine stopped with unsynced commits; Open moves
//     the file aside (<path>.unclean) and starts empty. The cluster then
//     sees a store behind its newest snapshot and lets Raft restore the
//     snapshot and replay the log after it (cluster.NewNode).
//
// Without a boot id (not Linux) DeferSync falls back to an fsync per
// commit.

// bootIDPath is the Linux kernel's random id of the current boot.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// currentBootID returns the id of the running boot. A test replaces it.
var currentBootID = func() ([]byte, error) {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, errors.New("empty boot id")
	}
	return b, nil
}

func openMarkerPath(path string) string { return path + ".open" }

// UncleanPath is where Open moves a store file that a machine stop left
// unsynced (see Options.DeferSync); the previous one there is replaced.
func UncleanPath(path string) string { return path + ".unclean" }

// checkUnsynced looks for the marker of an unsynced file at path and
// returns whether the file was discarded, and whether the file (kept) may
// hold unsynced commits of a process that died in this boot.
func (s *Store) checkUnsynced(path string) (discarded, pending bool, err error) {
	marker, err := os.ReadFile(openMarkerPath(path))
	if errors.Is(err, os.ErrNotExist) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("store: read %s: %w", openMarkerPath(path), err)
	}
	boot, err := currentBootID()
	if err == nil && bytes.Equal(bytes.TrimSpace(marker), boot) {
		return false, true, nil
	}
	// Another boot (or none readable now): the machine stopped while the
	// file had unsynced commits.
	if _, err := os.Stat(path); err == nil {
		if err := os.Rename(path, UncleanPath(path)); err != nil {
			return false, false, fmt.Errorf("store: move aside %s, left unsynced by a machine stop: %w", path, err)
		}
		s.log.Warn("the machine stopped while the store had unsynced commits: the file is moved aside and the store starts empty; Raft restores it from its snapshot and log",
			"path", path, "moved_to", UncleanPath(path), "marker_boot", string(bytes.TrimSpace(marker)))
		discarded = true
	}
	if err := removeDurably(openMarkerPath(path)); err != nil {
		return false, false, err
	}
	return discarded, false, nil
}

// markUnsynced durably records that path is about to get unsynced commits
// in this boot. It returns false (and the store syncs every commit) when
// the boot id cannot be read.
func (s *Store) markUnsynced(path string) (bool, error) {
	boot, err := currentBootID()
	if err != nil {
		s.log.Warn("no boot id: the store fsyncs every commit", "error", err)
		return false, nil
	}
	if err := writeDurably(openMarkerPath(path), append(boot, '\n')); err != nil {
		return false, err
	}
	return true, nil
}

// writeDurably writes b to path through a synced temporary file and a
// rename, then syncs the directory.
func writeDurably(path string, b []byte) error {
	tmp := fmt.Sprintf("%s.%d.tmp", path, time.Now().UnixNano())
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("store: write %s: %w", path, err)
	}
	_, werr := f.Write(b)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("store: write %s: %w", path, werr)
	}
	return syncDir(filepath.Dir(path))
}

// removeDurably removes path (absent is fine) and syncs its directory.
func removeDurably(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: remove %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}
