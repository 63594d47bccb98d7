package main

// End-to-end tests of safe membership (issue 10): joins, removals, a
// removed node, bootstrap_expect and the replacement of a node whose data
// dir was lost, on real processes. Helpers here are prefixed opsE2E.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/cluster/clustertest"
)

// opsCluster starts hk (bootstrapping), seoul and tokyo joined through hk,
// with extra flags on every node, and waits until the three are voters.
func opsCluster(t *testing.T, extra ...string) (*e2eCluster, *e2eNode, *e2eNode, *e2eNode) {
	t.Helper()
	c := newE2ECluster(t, false)
	hk := c.startNode(e2eNodeOpts{Region: "hk", Extra: extra})
	hk.waitReady(e2eStartLimit)
	seoul := c.startNode(e2eNodeOpts{Region: "seoul", Join: []string{hk.raftAddr}, Extra: extra})
	tokyo := c.startNode(e2eNodeOpts{Region: "tokyo", Join: []string{hk.raftAddr}, Extra: extra})
	hk.waitMembers(e2eStartLimit, hk.id, seoul.id, tokyo.id)
	return c, hk, seoul, tokyo
}

// cli runs `sessiond cluster ...` against n with the cluster's operator
// token (created through n's socket on first use).
func (c *e2eCluster) cli(n *e2eNode, args ...string) e2eCLIResult {
	c.t.Helper()
	return e2eCLI(c.t, "", append(append([]string{"cluster"}, args...), "--addr", n.url(), "--token-file", c.opToken(n))...)
}

// member returns the status member with id, or nil.
func opsMember(s *clusterv1.StatusResponse, id string) *clusterv1.Member {
	for _, m := range s.GetMembers() {
		if m.GetNodeId() == id {
			return m
		}
	}
	return nil
}

// waitStderr waits until the process's stderr contains marker.
func (p *e2eProc) waitStderr(t *testing.T, timeout time.Duration, marker string) {
	t.Helper()
	e2eWaitFor(t, timeout, p.name+" to log "+marker, func() bool { return strings.Contains(p.stderr(), marker) })
}

