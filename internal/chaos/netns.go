//go:build linux

package chaos

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Net is a private IPv4 /24 of Linux network namespaces ("hosts") joined by
// a bridge in the caller's namespace, which holds the network's first
// address (Gateway): the caller reaches every host, and every host reaches
// every other until a test cuts a link.
//
// A cut drops packets silently at the receiving host (a policy-routing
// rule "from <peer> blackhole" placed before the local table), so
// connections stall and dials time out as across a real partition; TCP and
// UDP alike (Raft, peer RPC and gossip). Traffic from the gateway is never
// cut: clients see both sides of a partition.
//
// It needs root (CAP_NET_ADMIN) and iproute2's `ip`; Available says whether
// this process has them. Names embed the creating process's id, so a later
// NewNet removes what a killed run left behind.
type Net struct {
	pid    int
	bridge string
	subnet string // "10.a.b": the /24's first three octets

	mu     sync.Mutex
	hosts  map[string]*Host
	next   int
	cuts   map[[2]string]bool // {to, from} host names with a drop rule
	closed bool
}

// Host is one network namespace of a Net with one address.
type Host struct {
	// Name is the namespace's name (`ip netns exec Name ...`).
	Name string
	// IP is the host's address.
	IP   string
	veth string
}

// namePrefix starts every namespace and interface name a Net creates.
const namePrefix = "sdc"

// Available returns nil if this process can create a Net, else why not.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("network namespaces need iproute2's ip: %w", err)
	}
	return nil
}

// NewNet creates the bridge of a new network, after removing namespaces and
// bridges left by runs whose process is gone.
func NewNet() (*Net, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	sweep()
	n := &Net{pid: os.Getpid(), hosts: map[string]*Host{}, cuts: map[[2]string]bool{}}
	n.bridge = fmt.Sprintf("%s%dbr", namePrefix, n.pid)
	used, err := ipOutput("-o", "-4", "addr", "show")
	if err != nil {
		return nil, err
	}
	for i := range 128 {
		s := fmt.Sprintf("10.%d.%d", 64+(n.pid>>8+i)%128, n.pid&0xff)
		if !strings.Contains(used, " "+s+".") {
			n.subnet = s
			break
		}
	}
	if n.subnet == "" {
		return nil, errors.New("no free 10.x.y.0/24 for the test network")
	}
	if err := ipRun("link", "add", n.bridge, "type", "bridge"); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"addr", "add", n.Gateway() + "/24", "dev", n.bridge},
		{"link", "set", n.bridge, "up"},
	} {
		if err := ipRun(args...); err != nil {
			_ = ipRun("link", "del", n.bridge)
			return nil, err
		}
	}
	return n, nil
}

// Gateway is the caller's address on the network.
func (n *Net) Gateway() string { return n.subnet + ".1" }

// AddHost creates a namespace with an address on the network.
func (n *Net) AddHost() (*Host, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errors.New("network closed")
	}
	if n.next >= 240 {
		return nil, errors.New("network full (240 hosts)")
	}
	n.next++
	h := &Host{
		Name: fmt.Sprintf("%s-%d-%d", namePrefix, n.pid, n.next),
		IP:   fmt.Sprintf("%s.%d", n.subnet, 10+n.next),
		veth: fmt.Sprintf("%s%dv%d", namePrefix, n.pid, n.next),
	}
	steps := [][]string{
		{"netns", "add", h.Name},
		{"link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.Name},
		{"link", "set", h.veth, "master", n.bridge, "up"},
		{"-n", h.Name, "addr", "add", h.IP + "/24", "dev", "eth0"},
		{"-n", h.Name, "link", "set", "eth0", "up"},
		{"-n", h.Name, "link", "set", "lo", "up"},
		// Look up the local table after the cut rules (pref 10), so that
		// they apply to packets addressed to this host.
		{"-n", h.Name, "rule", "add", "pref", "100", "lookup", "local"},
		{"-n", h.Name, "rule", "del", "pref", "0"},
	}
	for _, args := range steps {
		if err := ipRun(args...); err != nil {
			_ = ipRun("netns", "del", h.Name)
			return nil, err
		}
	}
	n.hosts[h.Name] = h
	return h, nil
}

