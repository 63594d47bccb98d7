package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, floor uint64
		want        int
	}{
		{0, 128 * mib, 3200},         // before the first collection: the 4 MiB minimum
		{3 * mib, 128 * mib, 3200},   // under the minimum
		{32 * mib, 128 * mib, 400},   // a node of a small store
		{40 * mib, 128 * mib, 320},   // rounded up: at least the floor
		{128 * mib, 128 * mib, 100},  // the runtime's own rule gives as much
		{1024 * mib, 128 * mib, 100}, // a large store: never below 100
	} {
		if got := gcPercentFor(c.live, c.floor); got != c.want {
			t.Errorf("gcPercentFor(%d MiB live, %d MiB floor) = %d, want %d", c.live/mib, c.floor/mib, got, c.want)
		}
	}
}

// TestAgentKeepsGCHeadroom: the tuner raises the collector's percent until
// the heap may grow by the floor between collections (the runtime's heap
// goal after a collection is the floor above the live heap, or more);
// with GOGC in the environment the agent leaves the runtime alone and
// says so.
func TestAgentKeepsGCHeadroom(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	const floorMB = 256

	t.Setenv("GOGC", "100")
	var logs bytes.Buffer
	keepGCHeadroom(t.Context(), slog.New(slog.NewTextHandler(&logs, nil)), floorMB)
	if !strings.Contains(logs.String(), "headroom floor is off") {
		t.Errorf("with GOGC set the agent logged %q, want it to say the floor is off", logs.String())
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC=100 in the environment the GC percent became %d", got)
	}
	os.Unsetenv("GOGC")

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { tuneGCHeadroom(ctx, floorMB<<20); close(done) }()
	defer func() { cancel(); <-done }()
	sample := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/goal:bytes"}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		runtime.GC()
		metrics.Read(sample)
		percent, live, goal := sample[0].Value.Uint64(), sample[1].Value.Uint64(), sample[2].Value.Uint64()
		// Within a tenth: the live heap moves between the tuner's reading
		// and this collection.
		if percent > 100 && goal >= live+floorMB<<20*9/10 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GC percent %d, heap goal %d MiB over %d MiB live: want at least %d MiB of growth room", percent, goal>>20, live>>20, floorMB)
		}
		time.Sleep(gcHeadroomEvery / 5) // polling the runtime's state
	}
}

// TestGCHeadroomFlagBounds: a negative or huge --gc-headroom-mb is refused
// with an error naming the setting; a valid one is taken as given.
func TestGCHeadroomFlagBounds(t *testing.T) {
	base := []string{"--config", filepath.Join(deployDir, "config", "hk.yaml")}
	env := map[string]string{"SESSIOND_KEK": randomSecret(), "SESSIOND_GOSSIP_KEY": randomSecret()}
	for _, v := range []string{"-1", "65537"} {
		_, err := deployLoad(t, append(base, "--gc-headroom-mb", v), env)
		if err == nil || !strings.Contains(err.Error(), "gc_headroom_mb "+v+": want 0 to 65536") {
			t.Errorf("--gc-headroom-mb %s: error %v; want one naming gc_headroom_mb and its bounds", v, err)
		}
	}
	cfg, err := deployLoad(t, append(base, "--gc-headroom-mb", "512"), env)
	if err != nil || cfg.GCHeadroomMB != 512 {
		t.Errorf("--gc-headroom-mb 512: %d, %v; want 512 and no error", cfg.GCHeadroomMB, err)
	}
}