// TestJoinIsSafe: a node that does not answer, a malformed region and a
// region the node does not run in are refused with nothing changed; a node
// whose certificate is of another CA stops its join loop with an ERROR and
// the node it asked logs the refusal; a healthy node joins as a staging
// non-voter and is promoted after the stabilization period.
func TestJoinIsSafe(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c := newE2ECluster(t, false)
	// A longer stabilization on the leader, to see the staging state.
	slow := []string{"--autopilot-stabilization=4s"}
	hk := c.startNode(e2eNodeOpts{Region: "hk", Extra: slow})
	hk.waitReady(e2eStartLimit)
	seoul := c.startNode(e2eNodeOpts{Region: "seoul", Join: []string{hk.raftAddr}, Extra: slow})
	hk.waitMembers(e2eStartLimit, hk.id, seoul.id)

	// Nothing runs at this address.
	ghost := e2eAddr(t)
	r := c.cli(seoul, "join", "--node-id", "tokyo-1", "--raft-addr", ghost, "--region", "tokyo")
	if r.code == 0 || !strings.Contains(r.stderr, "no handshake with its peer address "+ghost) {
		t.Errorf("cluster join of a node that is not running: exit %d, stderr %q; want a refusal saying there is no handshake at %s", r.code, r.stderr, ghost)
	}
	// A malformed region, and the region of another node.
	r = c.cli(hk, "join", "--node-id", seoul.id, "--raft-addr", seoul.raftAddr, "--region", "HK")
	if r.code == 0 || !strings.Contains(r.stderr, `region "HK"`) || !strings.Contains(r.stderr, "invalid_argument") {
		t.Errorf("cluster join --region HK: exit %d, stderr %q; want invalid_argument naming region \"HK\"", r.code, r.stderr)
	}
	r = c.cli(hk, "join", "--node-id", seoul.id, "--raft-addr", seoul.raftAddr, "--region", "tokyo")
	if r.code == 0 || !strings.Contains(r.stderr, `region "tokyo": node seoul-1 runs in region "seoul"`) {
		t.Errorf("cluster join with another node's region: exit %d, stderr %q; want a refusal naming the region seoul-1 runs in", r.code, r.stderr)
	}
	if s := hk.status(); len(e2eRaftMembers(s)) != 2 || opsMember(s, "tokyo-1") != nil {
		t.Errorf("after refused joins: %s; want hk-1 and seoul-1 only", e2eStatusText(s))
	}

	// A node with a certificate of another CA: its join loop stops with an
	// ERROR, and hk logs the refused connection.
	other := e2eOtherCA(t)
	f := other.NodeFiles(t, "tokyo-1")
	rogue := c.startNode(e2eNodeOpts{Region: "tokyo", Join: []string{hk.raftAddr},
		Extra: []string{"--tls-ca-file", f.CAFile, "--tls-cert-file", f.CertFile, "--tls-key-file", f.KeyFile}})
	rogue.waitStderr(t, e2eStartLimit, "join refused; not retrying")
	hk.waitStderr(t, e2eStartLimit, "peer connection refused")
	rogue.kill()

	// A healthy node: a staging non-voter first, a voter after ~4 s.
	tokyo := c.startNode(e2eNodeOpts{Region: "tokyo", Join: []string{seoul.raftAddr}, Extra: slow})
	var m *clusterv1.Member
	e2eWaitFor(t, e2eStartLimit, "tokyo-1 in the configuration", func() bool {
		m = opsMember(hk.status(), tokyo.id)
		return m != nil && m.GetSuffrage() != clusterv1.Suffrage_SUFFRAGE_UNSPECIFIED
	})
	if m.GetSuffrage() != clusterv1.Suffrage_SUFFRAGE_NONVOTER || !m.GetStaging() {
		t.Errorf("tokyo-1 just after joining: suffrage %s staging %t; want a staging non-voter", m.GetSuffrage(), m.GetStaging())
	}
	hk.waitMembers(e2eStartLimit, hk.id, seoul.id, tokyo.id)
	hk.waitStderr(t, 10*time.Second, "autopilot: promoted to voter")
}

// TestRemoveIsSafe: seconds after a voter is killed (before gossip can
// notice), removing the leader is refused as a quorum risk and changes
// nothing; removing the dead voter is accepted and reported; the dead
// node, restarted, learns it was removed (/readyz 503, client calls
// refused) and leaves the status; so does a running node removed.
func TestRemoveIsSafe(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c, hk, seoul, tokyo := opsCluster(t)
	nodes := []*e2eNode{hk, seoul, tokyo}
	st := hk.status()
	leader, followers := e2eLeaderAndFollowers(t, st, nodes...)
	dead, alive := followers[0], followers[1]
	dead.kill()

	r := c.cli(alive, "remove", leader.id)
	if r.code == 0 || !strings.Contains(r.stderr, "failed_precondition") || !strings.Contains(r.stderr, "down: "+dead.id) ||
		!strings.Contains(r.stderr, "nothing was changed") {
		t.Errorf("remove the leader %s while %s is dead: exit %d, stderr %q; want failed_precondition naming %s as down and nothing changed",
			leader.id, dead.id, r.code, r.stderr, dead.id)
	}
	after := alive.status()
	if got := e2eRaftMembers(after); len(got) != 3 || after.GetLeaderId() != leader.id {
		t.Fatalf("after the refused remove: %s; want the 3 voters and leader %s unchanged", e2eStatusText(after), leader.id)
	}

	// Removing the dead voter leaves two reachable voters: accepted.
	r = c.cli(alive, "remove", dead.id)
	if r.code != 0 || !strings.HasPrefix(r.stdout, dead.id+" removed: the configuration without it is committed (leader "+leader.id+", 2 voters left)") {
		t.Fatalf("remove the dead %s: exit %d, stdout %q, stderr %q; want it reported committed by %s with 2 voters left", dead.id, r.code, r.stdout, r.stderr, leader.id)
	}

	// The dead node comes back with its old data: it learns it was removed.
	dead.restart()
	opsWaitRemoved(t, dead, leader)

	// A running node removed: the same.
	r = c.cli(leader, "remove", alive.id)
	if r.code != 0 || !strings.Contains(r.stdout, "1 voters left") {
		t.Fatalf("remove the running %s: exit %d, stdout %q, stderr %q", alive.id, r.code, r.stdout, r.stderr)
	}
	opsWaitRemoved(t, alive, leader)
	if r, ok := leader.readyz(); !ok || r.code != http.StatusOK {
		t.Errorf("the remaining leader %s: /readyz %d %q; want 200", leader.id, r.code, r.Status)
	}
}

