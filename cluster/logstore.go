package cluster

import (
	"fmt"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
)

// logStore is Raft's log and stable store: a hashicorp/raft-wal write-ahead
// log (one fsync per append, sequential writes, truncation without free-page
// bookkeeping). It must be v0.4.1 or later: v0.4.0 left a segment sealed
// without its index block when Raft cleared a log suffix, and the node then
// panicked at every start (hashicorp/raft-wal#31, found here by the fault
// test), and it never closed its meta store.
//
// One correction: GetLog of an index below FirstIndex returns
// raft.ErrLogNotFound. The WAL truncates its head by moving a minimum index
// and keeps serving the entries still in the oldest segment file, but Raft
// relies on the LogStore contract to decide that a follower too far behind
// needs a snapshot, and Node.fsmCaughtUp relies on it to skip compacted
// entries.
type logStore struct {
	*wal.WAL
	// appended and appendedBytes count the entries this node has
	// written to its log since it started, and their bytes.
	appended, appendedBytes atomic.Uint64
}

var (
	_ raft.LogStore    = (*logStore)(nil)
	_ raft.StableStore = (*logStore)(nil)
)

// openLogStore opens (or creates) the WAL in dir.
func openLogStore(dir string, logger hclog.Logger) (*logStore, error) {
	w, err := wal.Open(dir, wal.WithLogger(logger))
	if err != nil {
		return nil, fmt.Errorf("cluster: open raft log %s: %w", dir, err)
	}
	return &logStore{WAL: w}, nil
}

// GetLog reads the entry at index into out; raft.ErrLogNotFound when it was
// truncated away or was never written.
func (s *logStore) GetLog(index uint64, out *raft.Log) error {
	first, err := s.FirstIndex()
	if err != nil {
		return err
	}
	if index < first {
		return raft.ErrLogNotFound
	}
	return s.WAL.GetLog(index, out)
}

// StoreLog appends one entry; see StoreLogs.
func (s *logStore) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

// StoreLogs appends entries to the WAL and counts them and their bytes
// (Data and Extensions), from which the snapshot policy learns the mean
// size of an entry (snapshotpolicy.go).
func (s *logStore) StoreLogs(logs []*raft.Log) error {
	if err := s.WAL.StoreLogs(logs); err != nil {
		return err
	}
	var b uint64
	for _, l := range logs {
		b += uint64(len(l.Data) + len(l.Extensions))
	}
	s.appendedBytes.Add(b)
	s.appended.Add(uint64(len(logs)))
	return nil
}
