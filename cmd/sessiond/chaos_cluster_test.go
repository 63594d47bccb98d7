//go:build linux

package main

// The cluster of TestChaos: sessiond agents, each in its own network
// namespace (internal/chaos.Net) so that the nemesis can partition them,
// started from the binary the end-to-end tests build, with node
// certificates of the run's CA naming their namespace's address.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1/authv1connect"
	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1/clusterv1connect"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1/sessionv1connect"
	"github.com/sessiond/sessiond/cluster/pki"
	"github.com/sessiond/sessiond/internal/chaos"
)

// Every node listens on the same ports of its own address.
const (
	chaosHTTPPort   = "8080"
	chaosRaftPort   = "7000"
	chaosGossipPort = "7946"
)

var chaosRegions = []string{"hk", "seoul", "tokyo"}

// chaosNode is one node: its namespace, data dir and current process.
type chaosNode struct {
	id, region string
	host       *chaos.Host
	dataDir    string
	tlsFiles   pki.Files

	session sessionv1connect.SessionServiceClient // with the harness operator certificate
	auth    authv1connect.AuthServiceClient       // anonymous
	users   authv1connect.UserAdminServiceClient  // with the harness operator certificate
	ops     clusterv1connect.ClusterServiceClient // with the harness operator certificate

	mu     sync.Mutex
	proc   *e2eProc
	paused bool

	gone bool // removed from the cluster and stopped for good (guarded by chaosCluster.mu)
}

func (n *chaosNode) apiAddr() string    { return net.JoinHostPort(n.host.IP, chaosHTTPPort) }
func (n *chaosNode) raftAddr() string   { return net.JoinHostPort(n.host.IP, chaosRaftPort) }
func (n *chaosNode) gossipAddr() string { return net.JoinHostPort(n.host.IP, chaosGossipPort) }
func (n *chaosNode) url() string        { return "https://" + n.apiAddr() }

// chaosCluster is the run's nodes and what they share.
type chaosCluster struct {
	t         *testing.T
	net       *chaos.Net
	kek       string
	gossipKey string // a file
	hc        *http.Client
	dir       string // data dirs, certificates, the gossip key
	logDir    string // every process's stderr, one file per start

	mu      sync.Mutex
	nodes   []*chaosNode    // every node ever created, in order
	members map[string]bool // the Raft configuration as last seen
	serial  int
	starts  int
}

