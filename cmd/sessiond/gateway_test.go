package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sessiond/sessiond/api/gateway"
	authv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1"
	"github.com/sessiond/sessiond/cluster/clustertest"
)

// gwBasic is the test service client's credential, as a gateway sends it.
var gwBasic = "Basic " + base64.StdEncoding.EncodeToString([]byte(tcServiceID+":"+tcServiceSecret))

// gwCheck calls GET /gateway/check on nd with the gateway credential
// (cred, "" for none) and the user's Authorization values.
func gwCheck(t *testing.T, nd *node, cred string, authorization ...string) (*http.Response, map[string]string) {
	t.Helper()
	return gwCheckQuery(t, nd, "", cred, authorization...)
}

// gwCheckQuery is gwCheck with a query string ("action=...&resource=...").
func gwCheckQuery(t *testing.T, nd *node, query, cred string, authorization ...string) (*http.Response, map[string]string) {
	t.Helper()
	u := nd.apiURL + gateway.CheckPath
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cred != "" {
		req.Header.Set(gateway.CredentialHeader, cred)
	}
	for _, a := range authorization {
		req.Header.Add("Authorization", a)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", gateway.CheckPath, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := map[string]string{}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("GET %s: status %d, body %q is not a JSON object: %v", gateway.CheckPath, resp.StatusCode, b, err)
		}
	}
	return resp, body
}

// gwExtAuthz is an Envoy ext_authz client (the generated gRPC stub) of nd,
// sending cred ("" for none) as the gRPC call's authorization metadata.
func gwExtAuthz(t *testing.T, nd *node) authv3.AuthorizationClient { return gwExtAuthzB(t, nd) }

// gwExtAuthzB is gwExtAuthz for tests and benchmarks.
func gwExtAuthzB(t testing.TB, nd *node) authv3.AuthorizationClient {
	t.Helper()
	cc, err := grpc.NewClient(strings.TrimPrefix(nd.apiURL, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return authv3.NewAuthorizationClient(cc)
}

// gwEnvoyRequest is the CheckRequest Envoy sends for an HTTP request with
// these headers (lower-case names, as Envoy sends them).
func gwEnvoyRequest(headers map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/hello", Host: "api.example.com", Headers: headers},
	}}}
}

