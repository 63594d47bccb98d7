package guard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/clients/go/checkreason"
	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1/sessionv1connect"
	"github.com/sessiond/sessiond/clients/go/policy"
	"github.com/sessiond/sessiond/clients/go/token"
)

func rule(resource string, actions ...string) policy.Rule {
	return policy.Rule{Resource: resource, Actions: actions}
}

var customsRule = policy.Rule{Resource: "th-customs", Actions: []string{"read"},
	AnyRole: []string{"customs-agent"}, Require: map[string]string{"country": "TH"}}

// echoSubject answers the subject of the claims in the context.
var echoSubject = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	c, ok := ClaimsFromContext(r.Context())
	if !ok {
		http.Error(w, "no claims", http.StatusInternalServerError)
		return
	}
	_, _ = w.Write([]byte(c.Subject))
})

type httpResult struct {
	status  int
	body    map[string]string
	raw     string
	wwwAuth string
}

func serve(t *testing.T, h http.Handler, authz string) httpResult {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/x", nil)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := httpResult{status: rec.Code, raw: rec.Body.String(), wwwAuth: rec.Header().Get("WWW-Authenticate")}
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(rec.Body.Bytes(), &res.body); err != nil {
			t.Fatalf("error body %q: %v", rec.Body.String(), err)
		}
	}
	return res
}

func TestMiddlewareAccepts(t *testing.T) {
	g, _, k, _ := startedGuard(t, nil)
	res := serve(t, g.Middleware(echoSubject), "Bearer "+k.mint(t, nil))
	if res.status != http.StatusOK || res.raw != "user-1" {
		t.Fatalf("got %d %q, want 200 user-1", res.status, res.raw)
	}
	if res := serve(t, g.Middleware(echoSubject), "bearer "+k.mint(t, nil)); res.status != http.StatusOK {
		t.Fatalf("lower-case scheme: got %d, want 200", res.status)
	}
}

func TestMiddlewareRejects401(t *testing.T) {
	g, _, k, _ := startedGuard(t, nil)
	good := k.mint(t, nil)
	// Flip one character inside the signed payload.
	i := len("v4.public.") + 10
	flip := byte('A')
	if good[i] == 'A' {
		flip = 'B'
	}
	tampered := good[:i] + string(flip) + good[i+1:]
	cases := map[string]string{
		"tampered": "Bearer " + tampered,
		"expired": "Bearer " + k.mint(t, func(c *token.AccessClaims) {
			c.IssuedAt = c.IssuedAt.AddDate(0, 0, -1)
			c.Expiration = c.IssuedAt.Add(time.Minute)
		}),
		"other issuer":   "Bearer " + k.mint(t, func(c *token.AccessClaims) { c.Issuer = "http://other" }),
		"other audience": "Bearer " + k.mint(t, func(c *token.AccessClaims) { c.Audience = "other" }),
		"garbage":        "Bearer garbage.garbage",
		"huge":           "Bearer " + strings.Repeat("x", 64<<10),
		"missing":        "",
		"basic scheme":   "Basic dXNlcjpwYXNz",
	}
	for name, authz := range cases {
		t.Run(name, func(t *testing.T) {
			res := serve(t, g.Middleware(echoSubject), authz)
			if res.status != http.StatusUnauthorized {
				t.Fatalf("status = %d (%s), want 401", res.status, res.raw)
			}
			if !strings.HasPrefix(res.wwwAuth, "Bearer ") {
				t.Fatalf("WWW-Authenticate = %q, want Bearer challenge", res.wwwAuth)
			}
			if res.body["error"] == "" || res.body["message"] == "" {
				t.Fatalf("body = %q, want JSON error and message", res.raw)
			}
			if strings.Contains(res.raw, good[20:60]) {
				t.Fatalf("body echoes the token")
			}
		})
	}
}

func TestMiddlewareRevoked401(t *testing.T) {
	g, _, k, s := startedGuard(t, nil)
	tok := k.mint(t, func(c *token.AccessClaims) { c.SessionID = "sess-r" })
	h := g.Middleware(echoSubject)
	if res := serve(t, h, "Bearer "+tok); res.status != http.StatusOK {
		t.Fatalf("before revocation: %d", res.status)
	}
	s.send(t, false, 2, sessionEv(2, "sess-r"))
	waitIndex(t, g, 2)
	res := serve(t, h, "Bearer "+tok)
	if res.status != http.StatusUnauthorized || !strings.Contains(res.body["message"], checkreason.String(checkreason.SessionEnded)) {
		t.Fatalf("after revocation: %d %q, want 401 naming session_ended", res.status, res.raw)
	}
}