// opsWaitRemoved waits until n says it was removed and leader's status no
// longer lists it, and checks that n refuses client calls.
func opsWaitRemoved(t *testing.T, n, leader *e2eNode) {
	t.Helper()
	e2eWaitFor(t, e2eStartLimit, n.id+" /readyz 503 removed from the cluster", func() bool {
		r, ok := n.readyz()
		return ok && r.code == http.StatusServiceUnavailable && r.Status == "removed from the cluster"
	})
	code, body, err := e2ePost(n.url()+"/sessiond.session.v1.SessionService/CheckToken", map[string]any{"token": "x"})
	if err != nil || code != http.StatusServiceUnavailable || !strings.Contains(string(body), "removed from the cluster") {
		t.Errorf("CheckToken on the removed %s: %d %s %v; want 503 saying it was removed", n.id, code, body, err)
	}
	e2eWaitFor(t, e2eStartLimit, leader.id+"'s status without "+n.id, func() bool {
		s := leader.status()
		return s != nil && opsMember(s, n.id) == nil
	})
	n.waitStderr(t, 5*time.Second, "this node was removed from the cluster")
}

// TestBootstrapExpectAndReplacement: three nodes with bootstrap_expect 3
// and the same retry_join list, started in reverse order, form one
// cluster. One is removed, its data dir lost, and it is started again at
// the same addresses: with the example files' bootstrap_expect form it
// joins the existing cluster (same cluster id, sessions shared); told to
// bootstrap instead, it refuses and says how to join; nothing splits.
func TestBootstrapExpectAndReplacement(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c := newE2ECluster(t, false)
	x := newOpsExpect(c)
	tokyo := x.start("tokyo")
	seoul := x.start("seoul")
	tokyo.waitHealthy(e2eStartLimit)
	if r, _ := tokyo.readyz(); r.code != http.StatusServiceUnavailable || r.Leader != "" {
		t.Errorf("tokyo with 1 of 3 peers: /readyz %d leader %q; want 503 and no leader (waiting for bootstrap_expect)", r.code, r.Leader)
	}
	hk := x.start("hk")
	st := hk.waitMembers(e2eStartLimit, hk.id, seoul.id, tokyo.id)
	cid := st.GetClusterId()
	for _, n := range []*e2eNode{hk, seoul, tokyo} {
		n.waitReady(e2eStartLimit)
		e2eWaitFor(t, e2eStartLimit, n.id+" in cluster "+cid, func() bool { return opsReadyzClusterID(t, n) == cid })
	}
	if !strings.Contains(hk.stderr(), "bootstrapping a new cluster") || strings.Contains(seoul.stderr()+tokyo.stderr(), "bootstrapping a new cluster") {
		t.Errorf("want hk-1 (the lowest id) alone to bootstrap")
	}
	e2eBuiltinUser(t, c, seoul, "rep@example.com")
	lr := e2eLogin(t, seoul.url(), "rep@example.com", e2ePassword, "web", "w1")

	// hk-1 loses its disk: removed, wiped, restarted with bootstrap: true
	// and its peers: refused, nothing formed.
	hk.kill()
	e2eWaitFor(t, e2eStartLimit, "a leader other than hk-1", func() bool {
		s := seoul.status()
		return s != nil && s.GetLeaderId() != "" && s.GetLeaderId() != hk.id
	})
	if r := c.cli(seoul, "remove", hk.id); r.code != 0 {
		t.Fatalf("remove the lost hk-1: exit %d, %s", r.code, r.stderr)
	}
	refused := c.startNode(e2eNodeOpts{Region: "hk", At: x.addrs["hk"], Extra: []string{"--bootstrap=true", "--retry-join=" + strings.Join(x.peers, ",")}})
	e2eWaitFor(t, e2eStartLimit, "the wiped hk-1 told to bootstrap to exit", refused.exited)
	// Refused either because a peer answered that it is in a cluster, or
	// because the node already learned that cluster's id from a peer: both
	// say to join instead.
	if refused.exitCode() == 0 || !strings.Contains(refused.stderr(), "bootstrap refused") || !strings.Contains(refused.stderr(), "join: [") {
		t.Errorf("bootstrap beside an existing cluster: exit %d, stderr %s; want a refusal saying to join", refused.exitCode(), refused.tail(5))
	}
	// The example files' form: it joins the cluster it belonged to.
	hk2 := x.start("hk")
	seoul.waitMembers(e2eStartLimit, hk2.id, seoul.id, tokyo.id)
	hk2.waitReady(e2eStartLimit)
	if got := opsReadyzClusterID(t, hk2); got != cid {
		t.Errorf("the replaced hk-1 is in cluster %q; want %q (no second cluster)", got, cid)
	}
	if ct := e2eCheckToken(t, hk2.url(), lr.AccessToken, e2eLinear); !ct.GetActive() {
		t.Errorf("a session from before the replacement on the new hk-1: %s; want active", ct.GetReason())
	}
}