func TestGatewayForwardAuth(t *testing.T) {
	tc := startTestCluster(t, 2, func(i int, c *Config) {
		if i == 1 {
			c.Auth.Gateway.MaxAge = 30 * time.Second
		}
		c.Auth.Policy = []PolicyRule{{Resource: "th-customs", Actions: []string{"read"}, AnyRole: []string{"customs-agent"}, Require: map[string]string{"country": "TH"}}}
	})
	hk, seoul := tc.nodes[0], tc.nodes[1]
	tc.createUser("gw@example.com", ptPassword, "customs-agent", "viewer")
	tp := ptLogin(t, hk, "gw@example.com", "laptop", authv1.Platform_PLATFORM_WEB)
	access := "Bearer " + tp.GetAccessToken()

	// Active, checked on the node that issued it: 200, every identity
	// header, no-store (hk has no max_age).
	resp, _ := gwCheck(t, hk, gwBasic, access)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("check of an active token: status %d; want 200", resp.StatusCode)
	}
	want := map[string]string{
		gateway.HeaderSession: tp.GetSessionId(), gateway.HeaderRoles: "customs-agent,viewer",
		gateway.HeaderCountry: "TH", gateway.HeaderOrgType: "CUSTOMER", gateway.HeaderPlatform: "web",
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: got %q, want %q", k, got, v)
		}
	}
	for _, k := range gateway.IdentityHeaders {
		if resp.Header.Get(k) == "" {
			t.Errorf("%s: missing from the 200; want every identity header set", k)
		}
	}
	if exp, err := strconv.ParseInt(resp.Header.Get(gateway.HeaderExpires), 10, 64); err != nil || time.Until(time.Unix(exp, 0)) <= 0 {
		t.Errorf("%s %q: want a Unix time in the future", gateway.HeaderExpires, resp.Header.Get(gateway.HeaderExpires))
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control without max_age: got %q, want no-store", cc)
	}
	user := resp.Header.Get(gateway.HeaderUser)

	// seoul allows caching for 30 s: bounded by max_age (and the token's
	// expiry), varying by Authorization.
	resp, _ = gwCheck(t, seoul, gwBasic, access)
	if resp.StatusCode != http.StatusOK || resp.Header.Get(gateway.HeaderUser) != user {
		t.Fatalf("check on seoul: status %d, user %q; want 200 and %q", resp.StatusCode, resp.Header.Get(gateway.HeaderUser), user)
	}
	age, err := strconv.Atoi(strings.TrimPrefix(resp.Header.Get("Cache-Control"), "max-age="))
	if err != nil || age < 1 || age > 30 || resp.Header.Get("Vary") != "Authorization" {
		t.Errorf("seoul (max_age 30s): Cache-Control %q, Vary %q; want max-age between 1 and 30 and Vary: Authorization",
			resp.Header.Get("Cache-Control"), resp.Header.Get("Vary"))
	}

	// Refusals: 401 with an RFC 6750 challenge, the reason, never cacheable.
	for _, c := range []struct {
		name, reason string
		auth         []string
	}{
		{"no token", "", nil},
		{"Basic user credentials", "", []string{"Basic dXNlcjpwYXNz"}},
		{"garbage token", "malformed", []string{"Bearer v4.public.garbage"}},
		{"two Authorization headers", "malformed", []string{access, access}},
		{"token over 8 KiB", "malformed", []string{"Bearer " + strings.Repeat("a", 9<<10)}},
	} {
		resp, body := gwCheck(t, seoul, gwBasic, c.auth...)
		wa := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get(gateway.HeaderReason) != c.reason ||
			resp.Header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(wa, `Bearer realm="sessiond"`) ||
			(c.reason == "") == strings.Contains(wa, "invalid_token") || body["message"] == "" {
			t.Errorf("%s: status %d, reason %q, Cache-Control %q, WWW-Authenticate %q, body %v; want 401, reason %q, no-store, a Bearer challenge (invalid_token only with a token) and a message",
				c.name, resp.StatusCode, resp.Header.Get(gateway.HeaderReason), resp.Header.Get("Cache-Control"), wa, body, c.reason)
		}
		if resp.Header.Get(gateway.HeaderUser) != "" {
			t.Errorf("%s: %s %q on a refusal; want none", c.name, gateway.HeaderUser, resp.Header.Get(gateway.HeaderUser))
		}
	}

	// The gateway's own credential: missing or wrong is the gateway's
	// problem (500 naming the header), never a 401 a gateway would relay
	// to the user as a verdict on the user's token.
	for _, c := range []struct{ name, cred string }{
		{"no gateway credential", ""},
		{"wrong gateway secret", "Basic " + base64.StdEncoding.EncodeToString([]byte(tcServiceID+":wrong-secret"))},
		{"the user's token as the gateway credential", access},
	} {
		resp, body := gwCheck(t, seoul, c.cred, access)
		if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(body["message"], gateway.CredentialHeader) ||
			resp.Header.Get(gateway.HeaderUser) != "" {
			t.Errorf("%s: status %d, body %v, user %q; want 500 naming %s and no identity", c.name, resp.StatusCode, body,
				resp.Header.Get(gateway.HeaderUser), gateway.CredentialHeader)
		}
	}

	// Envoy ext_authz through the generated gRPC client, authenticated as
	// the service client in the call's metadata (Envoy's initial_metadata).
	ext := gwExtAuthz(t, seoul)
	ctx := context.Background()
	withCred := func(ctx context.Context) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", gwBasic)
	}
	res, err := ext.Check(withCred(ctx), gwEnvoyRequest(map[string]string{"authorization": access, "x-sessiond-org": "spoofed"}))
	if err != nil {
		t.Fatalf("ext_authz Check of an active token: %v", err)
	}
	ok := res.GetOkResponse()
	if res.GetStatus().GetCode() != int32(codes.OK) || ok == nil {
		t.Fatalf("ext_authz Check of an active token: status %v, response %v; want OK with an ok_response", res.GetStatus(), res)
	}
	got := map[string]string{}
	for _, h := range ok.GetHeaders() {
		got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("ext_authz header %s: append action %v; want OVERWRITE_IF_EXISTS_OR_ADD (a client's header is replaced)", h.GetHeader().GetKey(), h.GetAppendAction())
		}
	}
	if got["x-sessiond-user"] != user || got["x-sessiond-session"] != tp.GetSessionId() || got["x-sessiond-roles"] != "customs-agent,viewer" {
		t.Errorf("ext_authz identity headers %v; want user %s, session %s, roles customs-agent,viewer", got, user, tp.GetSessionId())
	}
	// The test user has no org id claim: the client's x-sessiond-org must go.
	if _, set := got["x-sessiond-org"]; !set && !slices.Contains(ok.GetHeadersToRemove(), "x-sessiond-org") {
		t.Errorf("ext_authz: x-sessiond-org neither set nor removed (headers %v, remove %v); a client's spoofed value would pass", got, ok.GetHeadersToRemove())
	}

	// ext_authz refusals: UNAUTHENTICATED with a 401 for the client.
	res, err = ext.Check(withCred(ctx), gwEnvoyRequest(map[string]string{"authorization": "Bearer v4.public.garbage"}))
	if err != nil {
		t.Fatalf("ext_authz Check of a garbage token: %v", err)
	}
	denied := res.GetDeniedResponse()
	if res.GetStatus().GetCode() != int32(codes.Unauthenticated) || denied.GetStatus().GetCode() != typev3.StatusCode_Unauthorized ||
		!strings.Contains(denied.GetBody(), `"reason":"malformed"`) || !gwHasHeader(denied.GetHeaders(), "www-authenticate", "invalid_token") {
		t.Errorf("ext_authz garbage token: status %v, denied %v; want UNAUTHENTICATED, 401, reason malformed and a Bearer challenge", res.GetStatus(), denied)
	}
	// Without the gateway's credential the call itself is refused, and a
	// request without HTTP attributes is invalid.
	if _, err := ext.Check(ctx, gwEnvoyRequest(map[string]string{"authorization": access})); status.Code(err) != codes.Unauthenticated {
		t.Errorf("ext_authz without a caller credential: got %v; want Unauthenticated", err)
	}
	if _, err := ext.Check(withCred(ctx), &authv3.CheckRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("ext_authz without attributes.request.http: got %v; want InvalidArgument", err)
	}
	huge := gwEnvoyRequest(map[string]string{"authorization": access})
	huge.Attributes.Request.Http.RawBody = make([]byte, gateway.MaxCheckRequestBytes+1)
	if _, err := ext.Check(withCred(ctx), huge); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("ext_authz CheckRequest over %d bytes: got %v; want ResourceExhausted", gateway.MaxCheckRequestBytes, err)
	}

	// A route that needs a permission: the policy decides, 403 when it
	// refuses an active token, 401 still first for an inactive one.
	tc.createUser("clerk@example.com", ptPassword, "clerk")
	clerk := "Bearer " + ptLogin(t, hk, "clerk@example.com", "pc", authv1.Platform_PLATFORM_WEB).GetAccessToken()
	const perm = "action=read&resource=th-customs"
	if resp, _ := gwCheckQuery(t, seoul, perm, gwBasic, access); resp.StatusCode != http.StatusOK || resp.Header.Get(gateway.HeaderUser) != user {
		t.Errorf("customs agent on th-customs: status %d, user %q; want 200 and %q", resp.StatusCode, resp.Header.Get(gateway.HeaderUser), user)
	}
	if resp, body := gwCheckQuery(t, seoul, perm, gwBasic, clerk); resp.StatusCode != http.StatusForbidden || body["error"] != "permission_denied" ||
		body["message"] == "" || resp.Header.Get(gateway.HeaderUser) != "" {
		t.Errorf("clerk on th-customs: status %d, body %v, user %q; want 403 permission_denied with the policy's reason and no identity", resp.StatusCode, body, resp.Header.Get(gateway.HeaderUser))
	}
	if resp, _ := gwCheckQuery(t, seoul, perm, gwBasic, "Bearer v4.public.garbage"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("garbage token on th-customs: status %d; want 401", resp.StatusCode)
	}
	for _, q := range []string{"action=read", "resource=th-customs", "action=read&resource=" + strings.Repeat("x", 300)} {
		if resp, body := gwCheckQuery(t, seoul, q, gwBasic, access); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body["message"], "action and resource") {
			t.Errorf("?%.40s: status %d, body %v; want 400 naming action and resource", q, resp.StatusCode, body)
		}
	}
	permReq := func(auth string) *authv3.CheckRequest {
		r := gwEnvoyRequest(map[string]string{"authorization": auth})
		r.Attributes.ContextExtensions = map[string]string{"action": "read", "resource": "th-customs"}
		return r
	}
	if res, err := ext.Check(withCred(ctx), permReq(access)); err != nil || res.GetOkResponse() == nil {
		t.Errorf("ext_authz customs agent on th-customs: %v, %v; want an ok_response", res, err)
	}
	res, err = ext.Check(withCred(ctx), permReq(clerk))
	if err != nil || res.GetStatus().GetCode() != int32(codes.PermissionDenied) || res.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_Forbidden {
		t.Errorf("ext_authz clerk on th-customs: %v, %v; want PERMISSION_DENIED with a 403", res, err)
	}
	bad := permReq(access)
	bad.Attributes.ContextExtensions = map[string]string{"action": "read"}
	if _, err := ext.Check(withCred(ctx), bad); status.Code(err) != codes.InvalidArgument {
		t.Errorf("ext_authz with an action and no resource: %v; want InvalidArgument", err)
	}

	// Logout through hk: the next check on seoul, over both protocols, is
	// refused with session_ended (logout).
	if err := ptLogout(ctx, hk, tp.GetAccessToken()); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 10*time.Second, "seoul refusing the logged-out token at /gateway/check", func() bool {
		resp, _ := gwCheck(t, seoul, gwBasic, access)
		return resp.StatusCode == http.StatusUnauthorized
	})
	resp, body := gwCheck(t, seoul, gwBasic, access)
	if resp.Header.Get(gateway.HeaderReason) != "session_ended" || resp.Header.Get(gateway.HeaderEnd) != "logout" || body["end_reason"] != "logout" {
		t.Errorf("after logout: reason %q, end reason %q, body %v; want session_ended, logout", resp.Header.Get(gateway.HeaderReason), resp.Header.Get(gateway.HeaderEnd), body)
	}
	res, err = ext.Check(withCred(ctx), gwEnvoyRequest(map[string]string{"authorization": access}))
	if err != nil || res.GetDeniedResponse() == nil || !gwHasHeader(res.GetDeniedResponse().GetHeaders(), "x-sessiond-reason", "session_ended") {
		t.Errorf("ext_authz after logout: %v, %v; want a denied response with x-sessiond-reason session_ended", res, err)
	}
}

