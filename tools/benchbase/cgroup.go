package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// memCgroup is a memory cgroup one sessiond agent runs in (--memory-limit):
// its usage counts the process's anonymous memory and the page cache it
// touches (state.db's map, the Raft log), and the kernel reclaims that
// cache, or OOM-kills the process, to keep it under the limit. It is made
// under benchbase's own cgroup, with the v1 memory controller or, on a
// cgroup v2 host, the unified hierarchy.
type memCgroup struct {
	dir string
	v2  bool
}

const cgroupRoot = "/sys/fs/cgroup"

// newMemCgroup makes the cgroup name with the given limit in bytes.
func newMemCgroup(name string, limit int64) (*memCgroup, error) {
	own, v2, err := ownMemoryCgroup()
	if err != nil {
		return nil, err
	}
	c := &memCgroup{v2: v2}
	if v2 {
		// A v2 cgroup hands the memory controller to its children only
		// when it holds no process itself: delegate a cgroup to
		// benchbase (systemd-run --scope -p Delegate=yes) for that.
		if err := os.WriteFile(filepath.Join(cgroupRoot, own, "cgroup.subtree_control"), []byte("+memory"), 0); err != nil {
			return nil, fmt.Errorf("memory cgroup: enable the memory controller under %s: %w (run benchbase in a delegated cgroup: systemd-run --scope -p Delegate=yes)", own, err)
		}
		c.dir = filepath.Join(cgroupRoot, own, name)
	} else {
		c.dir = filepath.Join(cgroupRoot, "memory", own, name)
	}
	if err := os.Mkdir(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("memory cgroup: %w", err)
	}
	file := "memory.limit_in_bytes"
	if v2 {
		file = "memory.max"
	}
	if err := os.WriteFile(filepath.Join(c.dir, file), []byte(strconv.FormatInt(limit, 10)), 0); err != nil {
		_ = os.Remove(c.dir)
		return nil, fmt.Errorf("memory cgroup: set the limit: %w", err)
	}
	if !v2 {
		// Swap would hide memory the node needs: count it in the limit
		// (the file is missing when the kernel accounts no swap).
		_ = os.WriteFile(filepath.Join(c.dir, "memory.memsw.limit_in_bytes"), []byte(strconv.FormatInt(limit, 10)), 0)
	} else {
		_ = os.WriteFile(filepath.Join(c.dir, "memory.swap.max"), []byte("0"), 0)
	}
	return c, nil
}

// ownMemoryCgroup returns the cgroup of this process that the memory
// controller sees, and whether it is in the v2 hierarchy.
func ownMemoryCgroup() (path string, v2 bool, err error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	var unified string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" && parts[0] == "0" {
			unified = parts[2]
		}
		for ctl := range strings.SplitSeq(parts[1], ",") {
			if ctl == "memory" {
				return parts[2], false, nil
			}
		}
	}
	if ctls, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil && unified != "" {
		for _, c := range strings.Fields(string(ctls)) {
			if c == "memory" {
				return unified, true, nil
			}
		}
	}
	return "", false, errors.New("memory cgroup: this host has no memory controller")
}

// add moves the process pid into the cgroup.
func (c *memCgroup) add(pid int) error {
	return os.WriteFile(filepath.Join(c.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
}

func (c *memCgroup) readInt(file string) int64 {
	b, err := os.ReadFile(filepath.Join(c.dir, file))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// peak is the highest usage the cgroup saw, page cache included.
func (c *memCgroup) peak() int64 {
	if c.v2 {
		return c.readInt("memory.peak")
	}
	return c.readInt("memory.max_usage_in_bytes")
}

// oomKills counts the processes the kernel killed to keep the limit.
func (c *memCgroup) oomKills() int64 {
	file := "memory.oom_control"
	if c.v2 {
		file = "memory.events"
	}
	b, _ := os.ReadFile(filepath.Join(c.dir, file))
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// remove deletes the cgroup once its processes have exited.
func (c *memCgroup) remove() { _ = os.Remove(c.dir) }
