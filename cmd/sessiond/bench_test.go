package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	authv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1/authv1connect"
	"github.com/sessiond/sessiond/internal/bench"
)

// benchOperator returns an operator token for the load tool: admin (user
// admin, preload) and the service scopes its SessionService calls need.
func benchOperator(tc *testCluster) string {
	tc.t.Helper()
	tok, _ := opToken(tc.t, tc.nodes[0], fmt.Sprintf("bench-%d", benchTokens.Add(1)), "admin", "check", "watch:details")
	return tok
}

var benchTokens atomic.Int64

// benchConn reaches every node of tc as an operator.
func benchConn(tc *testCluster) bench.Conn {
	c := bench.Conn{HTTP: "1.1", OperatorToken: benchOperator(tc)}
	for _, nd := range tc.nodes {
		c.Targets = append(c.Targets, nd.apiURL)
	}
	return c
}

// TestBenchScenarios runs every scenario of `sessiond bench` for a few
// operations against a three-node cluster and wants a sane summary: every
// operation succeeded, latencies ordered, throughput positive.
func TestBenchScenarios(t *testing.T) {
	tc := startTestCluster(t, 3, nil)
	conn := benchConn(tc)
	pre, err := bench.Preload(ptCtx(t, time.Minute), conn, 300, true, 2, nil)
	if err != nil {
		t.Fatalf("Preload: %v", err)
	}
	if pre.Summary.Sessions != 300 || pre.Summary.Users != 300 || len(pre.IDs) != 300 || pre.Summary.PerSecond <= 0 {
		t.Fatalf("preload: got %+v with %d ids, want 300 sessions and users", pre.Summary, len(pre.IDs))
	}
	cases := []struct {
		scenario, consistency string
	}{
		{"login", ""}, {"refresh", ""}, {"revoke", ""},
		{"check", "stale"}, {"check", "default"}, {"check", "linearizable"},
		{"check-session", "linearizable"}, {"watch", ""}, {"mixed", "default"}, {"healthz", ""},
	}
	for _, c := range cases {
		t.Run(c.scenario+"-"+c.consistency, func(t *testing.T) {
			p := bench.Params{Conn: conn, Consistency: c.consistency, Pool: 60, Sessions: pre.IDs, SessionsIndex: pre.Index,
				Mix: "check=4,check-session=2,refresh=2,revoke=1,login=1,healthz=1"}
			if c.scenario == "watch" {
				p.WatchTarget = tc.nodes[2].apiURL
			}
			sc, err := bench.NewScenario(c.scenario, p)
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			s, err := bench.Run(ptCtx(t, 2*time.Minute), c.scenario, sc, bench.Options{Clients: 4, Total: 40})
			if err != nil {
				t.Fatal(err)
			}
			if s.Errors != 0 || s.Ops != 40 {
				t.Fatalf("got %d ops and %d errors %v %v, want 40 ops and none", s.Ops, s.Errors, s.ErrorsByCode, s.ErrorSamples)
			}
			l := s.Latency
			if s.Throughput <= 0 || l.Count != 40 || !(l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
				t.Errorf("summary: throughput %v, latency %+v: want positive and ordered percentiles", s.Throughput, l)
			}
			if c.scenario == "watch" && s.ByKind["revoke"].Ops != 40 {
				t.Errorf("watch: got %d revoke calls recorded, want 40", s.ByKind["revoke"].Ops)
			}
			if c.scenario == "mixed" && len(s.ByKind) < 3 {
				t.Errorf("mixed: got kinds %v, want several", s.ByKind)
			}
		})
	}
}