// newChaosCluster creates the network and the secrets; it skips the test
// where network namespaces are not available.
func newChaosCluster(t *testing.T, logDir string) *chaosCluster {
	t.Helper()
	if err := chaos.Available(); err != nil {
		t.Skipf("fault test: %v (run as root with iproute2)", err)
	}
	nw, err := chaos.NewNet()
	if err != nil {
		t.Fatalf("test network: %v", err)
	}
	c := &chaosCluster{
		t: t, net: nw, dir: t.TempDir(), logDir: logDir, members: map[string]bool{},
		kek: base64.StdEncoding.EncodeToString(e2eRandom(t, 32)),
	}
	// Registered first, so it runs last: after every process was killed.
	t.Cleanup(func() {
		if err := nw.Close(); err != nil {
			t.Logf("closing the test network: %v", err)
		}
	})
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	c.gossipKey = filepath.Join(c.dir, "gossip-key")
	if err := os.WriteFile(c.gossipKey, []byte(base64.StdEncoding.EncodeToString(e2eRandom(t, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(e2ePKI.CA.Cert)
	// The harness's operator certificate authenticates every call: the
	// admin and cluster calls, and the checks (which need a caller).
	opCert, err := e2eOperatorCert()
	if err != nil {
		t.Fatal(err)
	}
	c.hc = &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{opCert}},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 32,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	}}
	return c
}

// newNode creates a node (id n<serial>, regions in turn) on host, or on a
// new host when host is nil, with a certificate naming its address.
func (c *chaosCluster) newNode(host *chaos.Host) (*chaosNode, error) {
	c.mu.Lock()
	c.serial++
	serial := c.serial
	c.mu.Unlock()
	if host == nil {
		var err error
		if host, err = c.net.AddHost(); err != nil {
			return nil, err
		}
	}
	n := &chaosNode{
		id: fmt.Sprintf("n%d", serial), region: chaosRegions[(serial-1)%len(chaosRegions)],
		host: host, dataDir: filepath.Join(c.dir, fmt.Sprintf("n%d-data", serial)),
	}
	cert, key, err := e2ePKI.CA.Issue(pki.LeafOptions{
		Identity: pki.Identity{TrustDomain: e2ePKI.TrustDomain, Kind: pki.KindNode, Name: n.id},
		IPs:      []net.IP{net.ParseIP(host.IP), net.IPv4(127, 0, 0, 1)}, Validity: 48 * time.Hour,
	})
	if err != nil {
		return nil, err
	}
	n.tlsFiles = pki.Files{CAFile: e2ePKI.CAFile(),
		CertFile: filepath.Join(c.dir, n.id+".pem"), KeyFile: filepath.Join(c.dir, n.id+"-key.pem")}
	if err := pki.WriteFiles(n.tlsFiles.CertFile, n.tlsFiles.KeyFile, cert, key); err != nil {
		return nil, err
	}
	n.session = sessionv1connect.NewSessionServiceClient(c.hc, n.url())
	n.auth = authv1connect.NewAuthServiceClient(c.hc, n.url())
	n.users = authv1connect.NewUserAdminServiceClient(c.hc, n.url())
	n.ops = clusterv1connect.NewClusterServiceClient(c.hc, n.url())
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n, nil
}

// start runs `sessiond agent` for a new node in its namespace: the first
// node bootstraps, the others wait to be joined (join empty) or ask the
// given peer addresses.
func (c *chaosCluster) start(n *chaosNode, bootstrap bool, join []string) error {
	args := []string{"agent",
		"--config", filepath.Join("..", "..", "deploy", "config", n.region+".yaml"),
		"--node-id", n.id, "--data-dir", n.dataDir,
		"--http-addr", n.apiAddr(), "--raft-addr", n.raftAddr(), "--gossip-addr", n.gossipAddr(),
		"--advertise-http=", "--advertise-raft=", "--advertise-gossip=",
		"--wan=false", "--gossip-key-file=" + c.gossipKey,
		fmt.Sprintf("--bootstrap=%t", bootstrap), "--join=" + joinList(join),
		// Not the example files' bootstrap_expect form; joining nodes are
		// promoted to voters after 1 s of health.
		"--bootstrap-expect=0", "--retry-join=", "--autopilot-stabilization=1s",
		"--database-url=", "--migrate=false",
		"--tls-ca-file", n.tlsFiles.CAFile, "--tls-cert-file", n.tlsFiles.CertFile, "--tls-key-file", n.tlsFiles.KeyFile,
	}
	return c.exec(n, args)
}

func joinList(addrs []string) string {
	out := ""
	for i, a := range addrs {
		if i > 0 {
			out += ","
		}
		out += a
	}
	return out
}

// restart starts a stopped node again from its data dir alone.
func (c *chaosCluster) restart(n *chaosNode) error {
	return c.exec(n, []string{"agent", "--data-dir", n.dataDir})
}

func (c *chaosCluster) exec(n *chaosNode, args []string) error {
	c.mu.Lock()
	c.starts++
	name := fmt.Sprintf("%03d-%s", c.starts, n.id)
	c.mu.Unlock()
	cmd := c.net.Command(n.host, e2eBinary(c.t), args...)
	cmd.Env = e2eEnv("SESSIOND_KEK=" + c.kek)
	p, err := e2eStartCmd(c.t, name, cmd, c.logDir)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.proc, n.paused = p, false
	n.mu.Unlock()
	return nil
}

// kill sends SIGKILL to the node's process and waits for it to exit.
func (c *chaosCluster) kill(n *chaosNode) {
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

// signal sends SIGSTOP (pause) or SIGCONT to the node's process.
func (c *chaosCluster) signal(n *chaosNode, pause bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil || n.proc.exited() {
		return fmt.Errorf("%s is not running", n.id)
	}
	sig := syscall.SIGCONT
	if pause {
		sig = syscall.SIGSTOP
	}
	if err := n.proc.cmd.Process.Signal(sig); err != nil {
		return err
	}
	n.paused = pause
	return nil
}

// running reports whether the node's process runs (paused or not).
func (n *chaosNode) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil && !n.proc.exited()
}

// started waits up to d until the node's process serves /healthz; it
// returns an error with the reason if the process exits first (its panic,
// or the end of its stderr), or if the time runs out.
func (c *chaosCluster) started(ctx context.Context, d time.Duration, n *chaosNode) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		n.mu.Lock()
		p := n.proc
		n.mu.Unlock()
		if p.exited() {
			why := p.tail(5)
			for line := range strings.Lines(p.stderr()) {
				if strings.HasPrefix(line, "panic: ") {
					why = strings.TrimSpace(line)
					break
				}
			}
			return fmt.Errorf("%s exited with code %d: %s", n.id, p.exitCode(), why)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.url()+"/healthz", nil)
		if err != nil {
			return err
		}
		if resp, err := c.hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not serve /healthz: %w", n.id, ctx.Err())
		case <-time.After(100 * time.Millisecond): // polling interval
		}
	}
}

// readyz asks the node's /readyz (for at most 5 s).
func (c *chaosCluster) readyz(ctx context.Context, n *chaosNode) (e2eReadyz, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return e2eReadyzWith(ctx, c.hc, n.url())
}

