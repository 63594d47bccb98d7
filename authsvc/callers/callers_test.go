package callers

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/authsvc/password"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}

func testHasher(t testing.TB, memKiB uint32) *password.Hasher {
	t.Helper()
	h, err := password.NewHasher(password.Config{Params: password.Params{Memory: memKiB, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestClientSecretAlwaysCostly shows that a wrong secret for a known
// client and any secret for an unknown client id take the same argon2id
// time (timing reveals no client ids). The cluster-wide throttling of
// client-secret failures is TestClientSecretThrottledClusterWide in
// authsvc (it needs the replicated store).
func TestClientSecretAlwaysCostly(t *testing.T) {
	h := testHasher(t, 16*1024)
	hash, err := h.Hash("right-secret")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	a := NewAuthenticator(Config{Clients: []ServiceClient{{ID: "billing", SecretHash: hash, Scopes: []string{ScopeCheck}}},
		Hasher: h, Now: func() time.Time { return now }})
	ctx := context.Background()

	p, err := a.Authenticate(ctx, Credentials{Authorization: basic("billing", "right-secret"), IP: "10.0.0.1"})
	if err != nil || p.ID() != "service/billing" || p.Method != MethodClientSecret || !p.Has(ScopeCheck) {
		t.Fatalf("right secret: got %v, %v; want service/billing with check", p, err)
	}

	// Timing: medians of interleaved attempts.
	var known, unknown []time.Duration
	for i := range 9 {
		ip := "10.1.0." + string(rune('a'+i))
		start := time.Now()
		_, kerr := a.Authenticate(ctx, Credentials{Authorization: basic("billing", "wrong"), IP: ip + "k"})
		known = append(known, time.Since(start))
		start = time.Now()
		_, uerr := a.Authenticate(ctx, Credentials{Authorization: basic("nobody", "wrong"), IP: ip + "u"})
		unknown = append(unknown, time.Since(start))
		if kerr == nil || uerr == nil || kerr.Error() != uerr.Error() {
			t.Fatalf("wrong secret %v and unknown id %v: want the same refusal", kerr, uerr)
		}
	}
	med := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	if k, u := med(known), med(unknown); u < k/3 || u > 3*k {
		t.Errorf("median time: wrong secret of a known client %v, unknown client %v; want the same order (both one argon2id)", k, u)
	}
}

type tokenMap map[string]*storev1.OperatorToken

func (m tokenMap) OperatorToken(id string, now time.Time) (*storev1.OperatorToken, error) {
	if o, ok := m[id]; ok && o.GetExpiresUnixNano() > now.UnixNano() {
		return o, nil
	}
	return nil, errors.New("not found")
}

func TestOperatorTokens(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tok, id, hash := NewOperatorToken()
	if len(tok) != OperatorTokenLen || !strings.HasPrefix(tok, OperatorTokenPrefix) {
		t.Fatalf("token %q: want %d characters starting %s", tok, OperatorTokenLen, OperatorTokenPrefix)
	}
	store := tokenMap{id: {Id: id, Name: "ci", Scopes: []string{ScopeClusterRead}, SecretSha256: hash[:], ExpiresUnixNano: now.Add(time.Hour).UnixNano()}}
	syncs := 0
	a := NewAuthenticator(Config{Tokens: store, Now: func() time.Time { return now }, Sync: func(context.Context) error { syncs++; return nil }})
	ctx := context.Background()
	p, err := a.Authenticate(ctx, Credentials{Authorization: "Bearer " + tok})
	if err != nil || p.ID() != "operator/ci" || p.TokenID != id || !p.Has(ScopeClusterRead) || p.Has(ScopeClusterWrite) {
		t.Fatalf("valid token: got %+v, %v; want operator/ci with cluster:read only", p, err)
	}
	// A wrong secret for a real id, a token whose record is gone, a
	// malformed token.
	other, _, _ := NewOperatorToken()
	forged := tok[:len(OperatorTokenPrefix)+24] + other[len(OperatorTokenPrefix)+24:]
	for name, bearer := range map[string]string{"wrong secret": forged, "unknown id": other, "malformed": "sdo_x", "truncated": tok[:len(tok)-1]} {
		if _, err := a.Authenticate(ctx, Credentials{Authorization: "Bearer " + bearer}); err == nil {
			t.Errorf("%s: accepted; want refused", name)
		}
	}
	if syncs == 0 {
		t.Errorf("an unknown id did not sync once: a token created through another node a moment ago would be refused")
	}
	now = now.Add(2 * time.Hour)
	if _, err := a.Authenticate(ctx, Credentials{Authorization: "Bearer " + tok}); err == nil {
		t.Errorf("expired token: accepted; want refused")
	}
	// A user's access token is not ours: the middleware decides.
	if _, err := a.Authenticate(ctx, Credentials{Authorization: "Bearer v4.public.xyz"}); err != ErrNotOurs {
		t.Errorf("a non-operator bearer: got %v, want ErrNotOurs", err)
	}
}

func TestScopesAndGrants(t *testing.T) {
	w := Principal{Kind: KindOperator, Name: "a", Scopes: []string{ScopeClusterWrite, ScopeTokens, ScopeWatchDetails}}
	for _, s := range []string{ScopeClusterRead, ScopeClusterWrite, ScopeWatch, ScopeWatchDetails, ScopeTokens} {
		if !w.Has(s) {
			t.Errorf("Has(%s) = false, want true", s)
		}
	}
	if w.Has(ScopeAdmin) || w.Has(ScopeMetrics) {
		t.Errorf("Has(admin|metrics) = true, want false")
	}
	if err := CheckGrantable(w, []string{ScopeClusterRead}); err != nil {
		t.Errorf("grant a held scope: %v", err)
	}
	var ce *Error
	if err := CheckGrantable(w, []string{ScopeAdmin}); !errors.As(err, &ce) || ce.Code != CodeForbidden {
		t.Errorf("grant admin without holding it: got %v, want forbidden", err)
	}
	root := Principal{Kind: KindOperator, Scopes: []string{ScopeAll}}
	for _, bad := range [][]string{nil, {"*"}, {"cluster:peer"}, {"cluster:everything"}} {
		if err := CheckGrantable(root, bad); !errors.As(err, &ce) || ce.Code != CodeInvalid {
			t.Errorf("grant %v: got %v, want invalid", bad, err)
		}
	}
	if !slices.Contains(GrantableScopes, ScopeWatchDetails) {
		t.Errorf("watch:details not grantable")
	}
}

func TestStreamCaps(t *testing.T) {
	c := NewStreamCaps(3, 2)
	r1, err1 := c.Acquire("service/a")
	_, err2 := c.Acquire("service/a")
	_, err3 := c.Acquire("service/a")
	if err1 != nil || err2 != nil || err3 == nil || !strings.Contains(err3.Error(), "per-client cap") {
		t.Fatalf("third stream of one client: %v, %v, %v; want the per-client cap", err1, err2, err3)
	}
	if _, err := c.Acquire("service/b"); err != nil {
		t.Fatalf("first stream of another client: %v", err)
	}
	if _, err := c.Acquire("service/c"); err == nil || !strings.Contains(err.Error(), "max_watch_streams") {
		t.Fatalf("fourth stream: %v, want the total cap", err)
	}
	r1()
	r1() // idempotent
	if _, err := c.Acquire("service/c"); err != nil || c.Open() != 3 {
		t.Errorf("after one release: %v, %d open; want a stream and 3 open", err, c.Open())
	}
}

// FuzzParseOperatorToken: the token parser never panics, and accepts only
// the exact form (what it accepts re-encodes to the same string).
func FuzzParseOperatorToken(f *testing.F) {
	tok, _, _ := NewOperatorToken()
	for _, s := range []string{tok, "", "sdo_", tok[:len(tok)-1] + "=", strings.ToUpper(tok), tok + "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, err := ParseOperatorToken(s)
		if err != nil {
			return
		}
		if again := OperatorTokenPrefix + id + "." + base64.RawURLEncoding.EncodeToString(secret); again != s {
			t.Errorf("ParseOperatorToken(%q) accepted a non-canonical form (%q)", s, again)
		}
	})
}

// FuzzAuthenticateHeader: any Authorization header is refused or resolved
// without a panic, and never to a principal with a scope it was not given.
func FuzzAuthenticateHeader(f *testing.F) {
	h := testHasher(f, 64)
	hash, _ := h.Hash("s")
	tok, id, sum := NewOperatorToken()
	a := NewAuthenticator(Config{Clients: []ServiceClient{{ID: "c", SecretHash: hash, Scopes: []string{ScopeCheck}}}, Hasher: h,
		Tokens: tokenMap{id: {Id: id, Name: "ci", Scopes: []string{ScopeClusterRead}, SecretSha256: sum[:], ExpiresUnixNano: 1 << 62}}})
	for _, s := range []string{basic("c", "s"), basic("c", "x"), "Bearer " + tok, "Basic !!", "Bearer ", "Digest x", "basic " + base64.StdEncoding.EncodeToString([]byte("c"))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, hdr string) {
		p, err := a.Authenticate(context.Background(), Credentials{Authorization: hdr})
		if err != nil {
			return
		}
		if p.Has(ScopeAdmin) || p.Has(ScopeClusterWrite) {
			t.Errorf("header %q: principal %v with a scope nobody was given", hdr, p)
		}
	})
}

// Many calls presenting a token this node has not applied yet, at once (a
// benchmark's clients on a follower, right after the token was created
// through another node): every one is accepted once the node catches up;
// none is refused because others used up the sync budget.
func TestNewTokenOnALaggingNodeUnderLoad(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tok, id, hash := NewOperatorToken()
	const calls = 3 * maxSyncsPerSecond
	lt := &laggingTokens{m: tokenMap{}, misses: calls, gate: make(chan struct{})}
	a := NewAuthenticator(Config{
		Tokens: lt,
		Now:    func() time.Time { return now },
		Sync: func(ctx context.Context) error {
			// The node catches up once every call has missed locally.
			select {
			case <-lt.gate:
			case <-ctx.Done():
				return ctx.Err()
			}
			lt.mu.Lock()
			defer lt.mu.Unlock()
			lt.m[id] = &storev1.OperatorToken{Id: id, Name: "bench", Scopes: []string{ScopeAdmin}, SecretSha256: hash[:], ExpiresUnixNano: now.Add(time.Hour).UnixNano()}
			return nil
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errs := make(chan error, calls)
	for range calls {
		go func() {
			_, err := a.Authenticate(ctx, Credentials{Authorization: "Bearer " + tok})
			errs <- err
		}()
	}
	refused := 0
	for range calls {
		if err := <-errs; err != nil {
			refused++
		}
	}
	if refused > 0 {
		t.Errorf("%d of %d calls with a token the node applied at its next sync were refused, want none", refused, calls)
	}
}

// laggingTokens is a token store that has not applied the token yet: it
// opens gate after the given number of lookups missed.
type laggingTokens struct {
	mu     sync.Mutex
	m      tokenMap
	misses int
	gate   chan struct{}
}

func (l *laggingTokens) OperatorToken(id string, now time.Time) (*storev1.OperatorToken, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec, err := l.m.OperatorToken(id, now)
	if err != nil {
		if l.misses--; l.misses == 0 {
			close(l.gate)
		}
	}
	return rec, err
}
