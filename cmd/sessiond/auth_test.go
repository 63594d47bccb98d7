package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/keys"
	"github.com/sessiond/sessiond/authsvc/password"
	"github.com/sessiond/sessiond/authsvc/users"
	"github.com/sessiond/sessiond/authsvc/users/userstest"
	"github.com/sessiond/sessiond/clients/go/checkreason"
	authv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1/authv1connect"
	"github.com/sessiond/sessiond/clients/go/token"
	"github.com/sessiond/sessiond/cluster/clustertest"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	"github.com/sessiond/sessiond/store"
)

// The auth service end to end: real HTTP clients against an in-process
// three-node cluster (see cluster_helpers_test.go). Helpers are in
// authhttp_test.go.

const authPW = "correct horse battery"

// TestAuthTokenFlows shares one cluster between flows that need no special
// configuration; every subtest uses its own users.
func TestAuthTokenFlows(t *testing.T) {
	tc := startTestCluster(t, 3, nil)
	t.Run("PublishedKeysAndRefreshRotation", func(t *testing.T) { authTestRefreshRotation(t, tc) })
	t.Run("OneSessionPerPlatform", func(t *testing.T) { authTestOneSessionPerPlatform(t, tc) })
	t.Run("LogoutForms", func(t *testing.T) { authTestLogoutForms(t, tc) })
	t.Run("ListAndKickSessions", func(t *testing.T) { authTestListAndKick(t, tc) })
	t.Run("LogoutAll", func(t *testing.T) { authTestLogoutAll(t, tc) })
	t.Run("SuspendedUser", func(t *testing.T) { authTestSuspended(t, tc) })
	// Last: it adds a signing key to the cluster.
	t.Run("KeyRotation", func(t *testing.T) { authTestKeyRotation(t, tc) })
}

func authTestRefreshRotation(t *testing.T, tc *testCluster) {
	const email = "rotation@example.com"
	u := tc.createUser(email, authPW, "shipper")
	p0 := authLogin(t, tc.nodes[0].apiURL, email, authPW, "web", "laptop")

	// A verifier that knows only what node 1 publishes.
	pubs := authPublishedKeys(t, tc.nodes[1].apiURL)
	c, err := token.VerifyAccess(p0.AccessToken, authLookup(pubs), token.Expectation{Issuer: tc.issuer, Audience: "sessiond", Now: time.Now()})
	if err != nil {
		t.Fatalf("verify the access token with node 1's published keys: %v", err)
	}
	if c.Subject != u.ID || c.SessionID != p0.SessionID || c.Platform != "web" || c.Country != "TH" || len(c.Roles) != 1 || c.Roles[0] != "shipper" {
		t.Errorf("claims: got sub %q sid %q platform %q country %q roles %v, want %q %q web TH [shipper]",
			c.Subject, c.SessionID, c.Platform, c.Country, c.Roles, u.ID, p0.SessionID)
	}

	// Rotate on node 2; the predecessor presented again within the grace
	// window gets the very same pair, on any node.
	p1 := authPairOf(t, "refresh on node 2", authRefresh(t, tc.nodes[2].apiURL, p0.RefreshToken))
	if p1.RefreshToken == p0.RefreshToken || p1.AccessToken == p0.AccessToken || p1.SessionID != p0.SessionID {
		t.Fatalf("refresh: want new tokens of the same session, got same refresh %v, same access %v, session %q",
			p1.RefreshToken == p0.RefreshToken, p1.AccessToken == p0.AccessToken, p1.SessionID)
	}
	for i, nd := range tc.nodes {
		retry := authPairOf(t, "grace retry on node "+strconv.Itoa(i), authRefresh(t, nd.apiURL, p0.RefreshToken))
		if retry.AccessToken != p1.AccessToken || retry.RefreshToken != p1.RefreshToken {
			t.Errorf("grace retry on node %d: got a different pair, want the identical successor", i)
		}
	}
	authWaitReason(t, tc, p1.AccessToken, checkreason.None)

	// Once the successor is itself rotated, the old token is theft.
	p2 := authPairOf(t, "refresh the successor", authRefresh(t, tc.nodes[0].apiURL, p1.RefreshToken))
	authWantErr(t, "reuse after the successor rotated", authRefresh(t, tc.nodes[1].apiURL, p0.RefreshToken), http.StatusUnauthorized, "refresh_token_reused")
	authWaitReason(t, tc, p2.AccessToken, checkreason.SessionEnded)
	authWaitReason(t, tc, p0.AccessToken, checkreason.SessionEnded)
	for i, nd := range tc.nodes {
		if ok, why := nd.auth.CheckSession(p0.SessionID); ok || why != "refresh_reuse" {
			t.Errorf("node %d: CheckSession: got live=%v %q, want ended refresh_reuse", i, ok, why)
		}
	}
	authWantErr(t, "refresh the newest token of the ended session", authRefresh(t, tc.nodes[2].apiURL, p2.RefreshToken), http.StatusUnauthorized, "")
}

