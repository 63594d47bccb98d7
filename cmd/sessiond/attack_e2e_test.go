package main

// Attacks on real sessiond processes (issue 8): each test performs one and
// sees it refused, with nothing changed.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1/clusterv1connect"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/clustertest"
	"github.com/sessiond/sessiond/cluster/pki"
)

// atTwoNodes starts hk (bootstraps) and seoul (joins it) and returns them
// once both are alive voters.
func atTwoNodes(t *testing.T, c *e2eCluster) (hk, seoul *e2eNode) {
	t.Helper()
	hk = c.startNode(e2eNodeOpts{Region: "hk"})
	hk.waitReady(e2eStartLimit)
	seoul = c.startNode(e2eNodeOpts{Region: "seoul", Join: []string{hk.raftAddr}})
	hk.waitMembers(e2eStartLimit, hk.id, seoul.id)
	seoul.waitReady(e2eStartLimit)
	return hk, seoul
}

// atTLSStream is a raft.StreamLayer speaking the peer port's protocol
// (TLS with the Raft ALPN name, then the cluster-id preamble) with a
// configuration the attacker chooses.
type atTLSStream struct {
	net.Listener
	cfg       *tls.Config
	clusterID string
}

func (s *atTLSStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), s.cfg)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(append([]byte{'S', 'D', 'R', '1', byte(len(s.clusterID))}, s.clusterID...)); err != nil {
		c.Close()
		return nil, err
	}
	var l [1]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := io.ReadFull(c, make([]byte, l[0])); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// atAttacker is hashicorp/raft's own NetworkTransport: on plain TCP when cfg
// is nil (as in the issue), else over atTLSStream.
func atAttacker(t *testing.T, cfg *tls.Config, clusterID string) raft.Transport {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var tr *raft.NetworkTransport
	if cfg == nil {
		ln.Close()
		tr, err = raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 1, 3*time.Second, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
	} else {
		tr = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream: &atTLSStream{Listener: ln, cfg: cfg, clusterID: clusterID}, MaxPool: 1, Timeout: 3 * time.Second, Logger: hclog.NewNullLogger()})
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// atClientTLS is a TLS client configuration presenting files' certificate
// and trusting the run's CA, for ALPN protocol alpn.
func atClientTLS(t *testing.T, f pki.Files, alpn string) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(e2ePKI.CA.Cert)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, NextProtos: []string{alpn}, ServerName: "127.0.0.1"}
}

// atHandshake completes a TLS handshake with addr and reads: with TLS 1.3 a
// server refuses a client certificate only after the client finished its
// side, so the refusal shows on the first read.
func atHandshake(addr string, cfg *tls.Config) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	return err
}

// atState is what an attack must not change on a node.
type atState struct {
	term, lastIndex float64
	leader          string
}

func atStateOf(t *testing.T, n *e2eNode) atState {
	t.Helper()
	term, ok1 := n.metric("sessiond_raft_term")
	last, ok2 := n.metric("sessiond_raft_last_index")
	s := n.status()
	if !ok1 || !ok2 || s == nil {
		t.Fatalf("%s: no metrics or status", n.id)
	}
	return atState{term: term, lastIndex: last, leader: s.GetLeaderId()}
}

