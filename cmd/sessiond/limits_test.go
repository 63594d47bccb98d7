package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1/sessionv1connect"
	"github.com/sessiond/sessiond/cluster/clustertest"
)

// The request limits of the client API (api/httplimit, limits.go): bodies
// larger than a route accepts are refused before they are read, slow
// bodies are cut, streams keep going (issue 9). Every identifier starts
// with lm.

// lmBasic is the Authorization header of the test cluster's service client.
var lmBasic = "Basic " + base64.StdEncoding.EncodeToString([]byte(tcServiceID+":"+tcServiceSecret))

// lmAnswer is one raw HTTP/1.1 answer.
type lmAnswer struct {
	status int
	header http.Header
	body   []byte
	close  bool // the server said Connection: close
}

// lmSendHead opens a connection to addr and writes a request's head:
// method POST, path, the headers (name, value pairs) and Content-Length
// (negative: chunked).
func lmSendHead(t *testing.T, addr, path string, contentLength int64, hdr ...string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\n", path, addr)
	for i := 0; i+1 < len(hdr); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", hdr[i], hdr[i+1])
	}
	if contentLength >= 0 {
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", contentLength)
	} else {
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatalf("%s: write head: %v", path, err)
	}
	return conn
}

// lmReadAnswer reads one answer from conn, waiting at most limit (a bound
// for a hung server, not a measure).
func lmReadAnswer(conn net.Conn, limit time.Duration) (lmAnswer, error) {
	_ = conn.SetReadDeadline(time.Now().Add(limit))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return lmAnswer{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return lmAnswer{}, err
	}
	return lmAnswer{status: res.StatusCode, header: res.Header, body: b, close: res.Close}, nil
}

// lmOversized describes one oversized request and the refusal it must get.
type lmOversized struct {
	name, path string
	hdr        []string
	status     int
	code       string // the JSON body's "error" (HTTP routes) or "code" (Connect)
}

var lmOversizedCases = []lmOversized{
	{"CheckToken (Connect, service client)", sessionv1connect.SessionServiceCheckTokenProcedure,
		[]string{"Content-Type", "application/json", "Authorization", lmBasic}, http.StatusTooManyRequests, "resource_exhausted"},
	{"CheckToken (Connect, no credential: limits come before caller authentication)", sessionv1connect.SessionServiceCheckTokenProcedure,
		[]string{"Content-Type", "application/proto"}, http.StatusTooManyRequests, "resource_exhausted"},
	{"login (JSON)", "/auth/login", []string{"Content-Type", "application/json"}, http.StatusRequestEntityTooLarge, "request_too_large"},
	{"token (form)", "/auth/token", []string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusRequestEntityTooLarge, "request_too_large"},
	{"introspect (form)", "/oauth2/introspect", []string{"Content-Type", "application/x-www-form-urlencoded", "Authorization", lmBasic},
		http.StatusRequestEntityTooLarge, "request_too_large"},
}

// lmCheckRefusal checks a refusal's status, its code and that its message
// names the limit.
func lmCheckRefusal(t *testing.T, what string, a lmAnswer, status int, code string, limit int64) {
	t.Helper()
	var e struct{ Error, Code, Message string }
	if err := json.Unmarshal(a.body, &e); err != nil {
		t.Errorf("%s: body %q is not a JSON error: %v", what, a.body, err)
		return
	}
	if a.status != status || e.Error+e.Code != code {
		t.Errorf("%s: got %d %s, want %d with code %s", what, a.status, a.body, status, code)
	}
	if !strings.Contains(e.Message, fmt.Sprint(limit)) {
		t.Errorf("%s: message %q does not name the limit %d", what, e.Message, limit)
	}
}

// TestLimitsRefuseOversizedBodiesBeforeReading: a request declaring a 100
// MB body is answered while the client has sent only 64 KiB of it (the
// server refused without reading; before the limits, Connect routes read
// the whole body into memory), and the connection is closed instead of
// being drained. A chunked body is cut just past the limit.
func TestLimitsRefuseOversizedBodiesBeforeReading(t *testing.T) {
	tc := startTestCluster(t, 1, nil)
	nd := tc.nodes[0]
	addr := nd.ln.Addr().String()
	limit := nd.cfg.Limits.MaxBodyBytes
	chunk := bytes.Repeat([]byte("a"), 64<<10)
	for _, c := range lmOversizedCases {
		conn := lmSendHead(t, addr, c.path, 100<<20, c.hdr...)
		if _, err := conn.Write(chunk); err != nil {
			t.Fatalf("%s: write the first 64 KiB: %v", c.name, err)
		}
		a, err := lmReadAnswer(conn, 20*time.Second)
		if err != nil {
			t.Errorf("%s: no answer after 64 KiB of a declared 100 MB body: %v; want a refusal before the body is read", c.name, err)
			continue
		}
		lmCheckRefusal(t, c.name, a, c.status, c.code, limit)
		if !a.close {
			t.Errorf("%s: answer without Connection: close; want the connection closed rather than the body drained", c.name)
		}
		// The server closes the connection: the next read ends.
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		if n, err := conn.Read(make([]byte, 1)); err == nil {
			t.Errorf("%s: the connection stayed open after the refusal (read %d bytes)", c.name, n)
		}
	}

	// Chunked: no length to check up front; reading stops at the limit.
	conn := lmSendHead(t, addr, sessionv1connect.SessionServiceCheckTokenProcedure, -1,
		"Content-Type", "application/json", "Authorization", lmBasic)
	for range 2 {
		if _, err := fmt.Fprintf(conn, "%x\r\n%s\r\n", len(chunk), chunk); err != nil {
			t.Fatalf("chunked: write: %v", err)
		}
	}
	a, err := lmReadAnswer(conn, 20*time.Second)
	if err != nil {
		t.Fatalf("chunked CheckToken: no answer after 128 KiB: %v; want a refusal at the limit", err)
	}
	if a.status != http.StatusTooManyRequests || !bytes.Contains(a.body, []byte("resource_exhausted")) {
		t.Errorf("chunked CheckToken: got %d %s, want 429 resource_exhausted", a.status, a.body)
	}

	// What fits still works.
	tok := authLogin(t, ptURL(nd), lmUser(t, tc), ptPassword, "web", "laptop").AccessToken
	res, err := ptSessions(nd).CheckToken(context.Background(), connect.NewRequest(&sessionv1.CheckTokenRequest{Token: tok}))
	if err != nil || !res.Msg.GetActive() {
		t.Fatalf("CheckToken of a fresh token: %v %v, want active", res, err)
	}
}