func TestGatewayCheckOpen(t *testing.T) {
	// auth.callers.check: open lets a gateway without a credential check;
	// a credential it presents is still verified.
	tc := startTestCluster(t, 1, func(_ int, c *Config) { c.Auth.Callers.Check = callerOpen })
	nd := tc.nodes[0]
	tc.createUser("open@example.com", ptPassword)
	tp := ptLogin(t, nd, "open@example.com", "laptop", authv1.Platform_PLATFORM_WEB)
	if resp, _ := gwCheck(t, nd, "", "Bearer "+tp.GetAccessToken()); resp.StatusCode != http.StatusOK {
		t.Errorf("open check without a gateway credential: status %d; want 200", resp.StatusCode)
	}
	if resp, _ := gwCheck(t, nd, "Basic "+base64.StdEncoding.EncodeToString([]byte(tcServiceID+":wrong")), "Bearer "+tp.GetAccessToken()); resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("open check with a wrong gateway credential: status %d; want 500", resp.StatusCode)
	}
	if _, err := gwExtAuthz(t, nd).Check(context.Background(), gwEnvoyRequest(map[string]string{"authorization": "Bearer " + tp.GetAccessToken()})); err != nil {
		t.Errorf("open ext_authz without a credential: %v; want an answer", err)
	}
}

