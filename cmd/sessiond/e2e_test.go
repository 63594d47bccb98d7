package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/api/clusterrpc"
	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
)

const (
	e2ePassword   = "correct horse battery staple"
	e2eLinear     = "READ_CONSISTENCY_LINEARIZABLE"
	e2eStale      = "READ_CONSISTENCY_STALE"
	e2eStartLimit = 30 * time.Second
)

// e2eThreeNodes starts hk (bootstraps, from hk.yaml), then seoul and tokyo
// joining through hk, and waits until all three are alive voters.
func e2eThreeNodes(t *testing.T, c *e2eCluster) (hk, seoul, tokyo *e2eNode) {
	t.Helper()
	hk = c.startNode(e2eNodeOpts{Region: "hk"})
	hk.waitReady(e2eStartLimit)
	seoul = c.startNode(e2eNodeOpts{Region: "seoul", Join: []string{hk.raftAddr}})
	tokyo = c.startNode(e2eNodeOpts{Region: "tokyo", Join: []string{hk.raftAddr, seoul.raftAddr}})
	hk.waitMembers(e2eStartLimit, hk.id, seoul.id, tokyo.id)
	seoul.waitReady(e2eStartLimit)
	tokyo.waitReady(e2eStartLimit)
	return hk, seoul, tokyo
}

// e2eLeaderAndFollowers splits nodes by the leader id in status s.
func e2eLeaderAndFollowers(t *testing.T, s *clusterv1.StatusResponse, nodes ...*e2eNode) (*e2eNode, []*e2eNode) {
	t.Helper()
	var leader *e2eNode
	var followers []*e2eNode
	for _, n := range nodes {
		if n.id == s.GetLeaderId() {
			leader = n
		} else {
			followers = append(followers, n)
		}
	}
	if leader == nil {
		t.Fatalf("leader %q is none of the nodes; status %s", s.GetLeaderId(), e2eStatusText(s))
	}
	return leader, followers
}

