package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestBackupRoundTrip writes a backup, inspects it offline (counts, index,
// term) and unpacks it into a store file holding the same state.
func TestBackupRoundTrip(t *testing.T) {
	src := openTemp(t, "src.db")
	applyInBatches(t, src, randomLog(t, 11, 800), []int{64})
	var buf bytes.Buffer
	if err := src.WriteBackup(&buf, "c0ffee", "hk-1"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "backup.snap")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := InspectBackup(path, t.TempDir())
	if err != nil {
		t.Fatalf("InspectBackup: %v", err)
	}
	if info.Index != src.AppliedIndex() || info.Term == 0 || info.ClusterID != "c0ffee" || info.NodeID != "hk-1" || info.Time.IsZero() {
		t.Errorf("backup meta: got %+v, want index %d, a term, cluster c0ffee, node hk-1 and a time", info.BackupMeta, src.AppliedIndex())
	}
	var sessions int
	_ = src.view(func(tx *bolt.Tx) error { sessions = countSessions(tx); return nil })
	if sessions == 0 || info.Counts["sessions"] != sessions {
		t.Errorf("sessions counted: got %d, want %d (non-zero)", info.Counts["sessions"], sessions)
	}
	dst := filepath.Join(t.TempDir(), "state.db")
	if _, err := UnpackBackup(path, dst); err != nil {
		t.Fatalf("UnpackBackup: %v", err)
	}
	restored, err := Open(dst, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	if got, want := stateHash(t, restored, true), stateHash(t, src, true); got != want {
		t.Errorf("unpacked state hash %s, want %s", got, want)
	}
	if _, err := UnpackBackup(path, dst); err == nil {
		t.Errorf("UnpackBackup over an existing file: got nil, want an error")
	}
}

// TestBackupRefusesDamage flips bytes in the metadata and in the image,
// truncates the file and offers a raw Raft snapshot: each is refused with
// ErrBadBackup or ErrBadSnapshot, and nothing is left behind.
func TestBackupRefusesDamage(t *testing.T) {
	src := openTemp(t, "src.db")
	applyInBatches(t, src, randomLog(t, 5, 200), []int{32})
	var buf bytes.Buffer
	if err := src.WriteBackup(&buf, "c0ffee", "hk-1"); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 0x40; return b }
	cases := map[string][]byte{
		"metadata byte":  flip(20),
		"image byte":     flip(len(good) - 4096),
		"truncated":      good[:len(good)-10],
		"raw snapshot":   persist(t, src),
		"trailing bytes": append(bytes.Clone(good), 0),
	}
	for name, data := range cases {
		path := filepath.Join(t.TempDir(), "b")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(t.TempDir(), "state.db")
		_, err := UnpackBackup(path, dst)
		if !errors.Is(err, ErrBadBackup) && !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: got %v, want ErrBadBackup or ErrBadSnapshot", name, err)
		}
		if _, serr := os.Stat(dst); serr == nil {
			t.Errorf("%s: %s left behind", name, dst)
		}
	}
}
