package throttle

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// memStore keeps counts in memory with the replicated store's rules
// (store/throttle.go): a count restarts after its window. The throttle's
// behaviour over the real replicated store, across nodes, is tested in
// authsvc (TestThrottleClusterWide).
type memStore struct {
	mu     sync.Mutex
	now    func() time.Time
	counts map[Key]memCount
	writes int
}

type memCount struct {
	n         uint32
	last, exp time.Time
}

func newMemStore(now func() time.Time) *memStore {
	return &memStore{now: now, counts: map[Key]memCount{}}
}

func (m *memStore) Failures(k Key, now time.Time) (uint32, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.counts[k]
	if !ok || !now.Before(c.exp) {
		return 0, time.Time{}, nil
	}
	return c.n, c.last, nil
}

func (m *memStore) RecordFailure(_ context.Context, keys []Key, window time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	now := m.now()
	for _, k := range keys {
		c := m.counts[k]
		if !now.Before(c.exp) {
			c = memCount{}
		}
		c.n++
		c.last, c.exp = now, now.Add(window)
		m.counts[k] = c
	}
	return nil
}

func (m *memStore) ClearFailures(_ context.Context, keys []Key) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	for _, k := range keys {
		delete(m.counts, k)
	}
	return nil
}

func testConfig() Config {
	return Config{
		FreeAttempts: 3, BaseDelay: time.Second, MaxDelay: 8 * time.Second, IPMultiplier: 2,
		AccountFreeAttempts: 10, AccountMaxDelay: 2 * time.Second, Window: 10 * time.Minute,
		LocalRate: 1000, LocalBurst: 1000, MaxKeys: 100, MaxWritesPerSecond: 1000,
	}
}

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newLimiter(t *testing.T, cfg Config) (*Limiter, *memStore, *clock) {
	t.Helper()
	c := &clock{t0}
	st := newMemStore(c.now)
	l, err := New(cfg, st)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return l, st, c
}

func check(t *testing.T, l *Limiter, account, ip string, now time.Time) time.Duration {
	t.Helper()
	wait, ok, err := l.Check(account, ip, now)
	if err != nil || ok != (wait == 0) {
		t.Fatalf("Check = %s, %v, %v", wait, ok, err)
	}
	return wait
}

func fail(t *testing.T, l *Limiter, account, ip string, now time.Time) bool {
	t.Helper()
	delayed, err := l.Failure(context.Background(), account, ip, now)
	if err != nil {
		t.Fatalf("Failure: %v", err)
	}
	return delayed
}

// Per account+source: free attempts, then a delay doubling to MaxDelay,
// running from the latest failure; never a hard lock.
func TestProgressiveDelay(t *testing.T) {
	l, _, c := newLimiter(t, testConfig())
	for i := range 3 {
		if w := check(t, l, "ana", "ip1", c.t); w != 0 {
			t.Fatalf("free attempt %d: wait %s", i+1, w)
		}
		if fail(t, l, "ana", "ip1", c.t) {
			t.Fatalf("free failure %d reported a delay", i+1)
		}
	}
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		delayed := fail(t, l, "ana", "ip1", c.t)
		if delayed != (i == 0) {
			t.Errorf("failure %d: delayed = %v, want %v (only the first delayed failure alerts)", i+4, delayed, i == 0)
		}
		if w := check(t, l, "ana", "ip1", c.t); w != want {
			t.Fatalf("after failure %d: wait %s, want %s", i+4, w, want)
		}
		c.t = c.t.Add(want)
		if w := check(t, l, "ana", "ip1", c.t); w != 0 {
			t.Fatalf("after waiting %s: wait %s, want 0", want, w)
		}
	}
	// Another source for the same account is not slowed by the pair's count
	// (only by the account-wide one, still under its free attempts).
	if w := check(t, l, "ana", "ip2", c.t); w != 0 {
		t.Errorf("another source waits %s, want 0", w)
	}
}

// Lockout abuse: an attacker spraying failures at one account from many
// sources slows the account by at most AccountMaxDelay from a fresh source;
// the owner's own source is never locked out.
func TestAccountWideDelayIsBounded(t *testing.T) {
	cfg := testConfig()
	l, _, c := newLimiter(t, cfg)
	for i := range 50 {
		fail(t, l, "victim", "attacker-"+string(rune('a'+i%26))+string(rune('a'+i/26)), c.t)
	}
	w := check(t, l, "victim", "owner-ip", c.t)
	if w == 0 || w > cfg.AccountMaxDelay {
		t.Fatalf("owner's wait after 50 sprayed failures = %s, want in (0, %s]", w, cfg.AccountMaxDelay)
	}
	c.t = c.t.Add(cfg.AccountMaxDelay)
	if w := check(t, l, "victim", "owner-ip", c.t); w != 0 {
		t.Fatalf("owner still waits %s after AccountMaxDelay", w)
	}
}