func TestGatewayConfig(t *testing.T) {
	for _, d := range []time.Duration{-time.Second, 2 * time.Minute} {
		cfg := defaultConfig()
		cfg.Auth.Gateway.MaxAge = d
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "auth.gateway.max_age") {
			t.Errorf("auth.gateway.max_age %s: got %v; want an error naming auth.gateway.max_age", d, err)
		}
	}
}

func gwHasHeader(hs []*corev3.HeaderValueOption, key, substr string) bool {
	for _, h := range hs {
		if h.GetHeader().GetKey() == key && strings.Contains(h.GetHeader().GetValue(), substr) {
			return true
		}
	}
	return false
}

// TestGatewayFailsClosed: a node cut off from any leader cannot vouch for
// its state (a revocation may have been committed without it), so its
// gateway checks answer 503 with Retry-After (ext_authz: UNAVAILABLE)
// instead of allowing a token from stale state; a request without a token
// is still 401 at once.
func TestGatewayFailsClosed(t *testing.T) {
	tc := startTestCluster(t, 2, nil)
	tc.createUser("cut@example.com", ptPassword)
	leader := tc.leader()
	var other *node
	for _, nd := range tc.nodes {
		if nd != leader {
			other = nd
		}
	}
	tp := ptLogin(t, other, "cut@example.com", "laptop", authv1.Platform_PLATFORM_WEB)
	access := "Bearer " + tp.GetAccessToken()
	if resp, _ := gwCheck(t, other, gwBasic, access); resp.StatusCode != http.StatusOK {
		t.Fatalf("check before the leader stops: status %d; want 200", resp.StatusCode)
	}
	tc.stop(leader)
	var last *http.Response
	var body map[string]string
	clustertest.WaitFor(t, 20*time.Second, "the remaining node answering 503 without a leader", func() bool {
		last, body = gwCheck(t, other, gwBasic, access)
		return last.StatusCode == http.StatusServiceUnavailable
	})
	if last.Header.Get("Retry-After") == "" || body["error"] != "unavailable" || !strings.Contains(body["message"], "another node") ||
		last.Header.Get(gateway.HeaderUser) != "" {
		t.Errorf("check without a leader: Retry-After %q, body %v, user %q; want Retry-After, unavailable saying to ask another node, no identity",
			last.Header.Get("Retry-After"), body, last.Header.Get(gateway.HeaderUser))
	}
	if resp, _ := gwCheck(t, other, gwBasic); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token without a leader: status %d; want 401", resp.StatusCode)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", gwBasic)
	if _, err := gwExtAuthz(t, other).Check(ctx, gwEnvoyRequest(map[string]string{"authorization": access})); status.Code(err) != codes.Unavailable {
		t.Errorf("ext_authz without a leader: %v; want Unavailable", err)
	}
}