// opsExpect starts the nodes of a cluster in the example files' form:
// bootstrap_expect 3 and the same retry_join list, at fixed addresses (so
// that a replacement can take a lost node's place).
type opsExpect struct {
	c     *e2eCluster
	addrs map[string]*e2eNode
	peers []string
}

func newOpsExpect(c *e2eCluster) *opsExpect {
	x := &opsExpect{c: c, addrs: map[string]*e2eNode{}}
	for _, r := range []string{"hk", "seoul", "tokyo"} {
		a := &e2eNode{httpAddr: e2eAddr(c.t), raftAddr: e2eAddr(c.t), gossipAddr: e2eAddr(c.t)}
		x.addrs[r] = a
		x.peers = append(x.peers, a.raftAddr)
	}
	return x
}

// start starts region's node with an empty data dir, extra flags last.
func (x *opsExpect) start(region string, extra ...string) *e2eNode {
	return x.c.startNode(e2eNodeOpts{Region: region, BootstrapExpect: 3, RetryJoin: x.peers, At: x.addrs[region], Extra: extra})
}

// all starts the three nodes and waits until they are voters and ready.
func (x *opsExpect) all() (hk, seoul, tokyo *e2eNode) {
	hk, seoul, tokyo = x.start("hk"), x.start("seoul"), x.start("tokyo")
	hk.waitMembers(e2eStartLimit, hk.id, seoul.id, tokyo.id)
	for _, n := range []*e2eNode{hk, seoul, tokyo} {
		n.waitReady(e2eStartLimit)
	}
	return hk, seoul, tokyo
}