// A source guessing many accounts is slowed after IPMultiplier x
// FreeAttempts failures.
func TestSourceDelay(t *testing.T) {
	l, _, c := newLimiter(t, testConfig())
	for i := range 6 {
		fail(t, l, "user"+string(rune('a'+i)), "ip9", c.t)
	}
	if w := check(t, l, "fresh", "ip9", c.t); w != 0 {
		t.Fatalf("after 6 failures (the source's free attempts): wait %s", w)
	}
	fail(t, l, "userz", "ip9", c.t)
	if w := check(t, l, "fresh", "ip9", c.t); w != time.Second {
		t.Fatalf("after 7 failures: wait %s, want 1s", w)
	}
}

// Success forgets the account's counts (not the source's), and writes
// nothing when there is nothing to forget.
func TestSuccess(t *testing.T) {
	l, st, c := newLimiter(t, testConfig())
	if err := l.Success(context.Background(), "bo", "ip1", c.t); err != nil || st.writes != 0 {
		t.Fatalf("Success with no failures: %v, %d writes; want nil, 0", err, st.writes)
	}
	for range 4 {
		fail(t, l, "bo", "ip1", c.t)
	}
	if err := l.Success(context.Background(), "bo", "ip1", c.t); err != nil {
		t.Fatal(err)
	}
	if w := check(t, l, "bo", "ip1", c.t); w != 0 {
		t.Errorf("after success: wait %s", w)
	}
	if n, _, _ := st.Failures(KeyOf(kindSource, "", "ip1"), c.t); n != 4 {
		t.Errorf("source count after success = %d, want 4 (kept)", n)
	}
}

// Counts are forgotten Window after the latest failure.
func TestWindow(t *testing.T) {
	cfg := testConfig()
	l, _, c := newLimiter(t, cfg)
	for range 5 {
		fail(t, l, "cy", "ip1", c.t)
	}
	c.t = c.t.Add(cfg.Window)
	fail(t, l, "cy", "ip1", c.t)
	if w := check(t, l, "cy", "ip1", c.t); w != 0 {
		t.Errorf("after the window, one failure waits %s, want 0", w)
	}
}

// The local pre-filters: per account+source token bucket, and the node's
// budget of failure writes.
func TestLocalPreFilters(t *testing.T) {
	cfg := testConfig()
	cfg.LocalRate, cfg.LocalBurst = 1, 2
	l, _, c := newLimiter(t, cfg)
	check(t, l, "dee", "ip1", c.t)
	check(t, l, "dee", "ip1", c.t)
	if w := check(t, l, "dee", "ip1", c.t); w <= 0 || w > time.Second {
		t.Errorf("third attempt in a burst of 2: wait %s, want (0, 1s]", w)
	}
	if l.Len() != 1 {
		t.Errorf("Len = %d, want 1", l.Len())
	}

	cfg = testConfig()
	cfg.MaxWritesPerSecond = 2
	l, _, c = newLimiter(t, cfg)
	fail(t, l, "e1", "ip1", c.t)
	fail(t, l, "e2", "ip2", c.t)
	if w := check(t, l, "e3", "ip3", c.t); w == 0 {
		t.Errorf("with the write budget spent, an attempt was allowed")
	}
}

func TestDelay(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 60: 10 * time.Second} {
		if got := Delay(time.Second, 10*time.Second, n); got != want {
			t.Errorf("Delay(1s, 10s, %d) = %s, want %s", n, got, want)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	st := newMemStore(time.Now)
	for name, mod := range map[string]func(*Config){
		"negative free":     func(c *Config) { c.FreeAttempts = -1 },
		"zero base":         func(c *Config) { c.BaseDelay = 0 },
		"max below base":    func(c *Config) { c.MaxDelay = c.BaseDelay / 2 },
		"window below max":  func(c *Config) { c.Window = c.MaxDelay / 2 },
		"window over a day": func(c *Config) { c.Window = 25 * time.Hour },
		"zero local rate":   func(c *Config) { c.LocalRate = 0 },
	} {
		cfg := testConfig()
		mod(&cfg)
		if _, err := New(cfg, st); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", name, err)
		}
	}
	if _, err := New(DefaultConfig(), st); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
	if _, err := New(DefaultConfig(), nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil store: %v", err)
	}
}
