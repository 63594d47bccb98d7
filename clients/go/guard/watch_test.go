package guard

import (
	"context"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/clients/go/token"
)

func TestSnapshotReplacesSet(t *testing.T) {
	k := newSigner(t)
	n := newFakeNode(t, k)
	g := newGuard(t, nil, n)
	s := start(t, g, n, 3, sessionEv(3, "sess-old"))
	ctx := context.Background()
	oldTok := k.mint(t, func(c *token.AccessClaims) { c.SessionID = "sess-old" })
	newTok := k.mint(t, func(c *token.AccessClaims) { c.TokenID = "jti-new" })
	if _, err := g.Check(ctx, oldTok); !errors.Is(err, ErrRevoked) {
		t.Fatalf("session in snapshot: err = %v, want ErrRevoked", err)
	}
	s.send(t, true, 8, jtiEv(8, "jti-new"))
	s.send(t, false, 8)
	waitFor(t, 5*time.Second, func() bool { _, err := g.Check(ctx, oldTok); return err == nil })
	if _, err := g.Check(ctx, newTok); !errors.Is(err, ErrRevoked) {
		t.Fatalf("jti in new snapshot: err = %v, want ErrRevoked", err)
	}
	if st := g.Status(); st.Index != 8 || st.Entries != 1 {
		t.Fatalf("status = %+v, want index 8, 1 entry", st)
	}
}

func TestSplitSnapshotLoadsWhole(t *testing.T) {
	k := newSigner(t)
	n := newFakeNode(t, k)
	g := newGuard(t, nil, n)
	errc := make(chan error, 1)
	go func() { errc <- g.Start(context.Background()) }()
	s := n.nextStream(t)
	s.send(t, true, 4, sessionEv(2, "s1"))
	s.send(t, false, 4, sessionEv(4, "s2")) // second part of the snapshot
	waitFor(t, 5*time.Second, func() bool { return g.Status().Entries == 2 })
	if g.revs.loadedFast() || g.Status().Index != 0 {
		t.Fatalf("snapshot committed before its end: status %+v", g.Status())
	}
	select {
	case err := <-errc:
		t.Fatalf("Start returned (%v) before the snapshot ended", err)
	default:
	}
	s.send(t, false, 4) // heartbeat: the snapshot is complete
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	for _, sid := range []string{"s1", "s2"} {
		tok := k.mint(t, func(c *token.AccessClaims) { c.SessionID = sid })
		if _, err := g.Check(context.Background(), tok); !errors.Is(err, ErrRevoked) {
			t.Fatalf("session %s: err = %v, want ErrRevoked", sid, err)
		}
	}
	if st := g.Status(); st.Index != 4 {
		t.Fatalf("index = %d, want 4", st.Index)
	}
}

func TestResumeFromLastIndex(t *testing.T) {
	g, n, _, s := startedGuard(t, nil)
	s.send(t, false, 9, jtiEv(9, "j"))
	waitIndex(t, g, 9)
	s.end(t, connect.NewError(connect.CodeUnavailable, errors.New("node going away")))
	s2 := n.nextStream(t)
	if s2.from != 9 {
		t.Fatalf("reconnect from_index = %d, want 9", s2.from)
	}
	// A stream broken in the middle of a snapshot resumes from before it.
	s2.send(t, true, 20, jtiEv(20, "k"))
	waitFor(t, 5*time.Second, func() bool { return g.Status().Entries == 2 })
	s2.end(t, connect.NewError(connect.CodeUnavailable, errors.New("gone")))
	if s3 := n.nextStream(t); s3.from != 9 {
		t.Fatalf("reconnect after a partial snapshot: from_index = %d, want 9", s3.from)
	}
}

func TestFailoverToSecondNode(t *testing.T) {
	k := newSigner(t)
	n1, n2 := newFakeNode(t, k), newFakeNode(t, k)
	g := newGuard(t, nil, n1, n2)
	s := start(t, g, n1, 5)
	s.send(t, false, 7, sessionEv(7, "sess-x"))
	waitIndex(t, g, 7)
	if st := g.Status(); st.Node != n1.srv.URL || !st.Connected {
		t.Fatalf("status = %+v, want connected to %s", st, n1.srv.URL)
	}
	n1.close()
	s2 := n2.nextStream(t)
	if s2.from != 7 {
		t.Fatalf("failover from_index = %d, want 7", s2.from)
	}
	s2.send(t, false, 8, jtiEv(8, "jti-y"))
	waitIndex(t, g, 8)
	if st := g.Status(); st.Node != n2.srv.URL || !st.Connected {
		t.Fatalf("status = %+v, want connected to %s", st, n2.srv.URL)
	}
	tok := k.mint(t, func(c *token.AccessClaims) { c.SessionID = "sess-x" })
	if _, err := g.Check(context.Background(), tok); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revocation learnt before failover: err = %v, want ErrRevoked", err)
	}
}

func TestResourceExhaustedReconnectsSameNode(t *testing.T) {
	k := newSigner(t)
	n1, n2 := newFakeNode(t, k), newFakeNode(t, k)
	g := newGuard(t, nil, n1, n2)
	s := start(t, g, n1, 5)
	s.send(t, false, 6, jtiEv(6, "j"))
	waitIndex(t, g, 6)
	s.end(t, connect.NewError(connect.CodeResourceExhausted, errors.New("slow consumer")))
	s2 := n1.nextStream(t)
	if s2.from != 6 {
		t.Fatalf("reconnect from_index = %d, want 6", s2.from)
	}
	if got := len(n2.streams); got != 0 {
		t.Fatalf("node 2 got %d streams, want 0 (a slow consumer is not the node's fault)", got)
	}
}

func TestIdleStreamReconnects(t *testing.T) {
	k := newSigner(t)
	n1, n2 := newFakeNode(t, k), newFakeNode(t, k)
	g := newGuard(t, func(c *Config) { c.WatchIdleTimeout = 200 * time.Millisecond }, n1, n2)
	start(t, g, n1, 5)
	// n1 now says nothing: the guard gives up on it and moves on.
	if s2 := n2.nextStream(t); s2.from != 5 {
		t.Fatalf("from_index = %d, want 5", s2.from)
	}
}

func TestRegionPreferred(t *testing.T) {
	k := newSigner(t)
	eu, ap := newFakeNode(t, k), newFakeNode(t, k)
	g, err := New(Config{Issuer: testIssuer, Audience: testAudience, Region: "ap",
		Nodes: []Node{{URL: eu.srv.URL, Region: "eu"}, {URL: ap.srv.URL, Region: "ap"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	start(t, g, ap, 1)
	if got := g.Status().Node; got != ap.srv.URL {
		t.Fatalf("node = %s, want the ap node %s", got, ap.srv.URL)
	}
	if ap.keyFetches.Load() != 1 || eu.keyFetches.Load() != 0 {
		t.Fatalf("key fetches: ap %d, eu %d; want 1 and 0", ap.keyFetches.Load(), eu.keyFetches.Load())
	}
}

func TestStartTimesOutWithoutSnapshot(t *testing.T) {
	k := newSigner(t)
	n := newFakeNode(t, k)
	g := newGuard(t, nil, n)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- g.Start(ctx) }()
	n.nextStream(t) // connected, but no snapshot comes
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Start = %v, want context.Canceled", err)
	}
	if err := g.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start = %v, want ErrStarted", err)
	}
}