// RemoveHost deletes a host's namespace (its processes should have exited)
// and the cuts that named it.
func (n *Net) RemoveHost(h *Host) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k := range n.cuts {
		if k[0] == h.Name || k[1] == h.Name {
			delete(n.cuts, k)
		}
	}
	delete(n.hosts, h.Name)
	return ipRun("netns", "del", h.Name)
}

// Command returns a command running name with args inside h's namespace.
// `ip netns exec` replaces itself with the program, so the command's
// process is the program's (signals reach it directly).
func (n *Net) Command(h *Host, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
}

// Block drops every packet from `from` arriving at `to` (one direction).
func (n *Net) Block(to, from *Host) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := [2]string{to.Name, from.Name}
	if n.cuts[k] {
		return nil
	}
	if err := ipRun("-n", to.Name, "rule", "add", "pref", "10", "from", from.IP, "blackhole"); err != nil {
		return err
	}
	n.cuts[k] = true
	return nil
}

// Cut drops the traffic between a and b in both directions.
func (n *Net) Cut(a, b *Host) error {
	return errors.Join(n.Block(a, b), n.Block(b, a))
}

// Partition cuts every link between a host of one group and a host of
// another.
func (n *Net) Partition(groups ...[]*Host) error {
	var errs []error
	for i, g := range groups {
		for _, other := range groups[i+1:] {
			for _, a := range g {
				for _, b := range other {
					errs = append(errs, n.Cut(a, b))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Heal removes every cut.
func (n *Net) Heal() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	for k := range n.cuts {
		to, from := n.hosts[k[0]], n.hosts[k[1]]
		if to != nil && from != nil {
			errs = append(errs, ipRun("-n", to.Name, "rule", "del", "pref", "10", "from", from.IP, "blackhole"))
		}
		delete(n.cuts, k)
	}
	return errors.Join(errs...)
}

// Cuts returns the number of one-way cuts in force.
func (n *Net) Cuts() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.cuts)
}

// Close deletes every namespace and the bridge.
func (n *Net) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	var errs []error
	for name := range n.hosts {
		errs = append(errs, ipRun("netns", "del", name))
	}
	clear(n.hosts)
	clear(n.cuts)
	errs = append(errs, ipRun("link", "del", n.bridge))
	return errors.Join(errs...)
}

// Do runs f on a thread switched into h's namespace: sockets f creates
// belong to h's network (for tests of the network itself).
func (h *Host) Do(f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return err
	}
	defer self.Close()
	target, err := os.Open(filepath.Join("/var/run/netns", h.Name))
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", h.Name, err)
	}
	ferr := f()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread must not go back to the pool in another namespace:
		// returning without UnlockOSThread makes the runtime end it.
		runtime.LockOSThread()
		return errors.Join(ferr, fmt.Errorf("setns back: %w", err))
	}
	return ferr
}

// sweep deletes the namespaces and bridges of Nets whose process is gone.
func sweep() {
	dead := func(pid string) bool {
		_, err := os.Stat("/proc/" + pid)
		return errors.Is(err, os.ErrNotExist)
	}
	if out, err := ipOutput("netns", "list"); err == nil {
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 0 || !strings.HasPrefix(f[0], namePrefix+"-") {
				continue
			}
			parts := strings.Split(f[0], "-")
			if len(parts) == 3 && dead(parts[1]) {
				_ = ipRun("netns", "del", f[0])
			}
		}
	}
	if out, err := ipOutput("-o", "link", "show", "type", "bridge"); err == nil {
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 {
				continue
			}
			name := strings.TrimSuffix(f[1], ":")
			pid, ok := strings.CutPrefix(name, namePrefix)
			pid, ok2 := strings.CutSuffix(pid, "br")
			if _, err := strconv.Atoi(pid); ok && ok2 && err == nil && dead(pid) {
				_ = ipRun("link", "del", name)
			}
		}
	}
}

func ipRun(args ...string) error {
	_, err := ipOutput(args...)
	return err
}

func ipOutput(args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}
