package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/password"
	"github.com/sessiond/sessiond/authsvc/users"
	"github.com/sessiond/sessiond/cluster/clustertest"
)

// testCluster is N in-process nodes, wired exactly as `sessiond agent`
// wires them, on real loopback TCP ports.
type testCluster struct {
	t         testing.TB
	nodes     []*node
	kek       string
	gossipKey string
	issuer    string
	pki       *clustertest.PKI
}

// testLogger discards logs unless SESSIOND_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("SESSIOND_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testConfig is node i's configuration: free ports, a temp data dir, the
// cluster's shared keys, a node certificate of the test's throwaway CA
// (peers talk mutual TLS; the API is h2c on loopback), half-speed LAN
// timeouts and cheap argon2 parameters (tests measure behaviour, not
// hashing cost).
func (tc *testCluster) testConfig(i int) Config {
	cfg := defaultConfig()
	cfg.dev = true
	cfg.NodeID = devRegions[i] + "-1"
	cfg.Region = devRegions[i]
	cfg.DataDir = filepath.Join(tc.t.TempDir(), cfg.NodeID)
	cfg.HTTPAddr, cfg.RaftAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.kek = tc.kek
	cfg.gossipKeyEnv = tc.gossipKey
	f := tc.pki.NodeFiles(tc.t, cfg.NodeID)
	cfg.TLS = TLSConfig{CAFile: f.CAFile, CertFile: f.CertFile, KeyFile: f.KeyFile, TrustDomain: tc.pki.TrustDomain}
	cfg.plainAPI = true
	cfg.Autopilot.Stabilization = 200 * time.Millisecond
	cfg.Auth.Issuer = tc.issuer
	cfg.Auth.Password = PasswordConfig{MemoryKiB: 1024, Time: 1, Threads: 1}
	cfg.Auth.ServiceClients = append(cfg.Auth.ServiceClients, tcServiceClient(tc.t))
	t := clustertest.Timeouts()
	cfg.raftTimeouts = &t
	return cfg
}

// startTestCluster starts n nodes (the first bootstraps, the others join
// it) and waits until all are voters, caught up, and a signing key exists.
// mutate, if not nil, adjusts node i's config before it starts.
func startTestCluster(t testing.TB, n int, mutate func(i int, c *Config)) *testCluster {
	t.Helper()
	var kek [32]byte
	if _, err := rand.Read(kek[:]); err != nil {
		t.Fatal(err)
	}
	tc := &testCluster{t: t, kek: base64.StdEncoding.EncodeToString(kek[:]), issuer: "https://auth.test",
		gossipKey: base64.StdEncoding.EncodeToString(kek[:16]), pki: clustertest.TestPKI(t)}
	for i := range n {
		cfg := tc.testConfig(i)
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Join = []string{tc.nodes[0].raft.RaftAddr()}
		}
		if mutate != nil {
			mutate(i, &cfg)
		}
		tc.start(cfg)
	}
	tc.waitConverged(30 * time.Second)
	clustertest.WaitFor(t, 30*time.Second, "a signing key on every node", func() bool {
		for _, nd := range tc.nodes {
			if len(nd.auth.PublishedKeys()) == 0 {
				return false
			}
		}
		return true
	})
	return tc
}

// start starts one node with cfg and registers its shutdown.
func (tc *testCluster) start(cfg Config) *node {
	tc.t.Helper()
	if err := cfg.Validate(); err != nil {
		tc.t.Fatalf("config of %s: %v", cfg.NodeID, err)
	}
	nd, err := startNode(context.Background(), cfg, testLogger().With("node", cfg.NodeID))
	if err != nil {
		tc.t.Fatalf("start %s: %v", cfg.NodeID, err)
	}
	tc.nodes = append(tc.nodes, nd)
	tc.t.Cleanup(func() { tc.stop(nd) })
	return nd
}

// stop closes a node (idempotent).
func (tc *testCluster) stop(nd *node) {
	if nd.closed {
		return
	}
	nd.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nd.close(ctx)
	// Keep-alive connections to the stopped node are dead: a client reusing
	// one after a restart on the same address would read EOF.
	http.DefaultClient.CloseIdleConnections()
}

// leader returns the node that leads, waiting for one.
func (tc *testCluster) leader() *node {
	tc.t.Helper()
	var l *node
	clustertest.WaitFor(tc.t, 20*time.Second, "a leader", func() bool {
		for _, nd := range tc.nodes {
			if !nd.closed && nd.raft.IsLeader() {
				l = nd
				return true
			}
		}
		return false
	})
	return l
}

// waitConverged waits until every running node is a voter and has applied
// the leader's commit index.
func (tc *testCluster) waitConverged(timeout time.Duration) {
	tc.t.Helper()
	clustertest.WaitFor(tc.t, timeout, "every node a voter and caught up", func() bool {
		var l *node
		running := 0
		for _, nd := range tc.nodes {
			if nd.closed {
				continue
			}
			running++
			if nd.raft.IsLeader() {
				l = nd
			}
		}
		if l == nil {
			return false
		}
		servers, err := l.raft.Servers()
		if err != nil || len(servers) < running {
			return false
		}
		for _, s := range servers {
			if !s.Voter { // joining nodes are promoted after the stabilization period
				return false
			}
		}
		commit := l.raft.CommitIndex()
		for _, nd := range tc.nodes {
			if !nd.closed && nd.raft.AppliedIndex() < commit {
				return false
			}
		}
		return true
	})
}

// createUser creates a user through node 0's service.
func (tc *testCluster) createUser(email, password string, roles ...string) users.User {
	tc.t.Helper()
	u, err := tc.nodes[0].auth.CreateUser(context.Background(), authsvc.NewUserInput{
		Email: email, Password: password, DisplayName: "Test User", OrgName: "Test Org",
		Country: "TH", OrgType: users.OrgCustomer, Roles: roles,
	})
	if err != nil {
		tc.t.Fatalf("create user %s: %v", email, err)
	}
	return u
}

// The test cluster's own service client: what a service calling checks,
// watches and admin RPCs would hold (production defaults need a caller
// credential for all of them).
const (
	tcServiceID     = "tc-service"
	tcServiceSecret = "tc-service-secret-0123456789"
)

var tcServiceScopes = []string{"check", "watch:details", "admin", "introspect", "revoke", "metrics", "reflection"}

// tcServiceClient returns the test service client's configuration.
func tcServiceClient(t testing.TB) ServiceClient {
	t.Helper()
	h, err := password.NewHasher(password.Config{Params: password.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := h.Hash(tcServiceSecret)
	if err != nil {
		t.Fatal(err)
	}
	return ServiceClient{ID: tcServiceID, SecretHash: hash, Scopes: tcServiceScopes}
}

// basicAuth is a RoundTripper that adds a service client's Basic
// credential to every request.
type basicAuth struct {
	id, secret string
	base       http.RoundTripper
}

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.id, b.secret)
	return b.base.RoundTrip(r)
}

// tcHTTP is an HTTP client that authenticates as the test service client.
func tcHTTP() *http.Client {
	return &http.Client{Transport: basicAuth{id: tcServiceID, secret: tcServiceSecret, base: http.DefaultTransport}}
}