func TestClusterLifecycle(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c := newE2ECluster(t, true)

	hk := c.startNode(e2eNodeOpts{Region: "hk"})
	hk.waitReady(e2eStartLimit)
	if _, set := os.LookupEnv("GOGC"); !set {
		// A new node's heap is small: the collector keeps its headroom
		// floor (--gc-headroom-mb) by a GC percent well above Go's 100.
		e2eWaitFor(t, 10*time.Second, "hk's go_gc_gogc_percent to rise above 100", func() bool {
			v, ok := hk.metric("go_gc_gogc_percent")
			return ok && v > 100
		})
	}
	seoul := c.startNode(e2eNodeOpts{Region: "seoul", Join: []string{hk.raftAddr}})
	hk.waitMembers(e2eStartLimit, hk.id, seoul.id)
	seoul.waitReady(e2eStartLimit)

	// tokyo starts without --join and waits; an operator adds it with the
	// CLI through a follower.
	tokyo := c.startNode(e2eNodeOpts{Region: "tokyo"})
	tokyo.waitHealthy(e2eStartLimit)
	if r, ok := tokyo.readyz(); !ok || r.code != http.StatusServiceUnavailable {
		t.Errorf("tokyo before joining: /readyz %d %q; want 503 (no leader)", r.code, r.Status)
	}
	_, followers := e2eLeaderAndFollowers(t, hk.status(), hk, seoul)
	via := followers[0]
	join := e2eCLI(t, "", "cluster", "join", "--addr", via.url(), "--token-file", c.opToken(hk),
		"--node-id", tokyo.id, "--raft-addr", tokyo.raftAddr, "--api-addr", tokyo.httpAddr,
		"--gossip-addr", tokyo.gossipAddr, "--region", "tokyo")
	if want := tokyo.id + " joined as a non-voter; the leader promotes it to voter once it is caught up and healthy"; join.code != 0 || strings.TrimSpace(join.stdout) != want {
		t.Fatalf("sessiond cluster join via follower %s: exit %d, stdout %q, stderr %q; want exit 0, %q",
			via.id, join.code, join.stdout, join.stderr, want)
	}
	// Joining again with the same id and address is idempotent.
	again := e2eCLI(t, "", "cluster", "join", "--addr", via.url(), "--token-file", c.opToken(hk),
		"--node-id", tokyo.id, "--raft-addr", tokyo.raftAddr, "--api-addr", tokyo.httpAddr,
		"--gossip-addr", tokyo.gossipAddr, "--region", "tokyo")
	if again.code != 0 || strings.TrimSpace(again.stdout) != tokyo.id+" is already a member" {
		t.Errorf("second cluster join: exit %d, stdout %q, stderr %q; want exit 0, %q",
			again.code, again.stdout, again.stderr, tokyo.id+" is already a member")
	}
	tokyo.waitReady(e2eStartLimit)

	// `cluster status -o json` through the CLI: 3 voters alive, one leader,
	// at the loopback addresses (the example files' advertised addresses
	// were cleared by the empty --advertise-* flags).
	var st *clusterv1.StatusResponse
	e2eWaitFor(t, e2eStartLimit, "cluster status -o json listing 3 alive voters with one leader", func() bool {
		r := e2eCLI(t, "", "cluster", "status", "--addr", tokyo.url(), "--token-file", c.opToken(hk), "-o", "json")
		if r.code != 0 {
			t.Fatalf("sessiond cluster status: exit %d, stderr %q; want 0", r.code, r.stderr)
		}
		st = e2eParseStatus(t, r.stdout)
		return e2eVotersAlive(st, hk.id, seoul.id, tokyo.id)
	})
	for _, m := range e2eRaftMembers(st) {
		for _, n := range []*e2eNode{hk, seoul, tokyo} {
			if m.GetNodeId() == n.id && (m.GetApiAddr() != n.httpAddr || m.GetRaftAddr() != n.raftAddr || m.GetRegion() != n.region) {
				t.Errorf("status member %s: api %s raft %s region %s; want api %s raft %s region %s",
					n.id, m.GetApiAddr(), m.GetRaftAddr(), m.GetRegion(), n.httpAddr, n.raftAddr, n.region)
			}
		}
	}
	table := e2eCLI(t, "", "cluster", "status", "--addr", hk.url(), "--token-file", c.opToken(hk))
	if table.code != 0 || !strings.Contains(table.stdout, "leader "+st.GetLeaderId()) || !strings.Contains(table.stdout, tokyo.id) {
		t.Errorf("cluster status (table): exit %d, stdout %q; want exit 0 naming leader %s and member %s",
			table.code, table.stdout, st.GetLeaderId(), tokyo.id)
	}

	// A user in Postgres, created with the CLI; log in through a follower,
	// read at LINEARIZABLE on a third node.
	c.createUser("ana@example.com", e2ePassword)
	leader, followers := e2eLeaderAndFollowers(t, st, hk, seoul, tokyo)
	loginVia, third := followers[0], followers[1]
	lr := e2eLogin(t, loginVia.url(), "ana@example.com", e2ePassword, "web", "laptop")
	if lr.TokenType != "Bearer" || lr.SessionID == "" {
		t.Errorf("login: token_type %q, session_id %q; want Bearer and a session id", lr.TokenType, lr.SessionID)
	}
	ct := e2eCheckToken(t, third.url(), lr.AccessToken, e2eLinear)
	if !ct.GetActive() || ct.GetIndex() < lr.Index {
		t.Errorf("CheckToken LINEARIZABLE on %s after login through %s: active %t (reason %q) at index %d; want active at index >= %d",
			third.id, loginVia.id, ct.GetActive(), ct.GetReason(), ct.GetIndex(), lr.Index)
	}
	if got := ct.GetClaims().GetSessionId(); got != lr.SessionID {
		t.Errorf("CheckToken claims session %q; want %q", got, lr.SessionID)
	}
	_ = leader

	// Remove tokyo with the CLI through hk: 2 members remain in Raft.
	rm := e2eCLI(t, "", "cluster", "remove", tokyo.id, "--addr", hk.url(), "--token-file", c.opToken(hk))
	if rm.code != 0 || !strings.HasPrefix(rm.stdout, tokyo.id+" removed: the configuration without it is committed") {
		t.Fatalf("sessiond cluster remove %s: exit %d, stdout %q, stderr %q; want exit 0, %q...",
			tokyo.id, rm.code, rm.stdout, rm.stderr, tokyo.id+" removed: the configuration without it is committed")
	}
	e2eWaitFor(t, 10*time.Second, "status from seoul listing 2 Raft members", func() bool {
		return e2eVotersAlive(seoul.status(), hk.id, seoul.id)
	})
	// Removing a node that is not a member fails clearly.
	bad := e2eCLI(t, "", "cluster", "remove", "nope-9", "--addr", seoul.url(), "--token-file", c.opToken(hk))
	if bad.code == 0 || !strings.Contains(bad.stderr, "nope-9") && !strings.Contains(bad.stderr, "unknown node") {
		t.Errorf("cluster remove of an unknown node: exit %d, stderr %q; want nonzero and a message naming the node or 'unknown node'",
			bad.code, bad.stderr)
	}
	if !strings.Contains(bad.stderr, "not_found") && !strings.Contains(bad.stderr, "unknown node") {
		t.Errorf("cluster remove of an unknown node: stderr %q; want it to say the node is unknown (not_found)", bad.stderr)
	}
	if s := seoul.status(); len(e2eRaftMembers(s)) != 2 {
		t.Errorf("after a failed remove: %d Raft members; want 2: %s", len(e2eRaftMembers(s)), e2eStatusText(s))
	}
}

