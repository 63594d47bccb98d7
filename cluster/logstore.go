package cluster

import (
	"errors"
	"fmt"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// logStore is Raft's log and stable store: a hashicorp/raft-wal write-ahead
// log (one fsync per append, sequential writes, truncation without free-page
// bookkeeping) with two corrections to raft-wal v0.4.0:
//
//   - GetLog of an index below FirstIndex returns raft.ErrLogNotFound. The
//     WAL truncates its head by moving a minimum index and keeps serving the
//     entries still in the oldest segment file, but Raft relies on the
//     LogStore contract to decide that a follower too far behind needs a
//     snapshot, and Node.fsmCaughtUp relies on it to skip compacted entries.
//   - Close also closes the meta store: the WAL opens one itself and never
//     closes it, which would keep its file lock after Shutdown and block a
//     node reopened in the same process.
type logStore struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
}

var (
	_ raft.LogStore    = (*logStore)(nil)
	_ raft.StableStore = (*logStore)(nil)
)

// openLogStore opens (or creates) the WAL in dir.
func openLogStore(dir string, logger hclog.Logger) (*logStore, error) {
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir, wal.WithLogger(logger), wal.WithMetaStore(meta))
	if err != nil {
		_ = meta.Close()
		return nil, fmt.Errorf("cluster: open raft log %s: %w", dir, err)
	}
	return &logStore{WAL: w, meta: meta}, nil
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

// Close closes the WAL and its meta store.
func (s *logStore) Close() error {
	return errors.Join(s.WAL.Close(), s.meta.Close())
}
