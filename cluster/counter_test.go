package cluster_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// counterFSM counts "inc" commands; "fail" makes Apply answer with an error.
// It skips entries it already applied, as cluster requires.
type counterFSM struct {
	mu        sync.Mutex
	count     uint64
	lastIndex uint64
	restores  atomic.Int64
}

var errFail = errors.New("counter: asked to fail")

func (f *counterFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l.Index <= f.lastIndex {
		return []byte(strconv.FormatUint(f.count, 10))
	}
	f.lastIndex = l.Index
	switch string(l.Data) {
	case "fail":
		return errFail
	default:
		f.count++
		return []byte(strconv.FormatUint(f.count, 10))
	}
}

func (f *counterFSM) Count() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count
}

type counterSnapshot struct{ count, index uint64 }

func (f *counterFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return counterSnapshot{f.count, f.lastIndex}, nil
}

func (s counterSnapshot) Persist(sink raft.SnapshotSink) error {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], s.count)
	binary.BigEndian.PutUint64(b[8:], s.index)
	if _, err := sink.Write(b[:]); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (counterSnapshot) Release() {}

func (f *counterFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [16]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return fmt.Errorf("counter: restore: %w", err)
	}
	f.mu.Lock()
	f.count = binary.BigEndian.Uint64(b[:8])
	f.lastIndex = binary.BigEndian.Uint64(b[8:])
	f.mu.Unlock()
	f.restores.Add(1)
	return nil
}

// AppliedIndex is the index of the last entry applied, as a persistent
// FSM reports it to cluster.Open.
func (f *counterFSM) AppliedIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastIndex
}
