package store

import (
	"os"
	"sync/atomic"
)

// Stats are a store's write counters and file sizes, for metrics. The
// counters count from Open and survive snapshot restores.
type Stats struct {
	// Transactions is the number of write transactions ApplyBatch
	// committed: one per group of entries the cluster handed over.
	Transactions uint64
	// Entries is the number of log entries those transactions applied
	// (commands and configuration entries; replays skipped).
	Entries uint64
	// PageWrites is the number of pages written to the file, meta pages
	// included. PageWrites/Entries is the write amplification of the
	// commands applied; PageWrites/Transactions falls as groups grow.
	PageWrites uint64
	// FileBytes is the size of the database file.
	FileBytes int64
	// FreePages is the number of pages of the file free for reuse, or
	// freed by a transaction still read and reusable after it.
	FreePages int
}

// writeCounters are the counters behind Stats.
type writeCounters struct {
	transactions, entries atomic.Uint64
	// retiredPageWrites holds the page writes of databases a restore
	// replaced (bbolt counts per open database).
	retiredPageWrites atomic.Uint64
}

// Stats returns the store's counters and sizes. It is cheap enough for
// every metrics scrape. After Close the file figures are zero.
func (s *Store) Stats() Stats {
	// Under mu: a restore moves the replaced database's page writes
	// into retiredPageWrites while it holds mu exclusively.
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Stats{
		Transactions: s.counters.transactions.Load(),
		Entries:      s.counters.entries.Load(),
		PageWrites:   s.counters.retiredPageWrites.Load(),
	}
	if s.closed {
		return st
	}
	db := s.db.Stats()
	st.PageWrites += uint64(db.TxStats.GetWrite())
	st.FreePages = db.FreePageN + db.PendingPageN
	if fi, err := os.Stat(s.path); err == nil {
		st.FileBytes = fi.Size()
	}
	return st
}
