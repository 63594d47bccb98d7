package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	envoyauthv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sessiond/sessiond/authsvc/callers"
	"github.com/sessiond/sessiond/authsvc/keys"
	authv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1/authv1connect"
	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1/clusterv1connect"
	operatorv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/operator/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/operator/v1/operatorv1connect"
	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1/sessionv1connect"
	"github.com/sessiond/sessiond/clients/go/token"
	"github.com/sessiond/sessiond/cluster/clustertest"
	"github.com/sessiond/sessiond/cluster/pki"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	"github.com/sessiond/sessiond/store"
)

// ---- helpers ----

// certClient is an HTTPS client trusting ca that presents a certificate
// naming id issued by issuer (nil: no client certificate).
func certClient(t *testing.T, ca, issuer *pki.CA, id pki.Identity) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	cfg := &tls.Config{RootCAs: pool}
	if issuer != nil {
		cert, key, err := issuer.Issue(pki.LeafOptions{Identity: id})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
}

func newCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(pki.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// bearerHTTP is an HTTP client that sends "Authorization: Bearer tok".
func bearerHTTP(tok string) *http.Client {
	return &http.Client{Transport: bearerAuth{tok: tok}}
}

type bearerAuth struct{ tok string }

func (b bearerAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.tok)
	return http.DefaultTransport.RoundTrip(r)
}

// opToken creates an operator token through nd with the local authority.
func opToken(t testing.TB, nd *node, name string, scopes ...string) (string, string) {
	t.Helper()
	tok, rec, err := nd.auth.CreateOperatorToken(context.Background(), localOperator, name, scopes, time.Hour)
	if err != nil {
		t.Fatalf("create operator token %s: %v", name, err)
	}
	return tok, rec.GetId()
}