func authTestOneSessionPerPlatform(t *testing.T, tc *testCluster) {
	const email = "devices@example.com"
	tc.createUser(email, authPW)
	a := authLogin(t, tc.nodes[0].apiURL, email, authPW, "web", "laptop-a")
	before := time.Now()

	r := authTryLogin(t, tc.nodes[1].apiURL, email, authPW, "web", "laptop-b", false)
	e := authWantErr(t, "second web device", r, http.StatusConflict, "session_exists")
	switch ex := e.Existing; {
	case ex == nil:
		t.Fatalf("409 without existing_session: %s", r.body)
	case ex.DeviceID != "laptop-a" || ex.Platform != "web" || ex.SessionID != a.SessionID || ex.Region != tc.nodes[0].raft.Region():
		t.Errorf("existing_session: got %+v, want device laptop-a, platform web, session %s, region %s", *ex, a.SessionID, tc.nodes[0].raft.Region())
	case ex.Created.IsZero() || ex.Created.After(before) || before.Sub(ex.Created) > time.Minute:
		t.Errorf("existing_session.created %s: want the first login's time (just before %s)", ex.Created, before)
	}
	authWaitReason(t, tc, a.AccessToken, checkreason.None) // the refused login changed nothing

	// Another platform does not conflict.
	ios := authLogin(t, tc.nodes[2].apiURL, email, authPW, "ios", "phone")

	// Force: the old device's session ends everywhere.
	b := authPairOf(t, "forced login", authTryLogin(t, tc.nodes[1].apiURL, email, authPW, "web", "laptop-b", true))
	authWaitReason(t, tc, a.AccessToken, checkreason.SessionEnded)
	authWantErr(t, "refresh of the forced-out device", authRefresh(t, tc.nodes[2].apiURL, a.RefreshToken), http.StatusUnauthorized, "")
	authWaitReason(t, tc, b.AccessToken, checkreason.None)
	authWaitReason(t, tc, ios.AccessToken, checkreason.None)

	// The same device logging in again replaces its own session.
	b2 := authPairOf(t, "same device again", authTryLogin(t, tc.nodes[0].apiURL, email, authPW, "web", "laptop-b", false))
	if b2.SessionID == b.SessionID {
		t.Errorf("same device again: got the same session id, want a new session")
	}
	authWaitReason(t, tc, b2.AccessToken, checkreason.None)
	authWaitReason(t, tc, b.AccessToken, checkreason.SessionEnded)
	ids, current := authSessionIDs(t, tc.nodes[1].apiURL, b2.AccessToken)
	if len(ids) != 2 || current != b2.SessionID {
		t.Errorf("sessions: got %v (current %q), want the ios session and %s (current)", ids, current, b2.SessionID)
	}
}

