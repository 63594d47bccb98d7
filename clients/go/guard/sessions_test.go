package guard

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sessiond/sessiond/clients/go/checkreason"
	"github.com/sessiond/sessiond/clients/go/token"
)

// A watched session hears of its end (with the end reason) from the
// revocation stream, once; other sessions' ends do not wake it; a closed
// Guard closes the channel.
func TestWatchSession(t *testing.T) {
	g, _, k, s := startedGuard(t, nil)
	tok := k.mint(t, func(c *token.AccessClaims) { c.SessionID = "sess-ws" })
	c, err := g.Check(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	ended, stop := g.WatchSession(SessionOf(c))
	defer stop()
	other, stopOther := g.WatchSession(Session{UserID: "user-9", SessionID: "sess-other", IssuedAt: time.Now()})
	defer stopOther()

	s.send(t, false, 2, sessionEv(2, "sess-unrelated"))
	waitIndex(t, g, 2)
	select {
	case ae := <-ended:
		t.Fatalf("an unrelated session's end woke the watch: %v", ae)
	default:
	}
	ev := sessionEv(3, "sess-ws")
	ev.Reason = "forced_out"
	s.send(t, false, 3, ev)
	select {
	case ae := <-ended:
		if ae.Reason != checkreason.SessionEnded || ae.EndReason != "forced_out" || !errors.Is(ae, ErrRevoked) {
			t.Fatalf("got %v (reason %v, end reason %q), exp session_ended / forced_out", ae, ae.Reason, ae.EndReason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the session's end was not reported within 10s")
	}
	// Watching an ended session reports it at once.
	again, _ := g.WatchSession(SessionOf(c))
	if ae := <-again; ae == nil || ae.EndReason != "forced_out" {
		t.Fatalf("watch of an ended session: got %v, exp forced_out at once", ae)
	}
	g.Close()
	if ae, ok := <-other; ok {
		t.Fatalf("after Close: got %v, exp the channel closed", ae)
	}
}

// Authenticate finds the access token in the header or the token
// subprotocol, and says missing_token when there is none.
func TestAuthenticateRequest(t *testing.T) {
	g, _, k, _ := startedGuard(t, nil)
	tok := k.mint(t, nil)
	for name, set := range map[string]func(h map[string][]string){
		"header": func(h map[string][]string) { h["Authorization"] = []string{"Bearer " + tok} },
		"subprotocol": func(h map[string][]string) {
			h["Sec-Websocket-Protocol"] = []string{"sessiond.v1, " + TokenSubprotocolPrefix + tok}
		},
	} {
		r := httptest.NewRequest("GET", "/ws", nil)
		set(r.Header)
		if s, err := g.Authenticate(r); err != nil || s.SessionID != claims().SessionID {
			t.Errorf("%s: session %+v, err %v; exp the token's session", name, s, err)
		}
	}
	_, err := g.Authenticate(httptest.NewRequest("GET", "/ws", nil))
	var ae *AuthError
	if !errors.As(err, &ae) || ae.Reason != checkreason.MissingToken {
		t.Errorf("no credential: err %v, exp missing_token", err)
	}
}