// atRaftAttack sends AppendEntries (carrying marker as a command), RequestVote
// and TimeoutNow to target claiming to be claimID, each far ahead in term,
// and fails the test for every one that is not refused.
func atRaftAttack(t *testing.T, tr raft.Transport, target *e2eNode, claimID string, before atState, marker []byte) {
	t.Helper()
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(claimID), Addr: []byte(tr.LocalAddr())}
	term := uint64(before.term) + 100
	addr := raft.ServerAddress(target.raftAddr)
	id := raft.ServerID(target.id)
	var ae raft.AppendEntriesResponse
	//lint:ignore SA1019 the attacker fills the legacy field too: rpcverify checks it against the header
	err := tr.AppendEntries(id, addr, &raft.AppendEntriesRequest{RPCHeader: hdr, Term: term, Leader: []byte(tr.LocalAddr()),
		PrevLogEntry: uint64(before.lastIndex), PrevLogTerm: uint64(before.term),
		Entries:           []*raft.Log{{Index: uint64(before.lastIndex) + 1, Term: term, Type: raft.LogCommand, Data: marker}},
		LeaderCommitIndex: uint64(before.lastIndex) + 1}, &ae)
	if err == nil {
		t.Errorf("AppendEntries claiming %s: answered (success %t, term %d); want the connection refused", claimID, ae.Success, ae.Term)
	}
	var rv raft.RequestVoteResponse
	err = tr.RequestVote(id, addr, &raft.RequestVoteRequest{RPCHeader: hdr, Term: term + 1, LastLogIndex: 1 << 40, LastLogTerm: term}, &rv)
	if err == nil {
		t.Errorf("RequestVote claiming %s: answered (granted %t); want the connection refused", claimID, rv.Granted)
	}
	var tn raft.TimeoutNowResponse
	if err := tr.TimeoutNow(id, addr, &raft.TimeoutNowRequest{RPCHeader: hdr}, &tn); err == nil {
		t.Errorf("TimeoutNow claiming %s: answered; want the connection refused", claimID)
	}
}

