package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sessiond/sessiond/clients/go/guard"
	"github.com/sessiond/sessiond/clients/go/wsguard"
)

// Seed 002 on real processes: a sessiond node, the example service of
// examples/realtime serving REST and WebSocket on one login. A socket opened
// with device A's access token is closed with 4002 (forced_out) as soon as
// device B of the same platform forces its login, and A's REST calls then
// answer 401; a logout closes B's socket with 4001; an upgrade without a
// valid token never becomes a socket.
func TestWebSocketSessionEndsCloseSockets(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c := newE2ECluster(t, false)
	hk := c.startNode(e2eNodeOpts{Region: "hk"})
	hk.waitReady(e2eStartLimit)
	base := hk.url()

	const email, pw = "ws@example.com", "correct horse battery staple"
	r := e2eCLI(t, pw+"\n", "user", "create", "--addr", base, "--token-file", c.opToken(hk), "--password-stdin",
		"--email", email, "--display-name", "Wes", "--org-name", "Org", "--country", "TH", "--org-type", "CUSTOMER", "--role", "r")
	if r.code != 0 {
		t.Fatalf("user create: exit %d, %s", r.code, r.stderr)
	}

	// The example service, built and run as its own process, with a
	// credential holding check, watch and watch:details.
	bin := filepath.Join(t.TempDir(), "realtime")
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/realtime").CombinedOutput(); err != nil {
		t.Fatalf("go build examples/realtime: %v\n%s", err, out)
	}
	svcToken := e2eCreateToken(t, hk, "realtime", "check,watch,watch:details")
	addr := e2eAddr(t)
	cmd := exec.Command(bin, "--nodes", base, "--issuer", "https://auth.example.com", "--audience", "example-apis",
		"--listen", addr, "--ca-file", e2ePKI.NodeFiles(t, hk.id).CAFile, "--token-file", svcToken)
	if _, err := e2eStartCmd(t, "realtime", cmd, ""); err != nil {
		t.Fatal(err)
	}
	svc := "http://" + addr
	e2eWaitFor(t, 30*time.Second, "the example service to be current", func() bool {
		resp, err := http.Get(svc + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	a := e2eLogin(t, base, email, pw, "windows", "pc-a")
	if code := wsGetMe(t, svc, a.AccessToken); code != http.StatusOK {
		t.Fatalf("REST with A's token: %d, exp 200", code)
	}
	sockA := wsDial(t, svc, a.AccessToken)
	wsHello(t, sockA, a.SessionID)

	// One device per platform: B is refused without force, then forces.
	if code, body, err := e2ePost(base+"/auth/login", map[string]any{"email": email, "password": pw, "platform": "windows", "device_id": "pc-b"}); err != nil || code != http.StatusConflict {
		t.Fatalf("login on B without force: %d %s %v; exp 409", code, body, err)
	}
	code, body, err := e2ePost(base+"/auth/login", map[string]any{"email": email, "password": pw, "platform": "windows", "device_id": "pc-b", "force": true})
	if err != nil || code != http.StatusOK {
		t.Fatalf("forced login on B: %d %s %v; exp 200", code, body, err)
	}
	var b e2eLoginResponse
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatal(err)
	}
	wsWantClose(t, sockA, wsguard.CodeForcedOut, "session_ended: forced_out")
	if code := wsGetMe(t, svc, a.AccessToken); code != http.StatusUnauthorized {
		t.Errorf("REST with A's token after the forced login: %d, exp 401", code)
	}
	// The node says the same over Connect JSON, in snake_case (connectjson)
	// and the check-reason vocabulary.
	code, body, err = e2ePost(base+"/sessiond.session.v1.SessionService/CheckToken", map[string]any{"token": a.AccessToken}, e2eAuthHeader(base)...)
	if err != nil || code != http.StatusOK || !strings.Contains(string(body), `"reason":"session_ended"`) ||
		!strings.Contains(string(body), `"end_reason":"forced_out"`) || !strings.Contains(string(body), `"session_id":`) || strings.Contains(string(body), "sessionId") {
		t.Errorf("CheckToken of A's token over Connect JSON: %d %s %v; exp snake_case with reason session_ended, end_reason forced_out", code, body, err)
	}
	if _, resp, err := websocket.Dial(context.Background(), "ws://"+addr+"/ws", wsOptions(a.AccessToken)); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a new socket with A's token: err %v, exp a 401 refusal", err)
	}

	// B's socket ends with B's logout.
	sockB := wsDial(t, svc, b.AccessToken)
	wsHello(t, sockB, b.SessionID)
	if code, body, err := e2ePost(base+"/auth/logout", map[string]any{}, "Authorization", "Bearer "+b.AccessToken); err != nil || code != http.StatusNoContent {
		t.Fatalf("logout on B: %d %s %v; exp 204", code, body, err)
	}
	wsWantClose(t, sockB, wsguard.CodeSessionEnded, "session_ended: logout")

	// Upgrades without a valid token are refused before any socket exists.
	for name, tok := range map[string]string{"no token": "", "garbage": "v4.public.garbage"} {
		_, resp, err := websocket.Dial(context.Background(), "ws://"+addr+"/ws", wsOptions(tok))
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: err %v, exp a 401 refusal", name, err)
		}
	}
}

func wsOptions(tok string) *websocket.DialOptions {
	protos := []string{wsguard.Subprotocol}
	if tok != "" {
		protos = append(protos, guard.TokenSubprotocolPrefix+tok)
	}
	return &websocket.DialOptions{Subprotocols: protos}
}

func wsDial(t *testing.T, svc, tok string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(svc, "http://", "ws://", 1)+"/ws", wsOptions(tok))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if c.Subprotocol() != wsguard.Subprotocol {
		t.Errorf("subprotocol %q, exp %q", c.Subprotocol(), wsguard.Subprotocol)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// wsHello reads the greeting and checks an echo.
func wsHello(t *testing.T, c *websocket.Conn, session string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, msg, err := c.Read(ctx)
	var hello map[string]string
	if err != nil || json.Unmarshal(msg, &hello) != nil || hello["session"] != session {
		t.Fatalf("hello: %s %v; exp the session %s", msg, err, session)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != "ping" {
		t.Fatalf("echo: %q %v", msg, err)
	}
}

// wsWantClose waits (20 s at most: the news crosses Raft and the watch
// stream) for the server to close c with code and reason.
func wsWantClose(t *testing.T, c *websocket.Conn, code websocket.StatusCode, reason string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, msg, err := c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != code || ce.Reason != reason {
		t.Fatalf("socket: got message %q, err %v; exp close %d %q", msg, err, code, reason)
	}
}

func wsGetMe(t *testing.T, svc, tok string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, svc+"/api/me", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
