package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
)

// TestAgentMemoryLimitFollowsTheCgroup: in a memory cgroup (a container,
// a unit with MemoryMax=), the agent sets the Go runtime's memory limit
// to 90% of the cgroup's, what go_gc_gomemlimit_bytes then shows. The
// test moves its own process into a cgroup v1 memory cgroup (root only)
// for the call, and back.
func TestAgentMemoryLimitFollowsTheCgroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("memory cgroups need root")
	}
	own := ownV1MemoryCgroup(t)
	const limit = 8 << 30 // far above what the test binary uses
	dir := filepath.Join("/sys/fs/cgroup/memory", own, fmt.Sprintf("sessiond-test-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot make a memory cgroup: %v", err)
	}
	t.Cleanup(func() { _ = os.Remove(dir) })
	write := func(path, v string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(v), 0); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "memory.limit_in_bytes"), strconv.Itoa(limit))
	pid := strconv.Itoa(os.Getpid())
	write(filepath.Join(dir, "cgroup.procs"), pid)
	t.Cleanup(func() { write(filepath.Join("/sys/fs/cgroup/memory", own, "cgroup.procs"), pid) })
	// Set (which restores them afterwards), then unset: the limit comes
	// from the cgroup only without either.
	t.Setenv("GOMEMLIMIT", "")
	t.Setenv("AUTOMEMLIMIT", "")
	os.Unsetenv("GOMEMLIMIT")
	os.Unsetenv("AUTOMEMLIMIT")
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	setMemoryLimit(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got, want := debug.SetMemoryLimit(-1), int64(limit*9/10); got != want {
		t.Fatalf("Go memory limit in a cgroup of %d bytes: got %d, want %d (90%%)", limit, got, want)
	}
}

// ownV1MemoryCgroup is this process's cgroup in the v1 memory hierarchy;
// the test skips on a host without one.
func ownV1MemoryCgroup(t *testing.T) string {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 && parts[1] == "memory" {
			return parts[2]
		}
	}
	t.Skip("no cgroup v1 memory controller")
	return ""
}
