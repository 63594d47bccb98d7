package guard

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/clients/go/checkreason"
	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
	"github.com/sessiond/sessiond/clients/go/token"
)

func TestValidTokenAccepted(t *testing.T) {
	g, _, k, _ := startedGuard(t, nil)
	tok := k.mint(t, nil)
	for i := range 2 { // verified, then cached
		c, err := g.Check(context.Background(), tok)
		if err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
		if c.Subject != "user-1" || c.Country != "TH" {
			t.Fatalf("claims = %+v, want subject user-1 country TH", c)
		}
	}
	if got := g.cache.len(); got != 1 {
		t.Fatalf("cached tokens = %d, want 1", got)
	}
}

func TestRejectionsWrapCause(t *testing.T) {
	g, _, k, _ := startedGuard(t, nil)
	other := newSigner(t)
	cases := []struct {
		name   string
		tok    string
		want   error
		reason checkreason.Reason
	}{
		{"expired", k.mint(t, func(c *token.AccessClaims) {
			c.IssuedAt, c.Expiration = c.IssuedAt.Add(-2*time.Hour), c.IssuedAt.Add(-time.Hour)
		}), token.ErrExpired, checkreason.Expired},
		{"other issuer", k.mint(t, func(c *token.AccessClaims) { c.Issuer = "http://evil.test" }), token.ErrWrongIssuer, checkreason.WrongIssuer},
		// Issue 9: a 10-year token signed by a trusted key.
		{"ten-year lifetime", k.mint(t, func(c *token.AccessClaims) { c.Expiration = c.IssuedAt.Add(10 * 365 * 24 * time.Hour) }),
			token.ErrLifetimeTooLong, checkreason.LifetimeTooLong},
		{"other audience", k.mint(t, func(c *token.AccessClaims) { c.Audience = "other" }), token.ErrWrongAudience, checkreason.WrongAudience},
		{"unknown key", other.mint(t, nil), token.ErrUnknownKey, checkreason.UnknownKey},
		{"garbage", "not-a-token", token.ErrMalformed, checkreason.Malformed},
		{"huge", strings.Repeat("a", token.MaxTokenSize+1), token.ErrMalformed, checkreason.Malformed},
		{"empty", "", token.ErrMalformed, checkreason.MissingToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := g.Check(context.Background(), tc.tok)
			var ae *AuthError
			if !errors.As(err, &ae) || !errors.Is(err, ErrUnauthenticated) || !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want *AuthError wrapping ErrUnauthenticated and %v", err, tc.want)
			}
			if ae.Reason != tc.reason {
				t.Fatalf("reason = %v, want %v", ae.Reason, tc.reason)
			}
		})
	}
}

func TestExpiredWhileCached(t *testing.T) {
	g, _, k, _ := startedGuard(t, nil)
	tok := k.mint(t, nil)
	c, err := g.Check(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.check(context.Background(), tok, c.Expiration)
	if !errors.Is(err, token.ErrExpired) {
		t.Fatalf("check at exp of a cached token: err = %v, want token.ErrExpired", err)
	}
}

func TestRevocationEvents(t *testing.T) {
	g, _, k, s := startedGuard(t, nil)
	ctx := context.Background()
	bySession := k.mint(t, func(c *token.AccessClaims) { c.SessionID = "sess-a" })
	byJTI := k.mint(t, func(c *token.AccessClaims) { c.SessionID, c.TokenID = "sess-b", "jti-b" })
	byUser := k.mint(t, func(c *token.AccessClaims) { c.SessionID, c.Subject = "sess-c", "user-c" })
	for _, tok := range []string{bySession, byJTI, byUser} {
		if _, err := g.Check(ctx, tok); err != nil {
			t.Fatalf("before any event: %v", err)
		}
	}
	iat := claims().IssuedAt

	// A cut-off before the token's iat does not revoke it.
	s.send(t, false, 2, userEv(2, "user-c", iat.Add(-time.Second)))
	waitIndex(t, g, 2)
	if _, err := g.Check(ctx, byUser); err != nil {
		t.Fatalf("cut-off before iat: err = %v, want accepted", err)
	}

	s.send(t, false, 5, sessionEv(3, "sess-a"), jtiEv(4, "jti-b"), userEv(5, "user-c", iat.Add(time.Second)))
	for _, tc := range []struct {
		name, tok string
		reason    checkreason.Reason
	}{{"session", bySession, checkreason.SessionEnded}, {"jti", byJTI, checkreason.Revoked}, {"user cut-off", byUser, checkreason.LoggedOutAll}} {
		var err error
		waitFor(t, 5*time.Second, func() bool { _, err = g.Check(ctx, tc.tok); return err != nil })
		var ae *AuthError
		if !errors.As(err, &ae) || !errors.Is(err, ErrRevoked) || ae.Reason != tc.reason {
			t.Fatalf("%s: err = %v, want ErrRevoked with reason %v", tc.name, err, tc.reason)
		}
	}
	if st := g.Status(); st.Index != 5 || st.Entries != 3 {
		t.Fatalf("status = %+v, want index 5 and 3 entries", st)
	}
}

func TestStaleFailClosed(t *testing.T) {
	g, _, k, _ := startedGuard(t, func(c *Config) { c.MaxStaleness = time.Second })
	tok := k.mint(t, nil)
	if _, err := g.Check(context.Background(), tok); err != nil {
		t.Fatalf("fresh: %v", err)
	}
	_, err := g.check(context.Background(), tok, time.Now().Add(2*time.Second))
	if !errors.Is(err, ErrStale) || errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("stale: err = %v, want ErrStale only", err)
	}
}

