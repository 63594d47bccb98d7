package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A backup file is a snapshot of the store with metadata in front:
//
//	magic    [8]byte  "SDBACKUP"
//	version  uint32   big-endian, backupVersion
//	metaLen  uint32   big-endian, at most maxBackupMeta
//	meta     [metaLen]byte  BackupMeta as JSON
//	metaSum  [32]byte SHA-256 of everything before it
//	snapshot the store's framed snapshot (see snapshot.go): header, bbolt
//	         image, SHA-256; nothing may follow it
//
// A raw Raft snapshot of the store (no backup header) is refused with a
// message saying what it is; a backup of a newer version is refused with
// its version.
var backupMagic = [8]byte{'S', 'D', 'B', 'A', 'C', 'K', 'U', 'P'}

const (
	backupVersion = 1
	maxBackupMeta = 64 << 10
)

// ErrBadBackup is wrapped by every error about a backup file that is not a
// complete, intact backup of this format.
var ErrBadBackup = errors.New("store: bad backup")

// BackupMeta describes a backup.
type BackupMeta struct {
	// Index and Term are the Raft index and term of the last entry the
	// backed-up state reflects.
	Index uint64 `json:"index"`
	Term  uint64 `json:"term"`
	// ClusterID is the cluster the state came from; NodeID the node that
	// wrote it.
	ClusterID string `json:"cluster_id"`
	NodeID    string `json:"node_id"`
	// Time is when the backup was taken (UTC).
	Time time.Time `json:"time"`
	// SnapshotVersion is the version of the store's snapshot frame inside.
	SnapshotVersion uint32 `json:"snapshot_version"`
}

// WriteBackup writes a backup of the current state to w: the metadata
// (the applied index and term recorded in the same read transaction as the
// image, clusterID, nodeID, the time) and the store's framed snapshot.
func (s *Store) WriteBackup(w io.Writer, clusterID, nodeID string) error {
	fs, err := s.Snapshot()
	if err != nil {
		return err
	}
	sn := fs.(*snapshot)
	defer sn.Release()
	idx, term, err := appliedIn(sn.tx)
	if err != nil {
		return err
	}
	meta := BackupMeta{Index: idx, Term: term, ClusterID: clusterID, NodeID: nodeID, Time: time.Now().UTC(), SnapshotVersion: snapshotVersion}
	raw, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("store: backup metadata: %w", err)
	}
	var hdr bytes.Buffer
	hdr.Write(backupMagic[:])
	_ = binary.Write(&hdr, binary.BigEndian, uint32(backupVersion))
	_ = binary.Write(&hdr, binary.BigEndian, uint32(len(raw)))
	hdr.Write(raw)
	sum := sha256.Sum256(hdr.Bytes())
	hdr.Write(sum[:])
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return fmt.Errorf("store: write backup: %w", err)
	}
	if err := sn.write(w); err != nil {
		return fmt.Errorf("store: write backup: %w", err)
	}
	return nil
}

// readBackupMeta reads and verifies a backup's header.
func readBackupMeta(r io.Reader) (BackupMeta, error) {
	var meta BackupMeta
	var head [16]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return meta, fmt.Errorf("%w: header: %w", ErrBadBackup, err)
	}
	if bytes.Equal(head[:8], snapshotMagic[:]) {
		return meta, fmt.Errorf("%w: this is a raw Raft snapshot of the store, not a backup (make one with `sessiond snapshot save`)", ErrBadBackup)
	}
	if !bytes.Equal(head[:8], backupMagic[:]) {
		return meta, fmt.Errorf("%w: not a sessiond backup (wrong magic)", ErrBadBackup)
	}
	if v := binary.BigEndian.Uint32(head[8:]); v != backupVersion {
		return meta, fmt.Errorf("%w: backup format version %d, this sessiond reads version %d", ErrBadBackup, v, backupVersion)
	}
	n := binary.BigEndian.Uint32(head[12:])
	if n == 0 || n > maxBackupMeta {
		return meta, fmt.Errorf("%w: metadata of %d bytes", ErrBadBackup, n)
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(r, raw); err != nil {
		return meta, fmt.Errorf("%w: metadata: %w", ErrBadBackup, err)
	}
	var sum [sha256.Size]byte
	if _, err := io.ReadFull(r, sum[:]); err != nil {
		return meta, fmt.Errorf("%w: metadata checksum: %w", ErrBadBackup, err)
	}
	h := sha256.New()
	h.Write(head[:])
	h.Write(raw)
	if !bytes.Equal(h.Sum(nil), sum[:]) {
		return meta, fmt.Errorf("%w: metadata checksum mismatch", ErrBadBackup)
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return meta, fmt.Errorf("%w: metadata: %w", ErrBadBackup, err)
	}
	return meta, nil
}