// atUnchanged checks that the attack left no trace: the node's term did not
// jump to the attacker's, it follows the same leader, and marker is nowhere
// in its data dir nor among its published keys.
func atUnchanged(t *testing.T, n *e2eNode, before atState, marker []byte) {
	t.Helper()
	after := atStateOf(t, n)
	if after.term >= before.term+100 || after.leader != before.leader {
		t.Errorf("%s after the attack: term %v, leader %q; want term below %v (the attacker's) and leader %q", n.id, after.term, after.leader, before.term+100, before.leader)
	}
	err := filepath.WalkDir(n.dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(path)
		if err == nil && bytes.Contains(raw, marker) {
			t.Errorf("the attacker's payload is in %s", path)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	resp, err := e2eHTTP.Get(n.url() + "/.well-known/paserk")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(body, marker) {
		t.Errorf("%s publishes the attacker's key", n.id)
	}
}

func atMarker(t *testing.T) []byte {
	return []byte("attacker-key-" + base64.RawURLEncoding.EncodeToString(e2eRandom(t, 12)))
}

// TestAttackRaft: hashicorp/raft's own transport sends AppendEntries (with
// the attacker's key), RequestVote and TimeoutNow to a follower, claiming
// to be the leader, far ahead in term: without a certificate (as in the
// issue), with a certificate of another CA, and with a genuine node
// certificate of another node. Every RPC is refused, the follower's term,
// leader, data and published keys are unchanged, and it logs why.
func TestAttackRaft(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	cases := []struct {
		name string
		// attacker returns the transport; clusterID is the cluster's.
		attacker func(t *testing.T, clusterID string) raft.Transport
		wantLog  string
	}{
		{"no certificate", func(t *testing.T, _ string) raft.Transport { return atAttacker(t, nil, "") },
			"does not look like a TLS handshake"},
		{"a certificate of another CA", func(t *testing.T, id string) raft.Transport {
			other := clustertest.NewPKI(t) // same trust domain, same node id as the leader
			cfg := atClientTLS(t, other.NodeFiles(t, "hk-1"), "sessiond-raft/1")
			cfg.InsecureSkipVerify = true // the attacker trusts anything; the node must not
			return atAttacker(t, cfg, id)
		}, "certificate signed by unknown authority"},
		{"tokyo-1's certificate claiming to be hk-1", func(t *testing.T, id string) raft.Transport {
			return atAttacker(t, atClientTLS(t, e2ePKI.NodeFiles(t, "tokyo-1"), "sessiond-raft/1"), id)
		}, `the RPC claims to come from node "hk-1", the connection's certificate names node "tokyo-1"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newE2ECluster(t, false)
			hk, seoul := atTwoNodes(t, c)
			before := atStateOf(t, seoul)
			marker := atMarker(t)
			atRaftAttack(t, tc.attacker(t, seoul.status().GetClusterId()), seoul, hk.id, before, marker)
			atUnchanged(t, seoul, before, marker)
			log := strings.ReplaceAll(seoul.stderr(), `\"`, `"`)
			if !strings.Contains(log, "peer connection refused") || !strings.Contains(log, tc.wantLog) {
				t.Errorf("seoul's log: want a refused peer connection, %q:\n%s", tc.wantLog, log)
			}
		})
	}
}

func TestAttackExpiredCertificate(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c := newE2ECluster(t, false)
	hk := c.startNode(e2eNodeOpts{Region: "hk"})
	hk.waitReady(e2eStartLimit)
	dir := t.TempDir()
	issued := time.Now().Add(-400 * 24 * time.Hour)
	cert, key, err := e2ePKI.CA.Issue(pki.LeafOptions{Identity: pki.Identity{TrustDomain: "sessiond", Kind: pki.KindNode, Name: "tokyo-1"},
		Validity: 365 * 24 * time.Hour, Now: issued})
	if err != nil {
		t.Fatal(err)
	}
	f := pki.Files{CertFile: filepath.Join(dir, "old.pem"), KeyFile: filepath.Join(dir, "old-key.pem")}
	if err := pki.WriteFiles(f.CertFile, f.KeyFile, cert, key); err != nil {
		t.Fatal(err)
	}
	err = atHandshake(hk.raftAddr, atClientTLS(t, f, "h2"))
	if err == nil || !strings.Contains(err.Error(), "expired certificate") {
		t.Errorf("handshake with an expired node certificate: %v; want it refused as an expired certificate", err)
	}
	expiry := cert.NotAfter.UTC().Format(time.RFC3339)
	e2eWaitFor(t, 5*time.Second, "hk to log the refusal with the expiry", func() bool {
		log := hk.stderr()
		return strings.Contains(log, "peer connection refused") && strings.Contains(log, "certificate has expired") && strings.Contains(log, expiry)
	})
}

func TestAttackPlaintextClientsOnTLSPorts(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c := newE2ECluster(t, false)
	hk := c.startNode(e2eNodeOpts{Region: "hk"})
	hk.waitReady(e2eStartLimit)
	plain := &http.Client{Timeout: 5 * time.Second}
	for name, tc := range map[string]struct{ url, want string }{
		"peer port": {"http://" + hk.raftAddr + "/sessiond.cluster.v1.PeerService/Status", "mutual TLS"},
		"API port":  {"http://" + hk.httpAddr + "/readyz", "Client sent an HTTP request to an HTTPS server"},
	} {
		resp, err := plain.Get(tc.url)
		if err != nil {
			t.Errorf("%s: plain HTTP: %v; want a 400 answer saying TLS is needed", name, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: plain HTTP: %d %q; want 400 containing %q", name, resp.StatusCode, body, tc.want)
		}
	}
	// TLS without a client certificate on the peer port: refused.
	err := atHandshake(hk.raftAddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("peer port: TLS without a client certificate: %v; want it refused (certificate required)", err)
	}
}

func TestJoinChecksTheNewcomer(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c := newE2ECluster(t, false)
	hk, seoul := atTwoNodes(t, c)
	before := hk.waitMembers(e2eStartLimit, hk.id, seoul.id)

	// An operator joins an id at an address where nothing answers, and an id
	// at an address where another node answers.
	dead := e2eAddr(t)
	r := e2eCLI(t, "", "cluster", "join", "--addr", seoul.url(), "--token-file", c.opToken(hk),
		"--node-id", "osaka-1", "--raft-addr", dead, "--region", "osaka")
	if r.code == 0 || !strings.Contains(r.stderr, "no handshake with its peer address "+dead) {
		t.Errorf("cluster join of an address where nothing answers: exit %d, stderr %q; want a refusal naming the address", r.code, r.stderr)
	}
	r = e2eCLI(t, "", "cluster", "join", "--addr", seoul.url(), "--token-file", c.opToken(hk),
		"--node-id", "osaka-1", "--raft-addr", seoul.raftAddr, "--region", "osaka")
	if r.code == 0 || !strings.Contains(r.stderr, "permission_denied") || !strings.Contains(r.stderr, `want node \"osaka-1\"`) && !strings.Contains(r.stderr, `want node "osaka-1"`) {
		t.Errorf("cluster join of osaka-1 at seoul's address: exit %d, stderr %q; want permission_denied naming osaka-1", r.code, r.stderr)
	}

	// A node asks to join as another id than its certificate's, and a node
	// of another cluster asks to join.
	tr := &http.Transport{TLSClientConfig: atClientTLS(t, e2ePKI.NodeFiles(t, "tokyo-1"), "h2"), ForceAttemptHTTP2: true}
	peer := clusterv1connect.NewPeerServiceClient(&http.Client{Transport: tr, Timeout: 10 * time.Second}, "https://"+hk.raftAddr)
	ctx := context.Background()
	_, err := peer.Join(ctx, connect.NewRequest(&clusterv1.PeerServiceJoinRequest{Join: &clusterv1.JoinRequest{NodeId: "kobe-1", RaftAddr: seoul.raftAddr, Voter: true}}))
	if connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), `node "tokyo-1" asked to join as "kobe-1"`) {
		t.Errorf("Join as kobe-1 with tokyo-1's certificate: %v; want permission_denied naming both", err)
	}
	req := connect.NewRequest(&clusterv1.PeerServiceStatusRequest{})
	req.Header().Set(cluster.ClusterIDHeader, "0123456789abcdef0123456789abcdef")
	_, err = peer.Status(ctx, req)
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "0123456789abcdef0123456789abcdef") || !strings.Contains(err.Error(), before.GetClusterId()) {
		t.Errorf("a peer call from another cluster: %v; want failed_precondition naming both cluster ids", err)
	}
	after := hk.waitMembers(5*time.Second, hk.id, seoul.id)
	if len(after.GetMembers()) != len(before.GetMembers()) {
		t.Errorf("after the refused joins: %s; want the members unchanged", e2eStatusText(after))
	}
}

