package main

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// TestMemCgroupLimitsAndCountsOOMKills: a process in a --memory-limit-mb
// cgroup that allocates past the limit is killed by the kernel, and the
// cgroup reports the kill and a peak at the limit, as the benchmark
// report does for a sessiond node. Needs root and a memory controller.
func TestMemCgroupLimitsAndCountsOOMKills(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("memory cgroups need root")
	}
	if _, _, err := ownMemoryCgroup(); err != nil {
		t.Skip(err)
	}
	const limit = 32 << 20
	c, err := newMemCgroup(fmt.Sprintf("benchbase-test-%d", os.Getpid()), limit)
	if err != nil {
		t.Fatal(err)
	}
	defer c.remove()
	// tail keeps a line in memory until its end, and /dev/zero has none:
	// 128 MiB of it is four times the limit. sh waits for a line on stdin
	// so that it is in the cgroup before anything is allocated.
	cmd := exec.Command("sh", "-c", "read go; head -c 134217728 /dev/zero | tail -n 1 >/dev/null")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.add(cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		t.Fatal(err)
	}
	fmt.Fprintln(stdin, "go")
	err = cmd.Wait()
	if c.oomKills() < 1 {
		t.Fatalf("a process allocating 4× the cgroup's limit: %d OOM kills (exit: %v), want at least 1", c.oomKills(), err)
	}
	if p := c.peak(); p < limit/2 || p > limit {
		t.Fatalf("peak usage %d bytes, want close to the %d-byte limit", p, limit)
	}
}