// BackupInfo is what InspectBackup finds in a backup.
type BackupInfo struct {
	BackupMeta
	// Counts maps each bucket of the state (sessions, refresh, revocations,
	// signing_keys, users, ...) to its number of records.
	Counts map[string]int `json:"counts"`
	// Size is the size of the state's database image in bytes.
	Size int64 `json:"size"`
}

// InspectBackup verifies the backup at path (both checksums, the framing,
// bbolt's consistency check of the image) and counts its records. It
// needs no running node: the image is unpacked into a temporary file in
// tmpDir ("" for the system's), removed afterwards.
func InspectBackup(path, tmpDir string) (BackupInfo, error) {
	dir, err := os.MkdirTemp(tmpDir, "sessiond-inspect-")
	if err != nil {
		return BackupInfo{}, fmt.Errorf("store: inspect: %w", err)
	}
	defer os.RemoveAll(dir)
	db := filepath.Join(dir, "state.db")
	meta, err := UnpackBackup(path, db)
	if err != nil {
		return BackupInfo{}, err
	}
	info := BackupInfo{BackupMeta: meta, Counts: map[string]int{}}
	bdb, err := bolt.Open(db, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return info, fmt.Errorf("store: inspect: %w", err)
	}
	defer bdb.Close()
	err = bdb.View(func(tx *bolt.Tx) error {
		info.Size = tx.Size()
		for _, name := range allBuckets[1:] {
			if b := tx.Bucket(name); b != nil {
				info.Counts[string(name)] = b.Stats().KeyN
			}
			if string(name) == string(bucketSessions) {
				info.Counts[string(name)] = countSessions(tx)
			}
		}
		return nil
	})
	return info, err
}

// UnpackBackup verifies the backup at path and writes its state as a
// store file at dst (which must not exist), fsynced. The file is checked
// the way Restore checks a snapshot (framing, checksums, bbolt's
// consistency check) and holds the applied index and term of the metadata;
// on any error dst is removed and the error wraps ErrBadBackup or
// ErrBadSnapshot.
func UnpackBackup(path, dst string) (BackupMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return BackupMeta{}, fmt.Errorf("store: open backup: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	meta, err := readBackupMeta(br)
	if err != nil {
		return meta, err
	}
	if _, err := os.Stat(dst); err == nil {
		return meta, fmt.Errorf("store: unpack backup: %s exists", dst)
	}
	s := &Store{path: dst}
	s.opts.OpenTimeout = time.Second
	s.opts.InitialMmapSize = 1 << 20
	db, err := s.receive(br, dst)
	if err != nil {
		_ = os.Remove(dst)
		return meta, err
	}
	defer db.Close()
	idx, term, err := readApplied(db)
	if err == nil && (idx != meta.Index || term != meta.Term) {
		err = fmt.Errorf("%w: metadata says index %d term %d, the state records index %d term %d", ErrBadBackup, meta.Index, meta.Term, idx, term)
	}
	if err != nil {
		_ = db.Close()
		_ = os.Remove(dst)
		return meta, err
	}
	return meta, nil
}

// OpenBackupSnapshot opens the backup at path and returns a reader of the
// store's framed snapshot inside it (what Restore and a Raft snapshot
// hold), positioned after the verified metadata. Close it when done.
func OpenBackupSnapshot(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store: open backup: %w", err)
	}
	br := bufio.NewReaderSize(f, 1<<20)
	if _, err := readBackupMeta(br); err != nil {
		_ = f.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{br, f}, nil
}

// countSessions counts the sessions bucket's sessions (not the entries of
// their token lists).
func countSessions(tx *bolt.Tx) int {
	n := 0
	_ = tx.Bucket(bucketSessions).ForEach(func(k, _ []byte) error {
		if isSessionKey(k) {
			n++
		}
		return nil
	})
	return n
}