func TestNotStartedIsStale(t *testing.T) {
	k := newSigner(t)
	n := newFakeNode(t, k)
	g := newGuard(t, nil, n)
	_, err := g.Check(context.Background(), k.mint(t, nil))
	if !errors.Is(err, ErrStale) {
		t.Fatalf("before Start: err = %v, want ErrStale", err)
	}
}

func TestStaleFallbackRemote(t *testing.T) {
	k := newSigner(t)
	n1, n2 := newFakeNode(t, k), newFakeNode(t, k)
	g := newGuard(t, func(c *Config) { c.OnStale = FallbackRemote; c.MaxStaleness = time.Second }, n1, n2)
	start(t, g, n1, 1)
	good := k.mint(t, nil)
	ended := k.mint(t, func(c *token.AccessClaims) { c.SessionID = "sess-ended" })
	n1.setCheck(func(string) (*sessionv1.CheckTokenResponse, error) {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("no leader"))
	})
	n2.setCheck(func(tok string) (*sessionv1.CheckTokenResponse, error) {
		if tok == ended {
			return &sessionv1.CheckTokenResponse{Reason: checkreason.String(checkreason.SessionEnded), EndReason: "admin_revoked"}, nil
		}
		return &sessionv1.CheckTokenResponse{Active: true}, nil
	})
	ctx := context.Background()
	if _, err := g.Check(ctx, good); err != nil || n1.checkCalls.Load() != 0 {
		t.Fatalf("fresh: err = %v, remote calls %d; want local answer", err, n1.checkCalls.Load())
	}
	later := time.Now().Add(2 * time.Second)
	c, err := g.check(ctx, good, later)
	if err != nil || c.Subject != "user-1" {
		t.Fatalf("stale, remote active: claims %v err %v, want accepted", c, err)
	}
	if a, b := n1.checkCalls.Load(), n2.checkCalls.Load(); a != 1 || b != 1 {
		t.Fatalf("CheckToken calls = %d on node 1, %d on node 2; want 1 and 1 (failover)", a, b)
	}
	_, err = g.check(ctx, ended, later)
	var ae *AuthError
	if !errors.As(err, &ae) || ae.Reason != checkreason.SessionEnded || !errors.Is(err, ErrRevoked) {
		t.Fatalf("stale, remote inactive: err = %v, want session_ended / ErrRevoked", err)
	}
	n2.setCheck(nil)
	if _, err = g.check(ctx, good, later); !errors.Is(err, ErrStale) {
		t.Fatalf("stale, no node answers: err = %v, want ErrStale", err)
	}
}