func TestMiddlewareForbidden403(t *testing.T) {
	g, _, k, _ := startedGuard(t, func(c *Config) { c.Rules = []policy.Rule{customsRule} })
	h := g.Middleware(echoSubject, RequireAction("read", "th-customs"))
	agentTH := k.mint(t, func(c *token.AccessClaims) { c.Roles = []string{"customs-agent"} })
	agentFR := k.mint(t, func(c *token.AccessClaims) { c.Roles, c.Country = []string{"customs-agent"}, "FR" })
	viewer := k.mint(t, nil)
	if res := serve(t, h, "Bearer "+agentTH); res.status != http.StatusOK {
		t.Fatalf("TH customs agent: %d %q, want 200", res.status, res.raw)
	}
	for name, tok := range map[string]string{"FR agent": agentFR, "no role": viewer} {
		res := serve(t, h, "Bearer "+tok)
		if res.status != http.StatusForbidden || res.body["error"] != "forbidden" {
			t.Fatalf("%s: %d %q, want 403 forbidden", name, res.status, res.raw)
		}
	}
	if _, err := g.CheckAction(context.Background(), agentFR, "read", "th-customs"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("CheckAction: err = %v, want ErrForbidden", err)
	}
	if d := g.Authorize(&token.AccessClaims{Roles: []string{"customs-agent"}, Country: "TH"}, "read", "th-customs"); !d.Allowed {
		t.Fatalf("Authorize = %+v, want allowed", d)
	}
}

func TestMiddlewareStale503(t *testing.T) {
	k := newSigner(t)
	n := newFakeNode(t, k)
	g := newGuard(t, nil, n) // never started: stale
	_ = g.refreshKeys(context.Background(), g.now(), true)
	res := serve(t, g.Middleware(echoSubject), "Bearer "+k.mint(t, nil))
	if res.status != http.StatusServiceUnavailable || res.body["error"] != "temporarily_unavailable" {
		t.Fatalf("got %d %q, want 503 temporarily_unavailable", res.status, res.raw)
	}
}

// protectedSvc is a Connect service behind the interceptor: CheckSession
// answers the caller's subject as the reason.
type protectedSvc struct {
	sessionv1connect.UnimplementedSessionServiceHandler
}

func (protectedSvc) CheckSession(ctx context.Context, _ *connect.Request[sessionv1.CheckSessionRequest]) (*connect.Response[sessionv1.CheckSessionResponse], error) {
	c, ok := ClaimsFromContext(ctx)
	if !ok {
		return nil, connect.NewError(connect.CodeInternal, errors.New("no claims"))
	}
	return connect.NewResponse(&sessionv1.CheckSessionResponse{Active: true, Reason: c.Subject}), nil
}

func TestInterceptor(t *testing.T) {
	g, _, k, _ := startedGuard(t, func(c *Config) { c.Rules = []policy.Rule{customsRule} })
	srv := httptest.NewServer(http.NewServeMux())
	t.Cleanup(srv.Close)
	mux := srv.Config.Handler.(*http.ServeMux)
	mux.Handle(sessionv1connect.NewSessionServiceHandler(protectedSvc{},
		connect.WithInterceptors(g.Interceptor(RequireAction("read", "th-customs")))))
	client := sessionv1connect.NewSessionServiceClient(srv.Client(), srv.URL)
	call := func(tok string) (*sessionv1.CheckSessionResponse, error) {
		req := connect.NewRequest(&sessionv1.CheckSessionRequest{SessionId: "s"})
		if tok != "" {
			req.Header().Set("Authorization", "Bearer "+tok)
		}
		resp, err := client.CheckSession(context.Background(), req)
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	}
	agent := k.mint(t, func(c *token.AccessClaims) { c.Roles = []string{"customs-agent"} })
	if resp, err := call(agent); err != nil || resp.GetReason() != "user-1" {
		t.Fatalf("allowed call: %v %v, want subject user-1", resp, err)
	}
	for name, tc := range map[string]struct {
		tok  string
		code connect.Code
	}{
		"missing":   {"", connect.CodeUnauthenticated},
		"garbage":   {"nope", connect.CodeUnauthenticated},
		"forbidden": {k.mint(t, nil), connect.CodePermissionDenied},
	} {
		if _, err := call(tc.tok); connect.CodeOf(err) != tc.code {
			t.Fatalf("%s: code %v (%v), want %v", name, connect.CodeOf(err), err, tc.code)
		}
	}
	// Streaming handler side.
	stream, err := client.WatchRevocations(context.Background(), connect.NewRequest(&sessionv1.WatchRevocationsRequest{}))
	if err == nil {
		for stream.Receive() {
		}
		err = stream.Err()
	}
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("stream without token: code %v (%v), want Unauthenticated", connect.CodeOf(err), err)
	}
}
