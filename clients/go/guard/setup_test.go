package guard

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1/sessionv1connect"
	"github.com/sessiond/sessiond/clients/go/token"
)

const (
	testIssuer   = "http://issuer.test"
	testAudience = "sessiond"
)

// waitFor polls cond until it holds or timeout passes (the SDK module does
// not import the daemon's test helpers).
func waitFor(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for the condition", timeout)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

// signer is a generated Ed25519 signing key.
type signer struct {
	kid  string
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

func newSigner(t testing.TB) signer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{kid: token.PID(pub), priv: priv, pub: pub}
}

var jtiSeq atomic.Int64

// claims returns valid claims issued now (second precision).
func claims() token.AccessClaims {
	now := time.Now().UTC().Truncate(time.Second)
	return token.AccessClaims{
		Issuer: testIssuer, Subject: "user-1", Audience: testAudience,
		IssuedAt: now, Expiration: now.Add(20 * time.Minute),
		TokenID: fmt.Sprintf("jti-%d", jtiSeq.Add(1)), SessionID: "sess-1",
		OrgID: "org-1", OrgType: "OPERATOR", Country: "TH", Roles: []string{"viewer"}, Platform: "web",
	}
}

// mint signs claims modified by mod.
func (s signer) mint(t testing.TB, mod func(*token.AccessClaims)) string {
	t.Helper()
	c := claims()
	if mod != nil {
		mod(&c)
	}
	tok, err := token.SignAccess(c, s.kid, s.priv)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// streamOp is one instruction to a fake watch stream: send msg, or end
// the stream with end.
type streamOp struct {
	msg *sessionv1.WatchRevocationsResponse
	end error
}

// fakeStream is one WatchRevocations call the test drives.
type fakeStream struct {
	from uint64
	ops  chan streamOp
	done chan struct{}
}

func (s *fakeStream) do(t testing.TB, op streamOp) {
	t.Helper()
	select {
	case s.ops <- op:
	case <-s.done:
		t.Fatalf("stream (from %d) already ended", s.from)
	case <-time.After(5 * time.Second):
		t.Fatalf("stream (from %d) not consuming", s.from)
	}
}

func (s *fakeStream) send(t testing.TB, snapshot bool, index uint64, events ...*sessionv1.RevocationEvent) {
	t.Helper()
	s.do(t, streamOp{msg: &sessionv1.WatchRevocationsResponse{Snapshot: snapshot, Index: index, Events: events}})
}

func (s *fakeStream) end(t testing.TB, err error) {
	t.Helper()
	s.do(t, streamOp{end: err})
}

func sessionEv(index uint64, id string) *sessionv1.RevocationEvent {
	return &sessionv1.RevocationEvent{Index: index, Subject: &sessionv1.RevocationEvent_SessionId{SessionId: id},
		Expires: timestamppb.New(time.Now().Add(time.Hour)), Reason: "logout"}
}

func jtiEv(index uint64, jti string) *sessionv1.RevocationEvent {
	return &sessionv1.RevocationEvent{Index: index, Subject: &sessionv1.RevocationEvent_Jti{Jti: jti},
		Expires: timestamppb.New(time.Now().Add(time.Hour)), Reason: "revoked"}
}

func userEv(index uint64, user string, notBefore time.Time) *sessionv1.RevocationEvent {
	return &sessionv1.RevocationEvent{Index: index, Subject: &sessionv1.RevocationEvent_UserId{UserId: user},
		NotBefore: timestamppb.New(notBefore), Expires: timestamppb.New(time.Now().Add(time.Hour)), Reason: "logout_all"}
}

type paserkEntry struct {
	Kid       string    `json:"kid"`
	PASERK    string    `json:"paserk"`
	NotAfter  time.Time `json:"not_after"`
	NotBefore time.Time `json:"not_before"`
}

// fakeNode is a sessiond node: a real Connect SessionService handler whose
// WatchRevocations streams the test drives, and /.well-known/paserk.
type fakeNode struct {
	sessionv1connect.UnimplementedSessionServiceHandler
	srv     *httptest.Server
	streams chan *fakeStream

	mu      sync.Mutex
	keys    []paserkEntry
	checkFn func(tok string) (*sessionv1.CheckTokenResponse, error)

	keyFetches atomic.Int64
	checkCalls atomic.Int64
}

func newFakeNode(t testing.TB, signers ...signer) *fakeNode {
	t.Helper()
	f := &fakeNode{streams: make(chan *fakeStream, 16)}
	for _, s := range signers {
		f.publish(s)
	}
	mux := http.NewServeMux()
	mux.Handle(sessionv1connect.NewSessionServiceHandler(f))
	mux.HandleFunc("GET /.well-known/paserk", func(w http.ResponseWriter, r *http.Request) {
		f.keyFetches.Add(1)
		f.mu.Lock()
		keys := append([]paserkEntry(nil), f.keys...)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.close)
	return f
}

// close kills open streams and stops the server; safe to call twice.
func (f *fakeNode) close() {
	f.srv.CloseClientConnections()
	f.srv.Close()
}

func (f *fakeNode) publish(s signer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, paserkEntry{Kid: s.kid, PASERK: token.PublicKeyPASERK(s.pub),
		NotAfter: time.Now().Add(24 * time.Hour).UTC(), NotBefore: time.Now().Add(-time.Hour).UTC()})
}

func (f *fakeNode) setCheck(fn func(tok string) (*sessionv1.CheckTokenResponse, error)) {
	f.mu.Lock()
	f.checkFn = fn
	f.mu.Unlock()
}

// nextStream waits for the guard's next WatchRevocations call.
func (f *fakeNode) nextStream(t testing.TB) *fakeStream {
	t.Helper()
	select {
	case s := <-f.streams:
		return s
	case <-time.After(10 * time.Second):
		t.Fatalf("no watch stream on %s", f.srv.URL)
		return nil
	}
}

func (f *fakeNode) WatchRevocations(ctx context.Context, req *connect.Request[sessionv1.WatchRevocationsRequest], stream *connect.ServerStream[sessionv1.WatchRevocationsResponse]) error {
	s := &fakeStream{from: req.Msg.GetFromIndex(), ops: make(chan streamOp), done: make(chan struct{})}
	defer close(s.done)
	select {
	case f.streams <- s:
	case <-ctx.Done():
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case op := <-s.ops:
			if op.end != nil {
				return op.end
			}
			if err := stream.Send(op.msg); err != nil {
				return err
			}
		}
	}
}

func (f *fakeNode) CheckToken(_ context.Context, req *connect.Request[sessionv1.CheckTokenRequest]) (*connect.Response[sessionv1.CheckTokenResponse], error) {
	f.checkCalls.Add(1)
	f.mu.Lock()
	fn := f.checkFn
	f.mu.Unlock()
	if fn == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("no check configured"))
	}
	resp, err := fn(req.Msg.GetToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// newGuard builds an unstarted guard over nodes (in that order), closed at
// the end of the test.
func newGuard(t testing.TB, mod func(*Config), nodes ...*fakeNode) *Guard {
	t.Helper()
	cfg := Config{Issuer: testIssuer, Audience: testAudience, HTTPClient: &http.Client{}, WatchIdleTimeout: time.Minute}
	for _, n := range nodes {
		cfg.Nodes = append(cfg.Nodes, Node{URL: n.srv.URL})
	}
	if mod != nil {
		mod(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

// start starts g, serving its first stream on n with a snapshot of events
// at index, and returns that stream.
func start(t testing.TB, g *Guard, n *fakeNode, index uint64, events ...*sessionv1.RevocationEvent) *fakeStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- g.Start(ctx) }()
	s := n.nextStream(t)
	if s.from != 0 {
		t.Fatalf("first watch from_index = %d, want 0", s.from)
	}
	s.send(t, true, index, events...)
	s.send(t, false, index) // heartbeat: ends the snapshot
	if err := <-errc; err != nil {
		t.Fatalf("Start: %v", err)
	}
	return s
}

// startedGuard is one node, one key, a guard started on an empty snapshot.
func startedGuard(t testing.TB, mod func(*Config)) (*Guard, *fakeNode, signer, *fakeStream) {
	t.Helper()
	k := newSigner(t)
	n := newFakeNode(t, k)
	g := newGuard(t, mod, n)
	s := start(t, g, n, 1)
	return g, n, k, s
}

// waitIndex waits until g has applied index.
func waitIndex(t testing.TB, g *Guard, index uint64) {
	t.Helper()
	waitFor(t, 5*time.Second, func() bool { return g.Status().Index >= index })
}