func wantCode(t *testing.T, what string, err error, want connect.Code) {
	t.Helper()
	if got := connect.CodeOf(err); err == nil || got != want {
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
}

// ---- attacks ----

// TestCallerCertificates: over the node's own TLS API (peer's TLS layer
// verifies client certificates against the cluster CA), an operator
// certificate of the cluster's trust domain is the root of authority; a
// service certificate cannot make operator or admin calls; a node
// certificate may read the cluster status only; a certificate of another
// trust domain (same CA) is refused, and one of another CA fails the
// handshake.
func TestCallerCertificates(t *testing.T) {
	pk := clustertest.TestPKI(t)
	pk.TrustDomain = "acme.test" // not the default: the callers layer must use the configured one
	tc := startTestCluster(t, 1, func(_ int, c *Config) { c.plainAPI = false })
	nd := tc.nodes[0]
	url := nd.apiURL
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("API URL %s: want https (the node's own TLS)", url)
	}
	ca := pk.CA
	as := func(kind pki.Kind, name string) *http.Client {
		return certClient(t, ca, ca, pki.Identity{TrustDomain: pk.TrustDomain, Kind: kind, Name: name})
	}
	ctx := ptCtx(t, 30*time.Second)

	op := as(pki.KindOperator, "alice")
	who, err := operatorv1connect.NewOperatorServiceClient(op, url).WhoAmI(ctx, connect.NewRequest(&operatorv1.WhoAmIRequest{}))
	if err != nil || who.Msg.GetKind() != "operator" || who.Msg.GetName() != "alice" || who.Msg.GetMethod() != "certificate" {
		t.Fatalf("WhoAmI with an operator certificate: got %v, %v; want operator/alice via certificate", who, err)
	}
	if _, err := clusterv1connect.NewClusterServiceClient(op, url).Status(ctx, connect.NewRequest(&clusterv1.StatusRequest{})); err != nil {
		t.Errorf("Status with an operator certificate: %v", err)
	}
	created, err := operatorv1connect.NewOperatorServiceClient(op, url).CreateToken(ctx, connect.NewRequest(&operatorv1.CreateTokenRequest{Name: "ci", Scopes: []string{"cluster:read"}}))
	if err != nil || !strings.HasPrefix(created.Msg.GetToken(), "sdo_") || created.Msg.GetInfo().GetCreatedBy() != "operator/alice" {
		t.Fatalf("CreateToken with an operator certificate: got %v, %v; want a token created by operator/alice", created, err)
	}

	// A service certificate: checks yes, operator and admin calls no.
	svc := as(pki.KindService, "billing")
	if _, err := sessionv1connect.NewSessionServiceClient(svc, url).CheckToken(ctx, connect.NewRequest(&sessionv1.CheckTokenRequest{Token: "x"})); err != nil {
		t.Errorf("CheckToken with a service certificate: %v", err)
	}
	_, err = clusterv1connect.NewClusterServiceClient(svc, url).Remove(ctx, connect.NewRequest(&clusterv1.RemoveRequest{NodeId: nd.cfg.NodeID, Force: true}))
	wantCode(t, "Remove with a service certificate", err, connect.CodePermissionDenied)
	_, err = authv1connect.NewUserAdminServiceClient(svc, url).ListUsers(ctx, connect.NewRequest(&authv1.ListUsersRequest{}))
	wantCode(t, "ListUsers with a service certificate", err, connect.CodePermissionDenied)
	_, err = authv1connect.NewUserAdminServiceClient(svc, url).CreateOIDCClient(ctx, connect.NewRequest(&authv1.CreateOIDCClientRequest{
		Client: &authv1.OIDCClient{ClientId: "evil", Confidential: true, RedirectUris: []string{"https://evil.example/cb"}}}))
	wantCode(t, "CreateOIDCClient with a service certificate", err, connect.CodePermissionDenied)
	_, err = operatorv1connect.NewOperatorServiceClient(svc, url).CreateToken(ctx, connect.NewRequest(&operatorv1.CreateTokenRequest{Name: "evil", Scopes: []string{"admin"}}))
	wantCode(t, "CreateToken with a service certificate", err, connect.CodePermissionDenied)

	// A node certificate (a stolen node key, or a confused node): nodes
	// talk to each other over the peer listener, so on the client API it
	// reads the status and nothing more.
	peer := as(pki.KindNode, "osaka-1")
	if _, err := clusterv1connect.NewClusterServiceClient(peer, url).Status(ctx, connect.NewRequest(&clusterv1.StatusRequest{})); err != nil {
		t.Errorf("Status with a node certificate: %v", err)
	}
	_, err = clusterv1connect.NewClusterServiceClient(peer, url).Join(ctx, connect.NewRequest(&clusterv1.JoinRequest{NodeId: "osaka-1", RaftAddr: "127.0.0.1:1", Voter: true}))
	wantCode(t, "Join with a node certificate", err, connect.CodePermissionDenied)
	_, err = authv1connect.NewUserAdminServiceClient(peer, url).ListUsers(ctx, connect.NewRequest(&authv1.ListUsersRequest{}))
	wantCode(t, "ListUsers with a node certificate", err, connect.CodePermissionDenied)
	_, err = sessionv1connect.NewSessionServiceClient(peer, url).CheckToken(ctx, connect.NewRequest(&sessionv1.CheckTokenRequest{Token: "x"}))
	wantCode(t, "CheckToken with a node certificate", err, connect.CodePermissionDenied)

	// No certificate; an operator certificate of the cluster CA naming the
	// default trust domain instead of the cluster's; one of another CA.
	_, err = clusterv1connect.NewClusterServiceClient(certClient(t, ca, nil, pki.Identity{}), url).Status(ctx, connect.NewRequest(&clusterv1.StatusRequest{}))
	wantCode(t, "Status without a certificate", err, connect.CodeUnauthenticated)
	foreign := certClient(t, ca, ca, pki.Identity{TrustDomain: pki.DefaultTrustDomain, Kind: pki.KindOperator, Name: "alice"})
	_, err = clusterv1connect.NewClusterServiceClient(foreign, url).Remove(ctx, connect.NewRequest(&clusterv1.RemoveRequest{NodeId: nd.cfg.NodeID, Force: true}))
	wantCode(t, "Remove with an operator certificate of another trust domain", err, connect.CodeUnauthenticated)
	if err != nil && !strings.Contains(err.Error(), `trust domain "sessiond", not "acme.test"`) {
		t.Errorf("Remove with an operator certificate of another trust domain: %v; want the message to name both trust domains", err)
	}
	rogue := certClient(t, ca, newCA(t), pki.Identity{TrustDomain: pk.TrustDomain, Kind: pki.KindOperator, Name: "mallory"})
	if _, err := clusterv1connect.NewClusterServiceClient(rogue, url).Remove(ctx, connect.NewRequest(&clusterv1.RemoveRequest{NodeId: nd.cfg.NodeID, Force: true})); err == nil {
		t.Errorf("Remove with an operator certificate of another CA: accepted")
	}
	if servers, err := nd.raft.Servers(); err != nil || len(servers) != 1 {
		t.Errorf("membership after the refused calls: %v, %v; want the one node", servers, err)
	}
}

