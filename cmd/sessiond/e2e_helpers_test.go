package main

// Helpers of the end-to-end tests (e2e_test.go): they build the real
// sessiond binary once per test run and drive it as separate processes,
// the way an operator does. Every identifier is prefixed with e2e so that
// the in-process test helpers of this package can grow freely.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/sessiond/sessiond/api/clusterrpc"
	"github.com/sessiond/sessiond/authsvc/users/userstest"
	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1/clusterv1connect"
	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
	"github.com/sessiond/sessiond/cluster/clustertest"
	"github.com/sessiond/sessiond/cluster/pki"
)

var (
	e2eBinDir   string // the run's temporary dir holding the binary
	e2eBuildMu  sync.Mutex
	e2eBuilt    string // path of the built binary, once built
	e2eBuildErr error

	// e2ePKI is the run's cluster CA: every agent's node certificate
	// comes from it, and e2eHTTP trusts it.
	e2ePKI *clustertest.PKI
	// e2eHTTP is the tests' HTTP client (plain, or TLS trusting e2ePKI),
	// presenting no client certificate.
	e2eHTTP = &http.Client{Timeout: 15 * time.Second}
	// e2eOperatorHTTP is e2eHTTP presenting an operator certificate of
	// e2ePKI (operator/e2e-harness): the harness's own cluster calls.
	e2eOperatorHTTP = &http.Client{Timeout: 15 * time.Second}
)

// TestMain creates the run's CA, and removes it and the binary the
// end-to-end tests built (lazily, on first use: runs that select no
// end-to-end test do not build it).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sessiond-e2e-pki-")
	if err == nil {
		e2ePKI, err = clustertest.NewPKIIn(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e CA:", err)
		os.Exit(1)
	}
	roots := x509.NewCertPool()
	roots.AddCert(e2ePKI.CA.Cert)
	e2eHTTP.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 16}
	op, err := e2eOperatorCert()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e operator certificate:", err)
		os.Exit(1)
	}
	e2eOperatorHTTP.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{op}},
		ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 16}
	code := m.Run()
	if e2eBinDir != "" {
		_ = os.RemoveAll(e2eBinDir)
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// e2eOperatorCert issues the harness's operator certificate from e2ePKI.
func e2eOperatorCert() (tls.Certificate, error) {
	c, k, err := e2ePKI.CA.Issue(pki.LeafOptions{Identity: pki.Identity{TrustDomain: e2ePKI.TrustDomain, Kind: pki.KindOperator, Name: "e2e-harness"}})
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k, Leaf: c}, nil
}

// e2eBinary returns the path of a sessiond binary built from this package
// (without -race: the processes under test run at full speed), building it
// on first use.
func e2eBinary(t *testing.T) string {
	t.Helper()
	e2eBuildMu.Lock()
	defer e2eBuildMu.Unlock()
	if e2eBuilt == "" && e2eBuildErr == nil {
		dir, err := os.MkdirTemp("", "sessiond-e2e-")
		if err != nil {
			e2eBuildErr = err
		} else {
			e2eBinDir = dir
			bin := filepath.Join(dir, "sessiond")
			cmd := exec.Command("go", "build", "-o", bin, ".")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				e2eBuildErr = fmt.Errorf("go build: %w\n%s", err, out)
			} else {
				e2eBuilt = bin
			}
		}
	}
	if e2eBuildErr != nil {
		t.Fatalf("building sessiond: %v", e2eBuildErr)
	}
	return e2eBuilt
}

// e2eSkipShort skips end-to-end tests under -short.
func e2eSkipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: starts sessiond processes")
	}
}

// e2eWaitFor polls cond until it holds, failing the test after timeout
// with what was awaited.
func e2eWaitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	clustertest.WaitFor(t, timeout, what, cond)
}

// Ports. Every port the tests hand out is remembered, so that parallel
// tests never get the same one twice.
var (
	e2ePortsMu sync.Mutex
	e2ePorts   = map[int]bool{}
)

