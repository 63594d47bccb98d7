package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	authv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1/authv1connect"
	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1/sessionv1connect"
	"github.com/sessiond/sessiond/clients/go/guard"
	"github.com/sessiond/sessiond/clients/go/policy"
	"github.com/sessiond/sessiond/cluster/clustertest"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	"github.com/sessiond/sessiond/store"
)

// ---- helpers shared by the partition, checks and benchmark files ----

const ptPassword = "correct horse battery"

// ptURL is the node's real API base URL (never a proxy in front of it).
func ptURL(nd *node) string { return "http://" + nd.ln.Addr().String() }

// ptSessions is a SessionService client of nd's real API address.
func ptSessions(nd *node) sessionv1connect.SessionServiceClient {
	return sessionv1connect.NewSessionServiceClient(tcHTTP(), ptURL(nd))
}

// ptAuth is an AuthService client of nd's real API address.
func ptAuth(nd *node) authv1connect.AuthServiceClient {
	return authv1connect.NewAuthServiceClient(http.DefaultClient, ptURL(nd))
}

// ptRead builds read options.
func ptRead(c clusterv1.ReadConsistency) *clusterv1.ReadOptions {
	return &clusterv1.ReadOptions{Consistency: c}
}

var ptConsistencies = []clusterv1.ReadConsistency{
	clusterv1.ReadConsistency_READ_CONSISTENCY_STALE,
	clusterv1.ReadConsistency_READ_CONSISTENCY_DEFAULT,
	clusterv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE,
}