// waitReady waits up to d until every node of ns answers /readyz 200.
func (c *chaosCluster) waitReady(ctx context.Context, d time.Duration, ns []*chaosNode) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for _, n := range ns {
		for {
			r, ok := c.readyz(ctx, n)
			if ok && r.code == http.StatusOK {
				break
			}
			if !n.running() {
				return fmt.Errorf("%s exited: %s", n.id, n.proc.tail(20))
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s not ready (last /readyz %d %q): %w", n.id, r.code, r.Status, ctx.Err())
			case <-time.After(100 * time.Millisecond): // polling interval
			}
		}
	}
	return nil
}

// live returns the nodes of the Raft configuration as last seen that are
// not gone, in creation order.
func (c *chaosCluster) live() []*chaosNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*chaosNode
	for _, n := range c.nodes {
		if c.members[n.id] && !n.gone {
			out = append(out, n)
		}
	}
	return out
}

// node returns the node with id, or nil.
func (c *chaosCluster) node(id string) *chaosNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// status asks the members (in random order) for the cluster status until
// one that knows a leader answers, and records the Raft configuration it
// reports. It returns nil if none did before ctx ended.
func (c *chaosCluster) status(ctx context.Context, rng *rand.Rand) *clusterv1.StatusResponse {
	for ctx.Err() == nil {
		ns := c.live()
		rng.Shuffle(len(ns), func(i, j int) { ns[i], ns[j] = ns[j], ns[i] })
		for _, n := range ns {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			res, err := n.ops.Status(sctx, connect.NewRequest(&clusterv1.StatusRequest{}))
			cancel()
			if err != nil || res.Msg.GetLeaderId() == "" {
				continue
			}
			members := map[string]bool{}
			for _, m := range e2eRaftMembers(res.Msg) {
				members[m.GetNodeId()] = true
			}
			c.mu.Lock()
			c.members = members
			c.mu.Unlock()
			return res.Msg
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond): // polling interval
		}
	}
	return nil
}

// setMember records that id is (or is not) in the configuration, before
// a status confirms it.
func (c *chaosCluster) setMember(id string, in bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if in {
		c.members[id] = true
	} else {
		delete(c.members, id)
	}
}

// setGone records that n left the cluster for good.
func (c *chaosCluster) setGone(n *chaosNode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n.gone = true
	delete(c.members, n.id)
}

// isGone reports whether n left the cluster for good.
func (c *chaosCluster) isGone(n *chaosNode) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return n.gone
}

// isMember reports whether id is in the configuration as last seen.
func (c *chaosCluster) isMember(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[id]
}

// ids returns the ids of ns.
func chaosIDs(ns []*chaosNode) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.id
	}
	return out
}

// hosts returns the hosts of ns.
func chaosHosts(ns []*chaosNode) []*chaos.Host {
	out := make([]*chaos.Host, len(ns))
	for i, n := range ns {
		out[i] = n.host
	}
	return out
}

// join asks a member (other than n) to add n through the cluster API,
// trying members in turn until one accepts, one refuses for good, or ctx
// ends.
func (c *chaosCluster) join(ctx context.Context, rng *rand.Rand, n *chaosNode) error {
	req := &clusterv1.JoinRequest{NodeId: n.id, RaftAddr: n.raftAddr(), ApiAddr: n.apiAddr(),
		GossipAddr: n.gossipAddr(), Region: n.region, Voter: true}
	var last error
	for ctx.Err() == nil {
		ns := slices.DeleteFunc(c.live(), func(m *chaosNode) bool { return m == n })
		rng.Shuffle(len(ns), func(i, j int) { ns[i], ns[j] = ns[j], ns[i] })
		for _, via := range ns {
			jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := via.ops.Join(jctx, connect.NewRequest(req))
			cancel()
			if err == nil {
				return nil
			}
			last = fmt.Errorf("join %s via %s: %w", n.id, via.id, err)
			switch connect.CodeOf(err) {
			case connect.CodeInvalidArgument, connect.CodePermissionDenied, connect.CodeUnauthenticated, connect.CodeAlreadyExists:
				return last
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond): // retry interval
		}
	}
	return errors.Join(last, ctx.Err())
}

// remove asks a member other than id to remove node id, once.
func (c *chaosCluster) remove(ctx context.Context, rng *rand.Rand, id string) error {
	ns := slices.DeleteFunc(c.live(), func(m *chaosNode) bool { return m.id == id })
	if len(ns) == 0 {
		return errors.New("no other member to ask")
	}
	via := ns[rng.IntN(len(ns))]
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := via.ops.Remove(rctx, connect.NewRequest(&clusterv1.RemoveRequest{NodeId: id})); err != nil {
		return fmt.Errorf("remove %s via %s: %w", id, via.id, err)
	}
	return nil
}
