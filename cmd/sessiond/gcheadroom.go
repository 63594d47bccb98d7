package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The garbage collector's headroom floor (--gc-headroom-mb).
const (
	defaultGCHeadroomMB = 128
	maxGCHeadroomMB     = 64 << 10
	// gcHeadroomEvery is how often the floor is recomputed from the live
	// heap of the last collection: collections come about once a second
	// under load, so the percent lags by about one.
	gcHeadroomEvery = 500 * time.Millisecond
)

// keepGCHeadroom keeps the Go heap's growth room between two collections
// at least headroomMB MiB (0: defaultGCHeadroomMB), and otherwise the
// runtime's own rule (GOGC=100: as much as the live heap).
//
// A node's live heap is small next to its allocation rate: a few tens of
// megabytes, against about 50 KB allocated per refresh on the leader. With
// GOGC=100 it was collected every few hundred rotations, and collection
// took a tenth of the servers' CPU. The runtime has no floor for its heap
// goal, so this sets the GC percent (debug.SetGCPercent) from the live heap
// of the last collection: percent = headroom / live, never below 100. A
// large heap (1M sessions and more) keeps GOGC=100, where the growth room is
// already larger than the floor; a memory limit (GOMEMLIMIT, set from the
// cgroup by setMemoryLimit) still makes the collector run earlier as the
// process nears it. GOGC in the environment is the operator's choice and
// turns the floor off. It stops when ctx ends, leaving the percent it set.
func keepGCHeadroom(ctx context.Context, log *slog.Logger, headroomMB int) {
	if v, ok := os.LookupEnv("GOGC"); ok {
		log.Info("GOGC is set: the collector's headroom floor is off", "GOGC", v)
		return
	}
	if headroomMB == 0 {
		headroomMB = defaultGCHeadroomMB
	}
	log.Info("collector headroom floor", "mib", headroomMB)
	go tuneGCHeadroom(ctx, uint64(headroomMB)<<20)
}

// tuneGCHeadroom sets the GC percent from the live heap every
// gcHeadroomEvery until ctx ends (see keepGCHeadroom).
func tuneGCHeadroom(ctx context.Context, floor uint64) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(gcHeadroomEvery)
	defer t.Stop()
	last := 0
	for {
		metrics.Read(sample)
		if p := gcPercentFor(sample[0].Value.Uint64(), floor); p != last {
			debug.SetGCPercent(p)
			last = p
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// gcPercentFor is the GC percent that lets a heap of live bytes grow by at
// least floor bytes before the next collection, and never less than the
// runtime's default of 100. A live heap under 4 MiB counts as 4 MiB: the
// runtime's least heap goal is 4 MiB times the percent over 100, so that
// is the goal floor then.
func gcPercentFor(live, floor uint64) int {
	live = max(live, 4<<20)
	return int(max(100, (floor*100+live-1)/live))
}