func authTestLogoutForms(t *testing.T, tc *testCluster) {
	const email = "logout@example.com"
	tc.createUser(email, authPW)
	web := authLogin(t, tc.nodes[0].apiURL, email, authPW, "web", "laptop")
	mac := authLogin(t, tc.nodes[0].apiURL, email, authPW, "mac", "desk")

	// Bearer form, on another node than the login.
	r := authDo(t, http.MethodPost, tc.nodes[2].apiURL+"/auth/logout", "", nil, authBearer(web.AccessToken)...)
	if r.status != http.StatusNoContent {
		t.Fatalf("logout with bearer: got %d (%s), want 204", r.status, r.body)
	}
	authWaitReason(t, tc, web.AccessToken, checkreason.SessionEnded)
	authWantErr(t, "refresh after logout", authRefresh(t, tc.nodes[1].apiURL, web.RefreshToken), http.StatusUnauthorized, "")
	authWantErr(t, "bearer after logout", authDo(t, http.MethodGet, tc.nodes[1].apiURL+"/auth/sessions", "", nil, authBearer(web.AccessToken)...), http.StatusUnauthorized, "invalid_token")

	// Refresh-token form.
	r = authPost(t, tc.nodes[1].apiURL, "/auth/logout", map[string]string{"refresh_token": mac.RefreshToken})
	if r.status != http.StatusNoContent {
		t.Fatalf("logout with refresh token: got %d (%s), want 204", r.status, r.body)
	}
	authWaitReason(t, tc, mac.AccessToken, checkreason.SessionEnded)
	authWantErr(t, "refresh after refresh-token logout", authRefresh(t, tc.nodes[0].apiURL, mac.RefreshToken), http.StatusUnauthorized, "")
}

func authTestListAndKick(t *testing.T, tc *testCluster) {
	const email, other = "kick@example.com", "bystander@example.com"
	tc.createUser(email, authPW)
	tc.createUser(other, authPW)
	web := authLogin(t, tc.nodes[0].apiURL, email, authPW, "web", "laptop")
	ios := authLogin(t, tc.nodes[1].apiURL, email, authPW, "ios", "phone")
	android := authLogin(t, tc.nodes[2].apiURL, email, authPW, "android", "tablet")
	stranger := authLogin(t, tc.nodes[0].apiURL, other, authPW, "web", "their-laptop")

	ids, current := authSessionIDs(t, tc.nodes[2].apiURL, ios.AccessToken)
	want := map[string]bool{web.SessionID: true, ios.SessionID: true, android.SessionID: true}
	if len(ids) != 3 || !want[ids[0]] || !want[ids[1]] || !want[ids[2]] || current != ios.SessionID {
		t.Errorf("sessions seen by ios: got %v (current %q), want the 3 sessions with %s current", ids, current, ios.SessionID)
	}

	r := authDo(t, http.MethodDelete, tc.nodes[1].apiURL+"/auth/sessions/"+android.SessionID, "", nil, authBearer(web.AccessToken)...)
	if r.status != http.StatusNoContent {
		t.Fatalf("kick android: got %d (%s), want 204", r.status, r.body)
	}
	authWaitReason(t, tc, android.AccessToken, checkreason.SessionEnded)
	if ids, _ := authSessionIDs(t, tc.nodes[0].apiURL, web.AccessToken); len(ids) != 2 {
		t.Errorf("sessions after the kick: got %v, want 2", ids)
	}

	// Someone else's session, and one that does not exist: 404, no change.
	authWantErr(t, "kick a stranger's session", authDo(t, http.MethodDelete, tc.nodes[1].apiURL+"/auth/sessions/"+stranger.SessionID, "", nil, authBearer(web.AccessToken)...), http.StatusNotFound, "not_found")
	authWantErr(t, "kick an unknown session", authDo(t, http.MethodDelete, tc.nodes[1].apiURL+"/auth/sessions/no-such-session", "", nil, authBearer(web.AccessToken)...), http.StatusNotFound, "not_found")
	authWaitReason(t, tc, stranger.AccessToken, checkreason.None)
	authWaitReason(t, tc, web.AccessToken, checkreason.None)
}