// e2ePortFree reports whether port is free on 127.0.0.1 for TCP and UDP
// (gossip binds both).
func e2ePortFree(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	u.Close()
	return true
}

// e2eFreePort returns a loopback port free for TCP and UDP that no other
// test of this run was given, below the kernel's ephemeral range (32768 on
// Linux): a port from that range could be taken by an outgoing connection
// between the pick and the node's bind, or while a node restarts on it.
func e2eFreePort(t *testing.T) int {
	t.Helper()
	for range 1000 {
		port := 20000 + mrand.IntN(32768-20000)
		e2ePortsMu.Lock()
		taken := e2ePorts[port]
		if !taken && e2ePortFree(port) {
			e2ePorts[port] = true
			e2ePortsMu.Unlock()
			return port
		}
		e2ePortsMu.Unlock()
	}
	t.Fatal("no free loopback port")
	return 0
}

// e2eAddr returns a free 127.0.0.1:port.
func e2eAddr(t *testing.T) string { return fmt.Sprintf("127.0.0.1:%d", e2eFreePort(t)) }

// e2eRandom returns n random bytes.
func e2eRandom(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// e2eDatabase returns the URL of a new empty database, dropped when the
// test ends.
func e2eDatabase(t *testing.T) string { return userstest.NewDatabase(t) }

// e2eEnv is the environment of a sessiond process: the test's environment
// without any SESSIOND_* variable, plus extra.
func e2eEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SESSIOND_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// e2eBuffer is a goroutine-safe buffer for a process's output.
type e2eBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *e2eBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *e2eBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// e2eProc is one running sessiond process.
type e2eProc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	logPath string     // stderr
	stdout  *e2eBuffer // stdout
	done    chan struct{}
}

// e2eStartProc starts the binary with args and env; stderr goes to a file
// under t.TempDir() whose tail is printed if the test fails. The process
// is killed when the test ends.
func e2eStartProc(t *testing.T, name string, env []string, args ...string) *e2eProc {
	t.Helper()
	return e2eStartBinary(t, e2eBinary(t), name, env, args...)
}

// e2eStartBinary is e2eStartProc with another sessiond binary (an earlier
// version, for upgrades).
func e2eStartBinary(t *testing.T, bin, name string, env []string, args ...string) *e2eProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	p, err := e2eStartCmd(t, name, cmd, "")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// e2eStartCmd starts cmd (the binary, possibly behind a wrapper such as
// `ip netns exec`) like e2eStartProc; it only returns an error, so it may
// be called from any goroutine. With logDir set, stderr goes to
// logDir/name.stderr and is not printed when the test fails.
func e2eStartCmd(t *testing.T, name string, cmd *exec.Cmd, logDir string) (*e2eProc, error) {
	quiet := logDir != ""
	if !quiet {
		logDir = t.TempDir()
	}
	logPath := filepath.Join(logDir, name+".stderr")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &e2eProc{t: t, name: name, logPath: logPath, stdout: &e2eBuffer{}, done: make(chan struct{})}
	p.cmd = cmd
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() && !quiet {
			t.Logf("--- %s: %s\n%s", name, strings.Join(cmd.Args, " "), p.tail(40))
		}
	})
	return p, nil
}

// exited reports whether the process has exited.
func (p *e2eProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitCode is the exit code of an exited process (-1 if killed by a signal).
func (p *e2eProc) exitCode() int { return p.cmd.ProcessState.ExitCode() }

// kill sends SIGKILL and waits for the process to exit.
func (p *e2eProc) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// stop sends SIGTERM and waits up to timeout for the process to exit,
// failing the test (and killing it) if it does not.
func (p *e2eProc) stop(timeout time.Duration) {
	p.t.Helper()
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.kill()
		p.t.Errorf("%s did not exit within %s of SIGTERM", p.name, timeout)
	}
}