// TestCallerOperatorTokenAttacks: a cluster:read token cannot Remove; a
// token cannot grant more than it holds; a revoked or expired token is
// refused by every node; nothing changes.
func TestCallerOperatorTokenAttacks(t *testing.T) {
	tc := startTestCluster(t, 3, nil)
	ctx := ptCtx(t, 60*time.Second)
	cl := func(nd *node, tok string) clusterv1connect.ClusterServiceClient {
		return clusterv1connect.NewClusterServiceClient(bearerHTTP(tok), ptURL(nd))
	}
	reader, readerID := opToken(t, tc.nodes[0], "reader", "cluster:read")
	// Another node knows the token at once (one read-index on a miss).
	if _, err := cl(tc.nodes[2], reader).Status(ctx, connect.NewRequest(&clusterv1.StatusRequest{})); err != nil {
		t.Fatalf("Status with a cluster:read token through another node: %v", err)
	}
	_, err := cl(tc.nodes[2], reader).Remove(ctx, connect.NewRequest(&clusterv1.RemoveRequest{NodeId: tc.nodes[1].cfg.NodeID, Force: true}))
	wantCode(t, "Remove with a cluster:read token", err, connect.CodePermissionDenied)
	if !strings.Contains(err.Error(), "cluster:write") {
		t.Errorf("Remove with a cluster:read token: %v; want the message to name cluster:write", err)
	}
	_, err = sessionv1connect.NewSessionServiceClient(bearerHTTP(reader), ptURL(tc.nodes[1])).
		RevokeUserSessions(ctx, connect.NewRequest(&sessionv1.RevokeUserSessionsRequest{UserId: "u-1"}))
	wantCode(t, "RevokeUserSessions with a cluster:read token", err, connect.CodePermissionDenied)

	// Escalation: a token holder grants only what it holds.
	mgr, _ := opToken(t, tc.nodes[0], "manager", "tokens", "cluster:read")
	ops := operatorv1connect.NewOperatorServiceClient(bearerHTTP(mgr), ptURL(tc.nodes[1]))
	_, err = ops.CreateToken(ctx, connect.NewRequest(&operatorv1.CreateTokenRequest{Name: "escalate", Scopes: []string{"admin"}}))
	wantCode(t, "CreateToken granting admin from a token without it", err, connect.CodePermissionDenied)
	if _, err := ops.CreateToken(ctx, connect.NewRequest(&operatorv1.CreateTokenRequest{Name: "dashboards", Scopes: []string{"cluster:read"}})); err != nil {
		t.Errorf("CreateToken granting a held scope: %v", err)
	}

	// Revoked: refused by every node once applied.
	if _, err := ops.RevokeToken(ctx, connect.NewRequest(&operatorv1.RevokeTokenRequest{IdOrName: readerID})); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	for _, nd := range tc.nodes {
		clustertest.WaitFor(t, 10*time.Second, "the revoked token refused by "+nd.cfg.NodeID, func() bool {
			_, err := cl(nd, reader).Status(ctx, connect.NewRequest(&clusterv1.StatusRequest{}))
			return connect.CodeOf(err) == connect.CodeUnauthenticated
		})
	}

	// Expired: a record committed through Raft that expires in a second.
	tok, id, sum := callers.NewOperatorToken()
	now := time.Now()
	raw, err := store.EncodeCommand(&storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_PutOperatorToken{PutOperatorToken: &storev1.PutOperatorToken{
		Token: &storev1.OperatorToken{Id: id, Name: "short-lived", Scopes: []string{"cluster:read"}, SecretSha256: sum[:],
			CreatedUnixNano: now.UnixNano(), ExpiresUnixNano: now.Add(time.Second).UnixNano()}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.nodes[1].raft.Propose(ctx, raw); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 10*time.Second, "the expired token refused by every node", func() bool {
		for _, nd := range tc.nodes {
			if _, err := cl(nd, tok).Status(ctx, connect.NewRequest(&clusterv1.StatusRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
				return false
			}
		}
		return true
	})
	if servers, _ := tc.leader().raft.Servers(); len(servers) != 3 {
		t.Errorf("membership after the refused calls: %d servers, want 3", len(servers))
	}
}

// TestCallerChecksAuthenticated: with the production defaults, anonymous
// checks, watches, metrics and reflection are refused in every protocol;
// a service credential or an operator token with the check scope works,
// one without it does not; auth.callers.check: open opens checks.
func TestCallerChecksAuthenticated(t *testing.T) {
	tc := startTestCluster(t, 1, nil)
	nd := tc.nodes[0]
	ctx := ptCtx(t, 30*time.Second)
	for name, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc-web": {connect.WithGRPCWeb()}} {
		anon := sessionv1connect.NewSessionServiceClient(http.DefaultClient, ptURL(nd), opts...)
		_, err := anon.CheckToken(ctx, connect.NewRequest(&sessionv1.CheckTokenRequest{Token: "x"}))
		wantCode(t, name+": anonymous CheckToken", err, connect.CodeUnauthenticated)
		stream, err := anon.WatchRevocations(ctx, connect.NewRequest(&sessionv1.WatchRevocationsRequest{}))
		if err == nil {
			stream.Receive()
			err = stream.Err()
			stream.Close()
		}
		wantCode(t, name+": anonymous WatchRevocations", err, connect.CodeUnauthenticated)
	}
	for _, path := range []string{"/metrics", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ptURL(nd)+path, nil)
		if path != "/metrics" {
			req.Method = http.MethodPost
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("anonymous %s: status %d, want 401", path, resp.StatusCode)
		}
	}
	if resp, err := tcHTTP().Get(ptURL(nd) + "/metrics"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/metrics with the metrics scope: %v %v, want 200", resp, err)
	}
	if _, err := ptSessions(nd).CheckToken(ctx, connect.NewRequest(&sessionv1.CheckTokenRequest{Token: "x"})); err != nil {
		t.Errorf("CheckToken as a service client: %v", err)
	}
	checker, _ := opToken(t, nd, "checker", "check")
	if _, err := sessionv1connect.NewSessionServiceClient(bearerHTTP(checker), ptURL(nd)).CheckToken(ctx, connect.NewRequest(&sessionv1.CheckTokenRequest{Token: "x"})); err != nil {
		t.Errorf("CheckToken with an operator token with the check scope: %v", err)
	}
	reader, _ := opToken(t, nd, "reader", "cluster:read")
	_, err := sessionv1connect.NewSessionServiceClient(bearerHTTP(reader), ptURL(nd)).CheckToken(ctx, connect.NewRequest(&sessionv1.CheckTokenRequest{Token: "x"}))
	wantCode(t, "CheckToken with a cluster:read token", err, connect.CodePermissionDenied)

	open := startTestCluster(t, 1, func(_ int, c *Config) { c.Auth.Callers.Check = callerOpen })
	anon := sessionv1connect.NewSessionServiceClient(http.DefaultClient, ptURL(open.nodes[0]))
	if _, err := anon.CheckToken(ctx, connect.NewRequest(&sessionv1.CheckTokenRequest{Token: "x"})); err != nil {
		t.Errorf("anonymous CheckToken with auth.callers.check: open: %v", err)
	}
	stream, err := anon.WatchRevocations(ctx, connect.NewRequest(&sessionv1.WatchRevocationsRequest{}))
	if err == nil {
		stream.Receive()
		err = stream.Err()
		stream.Close()
	}
	wantCode(t, "anonymous WatchRevocations with only check open", err, connect.CodeUnauthenticated)
}

// TestWatchCapsAndScope: streams beyond the per-client or total cap are
// refused with RESOURCE_EXHAUSTED naming the cap; a watcher with the watch
// scope gets session ids without reasons, one with watch:details gets the
// reasons.
func TestWatchCapsAndScope(t *testing.T) {
	tc := startTestCluster(t, 1, func(_ int, c *Config) {
		c.Auth.Callers.MaxWatchStreams, c.Auth.Callers.MaxWatchStreamsPerClient = 4, 2
	})
	nd := tc.nodes[0]
	ctx := ptCtx(t, 60*time.Second)
	watcher, _ := opToken(t, nd, "watcher", "watch")
	plain := sessionv1connect.NewSessionServiceClient(bearerHTTP(watcher), ptURL(nd))
	open := func(c sessionv1connect.SessionServiceClient) (*connect.ServerStreamForClient[sessionv1.WatchRevocationsResponse], error) {
		sctx, cancel := context.WithCancel(ctx)
		t.Cleanup(cancel)
		s, err := c.WatchRevocations(sctx, connect.NewRequest(&sessionv1.WatchRevocationsRequest{FromIndex: nd.raft.AppliedIndex()}))
		if err != nil {
			return nil, err
		}
		if !s.Receive() {
			return nil, s.Err()
		}
		t.Cleanup(func() { cancel(); s.Close() })
		return s, nil
	}
	w1, err := open(plain)
	if err != nil {
		t.Fatalf("first watch (watch scope): %v", err)
	}
	d1, err := open(ptSessions(nd))
	if err != nil {
		t.Fatalf("first watch (watch:details): %v", err)
	}

	tc.createUser("watch@example.com", ptPassword)
	tp := ptLogin(t, nd, "watch@example.com", "laptop", authv1.Platform_PLATFORM_WEB)
	if err := ptLogout(ctx, nd, tp.GetAccessToken()); err != nil {
		t.Fatal(err)
	}
	reason := func(s *connect.ServerStreamForClient[sessionv1.WatchRevocationsResponse]) string {
		for s.Receive() {
			for _, e := range s.Msg().GetEvents() {
				if e.GetSessionId() == tp.GetSessionId() {
					return e.GetReason() + "|seen"
				}
			}
		}
		return "stream ended: " + s.Err().Error()
	}
	if got := reason(w1); got != "|seen" {
		t.Errorf("watch scope: the logout event %q, want the session id without a reason", got)
	}
	if got := reason(d1); got != "logout|seen" {
		t.Errorf("watch:details scope: the logout event %q, want the reason logout", got)
	}

	if _, err := open(ptSessions(nd)); err != nil {
		t.Fatalf("second watch of one client: %v", err)
	}
	_, err = open(ptSessions(nd))
	wantCode(t, "third watch of one client", err, connect.CodeResourceExhausted)
	if err != nil && !strings.Contains(err.Error(), "per-client cap") {
		t.Errorf("third watch of one client: %v; want the message to name the per-client cap", err)
	}
	if _, err := open(plain); err != nil {
		t.Fatalf("second watch of the watch-scope client (4th on the node): %v", err)
	}
	other, _ := opToken(t, nd, "watcher2", "watch")
	_, err = open(sessionv1connect.NewSessionServiceClient(bearerHTTP(other), ptURL(nd)))
	wantCode(t, "fifth watch on the node", err, connect.CodeResourceExhausted)
	if err != nil && !strings.Contains(err.Error(), "max_watch_streams") {
		t.Errorf("fifth watch on the node: %v; want the message to name auth.callers.max_watch_streams", err)
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Errorf("fifth watch: %T, want a *connect.Error", err)
	}
}

// TestForgedSigningKeyNeverTrusted commits, through the real Raft path, a
// signing key record with a valid Ed25519 pair whose private half is not
// sealed with the cluster's KEK (sealed with another KEK, or not at all),
// activating now, and signs an admin token for a real session with it. No
// node trusts the token, no node publishes the key, the nodes alert, and
// the cluster's own key keeps signing.
func TestForgedSigningKeyNeverTrusted(t *testing.T) {
	var mu sync.Mutex
	var alerts []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		alerts = append(alerts, string(b))
		mu.Unlock()
	}))
	defer hook.Close()
	tc := startTestCluster(t, 3, func(_ int, c *Config) { c.Auth.Notify.WebhookURL = hook.URL })
	ctx := ptCtx(t, 60*time.Second)
	u := tc.createUser("victim@example.com", ptPassword, "user")
	real := ptLogin(t, tc.nodes[0], "victim@example.com", "laptop", authv1.Platform_PLATFORM_WEB)

	var otherKEK [32]byte
	if _, err := rand.Read(otherKEK[:]); err != nil {
		t.Fatal(err)
	}
	wrongKEK, _ := keys.NewKEK(otherKEK[:])
	forge := func(sealWith *keys.KEK) (string, ed25519.PrivateKey) {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		kid := token.PID(pub)
		var sealed []byte
		if sealWith != nil {
			if sealed, err = keys.Seal(*sealWith, priv, []byte(kid)); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Now()
		raw, err := store.EncodeCommand(&storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_PutSigningKey{PutSigningKey: &storev1.PutSigningKey{Key: &storev1.SigningKey{
			Kid: kid, Algorithm: "ed25519", Purpose: "sign", PublicKey: pub, EncryptedPrivateKey: sealed,
			CreatedUnixNano: now.UnixNano(), ActivatesUnixNano: now.UnixNano(),
			RetiresUnixNano: now.Add(240 * time.Hour).UnixNano(), ExpiresUnixNano: now.Add(480 * time.Hour).UnixNano(),
		}}}})
		if err != nil {
			t.Fatal(err)
		}
		// Through a follower: forwarded to the leader, replicated to all.
		if _, err := tc.nodes[1].raft.Propose(ctx, raw); err != nil {
			t.Fatalf("propose the forged key: %v", err)
		}
		return kid, priv
	}
	kidA, privA := forge(&wrongKEK)
	kidB, privB := forge(nil)
	tc.waitConverged(20 * time.Second)

	now := time.Now()
	for kid, priv := range map[string]ed25519.PrivateKey{kidA: privA, kidB: privB} {
		forged, err := token.SignAccess(token.AccessClaims{Issuer: tc.issuer, Subject: u.ID, Audience: tc.nodes[0].cfg.Auth.Audience,
			IssuedAt: now, NotBefore: now, Expiration: now.Add(10 * time.Minute), TokenID: "forged-" + kid[len(kid)-6:],
			SessionID: real.GetSessionId(), Roles: []string{"admin"}, OrgType: "OPERATOR"}, kid, priv)
		if err != nil {
			t.Fatal(err)
		}
		for _, nd := range tc.nodes {
			res, err := ptCheck(ctx, nd, forged, ptRead(clusterv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE))
			if err != nil || res.GetActive() || res.GetReason() != "unknown_key" {
				t.Errorf("CheckToken of a token signed by forged key %s on %s: got %v, %v; want inactive unknown_key", kid, nd.cfg.NodeID, res, err)
			}
			for _, k := range nd.auth.PublishedKeys() {
				if k.Kid == kid {
					t.Errorf("%s publishes the forged key %s", nd.cfg.NodeID, kid)
				}
			}
			resp, err := http.Get(ptURL(nd) + "/.well-known/paserk")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), kid) {
				t.Errorf("%s /.well-known/paserk lists the forged key %s", nd.cfg.NodeID, kid)
			}
		}
	}
	clustertest.WaitFor(t, 10*time.Second, "an untrusted_signing_key alert naming both forged keys", func() bool {
		mu.Lock()
		defer mu.Unlock()
		all := strings.Join(alerts, "\n")
		return strings.Contains(all, "untrusted_signing_key") && strings.Contains(all, kidA) && strings.Contains(all, kidB)
	})
	// The cluster's own key still signs: a new login works and checks.
	again := ptLogin(t, tc.nodes[2], "victim@example.com", "phone", authv1.Platform_PLATFORM_IOS)
	if res, err := ptCheck(ctx, tc.nodes[1], again.GetAccessToken(), ptRead(clusterv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE)); err != nil || !res.GetActive() {
		t.Errorf("a fresh login after the forgery: %v, %v; want active", res, err)
	}
}