func authTestLogoutAll(t *testing.T, tc *testCluster) {
	const email = "everywhere@example.com"
	tc.createUser(email, authPW)
	var pairs []authPair
	for i, pl := range []string{"web", "ios", "windows"} {
		pairs = append(pairs, authLogin(t, tc.nodes[i].apiURL, email, authPW, pl, pl+"-device"))
	}
	r := authDo(t, http.MethodPost, tc.nodes[1].apiURL+"/auth/logout-all", "", nil, authBearer(pairs[0].AccessToken)...)
	if r.status != http.StatusOK || string(r.body) != "{\"ended\":3}\n" {
		t.Fatalf("logout-all: got %d %q, want 200 {\"ended\":3}", r.status, r.body)
	}
	for i, p := range pairs {
		authWaitReason(t, tc, p.AccessToken, checkreason.LoggedOutAll)
		authWantErr(t, "refresh after logout-all "+strconv.Itoa(i), authRefresh(t, tc.nodes[i].apiURL, p.RefreshToken), http.StatusUnauthorized, "")
	}
	// Logging in again right away works: the cut-off applies to tokens
	// issued before it, not to those issued in the same second after it.
	again := authLogin(t, tc.nodes[2].apiURL, email, authPW, "web", "web-device")
	authWaitReason(t, tc, again.AccessToken, checkreason.None)
	next := authPairOf(t, "refresh after logging in again", authRefresh(t, tc.nodes[0].apiURL, again.RefreshToken))
	authWaitReason(t, tc, next.AccessToken, checkreason.None)
	for _, p := range pairs {
		authWaitReason(t, tc, p.AccessToken, checkreason.LoggedOutAll)
	}
}

func authTestSuspended(t *testing.T, tc *testCluster) {
	const email = "suspended@example.com"
	tc.createUser(email, authPW)
	p := authLogin(t, tc.nodes[1].apiURL, email, authPW, "web", "laptop")
	if err := tc.nodes[0].auth.SetUserStatus(context.Background(), email, users.StatusSuspended); err != nil {
		t.Fatalf("suspend: %v", err)
	}
	// The built-in directory reads locally: let every node apply the change.
	tc.waitConverged(10 * time.Second)
	// Suspending ends the user's sessions at once: its access tokens (and
	// the WebSockets they opened) stop working everywhere, saying why.
	authWaitReason(t, tc, p.AccessToken, checkreason.AccountSuspended)
	for i, nd := range tc.nodes {
		authWantErr(t, "login of a suspended user on node "+strconv.Itoa(i), authTryLogin(t, nd.apiURL, email, authPW, "ios", "phone", false), http.StatusForbidden, "account_suspended")
		if r := authRefresh(t, nd.apiURL, p.RefreshToken); r.status == http.StatusOK {
			t.Errorf("refresh of a suspended user's ended session on node %d: 200, exp a refusal", i)
		}
	}
	if err := tc.nodes[2].auth.SetUserStatus(context.Background(), email, users.StatusActive); err != nil {
		t.Fatalf("reactivate: %v", err)
	}
	tc.waitConverged(10 * time.Second)
	// Suspension ended the session everywhere (issue 9): its refresh token
	// stays dead after reactivation; a new login works.
	authWantErr(t, "refresh after reactivation", authRefresh(t, tc.nodes[0].apiURL, p.RefreshToken), http.StatusUnauthorized, "session_ended")
	again := authLogin(t, tc.nodes[0].apiURL, email, authPW, "web", "laptop")
	authWaitReason(t, tc, again.AccessToken, checkreason.None)
	authWaitReason(t, tc, p.AccessToken, checkreason.AccountSuspended)
}

