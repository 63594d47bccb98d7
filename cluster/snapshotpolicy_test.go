package cluster_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/clustertest"
)

// largeStateFSM is a counter whose snapshots carry pad bytes after the
// count: a state of that size, as far as snapshots go.
type largeStateFSM struct {
	counterFSM
	pad int
}

func (f *largeStateFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.counterFSM.Snapshot()
	if err != nil {
		return nil, err
	}
	return paddedSnapshot{s.(counterSnapshot), f.pad}, nil
}

type paddedSnapshot struct {
	counterSnapshot
	pad int
}

func (s paddedSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(make([]byte, s.pad)); err != nil {
		_ = sink.Cancel()
		return err
	}
	return s.counterSnapshot.Persist(sink)
}

// snapshotIndex returns the index of the node's newest snapshot (0: none).
func snapshotIndex(n *cluster.Node) uint64 {
	i, _ := strconv.ParseUint(n.Raft().Stats()["last_snapshot_index"], 10, 64)
	return i
}

// A node with a large state does not copy it for a few entries of log: it
// waits until the log since its newest snapshot holds a quarter of that
// snapshot's bytes, while a node with a small state keeps Raft's threshold.
func TestLargeStateSnapshotsAfterAQuarterOfItsSizeInLog(t *testing.T) {
	const (
		floor     = 32
		pad       = 1 << 20 // the state's size in a snapshot
		entrySize = 500
	)
	fsm := &largeStateFSM{pad: pad}
	nodes := clustertest.StartClusterWith(t, 1, func(int) raft.FSM { return fsm }, func(_ int, cfg *cluster.Config) {
		cfg.SnapshotThreshold = floor
		cfg.TrailingLogs = 8
		cfg.SnapshotInterval = 20 * time.Millisecond
	})
	node := clustertest.Leader(t, nodes, 10*time.Second)
	ctx := ctxT(t, 2*time.Minute)
	entry := []byte(strings.Repeat("i", entrySize))
	write := func() {
		t.Helper()
		for {
			_, err := node.Apply(ctx, entry)
			if err == nil {
				return
			}
			// A single node may briefly lose its lease on a loaded machine.
			if ctx.Err() != nil || !(errors.Is(err, cluster.ErrNotLeader) || errors.Is(err, cluster.ErrOutcomeUnknown)) {
				t.Fatal(err)
			}
		}
	}

	// No snapshot yet, nothing to weigh: Raft's own threshold.
	if got := node.SnapshotThreshold(); got != floor {
		t.Fatalf("threshold before any snapshot: got %d, want the configured %d", got, floor)
	}
	for snapshotIndex(node) == 0 {
		write()
		if ctx.Err() != nil {
			t.Fatal("no first snapshot")
		}
	}

	// A quarter of 1 MiB of 500-byte entries: about 520 entries.
	want := uint64(pad / 4 / entrySize)
	clustertest.WaitFor(t, 10*time.Second, "a threshold raised for the large snapshot", func() bool {
		write() // the mean entry size comes from appends
		return node.SnapshotThreshold() >= want*9/10
	})
	// Raft may have snapshotted once more before the threshold rose.
	first := snapshotIndex(node)
	start := node.AppliedIndex()
	for snapshotIndex(node) == first {
		write()
		if ctx.Err() != nil {
			t.Fatalf("no second snapshot after %d entries", node.AppliedIndex()-start)
		}
	}
	if logBytes := (snapshotIndex(node) - first) * entrySize; logBytes < pad/4*9/10 {
		t.Errorf("second snapshot after %d bytes of log since the first, want about a quarter of the %d-byte snapshot", logBytes, pad)
	}
}

// The log between snapshots stays bounded for a very large state, and the
// threshold never falls below the configured one.
func TestSnapshotThresholdBounds(t *testing.T) {
	for _, tc := range []struct {
		name      string
		floor     uint64
		snapshot  int64
		meanEntry float64
		want      uint64
	}{
		{"no snapshot yet", 8192, 0, 300, 8192},
		{"small state", 8192, 1 << 20, 300, 8192},
		{"large state", 8192, 1 << 30, 256, (1 << 28) / 256},
		{"huge state: capped log", 8192, 64 << 30, 256, (512 << 20) / 256},
		{"large entries: the floor", 8192, 1 << 30, 64 << 10, 8192},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cluster.SnapshotThresholdFor(tc.floor, tc.snapshot, tc.meanEntry); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}
