package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one child process whose output goes to a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startProc starts bin with args and env (added to this process's
// environment), logging to dir/name.log.
func startProc(dir, name string, env []string, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to timeout, then kills.
func (p *proc) stop(timeout time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the last lines of the process's log.
func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// memory reads the process's resident set size from /proc, whole and
// split into anonymous memory (the Go heap, stacks) and file-backed pages
// (mostly state.db's memory map: page cache the kernel can reclaim).
func (p *proc) memory() (rss, anon, file int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return 0, 0, 0
	}
	kb := func(v string) int64 {
		var n int64
		fmt.Sscanf(strings.TrimSpace(v), "%d", &n)
		return n << 10
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rss = kb(v)
		} else if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			anon = kb(v)
		} else if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			file = kb(v)
		}
	}
	return rss, anon, file
}

// waitFor polls cond every 100 ms until it holds, ctx ends or timeout
// passes, or one of procs exits.
func waitFor(ctx context.Context, timeout time.Duration, what string, procs []*proc, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return nil
		}
		for _, p := range procs {
			if p.exited() {
				return fmt.Errorf("%s exited while waiting for %s:\n%s", p.name, what, p.tail(20))
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freeAddr returns a 127.0.0.1 address whose port is free for TCP and UDP
// (gossip binds both) and was not handed out before in this run. Ports
// come from 20000-32767, below the kernel's ephemeral range (32768 and
// up), so an outgoing connection of any process cannot take one between
// this check and the child's bind.
func (d *driver) freeAddr() (string, error) {
	const lo, hi = 20000, 32768
	start := lo + rand.IntN(hi-lo)
	for i := range hi - lo {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(lo+(start-lo+i)%(hi-lo)))
		if d.ports[addr] {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue
		}
		u.Close()
		d.ports[addr] = true
		return addr, nil
	}
	return "", fmt.Errorf("no free loopback port")
}