// authPutSigningKey replicates a new signing key, sealed with the cluster's
// KEK, that signs from activates on.
func authPutSigningKey(t *testing.T, tc *testCluster, activates time.Time) string {
	t.Helper()
	kek, err := keys.ParseKEK(tc.kek)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := keys.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	kid := token.PID(pub)
	sealed, err := keys.Seal(kek, priv, []byte(kid))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	retires := activates.Add(24 * time.Hour)
	raw, err := store.EncodeCommand(&storev1.Command{NowUnixNano: now.UnixNano(), RequestId: "auth-test-" + kid,
		Op: &storev1.Command_PutSigningKey{PutSigningKey: &storev1.PutSigningKey{Key: &storev1.SigningKey{
			Kid: kid, Algorithm: "ed25519", Purpose: "sign", PublicKey: pub, EncryptedPrivateKey: sealed,
			CreatedUnixNano: now.UnixNano(), ActivatesUnixNano: activates.UnixNano(),
			RetiresUnixNano: retires.UnixNano(), ExpiresUnixNano: retires.Add(15 * 24 * time.Hour).UnixNano(),
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	applied, err := tc.nodes[1].raft.Propose(ctx, raw) // a follower: forwarded to the leader
	if err != nil {
		t.Fatalf("propose the signing key: %v", err)
	}
	res, err := store.DecodeResult(applied.Response)
	if err != nil || res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		t.Fatalf("put signing key: got %v %v, want success", res, err)
	}
	return kid
}

func authTestKeyRotation(t *testing.T, tc *testCluster) {
	const email = "keys@example.com"
	tc.createUser(email, authPW)
	old := authLogin(t, tc.nodes[0].apiURL, email, authPW, "web", "laptop")
	oldKid := authKid(t, old.AccessToken)

	activates := time.Now().Add(2 * time.Second)
	newKid := authPutSigningKey(t, tc, activates)
	// Published (on every node) before it signs.
	for i, nd := range tc.nodes {
		clustertest.WaitFor(t, 10*time.Second, "node "+strconv.Itoa(i)+" publishing the new key", func() bool {
			_, ok := authPublishedKeys(t, nd.apiURL)[newKid]
			return ok
		})
	}
	early := authLogin(t, tc.nodes[1].apiURL, email, authPW, "ios", "phone")
	if time.Now().Before(activates) && authKid(t, early.AccessToken) != oldKid {
		t.Errorf("a login before the new key activates was signed by %s, want the current key %s", authKid(t, early.AccessToken), oldKid)
	}
	// Once it activates, new tokens are signed by it (each node rereads
	// its keys at most every second).
	var fresh authPair
	for i, nd := range tc.nodes {
		clustertest.WaitFor(t, 15*time.Second, "node "+strconv.Itoa(i)+" signing with the new key", func() bool {
			fresh = authLogin(t, nd.apiURL, email, authPW, "android", "tablet")
			return authKid(t, fresh.AccessToken) == newKid
		})
	}
	if time.Now().Before(activates) {
		t.Errorf("tokens signed with the new key before it activates at %s", activates)
	}
	// Old tokens stay valid; both verify with what node 2 publishes.
	pubs := authPublishedKeys(t, tc.nodes[2].apiURL)
	for _, tok := range []string{old.AccessToken, fresh.AccessToken} {
		if _, err := token.VerifyAccess(tok, authLookup(pubs), token.Expectation{Issuer: tc.issuer, Audience: "sessiond", Now: time.Now()}); err != nil {
			t.Errorf("verify a token signed by %s with node 2's published keys: %v", authKid(t, tok), err)
		}
	}
	authWaitReason(t, tc, old.AccessToken, checkreason.None)
	authWaitReason(t, tc, fresh.AccessToken, checkreason.None)
	// A refresh token signed by the old key still rotates; the successor
	// is signed by the new key.
	next := authPairOf(t, "refresh an old-key token", authRefresh(t, tc.nodes[2].apiURL, old.RefreshToken))
	if got := authKid(t, next.AccessToken); got != newKid {
		t.Errorf("refreshed access token signed by %s, want the new key %s", got, newKid)
	}
	authWaitReason(t, tc, next.AccessToken, checkreason.None)
}

func TestAuthRefreshReuseWithoutGrace(t *testing.T) {
	// A grace of 0: presenting a spent token again is reuse at once.
	tc := startTestCluster(t, 3, func(_ int, c *Config) { c.Auth.RefreshGrace = 0 })
	const email = "nograce@example.com"
	tc.createUser(email, authPW)
	p0 := authLogin(t, tc.nodes[0].apiURL, email, authPW, "web", "laptop")
	p1 := authPairOf(t, "refresh", authRefresh(t, tc.nodes[2].apiURL, p0.RefreshToken))
	authWantErr(t, "present the spent token again", authRefresh(t, tc.nodes[1].apiURL, p0.RefreshToken), http.StatusUnauthorized, "refresh_token_reused")
	authWaitReason(t, tc, p1.AccessToken, checkreason.SessionEnded)
	authWantErr(t, "the successor after reuse", authRefresh(t, tc.nodes[0].apiURL, p1.RefreshToken), http.StatusUnauthorized, "")
}

func TestAuthLoginThrottle(t *testing.T) {
	tc := startTestCluster(t, 3, nil)
	const email = "guessed@example.com"
	tc.createUser(email, authPW)
	base := tc.nodes[1].apiURL
	var r authResp
	failures := 0
	for range 20 {
		r = authTryLogin(t, base, email, "wrong password", "web", "laptop", false)
		if r.status != http.StatusUnauthorized {
			break
		}
		failures++
	}
	authWantErr(t, "repeated wrong passwords", r, http.StatusTooManyRequests, "too_many_attempts")
	if failures < 5 {
		t.Errorf("throttled after %d failures, want at least the 5 free attempts", failures)
	}
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q: want a positive number of seconds", r.header.Get("Retry-After"))
	}
	// The right password is refused while the account waits.
	authWantErr(t, "correct password while throttled", authTryLogin(t, base, email, authPW, "web", "laptop", false), http.StatusTooManyRequests, "too_many_attempts")
}

func TestAuthAuthorizeConnect(t *testing.T) {
	tc := startTestCluster(t, 3, func(_ int, c *Config) {
		c.Auth.Policy = []PolicyRule{{Resource: "th-customs", Actions: []string{"*"}, AnyRole: []string{"customs-agent"}, Require: map[string]string{"country": "TH"}}}
	})
	ctx := context.Background()
	tc.createUser("agent@example.com", authPW, "customs-agent")
	tc.createUser("clerk@example.com", authPW, "clerk")
	if _, err := tc.nodes[0].auth.CreateUser(ctx, authsvc.NewUserInput{Email: "kr-agent@example.com", Password: authPW,
		DisplayName: "KR agent", OrgName: "Busan Brokers", Country: "KR", OrgType: users.OrgSupplier, Roles: []string{"customs-agent"}}); err != nil {
		t.Fatal(err)
	}
	clients := make([]authv1connect.AuthServiceClient, len(tc.nodes))
	for i, nd := range tc.nodes {
		clients[i] = authv1connect.NewAuthServiceClient(authHTTP, nd.apiURL)
	}
	login := func(i int, email string) *authv1.TokenPair {
		t.Helper()
		res, err := clients[i].Login(ctx, connect.NewRequest(&authv1.LoginRequest{Email: email, Password: authPW, Platform: authv1.Platform_PLATFORM_WEB, DeviceId: "pc"}))
		if err != nil {
			t.Fatalf("Connect login of %s: %v", email, err)
		}
		return res.Msg.GetTokens()
	}
	agent, clerk, kr := login(0, "agent@example.com"), login(1, "clerk@example.com"), login(2, "kr-agent@example.com")
	for _, c := range []struct {
		who, tok, resource string
		node               int
		allowed            bool
	}{
		{"TH customs agent", agent.GetAccessToken(), "th-customs", 1, true},
		{"TH customs agent, other node", agent.GetAccessToken(), "th-customs", 2, true},
		{"TH clerk", clerk.GetAccessToken(), "th-customs", 0, false},
		{"KR customs agent", kr.GetAccessToken(), "th-customs", 0, false},
		{"TH customs agent, other resource", agent.GetAccessToken(), "kr-customs", 0, false},
	} {
		res, err := clients[c.node].Authorize(ctx, connect.NewRequest(&authv1.AuthorizeRequest{Token: c.tok, Action: "clear", Resource: c.resource}))
		if err != nil {
			t.Errorf("%s: Authorize: %v", c.who, err)
			continue
		}
		if res.Msg.GetAllowed() != c.allowed || res.Msg.GetReason() == "" {
			t.Errorf("%s on %s: got allowed=%v (%q), want %v with a reason", c.who, c.resource, res.Msg.GetAllowed(), res.Msg.GetReason(), c.allowed)
		}
	}
	_, err := clients[0].Authorize(ctx, connect.NewRequest(&authv1.AuthorizeRequest{Token: "garbage", Action: "clear", Resource: "th-customs"}))
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("Authorize with a garbage token: got %v, want unauthenticated", err)
	}

	// Connect's view of the one-session rule: AlreadyExists with the
	// holder described in a detail; then a refresh over Connect.
	_, err = clients[1].Login(ctx, connect.NewRequest(&authv1.LoginRequest{Email: "agent@example.com", Password: authPW, Platform: authv1.Platform_PLATFORM_WEB, DeviceId: "other-pc"}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeAlreadyExists {
		t.Fatalf("second web device over Connect: got %v, want already_exists", err)
	}
	var holder *authv1.LoginConflict
	for _, d := range ce.Details() {
		if m, err := d.Value(); err == nil {
			if lc, ok := m.(*authv1.LoginConflict); ok {
				holder = lc
			}
		}
	}
	if holder.GetDeviceId() != "pc" || holder.GetSessionId() != agent.GetSessionId() {
		t.Errorf("conflict detail: got %v, want device pc, session %s", holder, agent.GetSessionId())
	}
	res, err := clients[2].Refresh(ctx, connect.NewRequest(&authv1.RefreshRequest{RefreshToken: agent.GetRefreshToken()}))
	if err != nil {
		t.Fatalf("Connect refresh: %v", err)
	}
	authWaitReason(t, tc, res.Msg.GetTokens().GetAccessToken(), checkreason.None)
}

// authFreshDatabase returns the URL of a new empty database.
func authFreshDatabase(t *testing.T) string { return userstest.NewDatabase(t) }

func TestAuthPostgresDirectory(t *testing.T) {
	dsn := authFreshDatabase(t)
	tc := startTestCluster(t, 3, func(_ int, c *Config) { c.DatabaseURL, c.Migrate = dsn, true })
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	h, err := password.NewHasher(password.Config{Params: password.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := h.Hash(authPW)
	if err != nil {
		t.Fatal(err)
	}
	u, err := users.NewPostgres(pool).Create(ctx, users.NewUser{Email: "Pg.User@Example.com", PasswordHash: hash,
		DisplayName: "Pg User", OrgName: "Chiang Mai Logistics", Country: "TH", OrgType: users.OrgCustomer, Roles: []string{"shipper"}})
	if err != nil {
		t.Fatalf("create the user in Postgres: %v", err)
	}
	p := authLogin(t, tc.nodes[1].apiURL, "pg.user@example.com", authPW, "web", "laptop")
	next := authPairOf(t, "refresh on node 2", authRefresh(t, tc.nodes[2].apiURL, p.RefreshToken))
	authWaitReason(t, tc, next.AccessToken, checkreason.None)
	c := tc.nodes[0].auth.CheckToken(next.AccessToken)
	if c.Claims.Subject != u.ID || c.Claims.OrgID != u.Org.ID || c.Claims.Country != "TH" {
		t.Errorf("claims: got sub %q org %q country %q, want %q %q TH", c.Claims.Subject, c.Claims.OrgID, c.Claims.Country, u.ID, u.Org.ID)
	}
	authWantErr(t, "wrong password against Postgres", authTryLogin(t, tc.nodes[0].apiURL, "pg.user@example.com", "nope nope", "ios", "phone", false), http.StatusUnauthorized, "invalid_credentials")
}