// ptLoginErr logs in through nd's AuthService (Connect).
func ptLoginErr(ctx context.Context, nd *node, email, device string, platform authv1.Platform) (*authv1.TokenPair, error) {
	resp, err := ptAuth(nd).Login(ctx, connect.NewRequest(&authv1.LoginRequest{
		Email: email, Password: ptPassword, Platform: platform, DeviceId: device,
	}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetTokens(), nil
}

// ptLogin logs in or fails t.
func ptLogin(t testing.TB, nd *node, email, device string, platform authv1.Platform) *authv1.TokenPair {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tp, err := ptLoginErr(ctx, nd, email, device, platform)
	if err != nil {
		t.Fatalf("login %s on %s: %v", email, nd.cfg.NodeID, err)
	}
	return tp
}

// ptLogout logs the access token's session out through nd.
func ptLogout(ctx context.Context, nd *node, access string) error {
	req := connect.NewRequest(&authv1.LogoutRequest{})
	req.Header().Set("Authorization", "Bearer "+access)
	_, err := ptAuth(nd).Logout(ctx, req)
	return err
}

// ptCheck calls CheckToken on nd.
func ptCheck(ctx context.Context, nd *node, tok string, read *clusterv1.ReadOptions) (*sessionv1.CheckTokenResponse, error) {
	resp, err := ptSessions(nd).CheckToken(ctx, connect.NewRequest(&sessionv1.CheckTokenRequest{Token: tok, Read: read}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// ptAdminReq returns req (sent with ptSessions, as the test service
// client, which has the admin scope).
func ptAdminReq[T any](_ *testCluster, msg *T) *connect.Request[T] {
	return connect.NewRequest(msg)
}

// ptCtx is a context with a timeout cancelled at the end of t.
func ptCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// ptGuard starts a guard SDK over the cluster's nodes, preferring node
// prefer's region (so it watches that node first).
func ptGuard(t testing.TB, tc *testCluster, prefer int, rules []policy.Rule) *guard.Guard {
	t.Helper()
	var nodes []guard.Node
	for _, nd := range tc.nodes {
		if nd.closed {
			continue
		}
		nodes = append(nodes, guard.Node{URL: ptURL(nd), Region: nd.cfg.Region})
	}
	g, err := guard.New(guard.Config{
		HTTPClient: tcHTTP(),
		Nodes:      nodes, Region: tc.nodes[prefer].cfg.Region, Issuer: tc.issuer, Audience: tc.nodes[0].cfg.Auth.Audience,
		Rules: rules, Logger: testLogger(),
	})
	if err != nil {
		t.Fatalf("guard.New: %v", err)
	}
	if err := g.Start(ptCtx(t, 20*time.Second)); err != nil {
		t.Fatalf("guard start: %v", err)
	}
	t.Cleanup(g.Close)
	return g
}

// ptWaitRejected polls g.Check until it refuses raw as unauthenticated
// and returns how long that took from start.
func ptWaitRejected(t testing.TB, g *guard.Guard, raw string, start time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	deadline := start.Add(timeout)
	for {
		_, err := g.Check(context.Background(), raw)
		if errors.Is(err, guard.ErrUnauthenticated) {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("guard still answers %v for a revoked token %s after the revocation, want ErrUnauthenticated", err, timeout)
		}
		time.Sleep(100 * time.Microsecond) // tight polling interval: this measures latency
	}
}

// ptSessionTC starts a 3-node cluster with a user.
func ptSessionTC(t testing.TB) (*testCluster, string) {
	tc := startTestCluster(t, 3, nil)
	u := tc.createUser("ana@example.com", ptPassword, "accountant")
	return tc, u.ID
}

// ---- tests ----

func TestCheckTokenOnEveryNode(t *testing.T) {
	tc, uid := ptSessionTC(t)
	ctx := ptCtx(t, 30*time.Second)
	tp := ptLogin(t, tc.nodes[1], "ana@example.com", "laptop", authv1.Platform_PLATFORM_WEB)
	for i, nd := range tc.nodes {
		for _, c := range ptConsistencies {
			read := ptRead(c)
			if c == clusterv1.ReadConsistency_READ_CONSISTENCY_STALE {
				read.MinIndex = tp.GetIndex() // STALE reads its own write only with min_index
			}
			got, err := ptCheck(ctx, nd, tp.GetAccessToken(), read)
			if err != nil {
				t.Fatalf("node %d %s: CheckToken: %v", i, c, err)
			}
			if !got.GetActive() || got.GetReason() != "" {
				t.Errorf("node %d %s: active=%v reason=%q, want active", i, c, got.GetActive(), got.GetReason())
			}
			if cl := got.GetClaims(); cl.GetSubject() != uid || cl.GetSessionId() != tp.GetSessionId() || cl.GetPlatform() != "web" ||
				cl.GetTokenId() == "" || cl.GetIssuer() != tc.issuer || len(cl.GetRoles()) != 1 || cl.GetRoles()[0] != "accountant" {
				t.Errorf("node %d %s: claims %v, want subject %s session %s platform web roles [accountant]", i, c, cl, uid, tp.GetSessionId())
			}
			if got.GetIndex() < tp.GetIndex() {
				t.Errorf("node %d %s: index %d, want >= the login's %d", i, c, got.GetIndex(), tp.GetIndex())
			}
		}
	}

	if err := ptLogout(ctx, tc.nodes[0], tp.GetAccessToken()); err != nil {
		t.Fatalf("logout on node 0: %v", err)
	}
	// No waiting: a LINEARIZABLE read reflects every acknowledged write,
	// and after it the node has applied the logout, so DEFAULT does too.
	for i, nd := range tc.nodes {
		for _, c := range []clusterv1.ReadConsistency{clusterv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE, clusterv1.ReadConsistency_READ_CONSISTENCY_DEFAULT} {
			got, err := ptCheck(ctx, nd, tp.GetAccessToken(), ptRead(c))
			if err != nil {
				t.Fatalf("node %d %s after logout: %v", i, c, err)
			}
			if got.GetActive() || got.GetReason() != "session_ended" || got.GetEndReason() != "logout" {
				t.Errorf("node %d %s after logout: active=%v reason=%q end=%q, want inactive session_ended/logout",
					i, c, got.GetActive(), got.GetReason(), got.GetEndReason())
			}
		}
	}
}

func TestCheckRevocationQueriesAndAdmin(t *testing.T) {
	tc, uid := ptSessionTC(t)
	ctx := ptCtx(t, 30*time.Second)
	lin := ptRead(clusterv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE)
	web := ptLogin(t, tc.nodes[0], "ana@example.com", "laptop", authv1.Platform_PLATFORM_WEB)
	ios := ptLogin(t, tc.nodes[1], "ana@example.com", "phone", authv1.Platform_PLATFORM_IOS)
	n2 := ptSessions(tc.nodes[2])
	chk, err := ptCheck(ctx, tc.nodes[2], web.GetAccessToken(), lin)
	if err != nil {
		t.Fatal(err)
	}
	jti := chk.GetClaims().GetTokenId()

	isRevoked := func(req *sessionv1.IsRevokedRequest) *sessionv1.IsRevokedResponse {
		t.Helper()
		req.Read = lin
		resp, err := n2.IsRevoked(ctx, connect.NewRequest(req))
		if err != nil {
			t.Fatalf("IsRevoked(%v): %v", req.GetSubject(), err)
		}
		return resp.Msg
	}
	for _, q := range []*sessionv1.IsRevokedRequest{
		{Subject: &sessionv1.IsRevokedRequest_Jti{Jti: jti}},
		{Subject: &sessionv1.IsRevokedRequest_SessionId{SessionId: web.GetSessionId()}},
		{Subject: &sessionv1.IsRevokedRequest_UserId{UserId: uid}},
		{Subject: &sessionv1.IsRevokedRequest_Jti{Jti: "no-such-jti"}},
		{Subject: &sessionv1.IsRevokedRequest_SessionId{SessionId: "no-such-session"}},
	} {
		if got := isRevoked(q); got.GetRevoked() || got.GetIndex() == 0 {
			t.Errorf("IsRevoked(%v) before any revocation: revoked=%v index=%d, want false with an index", q.GetSubject(), got.GetRevoked(), got.GetIndex())
		}
	}
	cs, err := n2.CheckSession(ctx, connect.NewRequest(&sessionv1.CheckSessionRequest{SessionId: web.GetSessionId(), Read: lin}))
	if err != nil || !cs.Msg.GetActive() {
		t.Fatalf("CheckSession(web) = %v, %v; want active", cs, err)
	}
	cs, err = n2.CheckSession(ctx, connect.NewRequest(&sessionv1.CheckSessionRequest{SessionId: "no-such-session", Read: lin}))
	if err != nil || cs.Msg.GetActive() || cs.Msg.GetReason() != "not_found" {
		t.Fatalf("CheckSession(unknown) = %v, %v; want inactive not_found", cs, err)
	}

	// Admin RPCs refuse callers without a credential, with a bearer that is
	// no operator token (a 32-byte random value, as a shared secret was),
	// and with a well-formed operator token the cluster never issued.
	anon := sessionv1connect.NewSessionServiceClient(http.DefaultClient, ptURL(tc.nodes[2]))
	bad := connect.NewRequest(&sessionv1.GetSessionRequest{SessionId: web.GetSessionId()})
	if _, err := anon.GetSession(ctx, bad); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("GetSession without credentials: %v, want Unauthenticated", err)
	}
	for _, cred := range []string{"not-the-secret", randomSecret(), "sdo_0123456789abcdef01234567.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
		wrong := connect.NewRequest(&sessionv1.RevokeSessionRequest{SessionId: web.GetSessionId()})
		wrong.Header().Set("Authorization", "Bearer "+cred)
		if _, err := anon.RevokeSession(ctx, wrong); connect.CodeOf(err) != connect.CodeUnauthenticated && connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Errorf("RevokeSession with bearer %.12q: %v, want Unauthenticated or PermissionDenied", cred, err)
		}
	}
	if _, err := anon.ListSessions(ctx, connect.NewRequest(&sessionv1.ListSessionsRequest{UserId: uid})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("ListSessions without credentials: %v, want Unauthenticated", err)
	}
	if _, err := anon.RevokeUserSessions(ctx, connect.NewRequest(&sessionv1.RevokeUserSessionsRequest{UserId: uid})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("RevokeUserSessions without credentials: %v, want Unauthenticated", err)
	}

	gs, err := n2.GetSession(ctx, ptAdminReq(tc, &sessionv1.GetSessionRequest{SessionId: web.GetSessionId(), Read: lin}))
	if err != nil {
		t.Fatalf("GetSession: %v", err)
	}
	if s := gs.Msg.GetSession(); s.GetId() != web.GetSessionId() || s.GetUserId() != uid || s.GetPlatform() != "web" || s.GetDeviceId() != "laptop" || s.GetEnded() != nil {
		t.Errorf("GetSession = %v, want the live web session of %s on laptop", s, uid)
	}
	if _, err := n2.GetSession(ctx, ptAdminReq(tc, &sessionv1.GetSessionRequest{SessionId: "no-such-session"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("GetSession(unknown): %v, want NotFound", err)
	}
	ls, err := n2.ListSessions(ctx, ptAdminReq(tc, &sessionv1.ListSessionsRequest{UserId: uid, Read: lin}))
	if err != nil {
		t.Fatalf("ListSessions: %v", err)
	}
	ids := map[string]bool{}
	for _, s := range ls.Msg.GetSessions() {
		ids[s.GetId()] = true
	}
	if len(ids) != 2 || !ids[web.GetSessionId()] || !ids[ios.GetSessionId()] {
		t.Errorf("ListSessions = %v, want the web and ios sessions", ids)
	}
	if ls, err := n2.ListSessions(ctx, ptAdminReq(tc, &sessionv1.ListSessionsRequest{UserId: "no-such-user"})); err != nil || len(ls.Msg.GetSessions()) != 0 {
		t.Errorf("ListSessions(unknown user) = %v, %v; want empty", ls, err)
	}

	// A token id revoked (RFC 7009 path) on node 0 is seen on node 2.
	if err := tc.nodes[0].auth.RevokeToken(ctx, web.GetAccessToken()); err != nil {
		t.Fatalf("revoke token: %v", err)
	}
	if got := isRevoked(&sessionv1.IsRevokedRequest{Subject: &sessionv1.IsRevokedRequest_Jti{Jti: jti}}); !got.GetRevoked() || got.GetSince() == nil {
		t.Errorf("IsRevoked(jti) after revocation: %v, want revoked with since", got)
	}
	if chk, err := ptCheck(ctx, tc.nodes[2], web.GetAccessToken(), lin); err != nil || chk.GetActive() || chk.GetReason() != "revoked" {
		t.Errorf("CheckToken of a revoked token id = %v, %v; want inactive revoked", chk, err)
	}

	// An admin ends the web session through node 1.
	rs, err := ptSessions(tc.nodes[1]).RevokeSession(ctx, ptAdminReq(tc, &sessionv1.RevokeSessionRequest{SessionId: web.GetSessionId()}))
	if err != nil || rs.Msg.GetIndex() == 0 {
		t.Fatalf("RevokeSession = %v, %v; want an index", rs, err)
	}
	if _, err := ptSessions(tc.nodes[1]).RevokeSession(ctx, ptAdminReq(tc, &sessionv1.RevokeSessionRequest{SessionId: "no-such-session"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("RevokeSession(unknown): %v, want NotFound", err)
	}
	if got := isRevoked(&sessionv1.IsRevokedRequest{Subject: &sessionv1.IsRevokedRequest_SessionId{SessionId: web.GetSessionId()}}); !got.GetRevoked() || got.GetIndex() < rs.Msg.GetIndex() {
		t.Errorf("IsRevoked(session) after RevokeSession: %v, want revoked at index >= %d", got, rs.Msg.GetIndex())
	}
	cs, err = n2.CheckSession(ctx, connect.NewRequest(&sessionv1.CheckSessionRequest{SessionId: web.GetSessionId(), Read: lin}))
	if err != nil || cs.Msg.GetActive() || cs.Msg.GetReason() != "admin_revoked" {
		t.Errorf("CheckSession after RevokeSession = %v, %v; want inactive admin_revoked", cs, err)
	}

	// Then every session of the user.
	ru, err := ptSessions(tc.nodes[0]).RevokeUserSessions(ctx, ptAdminReq(tc, &sessionv1.RevokeUserSessionsRequest{UserId: uid}))
	if err != nil || ru.Msg.GetEnded() != 1 {
		t.Fatalf("RevokeUserSessions = %v, %v; want 1 ended (the ios session)", ru, err)
	}
	if got := isRevoked(&sessionv1.IsRevokedRequest{Subject: &sessionv1.IsRevokedRequest_UserId{UserId: uid}}); !got.GetRevoked() || got.GetSince() == nil {
		t.Errorf("IsRevoked(user) after RevokeUserSessions: %v, want revoked with since", got)
	}
	if chk, err := ptCheck(ctx, tc.nodes[2], ios.GetAccessToken(), lin); err != nil || chk.GetActive() {
		t.Errorf("CheckToken(ios) after RevokeUserSessions = %v, %v; want inactive", chk, err)
	}
}

// ptFlip returns tok with the base64url character at i replaced by another.
func ptFlip(tok string, i int) string {
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

func TestCheckBadInput(t *testing.T) {
	tc, _ := ptSessionTC(t)
	ctx := ptCtx(t, 30*time.Second)
	nd := tc.nodes[1]
	tp := ptLogin(t, tc.nodes[0], "ana@example.com", "laptop", authv1.Platform_PLATFORM_WEB)
	tok := tp.GetAccessToken()
	for name, raw := range map[string]string{
		"garbage":       "not-a-token",
		"truncated":     tok[:len(tok)-12],
		"flipped":       ptFlip(tok, 40),
		"100 KB":        strings.Repeat("v4.public.", 10<<10),
		"wrong version": "v2.local." + tok[len("v4.public."):],
	} {
		got, err := ptCheck(ctx, nd, raw, nil)
		switch {
		case connect.CodeOf(err) == connect.CodeInvalidArgument:
		case name == "100 KB" && connect.CodeOf(err) == connect.CodeResourceExhausted:
			// above limits.max_body_bytes: refused before it is read
		case err != nil:
			t.Errorf("%s: CheckToken error %v, want an inactive answer or InvalidArgument", name, err)
		case got.GetActive():
			t.Errorf("%s: active, want inactive", name)
		case got.GetReason() == "":
			t.Errorf("%s: inactive without a reason", name)
		}
	}
	if _, err := ptCheck(ctx, nd, "", nil); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("empty token: %v, want InvalidArgument", err)
	}
	if _, err := ptCheck(ctx, nd, tok, &clusterv1.ReadOptions{Consistency: 99}); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("unknown consistency: %v, want InvalidArgument", err)
	}
	if _, err := ptCheck(ctx, nd, tok, &clusterv1.ReadOptions{Consistency: clusterv1.ReadConsistency_READ_CONSISTENCY_STALE, MaxStaleness: durationpb.New(-time.Second)}); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("negative max_staleness: %v, want InvalidArgument", err)
	}
	sc := ptSessions(nd)
	if _, err := sc.IsRevoked(ctx, connect.NewRequest(&sessionv1.IsRevokedRequest{})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("IsRevoked without a subject: %v, want InvalidArgument", err)
	}
	if _, err := sc.IsRevoked(ctx, connect.NewRequest(&sessionv1.IsRevokedRequest{Subject: &sessionv1.IsRevokedRequest_UserId{UserId: strings.Repeat("u", 300)}})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("IsRevoked with a 300-byte id: %v, want InvalidArgument", err)
	}
	if _, err := sc.CheckSession(ctx, connect.NewRequest(&sessionv1.CheckSessionRequest{})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("CheckSession without an id: %v, want InvalidArgument", err)
	}
	// Raw HTTP: malformed bodies are client errors, never 500.
	for name, body := range map[string]string{
		"not json":       "{",
		"wrong type":     `{"token": 42}`,
		"100 KB token":   `{"token":"` + strings.Repeat("A", 100<<10) + `"}`,
		"unknown fields": `{"token":"x","bogus":1}`,
	} {
		resp, err := http.Post(ptURL(nd)+"/sessiond.session.v1.SessionService/CheckToken", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Errorf("%s: HTTP %d, want a non-5xx answer", name, resp.StatusCode)
		}
	}

	// A watcher from an index in the future (another cluster, a restored
	// node) gets a snapshot first.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream, err := sc.WatchRevocations(wctx, connect.NewRequest(&sessionv1.WatchRevocationsRequest{FromIndex: 1 << 60}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if !stream.Receive() {
		t.Fatalf("watch from the future: no message: %v", stream.Err())
	}
	if m := stream.Msg(); !m.GetSnapshot() || m.GetIndex() >= 1<<60 {
		t.Errorf("watch from the future: first message snapshot=%v index=%d, want a snapshot at the node's index", m.GetSnapshot(), m.GetIndex())
	}
}

func TestCheckGuardSDKAgainstCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster, kills a node, floods revocations")
	}
	tc, _ := ptSessionTC(t)
	ctx := ptCtx(t, 50*time.Second)
	tc.createUser("bo@example.com", ptPassword, "clerk")
	g := ptGuard(t, tc, 2, []policy.Rule{{Resource: "invoices", Actions: []string{"read"}, AnyRole: []string{"accountant"}}})
	if st := g.Status(); st.Node != ptURL(tc.nodes[2]) || !st.Connected {
		t.Fatalf("guard status %+v, want connected to node 2 (%s)", st, ptURL(tc.nodes[2]))
	}
	web := ptLogin(t, tc.nodes[0], "ana@example.com", "laptop", authv1.Platform_PLATFORM_WEB)
	c, err := g.Check(ctx, web.GetAccessToken())
	if err != nil || c.SessionID != web.GetSessionId() {
		t.Fatalf("guard Check of a fresh token = %v, %v; want its claims", c, err)
	}

	// Middleware: 200, 403 on a policy denial, 401 once revoked.
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, found := guard.ClaimsFromContext(r.Context()); !found {
			w.WriteHeader(http.StatusTeapot)
		}
	})
	mux := http.NewServeMux()
	mux.Handle("GET /me", g.Middleware(ok))
	mux.Handle("GET /invoices", g.Middleware(ok, guard.RequireAction("read", "invoices")))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path, tok string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	bo := ptLogin(t, tc.nodes[1], "bo@example.com", "desk", authv1.Platform_PLATFORM_WINDOWS)
	for _, tt := range []struct {
		path, tok string
		want      int
	}{
		{"/me", web.GetAccessToken(), 200}, {"/invoices", web.GetAccessToken(), 200},
		{"/me", bo.GetAccessToken(), 200}, {"/invoices", bo.GetAccessToken(), 403},
		{"/me", "", 401}, {"/me", "garbage", 401},
	} {
		if got := get(tt.path, tt.tok); got != tt.want {
			t.Errorf("GET %s: %d, want %d", tt.path, got, tt.want)
		}
	}

	// Revocation on node 0 reaches the SDK watching node 2.
	t0 := time.Now()
	if _, err := ptSessions(tc.nodes[0]).RevokeSession(ctx, ptAdminReq(tc, &sessionv1.RevokeSessionRequest{SessionId: web.GetSessionId()})); err != nil {
		t.Fatal(err)
	}
	ack := time.Now()
	lat := ptWaitRejected(t, g, web.GetAccessToken(), ack, 5*time.Second)
	t.Logf("revocation latency (RevokeSession on node 0 acked → SDK on node 2 rejects): %s (RPC took %s)", lat, ack.Sub(t0))
	if got := get("/me", web.GetAccessToken()); got != 401 {
		t.Errorf("GET /me with a revoked token: %d, want 401", got)
	}

	// Kill the node the SDK watches: it fails over and loses nothing.
	before := g.Status().Index
	tc.stop(tc.nodes[2])
	clustertest.WaitFor(t, 15*time.Second, "the guard watching another node", func() bool {
		st := g.Status()
		return st.Connected && st.Node != ptURL(tc.nodes[2])
	})
	ios := ptLogin(t, tc.nodes[1], "ana@example.com", "phone", authv1.Platform_PLATFORM_IOS)
	if _, err := g.Check(ctx, ios.GetAccessToken()); err != nil {
		t.Fatalf("guard Check after failover: %v", err)
	}
	ack = time.Now()
	if err := ptLogout(ctx, tc.nodes[0], ios.GetAccessToken()); err != nil {
		t.Fatal(err)
	}
	lat = ptWaitRejected(t, g, ios.GetAccessToken(), ack, 10*time.Second)
	t.Logf("after failover to %s: revocation seen in %s", g.Status().Node, lat)
	if st := g.Status(); st.Index <= before {
		t.Errorf("guard index %d after failover, want beyond %d", st.Index, before)
	}
}