// TestPreloadNeedsAnOperator performs the bulk load without credentials,
// with a bearer that is no operator token (what a shared cluster secret
// once was), and with a well-formed operator token the cluster never
// issued, and sees all refused with nothing created.
func TestPreloadNeedsAnOperator(t *testing.T) {
	tc := startTestCluster(t, 1, nil)
	nd := tc.nodes[0]
	for name, opts := range map[string][]connect.ClientOption{
		"no credentials":  nil,
		"a random bearer": {connect.WithInterceptors(bearerInterceptor(randomSecret()))},
		"a forged token":  {connect.WithInterceptors(bearerInterceptor("sdo_0123456789abcdef01234567.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))},
	} {
		cl := authv1connect.NewPreloadServiceClient(ptPooledClient(), nd.apiURL, opts...)
		_, err := cl.Preload(ptCtx(t, 10*time.Second), connect.NewRequest(&authv1.PreloadRequest{Sessions: 5}))
		if c := connect.CodeOf(err); c != connect.CodeUnauthenticated && c != connect.CodePermissionDenied {
			t.Errorf("%s: got %v, want UNAUTHENTICATED or PERMISSION_DENIED", name, err)
		}
	}
	cl := authv1connect.NewPreloadServiceClient(ptPooledClient(), nd.apiURL, connect.WithInterceptors(bearerInterceptor(benchOperator(tc))))
	for name, req := range map[string]*authv1.PreloadRequest{
		"too many":      {Sessions: 257},
		"none":          {},
		"both":          {Sessions: 1, Emails: []string{"a@example.com"}, Password: "long enough pw"},
		"short pw":      {Emails: []string{"a@example.com"}, Password: "short"},
		"bad email":     {Emails: []string{"not an email"}, Password: "long enough pw"},
		"repeated mail": {Emails: []string{"a@example.com", "A@example.com"}, Password: "long enough pw"},
	} {
		_, err := cl.Preload(ptCtx(t, 10*time.Second), connect.NewRequest(req))
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("%s: got %v, want INVALID_ARGUMENT", name, err)
		}
	}
	if list, err := nd.auth.ListUsers(context.Background()); err != nil || len(list) != 0 {
		t.Errorf("refused preloads created %d users, want none", len(list))
	}
}

// bearerInterceptor sets a Bearer token on every call.
func bearerInterceptor(tok string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+tok)
			return next(ctx, req)
		}
	}
}

// TestBenchCommand runs `sessiond bench` as a user would and reads its
// JSON summary.
func TestBenchCommand(t *testing.T) {
	tc := startTestCluster(t, 1, nil)
	t.Setenv("SESSIOND_TOKEN", benchOperator(tc))
	var out, errs bytes.Buffer
	root := newRootCmd(&out, &errs)
	root.SetArgs([]string{"bench", "check-session", "--targets", tc.nodes[0].apiURL, "--clients", "2", "--total", "20",
		"--preload", "10", "--consistency", "stale", "-o", "json"})
	if err := root.ExecuteContext(ptCtx(t, time.Minute)); err != nil {
		t.Fatalf("sessiond bench: %v\n%s", err, errs.String())
	}
	var s bench.Summary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("decode the JSON summary: %v\n%s", err, out.String())
	}
	if s.Scenario != "check-session" || s.Ops != 20 || s.Errors != 0 || s.Preload == nil || s.Preload.Sessions != 10 || s.Params["consistency"] != "stale" {
		t.Errorf("summary: got %+v (preload %+v), want 20 ops of check-session after 10 preloaded sessions", s, s.Preload)
	}
	// This token cannot read /metrics: the summary says why it has no
	// store figures.
	if s.Store != nil || !slices.ContainsFunc(s.Notes, func(n string) bool { return strings.Contains(n, "metrics scope") }) {
		t.Errorf("store %+v, notes %q; want no store figures and a note naming the metrics scope", s.Store, s.Notes)
	}
	for _, bad := range [][]string{
		{"bench", "nope"},
		{"bench", "revoke", "--total", "5", "--duration", "1s"},
		{"bench", "check", "--consistency", "strong"},
		{"bench", "check", "--targets", "127.0.0.1:1"},
		{"bench", "preload"},
		{"bench", "code-flow", "--oidc-scope", "email"},
		{"bench", "code-flow", "--oidc-redirect-uri", "/cb"},
		{"bench", "backchannel", "--oidc-backchannel-uri", "ftp://127.0.0.1/bc"},
	} {
		root := newRootCmd(&out, &errs)
		root.SetArgs(bad)
		err := root.ExecuteContext(ptCtx(t, 10*time.Second))
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("sessiond %s: got %v, want a usage error", strings.Join(bad, " "), err)
		}
	}
}

// A write load reports what the state machine wrote for it, read from the
// node's /metrics by a token with the metrics scope: pages per operation,
// per log entry, and the mean group commit.
func TestBenchReportsStoreWrites(t *testing.T) {
	tc := startTestCluster(t, 1, nil)
	tok, _ := opToken(t, tc.nodes[0], "bench-metrics", "admin", "check", "watch:details", "metrics")
	t.Setenv("SESSIOND_TOKEN", tok)
	var out, errs bytes.Buffer
	root := newRootCmd(&out, &errs)
	root.SetArgs([]string{"bench", "revoke", "--targets", tc.nodes[0].apiURL, "--clients", "2", "--total", "40", "--pool", "60", "-o", "json"})
	if err := root.ExecuteContext(ptCtx(t, time.Minute)); err != nil {
		t.Fatalf("sessiond bench: %v\n%s", err, errs.String())
	}
	var s bench.Summary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("decode the JSON summary: %v\n%s", err, out.String())
	}
	st := s.Store
	if s.Ops != 40 || st == nil {
		t.Fatalf("summary: %d ops, store %+v, notes %q; want 40 revokes and store figures", s.Ops, st, s.Notes)
	}
	// Each revoke is one log entry that rewrites at least its session's
	// leaf; every transaction also writes a meta page.
	if st.Nodes != 1 || st.Entries < 40 || st.PagesPerOp < 2 || st.PagesPerEntry <= 0 || st.EntriesPerTransaction < 1 {
		t.Errorf("store figures %+v; want one node, 40 entries at least, 2 pages per revoke at least", st)
	}
}

