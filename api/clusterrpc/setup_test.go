package clusterrpc_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/api/callerauth"
	"github.com/sessiond/sessiond/api/clusterrpc"
	"github.com/sessiond/sessiond/authsvc/callers"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1/clusterv1connect"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/clustertest"
	"github.com/sessiond/sessiond/cluster/pki"
)

// counterFSM counts commands; while gate is non-nil, Apply waits on it.
type counterFSM struct {
	mu    sync.Mutex
	count uint64
	last  uint64
	gate  chan struct{}
}

func (f *counterFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	g := f.gate
	f.mu.Unlock()
	if g != nil {
		<-g
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if l.Index > f.last {
		f.last = l.Index
		f.count++
	}
	return []byte(fmt.Sprint(f.count))
}

func (f *counterFSM) Count() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count
}

// block makes Apply wait until the returned func is called.
func (f *counterFSM) block() (release func()) {
	g := make(chan struct{})
	f.mu.Lock()
	f.gate = g
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			f.gate = nil
			f.mu.Unlock()
			close(g)
		})
	}
}

func (f *counterFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("not supported") }
func (f *counterFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type testNode struct {
	node   *cluster.Node
	gossip *cluster.Gossip
	fsm    *counterFSM
	srv    *httptest.Server
	client clusterv1connect.ClusterServiceClient
}

func fastGossip(c *memberlist.Config) {
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = 500 * time.Millisecond
	c.SuspicionMult = 1
	c.SuspicionMaxTimeoutMult = 1
	c.TCPTimeout = 500 * time.Millisecond
}

// startNodes starts an n-node Raft cluster, a gossip member and an HTTP
// server with the ClusterService handler per node.
func startNodes(t *testing.T, n int) []*testNode {
	t.Helper()
	fsms := make([]*counterFSM, n)
	nodes := clustertest.StartCluster(t, n, func(i int) raft.FSM { fsms[i] = &counterFSM{}; return fsms[i] })
	out := make([]*testNode, n)
	for i, node := range nodes {
		out[i] = attach(t, node, fsms[i], out[:i])
	}
	waitGossip(t, out)
	return out
}

// attach starts gossip (joining peers) and the API server for node.
func attach(t *testing.T, node *cluster.Node, fsm *counterFSM, peers []*testNode) *testNode {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	g, err := cluster.NewGossip(cluster.GossipConfig{
		NodeID: node.ID(), Region: node.Region(), APIAddr: srv.Listener.Addr().String(), RaftAddr: node.RaftAddr(),
		Voter: true, Version: "test", Bind: "127.0.0.1:0", Logger: clustertest.Logger(), Configure: fastGossip,
		SecretKey: []byte("0123456789abcdef"), ClusterID: node.ClusterID,
		AppliedIndex: node.AppliedIndex, MetaRefreshInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Shutdown() })
	if len(peers) > 0 {
		if _, err := g.Join([]string{peers[0].gossip.Addr()}); err != nil {
			t.Fatal(err)
		}
	}
	node.AttachGossip(g)
	path, h := clusterrpc.NewHandler(node, clusterrpc.Options{})
	mux := http.NewServeMux()
	mux.Handle(path, h)
	// The real caller-authentication layer in front, reading the client
	// certificates the TLS layer verified, as cmd/sessiond wires it.
	routes := callerauth.Routes{}
	for proc, scope := range clusterrpc.Scopes {
		routes[proc] = callerauth.Rule{Scope: scope}
	}
	ca := clustertest.TestPKI(t)
	srv.Config.Handler = callerauth.New(callers.NewAuthenticator(callers.Config{TrustDomain: ca.TrustDomain, CertIdentity: certIdentity}), routes, nil, mux)
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: caPool(ca),
		Certificates: []tls.Certificate{tlsCert(t, ca.NodeFiles(t, node.ID()))}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &testNode{node: node, gossip: g, fsm: fsm, srv: srv,
		client: clusterrpc.NewClient(srv.Listener.Addr().String(), clusterrpc.ClientOptions{
			HTTPClient: clientAs(t, pki.Identity{TrustDomain: ca.TrustDomain, Kind: pki.KindOperator, Name: "ops"}), Scheme: "https"})}
}

func certIdentity(c *x509.Certificate) (callers.CertIdentity, error) {
	id, err := pki.IdentityFromCert(c)
	return callers.CertIdentity{TrustDomain: id.TrustDomain, Kind: string(id.Kind), Name: id.Name}, err
}

func caPool(ca *clustertest.PKI) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.CA.Cert)
	return p
}

func tlsCert(t *testing.T, f pki.Files) tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// clientAs returns an HTTP client that trusts the test CA and presents a
// certificate naming id (none for the zero identity).
func clientAs(t *testing.T, id pki.Identity) *http.Client {
	t.Helper()
	ca := clustertest.TestPKI(t)
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: caPool(ca)}
	if id.Name != "" {
		cfg.Certificates = []tls.Certificate{tlsCert(t, ca.Issue(t, id, time.Hour, time.Time{}))}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
}

func waitGossip(t *testing.T, nodes []*testNode) {
	t.Helper()
	clustertest.WaitFor(t, 5*time.Second, "every gossip member sees every node alive", func() bool {
		for _, a := range nodes {
			for _, b := range nodes {
				if h, ok := a.gossip.Health(b.node.ID()); !ok || h != cluster.HealthAlive {
					return false
				}
			}
		}
		return true
	})
}

func leaderOf(t *testing.T, nodes []*testNode) (leader *testNode, followers []*testNode) {
	t.Helper()
	raw := make([]*cluster.Node, len(nodes))
	for i := range nodes {
		raw[i] = nodes[i].node
	}
	l := clustertest.Leader(t, raw, 5*time.Second)
	for _, n := range nodes {
		if n.node == l {
			leader = n
		} else {
			followers = append(followers, n)
		}
	}
	return leader, followers
}