// tail returns the last n lines of the process's stderr and stdout.
func (p *e2eProc) tail(n int) string {
	raw, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := "stderr:\n" + strings.Join(lines, "\n")
	if s := p.stdout.String(); s != "" {
		out += "\nstdout:\n" + s
	}
	return out
}

// stderr returns everything the process wrote to stderr so far.
func (p *e2eProc) stderr() string {
	raw, _ := os.ReadFile(p.logPath)
	return string(raw)
}

// e2eCluster holds what the nodes of one test's cluster share: the secrets
// and the Postgres database.
type e2eCluster struct {
	t *testing.T
	// opTokenFile holds the cluster's operator token once created.
	opTokenFile string
	kek         string
	gossipKey   string // a file
	dbURL       string // "" selects the built-in directory
	nodes       []*e2eNode
}

// newE2ECluster returns a cluster with fresh secrets; withDB creates a
// fresh Postgres database for its users.
func newE2ECluster(t *testing.T, withDB bool) *e2eCluster {
	t.Helper()
	c := &e2eCluster{
		t:         t,
		kek:       base64.StdEncoding.EncodeToString(e2eRandom(t, 32)),
		gossipKey: filepath.Join(t.TempDir(), "gossip-key"),
	}
	if err := os.WriteFile(c.gossipKey, []byte(base64.StdEncoding.EncodeToString(e2eRandom(t, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	if withDB {
		c.dbURL = e2eDatabase(t)
	}
	return c
}

// env is the environment of the cluster's agents: the secrets only.
func (c *e2eCluster) env() []string {
	return e2eEnv("SESSIOND_KEK=" + c.kek)
}

// opToken returns the path of a file holding an operator token (cluster
// and admin scopes), created on first use with the CLI through via's local
// operator socket, as an operator on a node's host bootstraps one.
func (c *e2eCluster) opToken(via *e2eNode) string {
	c.t.Helper()
	if c.opTokenFile == "" {
		c.opTokenFile = e2eCreateToken(c.t, via, "e2e", "cluster:write,admin,tokens,check,metrics")
	}
	return c.opTokenFile
}

// e2eNodes maps a node's API URL to the node, so that helpers given a URL
// can authenticate to it (checks and metrics need a credential).
var e2eNodes sync.Map

// e2eAuthHeader returns an Authorization header for the node at base (an
// operator token with the check and metrics scopes), or nothing for a URL
// that no e2eCluster started (a dev cluster, whose checks are open).
func e2eAuthHeader(base string) []string {
	v, ok := e2eNodes.Load(base)
	if !ok {
		return nil
	}
	n := v.(*e2eNode)
	b, err := os.ReadFile(n.c.opToken(n))
	if err != nil {
		n.c.t.Fatal(err)
	}
	return []string{"Authorization", "Bearer " + strings.TrimSpace(string(b))}
}

// e2eCreateToken creates an operator token through via's local operator
// socket and returns the path of a file holding it.
func e2eCreateToken(t *testing.T, via *e2eNode, name, scopes string) string {
	t.Helper()
	r := e2eCLI(t, "", "operator", "token", "create", "--socket", filepath.Join(via.dataDir, "operator.sock"), "--name", name, "--scope", scopes)
	tok := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(tok, "sdo_") {
		t.Fatalf("sessiond operator token create --name %s: exit %d, stdout %q, stderr %q; want exit 0 and a token", name, r.code, r.stdout, r.stderr)
	}
	path := filepath.Join(t.TempDir(), name+".token")
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// e2eNodeOpts says how to start one agent.
type e2eNodeOpts struct {
	// Region selects deploy/config/<Region>.yaml (hk bootstraps there).
	Region string
	// NodeID overrides the file's node id when set.
	NodeID string
	// Join lists member URLs; empty clears the file's join list.
	Join []string
	// BootstrapExpect and RetryJoin, when BootstrapExpect is set, start the
	// node in the files' bootstrap_expect form with these peers; otherwise
	// region hk bootstraps alone (when it joins nothing) and retry_join is
	// cleared.
	BootstrapExpect int
	RetryJoin       []string
	// At, when set, starts the node at that node's addresses with a new,
	// empty data dir (a replacement of a lost node).
	At *e2eNode
	// Extra are more flags, after the others (they win).
	Extra []string
	// Binary runs another sessiond binary than this package's build.
	Binary string
}

// e2eNode is one agent process and the addresses it was given.
type e2eNode struct {
	*e2eProc
	c                              *e2eCluster
	id, region, dataDir            string
	httpAddr, raftAddr, gossipAddr string
}

// url is the node's API base URL (TLS with the node's certificate).
func (n *e2eNode) url() string { return "https://" + n.httpAddr }

// e2eTLSFlags are the flags giving node id a certificate of the run's CA.
func e2eTLSFlags(t *testing.T, id string) []string {
	f := e2ePKI.NodeFiles(t, id)
	return []string{"--tls-ca-file", f.CAFile, "--tls-cert-file", f.CertFile, "--tls-key-file", f.KeyFile}
}

// startNode runs `sessiond agent --config deploy/config/<region>.yaml`,
// overriding what must differ on one machine: data dir, loopback ports,
// advertised addresses (cleared), LAN timeouts, the TLS and gossip key
// files, the database, the join and retry_join lists (peer addresses), and
// a 1 s autopilot stabilization (joining nodes become voters quickly).
func (c *e2eCluster) startNode(opts e2eNodeOpts) *e2eNode {
	t := c.t
	t.Helper()
	n := &e2eNode{
		c: c, id: opts.NodeID, region: opts.Region,
		dataDir:  filepath.Join(t.TempDir(), "data"),
		httpAddr: e2eAddr(t), raftAddr: e2eAddr(t), gossipAddr: e2eAddr(t),
	}
	if n.id == "" {
		n.id = opts.Region + "-1" // as in the example file
	}
	if a := opts.At; a != nil {
		n.httpAddr, n.raftAddr, n.gossipAddr = a.httpAddr, a.raftAddr, a.gossipAddr
	}
	args := []string{"agent",
		"--config", filepath.Join("..", "..", "deploy", "config", opts.Region+".yaml"),
		"--data-dir", n.dataDir,
		"--http-addr", n.httpAddr, "--raft-addr", n.raftAddr, "--gossip-addr", n.gossipAddr,
		"--advertise-http=", "--advertise-raft=", "--advertise-gossip=",
		"--wan=false", "--gossip-key-file=" + c.gossipKey,
		"--join=" + strings.Join(opts.Join, ","),
		fmt.Sprintf("--bootstrap-expect=%d", opts.BootstrapExpect), "--retry-join=" + strings.Join(opts.RetryJoin, ","),
		fmt.Sprintf("--bootstrap=%t", opts.BootstrapExpect == 0 && opts.Region == "hk" && len(opts.Join) == 0),
		"--autopilot-stabilization=1s",
		"--database-url=" + c.dbURL,
		fmt.Sprintf("--migrate=%t", c.dbURL != ""),
	}
	if opts.NodeID != "" {
		args = append(args, "--node-id", opts.NodeID)
	}
	args = append(args, e2eTLSFlags(t, n.id)...)
	args = append(args, opts.Extra...)
	bin := opts.Binary
	if bin == "" {
		bin = e2eBinary(t)
	}
	n.e2eProc = e2eStartBinary(t, bin, n.id, c.env(), args...)
	c.nodes = append(c.nodes, n)
	e2eNodes.Store(n.url(), n)
	return n
}

// restart starts the node again from its data dir with no flag but
// --data-dir and the secrets in the environment.
func (n *e2eNode) restart() {
	n.c.t.Helper()
	n.restartWith(e2eBinary(n.c.t), n.id+"-restarted")
}

// restartWith is restart with binary bin, the process named name.
func (n *e2eNode) restartWith(bin, name string) {
	n.c.t.Helper()
	n.e2eProc = e2eStartBinary(n.c.t, bin, name, n.c.env(), "agent", "--data-dir", n.dataDir)
}

// e2eReadyz is a /readyz answer.
type e2eReadyz struct {
	Status       string `json:"status"`
	Leader       string `json:"leader"`
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	code         int
}

// readyz asks the node's /readyz; ok is false if it did not answer.
func (n *e2eNode) readyz() (e2eReadyz, bool) {
	return e2eGetReadyz(n.url())
}

func e2eGetReadyz(base string) (e2eReadyz, bool) {
	return e2eReadyzWith(context.Background(), e2eHTTP, base)
}

// e2eReadyzWith asks base's /readyz with hc, within ctx.
func e2eReadyzWith(ctx context.Context, hc *http.Client, base string) (e2eReadyz, bool) {
	var r e2eReadyz
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return r, false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return r, false
	}
	defer resp.Body.Close()
	if json.NewDecoder(resp.Body).Decode(&r) != nil {
		return r, false
	}
	r.code = resp.StatusCode
	return r, true
}

// metric returns the value of an unlabelled metric on the node's /metrics
// page; ok is false if the node did not answer or does not export it.
func (n *e2eNode) metric(name string) (v float64, ok bool) {
	req, err := http.NewRequest(http.MethodGet, n.url()+"/metrics", nil)
	if err != nil {
		return 0, false
	}
	if h := e2eAuthHeader(n.url()); h != nil {
		req.Header.Set(h[0], h[1])
	}
	resp, err := e2eHTTP.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// e2eSnapshotIndex returns the highest log index of a complete Raft
// snapshot in dataDir (raft/snapshots/<term>-<index>-<ms>/meta.json),
// 0 if there is none.
func e2eSnapshotIndex(t *testing.T, dataDir string) uint64 {
	t.Helper()
	metas, err := filepath.Glob(filepath.Join(dataDir, "raft", "snapshots", "*", "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	var best uint64
	for _, m := range metas {
		if strings.HasSuffix(filepath.Dir(m), ".tmp") {
			continue // being written
		}
		raw, err := os.ReadFile(m)
		if err != nil {
			continue // removed meanwhile (only the newest two are kept)
		}
		var meta struct{ Index uint64 }
		if json.Unmarshal(raw, &meta) == nil && meta.Index > best {
			best = meta.Index
		}
	}
	return best
}

// waitReady waits until the node's /readyz says 200; it fails at once if
// the process exits.
func (n *e2eNode) waitReady(timeout time.Duration) e2eReadyz {
	n.c.t.Helper()
	var r e2eReadyz
	e2eWaitFor(n.c.t, timeout, n.id+" /readyz 200", func() bool {
		if n.exited() {
			n.c.t.Fatalf("%s exited with code %d before it was ready:\n%s", n.id, n.exitCode(), n.tail(30))
		}
		var ok bool
		r, ok = n.readyz()
		return ok && r.code == http.StatusOK
	})
	return r
}

// waitHealthy waits until the node's /healthz answers 200 (it serves, with
// or without a leader).
func (n *e2eNode) waitHealthy(timeout time.Duration) {
	n.c.t.Helper()
	e2eWaitFor(n.c.t, timeout, n.id+" /healthz 200", func() bool {
		if n.exited() {
			n.c.t.Fatalf("%s exited with code %d:\n%s", n.id, n.exitCode(), n.tail(30))
		}
		resp, err := e2eHTTP.Get(n.url() + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// client is a ClusterService client for the node that authenticates with
// the harness's operator certificate, for its own status polling.
func (n *e2eNode) client() clusterv1connect.ClusterServiceClient {
	return clusterrpc.NewClient(n.httpAddr, clusterrpc.ClientOptions{HTTPClient: e2eOperatorHTTP, Scheme: "https"})
}

// status asks the node for the cluster status (nil if the call failed).
func (n *e2eNode) status() *clusterv1.StatusResponse {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := n.client().Status(ctx, connect.NewRequest(&clusterv1.StatusRequest{}))
	if err != nil {
		return nil
	}
	return res.Msg
}

// e2eRaftMembers returns the members of the Raft configuration (gossip-only
// members have no suffrage).
func e2eRaftMembers(s *clusterv1.StatusResponse) []*clusterv1.Member {
	var out []*clusterv1.Member
	for _, m := range s.GetMembers() {
		if m.GetSuffrage() != clusterv1.Suffrage_SUFFRAGE_UNSPECIFIED {
			out = append(out, m)
		}
	}
	return out
}

// e2eVotersAlive reports whether s lists exactly the given node ids as
// voters, every one alive in gossip, and exactly one of them leading.
func e2eVotersAlive(s *clusterv1.StatusResponse, ids ...string) bool {
	members := e2eRaftMembers(s)
	if s == nil || len(members) != len(ids) {
		return false
	}
	leaders := 0
	for _, m := range members {
		found := false
		for _, id := range ids {
			found = found || m.GetNodeId() == id
		}
		if !found || m.GetSuffrage() != clusterv1.Suffrage_SUFFRAGE_VOTER || m.GetHealth() != clusterv1.GossipHealth_GOSSIP_HEALTH_ALIVE {
			return false
		}
		if m.GetLeader() {
			leaders++
		}
	}
	return leaders == 1 && s.GetLeaderId() != ""
}

// waitMembers waits until the node reports ids as the alive voters with
// one leader, and returns that status.
func (n *e2eNode) waitMembers(timeout time.Duration, ids ...string) *clusterv1.StatusResponse {
	n.c.t.Helper()
	var s *clusterv1.StatusResponse
	e2eWaitFor(n.c.t, timeout, fmt.Sprintf("%s to report voters %v alive with one leader", n.id, ids), func() bool {
		s = n.status()
		return e2eVotersAlive(s, ids...)
	})
	return s
}

// e2eCLIResult is a finished CLI invocation.
type e2eCLIResult struct {
	stdout, stderr string
	code           int
}

// e2eCLI runs the binary to completion (at most 30 s) with stdin and args,
// in an environment without SESSIOND_* variables but SESSIOND_CA_FILE (the
// run's CA, for https addresses).
func e2eCLI(t *testing.T, stdin string, args ...string) e2eCLIResult {
	t.Helper()
	return e2eCLIEnv(t, nil, stdin, args...)
}

// e2eCLIEnv is e2eCLI with more environment variables.
func e2eCLIEnv(t *testing.T, env []string, stdin string, args ...string) e2eCLIResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e2eBinary(t), args...)
	cmd.Env = e2eEnv(append([]string{"SESSIOND_CA_FILE=" + e2ePKI.CAFile()}, env...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("sessiond %s: %v", strings.Join(args, " "), err)
	}
	return e2eCLIResult{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
}

// e2eCreateUser creates a Postgres user with `sessiond user create`.
func (c *e2eCluster) createUser(email, password string) {
	c.t.Helper()
	r := e2eCLI(c.t, password+"\n", "user", "create", "--database-url", c.dbURL, "--password-stdin",
		"--email", email, "--display-name", "E2E User", "--org-name", "Siam Customs Brokers",
		"--country", "TH", "--org-type", "SUPPLIER", "--role", "customs-agent")
	if r.code != 0 || !strings.Contains(r.stdout, "created user") || !strings.Contains(r.stdout, email) {
		c.t.Fatalf("sessiond user create: exit %d, stdout %q, stderr %q; want exit 0 and \"created user ... <%s>\"", r.code, r.stdout, r.stderr, email)
	}
}

// e2eLoginResponse is the JSON answer of POST /auth/login and /auth/token.
type e2eLoginResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	SessionID    string `json:"session_id"`
	Index        uint64 `json:"index"`
}

// e2ePost posts a JSON body (a string or a value to marshal) with optional
// headers (key, value pairs); it returns the status and the body.
func e2ePost(url string, body any, hdr ...string) (int, []byte, error) {
	var raw []byte
	switch b := body.(type) {
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			return 0, nil, err
		}
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e2eHTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// e2eTryLogin posts /auth/login to base; ok reports a 200 with tokens.
func e2eTryLogin(base, email, password, platform, device string) (e2eLoginResponse, int, error) {
	var lr e2eLoginResponse
	code, body, err := e2ePost(base+"/auth/login", map[string]any{
		"email": email, "password": password, "platform": platform, "device_id": device,
	})
	if err != nil {
		return lr, 0, err
	}
	if code != http.StatusOK {
		return lr, code, fmt.Errorf("POST %s/auth/login: status %d: %s", base, code, body)
	}
	if err := json.Unmarshal(body, &lr); err != nil {
		return lr, code, fmt.Errorf("login answer %s: %w", body, err)
	}
	return lr, code, nil
}

// e2eLogin logs in through base and fails the test unless it succeeds.
func e2eLogin(t *testing.T, base, email, password, platform, device string) e2eLoginResponse {
	t.Helper()
	lr, _, err := e2eTryLogin(base, email, password, platform, device)
	if err != nil {
		t.Fatal(err)
	}
	if lr.AccessToken == "" || lr.RefreshToken == "" || lr.Index == 0 {
		t.Fatalf("login through %s: got access %t, refresh %t, index %d; want both tokens and index > 0",
			base, lr.AccessToken != "", lr.RefreshToken != "", lr.Index)
	}
	return lr
}

// e2eCheckToken calls SessionService/CheckToken over HTTP/JSON on base at
// the given consistency (a ReadConsistency name, "" for unset).
func e2eCheckToken(t *testing.T, base, token, consistency string) *sessionv1.CheckTokenResponse {
	t.Helper()
	req := map[string]any{"token": token}
	if consistency != "" {
		req["read"] = map[string]any{"consistency": consistency}
	}
	code, body, err := e2ePost(base+"/sessiond.session.v1.SessionService/CheckToken", req, e2eAuthHeader(base)...)
	if err != nil {
		t.Fatalf("CheckToken on %s: %v", base, err)
	}
	if code != http.StatusOK {
		t.Fatalf("CheckToken on %s: status %d: %s; want 200", base, code, body)
	}
	out := &sessionv1.CheckTokenResponse{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, out); err != nil {
		t.Fatalf("CheckToken answer %s: %v", body, err)
	}
	return out
}

// e2eParseStatus decodes `sessiond cluster status -o json` output.
func e2eParseStatus(t *testing.T, out string) *clusterv1.StatusResponse {
	t.Helper()
	s := &clusterv1.StatusResponse{}
	if err := protojson.Unmarshal([]byte(out), s); err != nil {
		t.Fatalf("cluster status -o json: %v in %q", err, out)
	}
	return s
}

// e2eStatusText renders a status for failure messages.
func e2eStatusText(s *clusterv1.StatusResponse) string {
	if s == nil {
		return "<no status>"
	}
	b, _ := protojson.Marshal(proto.Message(s))
	return string(b)
}

// e2eWaitLine waits until the buffer holds a line containing marker.
func e2eWaitLine(t *testing.T, p *e2eProc, timeout time.Duration, marker string) {
	t.Helper()
	e2eWaitFor(t, timeout, fmt.Sprintf("%s to print %q", p.name, marker), func() bool {
		if p.exited() {
			t.Fatalf("%s exited with code %d:\n%s", p.name, p.exitCode(), p.tail(30))
		}
		sc := bufio.NewScanner(strings.NewReader(p.stdout.String()))
		for sc.Scan() {
			if strings.Contains(sc.Text(), marker) {
				return true
			}
		}
		return false
	})
}