// TestBenchOIDCScenarios runs code-flow and backchannel against a
// three-node cluster with the OpenID Provider on: every flow succeeds (a
// public first-party client, and a confidential client that needs
// consent), and every ended client session's logout token reaches the
// bench's receiver, verified, with a latency.
func TestBenchOIDCScenarios(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bcURI := "http://" + ln.Addr().String() + "/backchannel-logout"
	ln.Close() // the bench listens there
	tc := opCluster(t, bcURI)
	conn := benchConn(tc)
	run := func(t *testing.T, scenario string, o bench.OIDCParams, total int64) *bench.Summary {
		t.Helper()
		sc, err := bench.NewScenario(scenario, bench.Params{Conn: conn, OIDC: o})
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		s, err := bench.Run(ptCtx(t, 2*time.Minute), scenario, sc, bench.Options{Clients: 3, Total: total})
		if err != nil {
			t.Fatal(err)
		}
		if s.Errors != 0 || s.Ops != total {
			t.Fatalf("%s: got %d ops and %d errors %v %v, want %d ops and none", scenario, s.Ops, s.Errors, s.ErrorsByCode, s.ErrorSamples, total)
		}
		return s
	}
	t.Run("code-flow public", func(t *testing.T) {
		s := run(t, "code-flow", bench.OIDCParams{ClientID: opSPAClient, RedirectURI: opRedirectURI}, 30)
		for _, k := range []string{"authorize", "token", "userinfo"} {
			if s.ByKind[k].Ops != 30 {
				t.Errorf("code-flow: %d %s steps recorded, want 30 (%v)", s.ByKind[k].Ops, k, s.ByKind)
			}
		}
	})
	t.Run("code-flow confidential with consent", func(t *testing.T) {
		run(t, "code-flow", bench.OIDCParams{ClientID: opWebClient, ClientSecret: opWebSecret, RedirectURI: opRedirectURI}, 12)
	})
	t.Run("backchannel", func(t *testing.T) {
		s := run(t, "backchannel", bench.OIDCParams{ClientID: opSPAClient, RedirectURI: opRedirectURI, BackchannelURI: bcURI}, 20)
		if s.Latency.Count != 20 || s.ByKind["revoke"].Ops != 20 || s.ByKind["revoke-to-token"].Ops != 20 {
			t.Errorf("backchannel: %d delivery latencies, %d revokes, %d revoke-to-token: want 20 each", s.Latency.Count, s.ByKind["revoke"].Ops, s.ByKind["revoke-to-token"].Ops)
		}
	})
	t.Run("a wrong secret is counted by its OAuth error", func(t *testing.T) {
		// Prepare does no token request for code-flow: the flows fail, by
		// code.
		sc, err := bench.NewScenario("code-flow", bench.Params{Conn: conn,
			OIDC: bench.OIDCParams{ClientID: opWebClient, ClientSecret: "not-the-secret-000000000", RedirectURI: opRedirectURI}})
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		s, err := bench.Run(ptCtx(t, time.Minute), "code-flow", sc, bench.Options{Clients: 1, Total: 2})
		if err != nil {
			t.Fatal(err)
		}
		if s.Ops != 0 || s.ErrorsByCode["token_invalid_client"] != 2 {
			t.Errorf("got %d ops, errors %v, want every flow refused as token_invalid_client", s.Ops, s.ErrorsByCode)
		}
	})
	t.Run("a client without the receiver's URI fails Prepare clearly", func(t *testing.T) {
		other := "http://127.0.0.1:1/elsewhere"
		sc, err := bench.NewScenario("backchannel", bench.Params{Conn: conn,
			OIDC: bench.OIDCParams{ClientID: opSPAClient, RedirectURI: opRedirectURI, BackchannelURI: other, BackchannelListen: "127.0.0.1:0"}})
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		_, err = bench.Run(ptCtx(t, time.Minute), "backchannel", sc, bench.Options{Clients: 1, Total: 1, Timeout: 3 * time.Second})
		if err == nil || !strings.Contains(err.Error(), "backchannel_logout_uri "+other) {
			t.Errorf("got %v, want Prepare to say the client must be registered with %s", err, other)
		}
	})
}