func TestUnknownKidRefreshRateLimited(t *testing.T) {
	k1, k2, k3 := newSigner(t), newSigner(t), newSigner(t)
	n := newFakeNode(t, k1)
	// The clock moves 61 minutes below: tokens live 2 hours, accepted.
	g := newGuard(t, func(c *Config) {
		c.KeyRefreshInterval, c.OnStale, c.MaxAccessLifetime = time.Hour, FallbackRemote, 3*time.Hour
	}, n)
	start(t, g, n, 1)
	if got := n.keyFetches.Load(); got != 1 {
		t.Fatalf("key fetches after Start = %d, want 1", got)
	}
	n.publish(k2)
	if _, err := g.Check(context.Background(), k2.mint(t, nil)); err != nil {
		t.Fatalf("token of a key published after start: %v", err)
	}
	if got := n.keyFetches.Load(); got != 2 {
		t.Fatalf("key fetches = %d, want 2 (one refresh for the unknown kid)", got)
	}
	n.publish(k3)
	tok3 := k3.mint(t, func(c *token.AccessClaims) { c.Expiration = c.IssuedAt.Add(2 * time.Hour) })
	if _, err := g.Check(context.Background(), tok3); !errors.Is(err, token.ErrUnknownKey) {
		t.Fatalf("second unknown kid within the interval: err = %v, want ErrUnknownKey", err)
	}
	if got := n.keyFetches.Load(); got != 2 {
		t.Fatalf("key fetches = %d, want still 2 (rate-limited)", got)
	}
	// Once the interval has passed the kid is fetched; the state is then
	// stale (clock moved) and the node confirms the token.
	n.setCheck(func(string) (*sessionv1.CheckTokenResponse, error) {
		return &sessionv1.CheckTokenResponse{Active: true}, nil
	})
	if _, err := g.check(context.Background(), tok3, time.Now().Add(61*time.Minute)); err != nil {
		t.Fatalf("after the interval: %v", err)
	}
	if got := n.keyFetches.Load(); got != 3 {
		t.Fatalf("key fetches = %d, want 3", got)
	}
}

func TestPrune(t *testing.T) {
	k := newSigner(t)
	n := newFakeNode(t, k)
	g := newGuard(t, nil, n)
	gone := jtiEv(1, "old")
	gone.Expires.Seconds = time.Now().Add(-time.Second).Unix()
	start(t, g, n, 2, gone, jtiEv(2, "live"))
	if got := g.Status().Entries; got != 2 {
		t.Fatalf("entries = %d, want 2", got)
	}
	if n := g.revs.prune(time.Now()); n != 1 || g.Status().Entries != 1 {
		t.Fatalf("pruned %d, %d left; want 1 pruned, 1 left", n, g.Status().Entries)
	}
}

func TestConfigValidation(t *testing.T) {
	ok := Config{Issuer: "i", Audience: "a", Nodes: []Node{{URL: "http://127.0.0.1:1"}}}
	if _, err := New(ok); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"no issuer":  func(c *Config) { c.Issuer = "" },
		"no nodes":   func(c *Config) { c.Nodes = nil },
		"bad url":    func(c *Config) { c.Nodes = []Node{{URL: "127.0.0.1:8081"}} },
		"duplicate":  func(c *Config) { c.Nodes = []Node{{URL: "http://a:1"}, {URL: "http://a:1/"}} },
		"bad rule":   func(c *Config) { c.Rules = append(c.Rules, rule("", "x")) },
		"neg stale":  func(c *Config) { c.MaxStaleness = -1 },
		"bad policy": func(c *Config) { c.OnStale = 7 },
	} {
		c := ok
		mod(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: New succeeded, want an error", name)
		}
	}
}

// TestCacheKeepsTokensInUse: a full claims cache evicts the least recently
// used token, never the one a service keeps presenting (the hand-written
// cache evicted an arbitrary eighth: under a flood of new tokens, the
// tokens in use were re-verified at random).
func TestCacheKeepsTokensInUse(t *testing.T) {
	g, _, k, _ := startedGuard(t, func(c *Config) { c.CacheSize = 2 })
	hot := k.mint(t, nil)
	key := sha256.Sum256([]byte(hot))
	for i := range 40 {
		if _, err := g.Check(context.Background(), hot); err != nil {
			t.Fatalf("check hot token: %v", err)
		}
		if _, err := g.Check(context.Background(), k.mint(t, func(c *token.AccessClaims) { c.TokenID = fmt.Sprintf("flood-%d", i) })); err != nil {
			t.Fatalf("check flood token %d: %v", i, err)
		}
		if _, ok := g.cache.get(key); !ok {
			t.Fatalf("after flood token %d: the token in use was evicted, want the least recently used one evicted", i)
		}
		if n := g.cache.len(); n > 2 {
			t.Fatalf("cache holds %d tokens, want at most 2", n)
		}
	}
}