func TestNoSecretCrossesTheWireInClear(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c := newE2ECluster(t, false)
	hkPeer, seoulPeer := ptFreePort(t), ptFreePort(t)
	hkProxy, seoulProxy := ptNewProxy(t, hkPeer), ptNewProxy(t, seoulPeer)
	taps := map[string]*ptTap{"hk peer": hkProxy.Record(), "seoul peer": seoulProxy.Record()}
	hk := c.startNode(e2eNodeOpts{Region: "hk", Extra: []string{"--raft-addr", hkPeer, "--advertise-raft", hkProxy.Addr()}})
	hk.waitReady(e2eStartLimit)
	seoul := c.startNode(e2eNodeOpts{Region: "seoul", Join: []string{hkProxy.Addr()},
		Extra: []string{"--raft-addr", seoulPeer, "--advertise-raft", seoulProxy.Addr()}})
	hk.waitMembers(e2eStartLimit, hk.id, seoul.id)
	seoul.waitReady(e2eStartLimit)
	api := ptNewProxy(t, seoul.httpAddr)
	taps["seoul API"] = api.Record()
	base := "https://" + api.Addr()
	e2eNodes.Store(base, seoul) // checks through the proxy authenticate as to seoul

	// Through a follower: create a user (the operator's token), log in (a
	// password), check and refresh tokens, ask the cluster status (relayed to
	// the leader over the peer channel).
	const pw = "plain-password-that-must-never-show"
	tokFile := c.opToken(hk)
	r := e2eCLI(t, pw+"\n", "user", "create", "--addr", base, "--token-file", tokFile, "--password-stdin",
		"--email", "eve@example.com", "--display-name", "Eve", "--org-name", "Org", "--country", "TH", "--org-type", "SUPPLIER", "--role", "r")
	if r.code != 0 {
		t.Fatalf("user create through the proxy: exit %d, %s", r.code, r.stderr)
	}
	lr := e2eLogin(t, base, "eve@example.com", pw, "web", "laptop")
	if ct := e2eCheckToken(t, base, lr.AccessToken, e2eLinear); !ct.GetActive() {
		t.Fatalf("CheckToken through the proxy: inactive (%s)", ct.GetReason())
	}
	code, body, err := e2ePost(base+"/auth/token", map[string]string{"refresh_token": lr.RefreshToken})
	if err != nil || code != http.StatusOK {
		t.Fatalf("refresh through the proxy: %d %s %v", code, body, err)
	}
	if st := e2eCLI(t, "", "cluster", "status", "--addr", base, "--token-file", tokFile); st.code != 0 {
		t.Fatalf("cluster status through the proxy: exit %d, %s", st.code, st.stderr)
	}
	opToken, err := os.ReadFile(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{"password": pw, "operator token": strings.TrimSpace(string(opToken)), "access token": lr.AccessToken,
		"refresh token": lr.RefreshToken, "email": "eve@example.com"}
	for name, tap := range taps {
		seen := tap.Bytes()
		if len(seen) < 1000 {
			t.Errorf("%s: the proxy carried %d bytes; want the traffic of the calls above", name, len(seen))
		}
		for what, s := range secrets {
			if bytes.Contains(seen, []byte(s)) {
				t.Errorf("%s: the %s crossed the wire in clear", name, what)
			}
		}
	}
}

func TestCertificateReloadOnSIGHUP(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c := newE2ECluster(t, false)
	dir := t.TempDir()
	files := pki.Files{CAFile: e2ePKI.CAFile(), CertFile: filepath.Join(dir, "hk.pem"), KeyFile: filepath.Join(dir, "hk-key.pem")}
	issue := func() *x509.Certificate {
		cert, key, err := e2ePKI.CA.Issue(pki.LeafOptions{Identity: pki.Identity{TrustDomain: "sessiond", Kind: pki.KindNode, Name: "hk-1"},
			IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{files.CertFile, files.KeyFile} {
			_ = os.Remove(p)
		}
		if err := pki.WriteFiles(files.CertFile, files.KeyFile, cert, key); err != nil {
			t.Fatal(err)
		}
		return cert
	}
	first := issue()
	hk := c.startNode(e2eNodeOpts{Region: "hk", Extra: []string{"--tls-cert-file", files.CertFile, "--tls-key-file", files.KeyFile}})
	hk.waitReady(e2eStartLimit)
	served := func(addr, alpn string) string {
		cfg := atClientTLS(t, e2ePKI.NodeFiles(t, "tokyo-1"), alpn)
		conn, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatalf("TLS to %s: %v", addr, err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got := served(hk.raftAddr, "sessiond-probe/1"); got != first.SerialNumber.String() {
		t.Fatalf("peer port serves serial %s; want the first certificate's %s", got, first.SerialNumber)
	}
	second := issue()
	if err := hk.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ addr, alpn string }{"peer port": {hk.raftAddr, "sessiond-probe/1"}, "API port": {hk.httpAddr, "h2"}} {
		e2eWaitFor(t, 10*time.Second, fmt.Sprintf("the %s to serve the new certificate", name), func() bool {
			return served(tc.addr, tc.alpn) == second.SerialNumber.String()
		})
	}
	if hk.exited() {
		t.Fatalf("hk exited on SIGHUP:\n%s", hk.tail(20))
	}
	if log := hk.stderr(); !strings.Contains(log, "TLS files reloaded") && !strings.Contains(log, "TLS files changed: reloaded") {
		t.Errorf("hk's log: want the reload reported:\n%s", log)
	}
	if v, ok := hk.metric(`sessiond_tls_cert_expiry_timestamp_seconds{use="peer"}`); !ok || int64(v) != second.NotAfter.Unix() {
		t.Errorf("expiry metric of the peer certificate: %v (exported %t); want %d", v, ok, second.NotAfter.Unix())
	}
	// A certificate naming another node is refused; the node keeps serving
	// its own.
	cert, key, err := e2ePKI.CA.Issue(pki.LeafOptions{Identity: pki.Identity{TrustDomain: "sessiond", Kind: pki.KindNode, Name: "seoul-1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{files.CertFile, files.KeyFile} {
		_ = os.Remove(p)
	}
	if err := pki.WriteFiles(files.CertFile, files.KeyFile, cert, key); err != nil {
		t.Fatal(err)
	}
	_ = hk.cmd.Process.Signal(syscall.SIGHUP)
	e2eWaitFor(t, 10*time.Second, "hk to refuse a certificate naming seoul-1", func() bool {
		return strings.Contains(strings.ReplaceAll(hk.stderr(), `\"`, `"`), `certificate names node "seoul-1", want node "hk-1"`)
	})
	if got := served(hk.raftAddr, "sessiond-probe/1"); got != second.SerialNumber.String() {
		t.Errorf("after a refused reload the peer port serves serial %s; want %s kept", got, second.SerialNumber)
	}
}
