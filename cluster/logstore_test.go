package cluster

import (
	"errors"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// The two corrections logStore makes to raft-wal: truncated entries are
// gone for Raft, and a closed store can be reopened in the same process.
func TestLogStoreTruncationAndReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := openLogStore(dir, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 100; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte{byte(i)}})
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 90); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := s.GetLog(5, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Errorf("GetLog(5) after truncating 1..90: got %v (index %d), want raft.ErrLogNotFound", err, l.Index)
	}
	if err := s.GetLog(95, &l); err != nil || l.Index != 95 || l.Data[0] != 95 {
		t.Errorf("GetLog(95): got %v, index %d, want entry 95", err, l.Index)
	}
	// Raft clears a conflicting suffix ("clearing log suffix") after an
	// election; the log must still open afterwards (raft-wal#31).
	if err := s.DeleteRange(100, 100); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening must not block on the meta store's file lock.
	s, err = openLogStore(dir, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if first, _ := s.FirstIndex(); first != 91 {
		t.Errorf("FirstIndex after reopen: got %d, want 91", first)
	}
	if last, _ := s.LastIndex(); last != 99 {
		t.Errorf("LastIndex after reopen: got %d, want 99 (100 was cleared)", last)
	}
	if err := s.GetLog(95, &l); err != nil || l.Index != 95 {
		t.Errorf("GetLog(95) after reopen: got %v, index %d", err, l.Index)
	}
	if term, err := s.GetUint64([]byte("CurrentTerm")); err != nil || term != 7 {
		t.Errorf("stable CurrentTerm after reopen: got %d, %v; want 7", term, err)
	}
}