// ptProposeRevocations proposes n RevokeToken commands through nd, each
// with a reason of pad bytes, from workers goroutines.
func ptProposeRevocations(t testing.TB, nd *node, prefix string, n, pad, workers int) {
	t.Helper()
	reason := strings.Repeat("r", pad)
	exp := time.Now().Add(time.Hour).UnixNano()
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				cmd, err := store.EncodeCommand(&storev1.Command{NowUnixNano: time.Now().UnixNano(), RequestId: fmt.Sprintf("%s-%d", prefix, i),
					Op: &storev1.Command_RevokeToken{RevokeToken: &storev1.RevokeToken{Revocation: &storev1.Revocation{
						Jti: fmt.Sprintf("%s-jti-%d", prefix, i), ExpiresUnixNano: exp, Reason: reason}}}})
				if err == nil {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_, err = nd.raft.Propose(ctx, cmd)
					cancel()
				}
				if err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatalf("propose revocation: %v", err)
	default:
	}
}

func TestCheckWatchResyncAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a node")
	}
	tc, _ := ptSessionTC(t)
	ctx := ptCtx(t, 50*time.Second)
	g := ptGuard(t, tc, 1, nil)
	web := ptLogin(t, tc.nodes[0], "ana@example.com", "laptop", authv1.Platform_PLATFORM_WEB)
	nd := tc.nodes[1]
	const n = 200
	ptProposeRevocations(t, tc.leader(), "resync", n, 64, 8)
	last := tc.leader().raft.CommitIndex()
	clustertest.WaitFor(t, 10*time.Second, "the guard to catch up", func() bool { return g.Status().Index >= last && g.Status().Connected })
	if st := g.Status(); st.Entries < n {
		t.Errorf("guard holds %d revocations, want >= %d", st.Entries, n)
	}
	if _, err := g.Check(ctx, web.GetAccessToken()); err != nil {
		t.Errorf("guard Check of a live token: %v, want accepted", err)
	}

	// A node restarted from its data dir keeps no events from before: a
	// watcher resuming from index 1 there gets a snapshot first, holding the
	// revocations made before the restart.
	cfg := nd.cfg
	cfg.HTTPAddr, cfg.RaftAddr, cfg.GossipAddr = nd.ln.Addr().String(), nd.raft.RaftAddr(), nd.gossip.Addr()
	tc.stop(nd)
	re := tc.start(cfg)
	clustertest.WaitFor(t, 20*time.Second, "the restarted node to catch up", func() bool {
		return re.raft.AppliedIndex() >= last
	})
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	w, err := ptSessions(re).WatchRevocations(wctx, connect.NewRequest(&sessionv1.WatchRevocationsRequest{FromIndex: 1}))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !w.Receive() {
		t.Fatalf("watch from 1 on the restarted node: %v", w.Err())
	}
	if m := w.Msg(); !m.GetSnapshot() || len(m.GetEvents()) < n {
		t.Errorf("watch from 1 on the restarted node: first message snapshot=%v with %d events, want a snapshot of >= %d", m.GetSnapshot(), len(m.GetEvents()), n)
	}
	// Resuming from a recent index on a node that kept its events is
	// incremental: the backlog after that index, no snapshot.
	w2, err := ptSessions(tc.nodes[0]).WatchRevocations(wctx, connect.NewRequest(&sessionv1.WatchRevocationsRequest{FromIndex: last - 5}))
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if !w2.Receive() {
		t.Fatalf("watch from a recent index: %v", w2.Err())
	}
	if m := w2.Msg(); m.GetSnapshot() || len(m.GetEvents()) == 0 || len(m.GetEvents()) > 5 {
		t.Errorf("watch from index %d on node 0: snapshot=%v with %d events, want the backlog (1..5 events) only", last-5, m.GetSnapshot(), len(m.GetEvents()))
	}
}
