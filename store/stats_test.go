package store

import (
	"bytes"
	"io"
	"testing"

	"github.com/hashicorp/raft"
)

// Stats counts the transactions, entries and page writes of ApplyBatch,
// and a snapshot restore, which swaps the database, does not reset them.
func TestStatsCountWritesAcrossRestore(t *testing.T) {
	s := openTemp(t, "s.db")
	if st := s.Stats(); st.Transactions != 0 || st.Entries != 0 || st.FileBytes == 0 {
		t.Fatalf("fresh store: %+v, want no transactions or entries and a file size", st)
	}
	logs := randomLog(t, 3, 300)
	applyInBatches(t, s, logs[:200], []int{50})
	st := s.Stats()
	if st.Transactions != 4 || st.Entries != 200 {
		t.Fatalf("after 200 entries in batches of 50: %d transactions, %d entries; want 4, 200", st.Transactions, st.Entries)
	}
	// Each transaction writes at least a leaf, its branches and a meta page.
	if st.PageWrites < 4*2 {
		t.Fatalf("page writes = %d after 4 transactions, want at least 8", st.PageWrites)
	}

	// A replay of applied entries is no transaction.
	s.ApplyBatch([]*raft.Log{logs[0], logs[1]})
	if got := s.Stats(); got.Transactions != st.Transactions || got.Entries != st.Entries {
		t.Fatalf("a replay counted: %+v, want %d transactions and %d entries still", got, st.Transactions, st.Entries)
	}

	src := openTemp(t, "src.db")
	applyInBatches(t, src, logs, []int{300})
	if err := s.Restore(io.NopCloser(bytes.NewReader(persist(t, src)))); err != nil {
		t.Fatal(err)
	}
	after := s.Stats()
	if after.PageWrites < st.PageWrites || after.Transactions != st.Transactions {
		t.Fatalf("after a restore: %+v; the counters went back from %+v", after, st)
	}
	applyInBatches(t, s, []*raft.Log{{Index: 301, Term: 9, Type: raft.LogConfiguration, Data: []byte{1}}}, []int{1})
	if got := s.Stats(); got.Transactions != st.Transactions+1 || got.Entries != st.Entries+1 || got.PageWrites <= after.PageWrites {
		t.Fatalf("an entry after the restore: %+v, want one more transaction, entry and more page writes than %+v", got, after)
	}
}
