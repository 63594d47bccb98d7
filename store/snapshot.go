package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// Snapshot stream framing:
//
//	magic   [8]byte  "SDSTORE\x00"
//	version uint32   big-endian, snapshotVersion
//	size    uint64   big-endian, length of the bbolt file image
//	db      [size]byte
//	sum     [32]byte SHA-256 of everything before it
//
// Nothing may follow the checksum.
var snapshotMagic = [8]byte{'S', 'D', 'S', 'T', 'O', 'R', 'E', 0}

const (
	snapshotVersion    = 1
	snapshotHeaderSize = 8 + 4 + 8
)

// ErrBadSnapshot is wrapped by Restore's error when the stream is not a
// complete, intact snapshot of this format.
var ErrBadSnapshot = errors.New("store: bad snapshot")

type snapshot struct {
	tx *bolt.Tx
}

// Snapshot captures the current state in a bbolt read transaction and
// returns at once; Persist streams it while Apply goes on. Release must be
// called (raft always does).
func (s *Store) Snapshot() (raft.FSMSnapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("store: snapshot: %w", err)
	}
	return &snapshot{tx: tx}, nil
}

// Persist writes the framed snapshot to sink and closes it, or cancels it
// on error.
func (sn *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := sn.write(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("store: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (sn *snapshot) write(w io.Writer) error {
	if sn.tx == nil {
		return errors.New("snapshot already released")
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<20)
	var hdr [snapshotHeaderSize]byte
	copy(hdr[:], snapshotMagic[:])
	binary.BigEndian.PutUint32(hdr[8:], snapshotVersion)
	size := sn.tx.Size()
	binary.BigEndian.PutUint64(hdr[12:], uint64(size))
	if _, err := bw.Write(hdr[:]); err != nil {
		return err
	}
	n, err := sn.tx.WriteTo(bw)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("wrote %d database bytes, want %d", n, size)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err = w.Write(h.Sum(nil))
	return err
}

// Release ends the snapshot's read transaction.
func (sn *snapshot) Release() {
	if sn.tx != nil {
		_ = sn.tx.Rollback()
		sn.tx = nil
	}
}

func restoreTempPath(path string) string { return path + ".restore" }

// Restore replaces the whole state with a snapshot written by Persist. It
// writes the database image to a temporary file next to the store,
// verifies the framing and checksum, opens it with bbolt and checks it, and
// fsyncs it; then it atomically renames it over the store file, fsyncs the
// directory and switches readers to it. On any failure the old state stays
// in place and an error wrapping ErrBadSnapshot (for a bad stream) is
// returned. A crash leaves either the old file or the new one.
func (s *Store) Restore(rc io.ReadCloser) error {
	defer func() { _ = rc.Close() }()
	tmp := restoreTempPath(s.path)
	newDB, err := s.receive(rc, tmp)
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	idx, _, err := readApplied(newDB)
	if err != nil {
		_ = newDB.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = newDB.Close()
		_ = os.Remove(tmp)
		return ErrClosed
	}
	// The new file is open under its temporary name; renaming it over the
	// store keeps the open handle valid (same inode), so no reopen can fail
	// after the point of no return.
	if err := os.Rename(tmp, s.path); err != nil {
		s.mu.Unlock()
		_ = newDB.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("store: restore: rename: %w", err)
	}
	old := s.db
	oldStats := old.Stats()
	s.counters.retiredPageWrites.Add(uint64(oldStats.TxStats.GetWrite()))
	s.db = newDB
	s.applying.Store(idx)
	s.applied.Store(idx)
	s.opTokens.invalidate()
	s.mu.Unlock()

	if err := syncDir(filepath.Dir(s.path)); err != nil {
		s.log.Warn("restore: fsync of the store directory failed", "error", err)
	}
	// Waits for snapshots of the old state still being persisted.
	if err := old.Close(); err != nil {
		s.log.Warn("restore: closing the replaced database failed", "error", err)
	}
	if err := s.idx.load(newDB); err != nil {
		s.fail(fmt.Errorf("store: restore: rebuild the check index: %w", err))
		return s.Err()
	}
	if s.opts.OnRestore != nil {
		s.opts.OnRestore(idx)
	}
	return nil
}

// receive verifies the stream into tmp and returns it opened and checked.
func (s *Store) receive(r io.Reader, tmp string) (*bolt.DB, error) {
	h := sha256.New()
	br := bufio.NewReaderSize(r, 1<<20)
	var hdr [snapshotHeaderSize]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrBadSnapshot, err)
	}
	if !bytes.Equal(hdr[:8], snapshotMagic[:]) {
		return nil, fmt.Errorf("%w: wrong magic", ErrBadSnapshot)
	}
	if v := binary.BigEndian.Uint32(hdr[8:]); v != snapshotVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrBadSnapshot, v, snapshotVersion)
	}
	size := int64(binary.BigEndian.Uint64(hdr[12:]))
	if size <= 0 || size > 1<<40 {
		return nil, fmt.Errorf("%w: database size %d", ErrBadSnapshot, size)
	}
	h.Write(hdr[:])

	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: restore: %w", err)
	}
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(br, size))
	if err == nil && n != size {
		err = fmt.Errorf("%w: truncated database image (%d of %d bytes)", ErrBadSnapshot, n, size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("store: restore: %w", err)
	}
	if err := checkTrailer(br, h); err != nil {
		return nil, err
	}

	return s.openChecked(tmp)
}

// openChecked opens a received database file and runs bbolt's consistency
// check on it. bbolt may panic on a damaged file; that becomes an error.
func (s *Store) openChecked(path string) (db *bolt.DB, err error) {
	defer func() {
		if p := recover(); p != nil {
			if db != nil {
				_ = db.Close()
				db = nil
			}
			err = fmt.Errorf("%w: database check panicked: %v", ErrBadSnapshot, p)
		}
	}()
	db, err = s.openDB(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		var first error
		for cerr := range tx.Check() {
			if first == nil {
				first = cerr
			}
		}
		return first
	})
	if err == nil {
		err = db.Sync()
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	return db, nil
}

func checkTrailer(br *bufio.Reader, h hash.Hash) error {
	var sum [sha256.Size]byte
	if _, err := io.ReadFull(br, sum[:]); err != nil {
		return fmt.Errorf("%w: checksum: %w", ErrBadSnapshot, err)
	}
	if !bytes.Equal(sum[:], h.Sum(nil)) {
		return fmt.Errorf("%w: checksum mismatch", ErrBadSnapshot)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the checksum", ErrBadSnapshot)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return d.Sync()
}