// opsReadyzClusterID returns the cluster id n's /readyz reports.
func opsReadyzClusterID(t *testing.T, n *e2eNode) string {
	t.Helper()
	resp, err := e2eHTTP.Get(n.url() + "/readyz")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var r struct {
		ClusterID string `json:"cluster_id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&r)
	return r.ClusterID
}

// e2eOtherCA is a CA the run's nodes do not trust.
func e2eOtherCA(t *testing.T) *clustertest.PKI {
	t.Helper()
	p, err := clustertest.NewPKIIn(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDebugBundle: pprof and the redacted config are refused without an
// operator credential with the admin scope; `sessiond debug bundle` collects the status, the
// metrics, goroutine, heap and CPU profiles and the config, and no secret
// value (operator token, KEK, gossip key, database password, notifier
// secrets) appears anywhere in it.
func TestDebugBundle(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c := newE2ECluster(t, true)
	webhookSecret := "whsec-" + base64.RawURLEncoding.EncodeToString(e2eRandom(t, 18))
	botToken := "bot-" + base64.RawURLEncoding.EncodeToString(e2eRandom(t, 18))
	dbPassword := "pw-" + base64.RawURLEncoding.EncodeToString(e2eRandom(t, 12))
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "config", "hk.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer(
		`telegram_bot_token: ""`, `telegram_bot_token: "`+botToken+`"`,
		`webhook_url: ""`, `webhook_url: "https://hooks.example.com/x?token=`+webhookSecret+`"`+"\n    webhook_secret: \""+webhookSecret+`"`,
	).Replace(string(raw))
	// Postgres trusts local connections: the password is carried, not checked.
	u, err := url.Parse(c.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), dbPassword)
	c.dbURL = u.String()
	confPath := filepath.Join(t.TempDir(), "hk.yaml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	hk := c.startNode(e2eNodeOpts{Region: "hk", Extra: []string{"--config", confPath}})
	hk.waitReady(e2eStartLimit)

	for _, path := range []string{"/debug/pprof/goroutine?debug=1", "/debug/pprof/profile?seconds=1", "/debug/config"} {
		resp, err := e2eHTTP.Get(hk.url() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials: %d; want 401", path, resp.StatusCode)
		}
	}

	out := filepath.Join(t.TempDir(), "bundle.tar.gz")
	r := e2eCLI(t, "", "debug", "bundle", out, "--addr", hk.url(), "--token-file", c.opToken(hk), "--profile-seconds", "1")
	if r.code != 0 || !strings.Contains(r.stdout, "(0 items failed)") {
		t.Fatalf("debug bundle: exit %d, stdout %q, stderr %q; want every item collected", r.code, r.stdout, r.stderr)
	}
	files := opsUntar(t, out)
	for _, name := range []string{"status.json", "readyz.json", "metrics.txt", "config.json", "goroutine.txt", "heap.pprof", "cpu.pprof", "manifest.json"} {
		if len(files[name]) == 0 {
			t.Errorf("bundle: %s missing or empty", name)
		}
	}
	if !strings.Contains(string(files["goroutine.txt"]), "goroutine ") || !strings.Contains(string(files["status.json"]), hk.id) ||
		!strings.Contains(string(files["config.json"]), "<redacted>") {
		t.Errorf("bundle contents: goroutine dump, status naming %s and a redacted config expected", hk.id)
	}
	gossipKey, _ := os.ReadFile(c.gossipKey)
	token, _ := os.ReadFile(c.opToken(hk))
	_, tokenSecret, _ := strings.Cut(strings.TrimSpace(string(token)), ".")
	secrets := map[string]string{"operator token's secret": tokenSecret, "KEK": c.kek, "gossip key": strings.TrimSpace(string(gossipKey)),
		"webhook secret": webhookSecret, "telegram token": botToken, "database password": dbPassword}
	for name, data := range files {
		for what, v := range secrets {
			if bytes.Contains(data, []byte(v)) {
				t.Errorf("bundle file %s contains the %s", name, what)
			}
		}
	}
}

// opsUntar reads a tar.gz into memory by file name.
func opsUntar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = b
	}
}