var lmUserSeq atomic.Int64

// lmUser creates a user with ptPassword and returns its email.
func lmUser(t *testing.T, tc *testCluster) string {
	t.Helper()
	email := fmt.Sprintf("limits-%d@example.com", lmUserSeq.Add(1))
	tc.createUser(email, ptPassword)
	return email
}

// TestLimitsCutSlowBodies: clients that send a body one byte a second are
// cut once the read timeout has passed (before, 300 such connections were
// all held after 46 s), on the JSON routes and the Connect routes alike.
func TestLimitsCutSlowBodies(t *testing.T) {
	tc := startTestCluster(t, 1, func(_ int, c *Config) {
		c.Limits.ReadTimeout = 2 * time.Second
		c.Limits.WriteTimeout = 4 * time.Second
	})
	addr := tc.nodes[0].ln.Addr().String()
	type slow struct {
		path string
		hdr  []string
	}
	var routes []slow
	for range 5 {
		routes = append(routes,
			slow{"/auth/login", []string{"Content-Type", "application/json"}},
			slow{sessionv1connect.SessionServiceCheckTokenProcedure, []string{"Content-Type", "application/json", "Authorization", lmBasic}})
	}
	var cut atomic.Int64
	var wg sync.WaitGroup
	answers := make([]string, len(routes))
	for i, r := range routes {
		conn := lmSendHead(t, addr, r.path, 1000, r.hdr...)
		done := make(chan struct{})
		wg.Go(func() { // the slow client: one byte a second, at most 60
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for range 60 {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				if _, err := conn.Write([]byte(" ")); err != nil { // whitespace: valid so far
					return
				}
			}
		})
		wg.Go(func() { // the server's side: an answer, or a closed connection
			defer close(done)
			a, err := lmReadAnswer(conn, 90*time.Second)
			if err == nil {
				answers[i] = fmt.Sprintf("%s: %d %s", r.path, a.status, bytes.TrimSpace(a.body))
			} else if !strings.Contains(err.Error(), "timeout") {
				answers[i] = fmt.Sprintf("%s: closed (%v)", r.path, err)
			} else {
				return // still held when the test gave up
			}
			cut.Add(1)
		})
	}
	clustertest.WaitFor(t, 30*time.Second, "every slow-body connection cut by the server", func() bool {
		return cut.Load() == int64(len(routes))
	})
	wg.Wait()
	for _, a := range answers {
		if strings.HasPrefix(a, "/auth/login") && !strings.Contains(a, "408") {
			t.Errorf("slow login body: %s; want 408 request_timeout", a)
		}
	}
	t.Logf("answers: %q", answers)
}

// TestLimitsStreamsHaveNoWriteDeadline: a WatchRevocations stream keeps
// delivering after the write timeout of unary answers has passed.
func TestLimitsStreamsHaveNoWriteDeadline(t *testing.T) {
	tc := startTestCluster(t, 1, func(_ int, c *Config) {
		// Short, yet long enough for a login or logout under a loaded CI
		// machine (their answers have the same write deadline).
		c.Limits.ReadTimeout = 2 * time.Second
		c.Limits.WriteTimeout = 3 * time.Second
	})
	nd := tc.nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream, err := ptSessions(nd).WatchRevocations(ctx, connect.NewRequest(&sessionv1.WatchRevocationsRequest{}))
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer stream.Close()
	opened := time.Now()
	email := lmUser(t, tc)
	for i := 0; ; i++ {
		// Past the write timeout, end a session and wait for it on the
		// stream.
		if time.Since(opened) > 2*nd.cfg.Limits.WriteTimeout {
			break
		}
		p := authLogin(t, ptURL(nd), email, ptPassword, "web", fmt.Sprintf("dev-%d", i))
		if r := authPost(t, ptURL(nd), "/auth/logout", map[string]string{"refresh_token": p.RefreshToken}); r.status != http.StatusNoContent {
			t.Fatalf("logout: %d %s", r.status, r.body)
		}
		for found := false; !found; {
			if !stream.Receive() {
				t.Fatalf("stream ended %s after it opened (write timeout %s): %v; want streams without a write deadline",
					time.Since(opened).Round(time.Millisecond), nd.cfg.Limits.WriteTimeout, stream.Err())
			}
			for _, ev := range stream.Msg().GetEvents() {
				found = found || ev.GetSessionId() == p.SessionID
			}
		}
	}
}