// TestEveryProcedureHasACallerRule: every procedure of the operator and
// service APIs has its own rule (a procedure added later without one is
// refused by its service's deny rule, and this test names it), and the
// user-facing AuthService needs no caller credential.
func TestEveryProcedureHasACallerRule(t *testing.T) {
	n := &node{cfg: defaultConfig()}
	routes := n.callerRoutes()
	for _, fd := range []protoreflect.FileDescriptor{clusterv1.File_sessiond_cluster_v1_cluster_proto, sessionv1.File_sessiond_session_v1_session_proto,
		operatorv1.File_sessiond_operator_v1_operator_proto, authv1.File_sessiond_auth_v1_auth_proto,
		envoyauthv3.File_envoy_service_auth_v3_external_auth_proto} {
		for i := range fd.Services().Len() {
			svc := fd.Services().Get(i)
			for j := range svc.Methods().Len() {
				path := "/" + string(svc.FullName()) + "/" + string(svc.Methods().Get(j).Name())
				rule, ok := routes.Lookup(path)
				switch {
				case svc.FullName() == "sessiond.auth.v1.AuthService":
					if ok {
						t.Errorf("%s: has a caller rule %+v; user routes authenticate users, not callers", path, rule)
					}
				case !ok || rule.Deny:
					t.Errorf("%s: no caller rule (refused to everyone)", path)
				case !rule.Open && rule.Scope == "" && svc.FullName() != "sessiond.operator.v1.OperatorService":
					t.Errorf("%s: authenticated without a scope", path)
				}
			}
		}
	}
}