// e2eSnapshotFlags make Raft snapshot after 64 entries (checked every
// 200-400 ms) and keep only 16 entries behind a snapshot, so that a node
// joining after a few hundred writes can only catch up through one.
var e2eSnapshotFlags = []string{"--snapshot-threshold", "64", "--snapshot-interval", "200ms", "--trailing-logs", "16"}

func TestSnapshotCatchUp(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c := newE2ECluster(t, true)
	hk := c.startNode(e2eNodeOpts{Region: "hk", Extra: e2eSnapshotFlags})
	hk.waitReady(e2eStartLimit)
	seoul := c.startNode(e2eNodeOpts{Region: "seoul", Join: []string{hk.raftAddr}, Extra: e2eSnapshotFlags})
	hk.waitMembers(e2eStartLimit, hk.id, seoul.id)
	c.createUser("bo@example.com", e2ePassword)

	// A token issued early, then ~200 more writes (logins from four
	// platforms in parallel, each replacing its device's session).
	early := e2eLogin(t, seoul.url(), "bo@example.com", e2ePassword, "ios", "phone")
	const perPlatform = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	first, last := map[string]e2eLoginResponse{}, map[string]e2eLoginResponse{}
	platforms := []string{"web", "windows", "mac", "android"}
	for i, platform := range platforms {
		via := []*e2eNode{hk, seoul}[i%2]
		wg.Go(func() {
			for range perPlatform {
				lr, _, err := e2eTryLogin(via.url(), "bo@example.com", e2ePassword, platform, platform+"-device")
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					if _, ok := first[platform]; !ok {
						first[platform] = lr
					}
					last[platform] = lr
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	leader, _ := e2eLeaderAndFollowers(t, hk.waitMembers(e2eStartLimit, hk.id, seoul.id), hk, seoul)
	if target := leader.status().GetCommitIndex(); target < 200 {
		t.Errorf("commit index after %d logins: %d; want >= 200", 4*perPlatform+1, target)
	}
	// Wait for the leader to snapshot past the trailing logs, so that the
	// first entries are gone from its log and a new node cannot be sent
	// them: it must be sent the snapshot.
	var snap uint64
	e2eWaitFor(t, 10*time.Second, "the leader "+leader.id+" to write a snapshot past index 64", func() bool {
		snap = e2eSnapshotIndex(t, leader.dataDir)
		return snap >= 64
	})
	// The operator sees it in /metrics: the newest snapshot (this one or a
	// later one), its size (the store's file at least) and the entries Raft
	// waits for before the next (the configured 64 at least).
	idx, ok1 := leader.metric("sessiond_raft_snapshot_index")
	size, ok2 := leader.metric("sessiond_raft_snapshot_bytes")
	threshold, ok3 := leader.metric("sessiond_raft_snapshot_threshold")
	if !ok1 || !ok2 || !ok3 || uint64(idx) < snap || size < 16<<10 || threshold < 64 {
		t.Errorf("the leader's snapshot metrics: index %v, bytes %v, threshold %v (exported %t %t %t); want index >= %d, 16 KiB at least, threshold >= 64",
			idx, size, threshold, ok1, ok2, ok3, snap)
	}

	tokyo := c.startNode(e2eNodeOpts{Region: "tokyo", Join: []string{seoul.raftAddr}, Extra: e2eSnapshotFlags})
	start := time.Now()
	var lead, got e2eReadyz
	e2eWaitFor(t, e2eStartLimit, "tokyo's /readyz applied_index to reach the leader's", func() bool {
		if tokyo.exited() {
			t.Fatalf("tokyo exited with code %d", tokyo.exitCode())
		}
		var ok1, ok2 bool
		lead, ok1 = leader.readyz()
		got, ok2 = tokyo.readyz()
		return ok1 && ok2 && got.code == http.StatusOK && lead.AppliedIndex > snap && got.AppliedIndex >= lead.AppliedIndex
	})
	t.Logf("tokyo caught up to index %d (leader's snapshot at %d) in %s",
		got.AppliedIndex, snap, time.Since(start).Round(time.Millisecond))
	if n, ok := tokyo.metric("sessiond_snapshot_restores_total"); !ok || n < 1 {
		t.Errorf("tokyo's /metrics sessiond_snapshot_restores_total: %v (exported %t); want >= 1 (caught up through a snapshot)", n, ok)
	}

	// The state came through the snapshot: tokens issued before tokyo
	// joined are active there at STALE, and the sessions later logins on
	// the same device replaced are ended there too.
	active := map[string]string{"early ios": early.AccessToken}
	for _, p := range platforms {
		active["last "+p] = last[p].AccessToken
	}
	for name, tok := range active {
		ct := e2eCheckToken(t, tokyo.url(), tok, e2eStale)
		if !ct.GetActive() {
			t.Errorf("CheckToken STALE on tokyo for the %s token issued before it joined: inactive (%q); want active", name, ct.GetReason())
		}
	}
	for _, p := range platforms {
		if ct := e2eCheckToken(t, tokyo.url(), first[p].AccessToken, e2eStale); ct.GetActive() {
			t.Errorf("CheckToken STALE on tokyo for the first %s token, whose session a later login on the same device replaced: active; want inactive", p)
		}
	}
	hk.waitMembers(e2eStartLimit, hk.id, seoul.id, tokyo.id)

	// A write after the restore is counted in tokyo's store metrics: a
	// transaction, its pages (at least a leaf and a meta page), the file.
	before, _ := tokyo.metric("sessiond_store_transactions_total")
	e2eLogin(t, seoul.url(), "bo@example.com", e2ePassword, "web", "web-device")
	var txs float64
	e2eWaitFor(t, 10*time.Second, "tokyo's sessiond_store_transactions_total to count the login", func() bool {
		txs, _ = tokyo.metric("sessiond_store_transactions_total")
		return txs > before
	})
	pages, ok1 := tokyo.metric("sessiond_store_page_writes_total")
	size, ok2 = tokyo.metric("sessiond_store_file_bytes")
	if !ok1 || !ok2 || pages < 2*(txs-before) || size < 32<<10 {
		t.Errorf("tokyo's store metrics after %v transactions since the restore: %v page writes, %v bytes (exported %t %t); "+
			"want two pages per transaction at least and a file of 32 KiB at least", txs-before, pages, size, ok1, ok2)
	}
}

func TestLeaderKill(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c := newE2ECluster(t, true)
	hk, seoul, tokyo := e2eThreeNodes(t, c)
	all := []*e2eNode{hk, seoul, tokyo}
	c.createUser("cy@example.com", e2ePassword)

	var acked []e2eLoginResponse
	for i, platform := range []string{"web", "android", "mac"} {
		acked = append(acked, e2eLogin(t, all[i].url(), "cy@example.com", e2ePassword, platform, platform+"-1"))
	}
	st := hk.waitMembers(e2eStartLimit, hk.id, seoul.id, tokyo.id)
	leader, survivors := e2eLeaderAndFollowers(t, st, all...)

	leader.kill()
	killed := time.Now()
	var after e2eLoginResponse
	var lastErr error
	e2eWaitFor(t, 20*time.Second, "a login acknowledged by a survivor after the leader's SIGKILL", func() bool {
		for _, s := range survivors {
			lr, _, err := e2eTryLogin(s.url(), "cy@example.com", e2ePassword, "windows", "pc-1")
			if err == nil {
				after = lr
				return true
			}
			lastErr = err
		}
		return false
	})
	t.Logf("SIGKILL of leader %s to first acknowledged write: %s (last error before: %v)",
		leader.id, time.Since(killed).Round(time.Millisecond), lastErr)

	var newLeader string
	e2eWaitFor(t, 10*time.Second, "a survivor to report a new leader among the survivors", func() bool {
		s := survivors[0].status()
		newLeader = s.GetLeaderId()
		return newLeader == survivors[0].id || newLeader == survivors[1].id
	})
	for _, s := range survivors {
		for i, lr := range append(acked, after) {
			ct := e2eCheckToken(t, s.url(), lr.AccessToken, e2eLinear)
			if !ct.GetActive() {
				t.Errorf("after the leader's kill, CheckToken LINEARIZABLE on %s of login %d (index %d): inactive (%q); want active",
					s.id, i, lr.Index, ct.GetReason())
			}
		}
	}

	// Restart the killed node with nothing but its data dir and the secrets:
	// it finds its identity and addresses there and rejoins.
	target := survivors[0].status().GetCommitIndex()
	leader.restart()
	e2eWaitFor(t, e2eStartLimit, leader.id+" alive as a voter again", func() bool {
		if leader.exited() {
			t.Fatalf("restarted %s exited with code %d", leader.id, leader.exitCode())
		}
		return e2eVotersAlive(survivors[0].status(), hk.id, seoul.id, tokyo.id)
	})
	e2eWaitFor(t, e2eStartLimit, fmt.Sprintf("%s's /readyz applied_index to reach %d", leader.id, target), func() bool {
		r, ok := leader.readyz()
		return ok && r.code == http.StatusOK && r.AppliedIndex >= target
	})
	// It kept its settings (issuer, audience, the Postgres directory): it
	// accepts tokens the other nodes issued, while it was down and since,
	// it logs a Postgres user in, and the others accept what it issues.
	ct := e2eCheckToken(t, leader.url(), after.AccessToken, e2eLinear)
	if !ct.GetActive() {
		t.Errorf("CheckToken LINEARIZABLE on the restarted %s for a login acknowledged by a survivor while it was down: inactive (%q); want active",
			leader.id, ct.GetReason())
	}
	since := e2eLogin(t, survivors[1].url(), "cy@example.com", e2ePassword, "other", "box-1")
	if ct := e2eCheckToken(t, leader.url(), since.AccessToken, e2eLinear); !ct.GetActive() {
		t.Errorf("CheckToken LINEARIZABLE on the restarted %s for a token %s issued after the restart: inactive (%q); want active",
			leader.id, survivors[1].id, ct.GetReason())
	}
	mine, code, err := e2eTryLogin(leader.url(), "cy@example.com", e2ePassword, "ios", "phone-1")
	if err != nil {
		t.Fatalf("login of a Postgres user through the restarted %s: status %d, %v; want 200", leader.id, code, err)
	}
	for _, s := range survivors {
		if ct := e2eCheckToken(t, s.url(), mine.AccessToken, e2eLinear); !ct.GetActive() {
			t.Errorf("CheckToken LINEARIZABLE on %s for the token the restarted %s issued: inactive (%q); want active",
				s.id, leader.id, ct.GetReason())
		}
	}
}

func TestBadConfig(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c := newE2ECluster(t, false)
	secrets := []string{"SESSIOND_KEK=" + c.kek}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() }) // the parallel subtests run after this function returns
	cases := []struct {
		name  string
		env   []string
		flags []string
		code  int
		want  []string
	}{
		{"bootstrap_expect with join", secrets, []string{"--join", "127.0.0.1:1"}, 2,
			[]string{"bootstrap_expect and join together"}},
		{"bootstrap with bootstrap_expect", secrets, []string{"--bootstrap"}, 2,
			[]string{"bootstrap_expect and bootstrap together"}},
		{"malformed region", secrets, []string{"--region", "Hong Kong"}, 2,
			[]string{`region "Hong Kong"`}},
		{"every problem named at once", secrets, []string{"--region", "Hong Kong", "--join", "http://127.0.0.1:1", "--log-level", "loud"}, 2,
			[]string{`region "Hong Kong"`, "bootstrap_expect and join together", `log-level "loud"`, `join "http://127.0.0.1:1": want a member's peer address`}},
		{"port in use", secrets, []string{"--http-addr", busy.Addr().String()}, 1,
			[]string{"http-addr " + busy.Addr().String(), "address already in use"}},
		{"the removed cluster secret", append([]string{"SESSIOND_CLUSTER_SECRET=" + randomSecret()}, secrets...), nil, 2,
			[]string{"SESSIOND_CLUSTER_SECRET: the shared cluster secret was removed", "operator token"}},
		{"the removed cluster secret flag", secrets, []string{"--cluster-secret-file", "/etc/sessiond/cluster-secret"}, 2,
			[]string{"--cluster-secret-file: the shared cluster secret was removed"}},
		{"no peer TLS", secrets, []string{"--tls-ca-file=", "--tls-cert-file=", "--tls-key-file="}, 2,
			[]string{"tls: ca_file, cert_file and key_file are required", "insecure_plaintext"}},
		{"no gossip key", secrets, []string{"--gossip-key-file="}, 2,
			[]string{"gossip key: set gossip-key-file or SESSIOND_GOSSIP_KEY"}},
		{"another node's certificate", secrets, e2eTLSFlags(t, "tokyo-1"), 1,
			[]string{`certificate names node "tokyo-1", want node "hk-1"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"agent", "--config", "../../deploy/config/hk.yaml", "--data-dir", t.TempDir(),
				"--http-addr", e2eAddr(t), "--raft-addr", e2eAddr(t), "--gossip-addr", e2eAddr(t),
				"--advertise-http=", "--advertise-raft=", "--advertise-gossip=", "--gossip-key-file=" + c.gossipKey,
				"--database-url=", "--migrate=false", "--wan=false"}
			args = append(args, e2eTLSFlags(t, "hk-1")...)
			p := e2eStartProc(t, "agent", e2eEnv(tc.env...), append(args, tc.flags...)...)
			e2eWaitFor(t, 20*time.Second, "the agent to refuse to start", p.exited)
			if got := p.exitCode(); got != tc.code {
				t.Errorf("exit code %d; want %d", got, tc.code)
			}
			out := p.stderr()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("stderr %q; want it to contain %q", out, w)
				}
			}
		})
	}
}

func TestClusterAPIAuth(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c := newE2ECluster(t, false)
	hk := c.startNode(e2eNodeOpts{Region: "hk"})
	hk.waitReady(e2eStartLimit)
	seoul := c.startNode(e2eNodeOpts{Region: "seoul", Join: []string{hk.raftAddr}})
	before := hk.waitMembers(e2eStartLimit, hk.id, seoul.id)
	seoul.waitReady(e2eStartLimit)

	ctx := context.Background()
	join := &clusterv1.JoinRequest{NodeId: "intruder-1", RaftAddr: "127.0.0.1:1", ApiAddr: "127.0.0.1:2", Region: "hk", Voter: true}
	for _, n := range []*e2eNode{hk, seoul} {
		// No credential, and a bearer that is no operator token (what the
		// shared cluster secret was once).
		for name, token := range map[string]string{"no credential": "", "a random bearer": base64.RawURLEncoding.EncodeToString(e2eRandom(t, 32))} {
			var cl = clusterrpc.NewClient(n.httpAddr, clusterrpc.ClientOptions{Token: token, HTTPClient: e2eHTTP, Scheme: "https"})
			_, jerr := cl.Join(ctx, connect.NewRequest(join))
			_, rerr := cl.Remove(ctx, connect.NewRequest(&clusterv1.RemoveRequest{NodeId: seoul.id, Force: true}))
			_, serr := cl.Status(ctx, connect.NewRequest(&clusterv1.StatusRequest{}))
			for call, err := range map[string]error{"Join": jerr, "Remove": rerr, "Status": serr} {
				if got := connect.CodeOf(err); got != connect.CodeUnauthenticated {
					t.Errorf("%s on %s with %s: code %v (err %v); want unauthenticated", call, n.id, name, got, err)
				}
			}
		}
	}
	// The CLI with a forged token, an operator token with cluster:read only
	// (Remove needs cluster:write), and a revoked token.
	forged := filepath.Join(t.TempDir(), "forged.token")
	if err := os.WriteFile(forged, []byte("sdo_0123456789abcdef01234567.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cli := e2eCLI(t, "", "cluster", "remove", seoul.id, "--addr", seoul.url(), "--token-file", forged); cli.code == 0 || !strings.Contains(cli.stderr, "unauthenticated") {
		t.Errorf("cluster remove with a forged token: exit %d, stderr %q; want nonzero and 'unauthenticated'", cli.code, cli.stderr)
	}
	reader := e2eCreateToken(t, hk, "reader", "cluster:read")
	if st := e2eCLI(t, "", "cluster", "status", "--addr", seoul.url(), "--token-file", reader); st.code != 0 {
		t.Errorf("cluster status with a cluster:read token: exit %d, stderr %q; want 0", st.code, st.stderr)
	}
	if cli := e2eCLI(t, "", "cluster", "remove", seoul.id, "--addr", seoul.url(), "--token-file", reader); cli.code == 0 || !strings.Contains(cli.stderr, "permission_denied") || !strings.Contains(cli.stderr, "cluster:write") {
		t.Errorf("cluster remove with a cluster:read token: exit %d, stderr %q; want nonzero, permission_denied naming cluster:write", cli.code, cli.stderr)
	}
	if rv := e2eCLI(t, "", "operator", "token", "revoke", "reader", "--socket", filepath.Join(seoul.dataDir, "operator.sock")); rv.code != 0 {
		t.Fatalf("operator token revoke reader: exit %d, stderr %q; want 0", rv.code, rv.stderr)
	}
	for _, n := range []*e2eNode{hk, seoul} {
		e2eWaitFor(t, 10*time.Second, "the revoked token refused by "+n.id, func() bool {
			st := e2eCLI(t, "", "cluster", "status", "--addr", n.url(), "--token-file", reader)
			return st.code != 0 && strings.Contains(st.stderr, "unauthenticated")
		})
	}
	after := hk.waitMembers(5*time.Second, hk.id, seoul.id)
	if got, want := len(after.GetMembers()), len(before.GetMembers()); got != want {
		t.Errorf("after unauthenticated calls: %d members; want %d unchanged: %s", got, want, e2eStatusText(after))
	}
}

func TestDevCommand(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	base := e2eDevBasePort(t, 3)
	dataDir := filepath.Join(t.TempDir(), "dev")
	dev := e2eStartProc(t, "dev", e2eEnv(), "dev", "--nodes", "3", "--base-port", fmt.Sprint(base), "--data-dir", dataDir)
	// The tour: log in through node 1, check in node 3, list through node 2,
	// refresh through node 3, log out through node 2, every node says the
	// token is inactive; SIGTERM stops the cluster cleanly.
	e2eWaitLine(t, dev, 60*time.Second, "Ctrl-C stops the cluster.")
	out := dev.stdout.String()
	secret := regexp.MustCompile(`Operator token \([^)]*\): (\S+)`).FindStringSubmatch(out)
	pw := regexp.MustCompile(`Demo user: (\S+)\s+password: (\S+)`).FindStringSubmatch(out)
	if secret == nil || pw == nil {
		t.Fatalf("dev tour: no operator token or demo credentials in:\n%s", out)
	}
	node := func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", base+i-1) }
	for i := 1; i <= 3; i++ {
		if !strings.Contains(out, node(i)) {
			t.Errorf("dev tour does not list node %d at %s", i, node(i))
		}
	}
	// The tour's first command works as soon as the tour is printed: the
	// first login, through node 1, with no retry.
	lr, code, err := e2eTryLogin(node(1), pw[1], pw[2], "web", "laptop")
	if err != nil {
		t.Fatalf("the tour's login through node 1 right after the tour was printed: status %d, %v; want 200", code, err)
	}
	tokFile := filepath.Join(t.TempDir(), "dev.token")
	if err := os.WriteFile(tokFile, []byte(secret[1]), 0o600); err != nil {
		t.Fatal(err)
	}
	st := e2eCLI(t, "", "cluster", "status", "--addr", node(3), "--token-file", tokFile, "-o", "json")
	if st.code != 0 {
		t.Fatalf("cluster status with the printed operator token: exit %d, stderr %q; want 0", st.code, st.stderr)
	}
	if s := e2eParseStatus(t, st.stdout); !e2eVotersAlive(s, "hk-1", "seoul-1", "tokyo-1") {
		t.Errorf("cluster status right after the tour: %s; want hk-1, seoul-1 and tokyo-1 alive voters with one leader", e2eStatusText(s))
	}
	if lr.AccessToken == "" || lr.RefreshToken == "" || lr.Index == 0 {
		t.Fatalf("login through node 1: %+v; want both tokens and an index", lr)
	}
	if ct := e2eCheckToken(t, node(3), lr.AccessToken, e2eLinear); !ct.GetActive() {
		t.Errorf("CheckToken on node 3: inactive (%q); want active", ct.GetReason())
	}
	req, _ := http.NewRequest(http.MethodGet, node(2)+"/auth/sessions", nil)
	req.Header.Set("Authorization", "Bearer "+lr.AccessToken)
	resp, err := e2eHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Sessions []struct {
			SessionID string `json:"session_id"`
			DeviceID  string `json:"device_id"`
			Current   bool   `json:"current"`
		} `json:"sessions"`
	}
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(list.Sessions) != 1 ||
		list.Sessions[0].SessionID != lr.SessionID || list.Sessions[0].DeviceID != "laptop" || !list.Sessions[0].Current {
		t.Errorf("GET /auth/sessions on node 2: status %d, %+v (err %v); want 200 and the one current laptop session %s",
			resp.StatusCode, list.Sessions, err, lr.SessionID)
	}
	code, body, err := e2ePost(node(3)+"/auth/token", map[string]string{"refresh_token": lr.RefreshToken})
	var refreshed e2eLoginResponse
	if err != nil || code != http.StatusOK || json.Unmarshal(body, &refreshed) != nil || refreshed.AccessToken == "" {
		t.Fatalf("refresh on node 3: status %d, body %s, err %v; want 200 and a new pair", code, body, err)
	}
	if refreshed.SessionID != lr.SessionID || refreshed.RefreshToken == lr.RefreshToken {
		t.Errorf("refresh: session %q, refresh token rotated %t; want session %q and a new refresh token",
			refreshed.SessionID, refreshed.RefreshToken != lr.RefreshToken, lr.SessionID)
	}
	code, body, err = e2ePost(node(2)+"/auth/logout", "", "Authorization", "Bearer "+lr.AccessToken)
	if err != nil || code != http.StatusNoContent {
		t.Fatalf("logout on node 2: status %d, body %s, err %v; want 204", code, body, err)
	}
	for i := 1; i <= 3; i++ {
		for name, tok := range map[string]string{"first": lr.AccessToken, "refreshed": refreshed.AccessToken} {
			if ct := e2eCheckToken(t, node(i), tok, e2eLinear); ct.GetActive() {
				t.Errorf("after logout, CheckToken on node %d of the %s access token: active; want inactive", i, name)
			}
		}
	}

	start := time.Now()
	dev.stop(30 * time.Second)
	if got := dev.exitCode(); got != 0 {
		t.Errorf("sessiond dev after SIGTERM: exit code %d; want 0", got)
	}
	t.Logf("sessiond dev stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	// --data-dir was given: it is the operator's, kept on exit.
	if _, err := os.Stat(filepath.Join(dataDir, "hk-1")); err != nil {
		t.Errorf("after exit, the --data-dir given to sessiond dev: %v; want it kept (only the default temporary dir is removed)", err)
	}
}

// e2eDevBasePort finds a base port for `sessiond dev --nodes n`: the API
// ports base.., the Raft ports base-1080.. and the gossip ports base-134..
// all free (below the kernel's ephemeral range, so no outgoing connection
// takes them meanwhile).
func e2eDevBasePort(t *testing.T, n int) int {
	t.Helper()
	e2ePortsMu.Lock()
	defer e2ePortsMu.Unlock()
	for base := 21000 + int(e2eRandom(t, 1)[0])*20; base < 32000; base += 37 {
		ok := true
		var ports []int
		for i := range n {
			for _, p := range []int{base + i, base - 1080 + i, base - 134 + i} {
				ports = append(ports, p)
				ok = ok && !e2ePorts[p] && e2ePortFree(p)
			}
		}
		if ok {
			for _, p := range ports {
				e2ePorts[p] = true
			}
			return base
		}
	}
	t.Fatal("no free base port for sessiond dev")
	return 0
}
