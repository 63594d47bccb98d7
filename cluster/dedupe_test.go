package cluster_test

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/hashicorp/raft"
)

// dedupeFSM applies commands "w:<request id>" once per request id, as the
// store does: a repeated id answers the first result and changes nothing.
// The result is "<id>@<index it was applied at>". It records how often
// each id reached the log, to tell retries from double applies.
type dedupeFSM struct {
	mu        sync.Mutex
	lastIndex uint64
	applied   map[string]uint64 // id -> index of its first application
	inLog     map[string]int    // id -> times it was in the log
}

func newDedupeFSM() *dedupeFSM {
	return &dedupeFSM{applied: map[string]uint64{}, inLog: map[string]int{}}
}

func (f *dedupeFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := strings.CutPrefix(string(l.Data), "w:")
	if !ok {
		return fmt.Errorf("dedupe: bad command %q", l.Data)
	}
	if l.Index <= f.lastIndex {
		return []byte(fmt.Sprintf("%s@%d", id, f.applied[id]))
	}
	f.lastIndex = l.Index
	f.inLog[id]++
	if first, ok := f.applied[id]; ok {
		return []byte(fmt.Sprintf("%s@%d", id, first))
	}
	f.applied[id] = l.Index
	return []byte(fmt.Sprintf("%s@%d", id, l.Index))
}

// state returns copies of applied and inLog.
func (f *dedupeFSM) state() (applied map[string]uint64, inLog map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	applied = make(map[string]uint64, len(f.applied))
	for k, v := range f.applied {
		applied[k] = v
	}
	inLog = make(map[string]int, len(f.inLog))
	for k, v := range f.inLog {
		inLog[k] = v
	}
	return applied, inLog
}

func (f *dedupeFSM) AppliedIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastIndex
}

type dedupeState struct {
	LastIndex uint64
	Applied   map[string]uint64
	InLog     map[string]int
}

func (f *dedupeFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	last := f.lastIndex
	f.mu.Unlock()
	applied, inLog := f.state()
	return dedupeSnapshot{LastIndex: last, Applied: applied, InLog: inLog}, nil
}

type dedupeSnapshot dedupeState

func (s dedupeSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(dedupeState(s)); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (dedupeSnapshot) Release() {}

func (f *dedupeFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var s dedupeState
	if err := json.NewDecoder(rc).Decode(&s); err != nil {
		return fmt.Errorf("dedupe: restore: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastIndex, f.applied, f.inLog = s.LastIndex, s.Applied, s.InLog
	return nil
}
