package cluster

import (
	"time"
)

// When a node snapshots.
//
// A snapshot of the store is a copy of its whole file, fsynced. Raft's own
// rule (a snapshot once Config.SnapshotThreshold entries were appended
// since the last, checked every SnapshotInterval) does not look at that
// size: a node of a 1 GiB store under a steady write load would write
// 1 GiB every two to four minutes for a few megabytes of log, and the
// snapshot's CPU and fsync land in the middle of the load.
//
// So a node also waits until the log written since its newest snapshot
// holds at least a quarter of that snapshot's bytes (snapshotLogShare):
// snapshots then write at most about four bytes per byte of log, however
// large the state. The price is the log kept between snapshots: a quarter
// of the state, capped at maxSnapshotLogBytes. That much log is replayed
// only when a store is rebuilt from its snapshot (after the machine
// stopped with unsynced commits, see store.Options.DeferSync); a restart
// after a crash or a clean stop resumes from the store's own file.
//
// Raft counts entries, not bytes, so the node turns the byte rule into
// Raft's SnapshotThreshold (raft.ReloadConfig) from the mean size of the
// entries it appended recently, and never sets it below the configured
// one.
const (
	// snapshotLogShare: the log since the newest snapshot must hold at
	// least 1/snapshotLogShare of its bytes before the next.
	snapshotLogShare = 4
	// maxSnapshotLogBytes caps that log, so a very large state still
	// snapshots after at most this much log.
	maxSnapshotLogBytes = 512 << 20
	// defaultEntryBytes is the mean entry size assumed before the node has
	// appended any entry (a session command is a few hundred bytes).
	defaultEntryBytes = 256
)

// snapshotThreshold returns the number of entries Raft should wait for
// before the next snapshot: at least floor, and enough entries of meanEntry
// bytes to make up a snapshotLogShare-th of snapshotBytes (the newest
// snapshot's size), capped at maxSnapshotLogBytes.
func snapshotThreshold(floor uint64, snapshotBytes int64, meanEntry float64) uint64 {
	if snapshotBytes <= 0 || meanEntry <= 0 {
		return floor
	}
	logBytes := float64(min(snapshotBytes/snapshotLogShare, maxSnapshotLogBytes))
	return max(floor, uint64(logBytes/meanEntry))
}

// tuneSnapshots keeps Raft's SnapshotThreshold at snapshotThreshold of the
// newest snapshot's size and the mean size of the entries appended since
// the previous tick (the one before when none were), until the node
// closes. It ticks four times per SnapshotInterval, so Raft's own check,
// once per interval, sees a threshold at most a quarter interval old.
func (n *Node) tuneSnapshots() {
	t := time.NewTicker(max(n.cfg.SnapshotInterval/4, time.Millisecond))
	defer t.Stop()
	mean := float64(defaultEntryBytes)
	var lastEntries, lastBytes uint64
	for {
		select {
		case <-n.closed:
			return
		case <-t.C:
		}
		entries, bytes := n.store.appended.Load(), n.store.appendedBytes.Load()
		if entries > lastEntries {
			mean = float64(bytes-lastBytes) / float64(entries-lastEntries)
		}
		lastEntries, lastBytes = entries, bytes
		_, size := n.LastSnapshot()
		want := snapshotThreshold(n.cfg.SnapshotThreshold, size, mean)
		rc := n.raft.ReloadableConfig()
		if rc.SnapshotThreshold == want {
			continue
		}
		rc.SnapshotThreshold = want
		if err := n.raft.ReloadConfig(rc); err != nil {
			n.logger.Warn("snapshot threshold not updated", "threshold", want, "err", err)
		}
	}
}

// SnapshotThreshold returns the number of log entries Raft currently waits
// for between snapshots on this node: Config.SnapshotThreshold, or more on
// a node whose state is large (see snapshotpolicy.go).
func (n *Node) SnapshotThreshold() uint64 {
	return n.raft.ReloadableConfig().SnapshotThreshold
}

// LastSnapshot returns the index and size in bytes of this node's newest
// snapshot (zeros when it has none).
func (n *Node) LastSnapshot() (index uint64, size int64) {
	list, err := n.snaps.List()
	if err != nil || len(list) == 0 {
		return 0, 0
	}
	return list[0].Index, list[0].Size
}
