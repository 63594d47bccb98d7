package throttle

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testConfig() Config {
	return Config{
		FreeAttempts: 3, BaseDelay: time.Second, MaxDelay: 8 * time.Second,
		LockoutAfter: 8, LockoutFor: 15 * time.Minute, Window: 10 * time.Minute,
		IPMultiplier: 2, MaxKeys: 100,
	}
}

func mustNew(t *testing.T, cfg Config) *Limiter {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return l
}

// step is one call in a scenario, at t0+at.
type step struct {
	op        string // "check", "fail", "fail-any" (lock result not checked), "ok"
	account   string
	ip        string
	at        time.Duration
	wantWait  time.Duration // for check
	wantLock  bool          // for fail
	wantAllow bool          // for check
}

func run(t *testing.T, l *Limiter, steps []step) {
	t.Helper()
	for i, s := range steps {
		now := t0.Add(s.at)
		switch s.op {
		case "check":
			wait, ok := l.Check(s.account, s.ip, now)
			if ok != s.wantAllow || wait != s.wantWait {
				t.Errorf("step %d: Check(%q, %q, t0+%s) = %s, %v; want %s, %v", i, s.account, s.ip, s.at, wait, ok, s.wantWait, s.wantAllow)
			}
		case "fail":
			if got := l.Failure(s.account, s.ip, now); got != s.wantLock {
				t.Errorf("step %d: Failure(%q, %q, t0+%s) locked = %v; want %v", i, s.account, s.ip, s.at, got, s.wantLock)
			}
		case "fail-any":
			l.Failure(s.account, s.ip, now)
		case "ok":
			l.Success(s.account, s.ip, now)
		default:
			t.Fatalf("bad op %q", s.op)
		}
	}
}

func fails(account, ip string, at time.Duration, n int) []step {
	var s []step
	for range n {
		s = append(s, step{op: "fail-any", account: account, ip: ip, at: at})
	}
	return s
}

func concat(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestLimiter(t *testing.T) {
	const a, ip = "victim@example.com", "203.0.113.7"
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"fresh key is allowed", []step{
			{op: "check", account: a, ip: ip, wantAllow: true},
		}},
		{"free attempts cost nothing", concat(fails(a, ip, 0, 3), []step{
			{op: "check", account: a, ip: ip, wantAllow: true},
		})},
		{"delay grows from base, doubles, and is capped", concat(
			fails(a, "", 0, 4), // 1 beyond free: 1s
			[]step{
				{op: "check", account: a, wantWait: time.Second},
				{op: "check", account: a, at: 400 * time.Millisecond, wantWait: 600 * time.Millisecond},
				{op: "check", account: a, at: time.Second, wantAllow: true},
				{op: "fail", account: a, at: time.Second}, // 2 beyond: 2s
				{op: "check", account: a, at: time.Second, wantWait: 2 * time.Second},
				{op: "fail", account: a, at: 3 * time.Second}, // 3 beyond: 4s
				{op: "check", account: a, at: 3 * time.Second, wantWait: 4 * time.Second},
				{op: "fail", account: a, at: 7 * time.Second}, // 4 beyond: 8s (max)
				{op: "check", account: a, at: 7 * time.Second, wantWait: 8 * time.Second},
				// no lockout yet: 7 failures, lockout at 8
			})},
		{"lockout after LockoutAfter failures, then expires", concat(
			fails(a, "", 0, 7),
			[]step{
				{op: "fail", account: a, at: time.Minute, wantLock: true}, // 8th
				{op: "check", account: a, at: time.Minute, wantWait: 15 * time.Minute},
				{op: "check", account: a, at: 10 * time.Minute, wantWait: 6 * time.Minute},
				{op: "check", account: a, at: 16 * time.Minute, wantAllow: true},
			})},
		{"window forgets old failures", concat(
			fails(a, "", 0, 5),
			[]step{
				{op: "check", account: a, at: time.Second, wantWait: time.Second},
				{op: "check", account: a, at: 10 * time.Minute, wantAllow: true},
				{op: "fail", account: a, at: 10 * time.Minute}, // counts as the first again
				{op: "check", account: a, at: 10 * time.Minute, wantAllow: true},
			})},
		{"success clears the account, not the IP", concat(
			fails(a, ip, 0, 7), // IP free = 6: IP is 1 beyond
			[]step{
				{op: "check", account: a, ip: ip, wantWait: 8 * time.Second}, // account: 4 beyond
				{op: "ok", account: a, ip: ip, at: 8 * time.Second},
				{op: "check", account: a, at: 8 * time.Second, wantAllow: true},
				{op: "check", ip: ip, wantWait: time.Second},
				{op: "check", account: "other@example.com", ip: ip, wantWait: time.Second},
			})},
		{"IP thresholds are multiplied", concat(
			// 12 accounts, one failure each, from one IP: free 6, lock at 16.
			func() []step {
				var s []step
				for i := range 12 {
					s = append(s, step{op: "fail", account: fmt.Sprint("user", i), ip: ip})
				}
				return s
			}(),
			[]step{
				{op: "check", account: "fresh@example.com", ip: ip, wantWait: 8 * time.Second}, // 6 beyond free: capped 8s
				{op: "check", account: "fresh@example.com", ip: "198.51.100.1", wantAllow: true},
			},
			fails("", ip, 9*time.Second, 3),
			[]step{{op: "fail", ip: ip, at: 9 * time.Second, wantLock: true}}, // 16th
		)},
		{"the longer of account and IP waits wins", concat(
			fails(a, "", 0, 8), // account locked 15m
			fails("x@example.com", ip, 0, 7),
			[]step{
				{op: "check", account: a, ip: ip, wantWait: 15 * time.Minute},
				{op: "check", account: "x@example.com", ip: ip, wantWait: 8 * time.Second},
			})},
		{"empty keys are neither counted nor checked", concat(
			fails("", "", 0, 50),
			[]step{{op: "check", wantAllow: true}},
		)},
	} {
		t.Run(tc.name, func(t *testing.T) { run(t, mustNew(t, testConfig()), tc.steps) })
	}
}

func TestRelockWhileCountStaysHigh(t *testing.T) {
	cfg := testConfig()
	cfg.Window = 30 * time.Minute // longer than LockoutFor: the count survives the lockout
	l := mustNew(t, cfg)
	const a = "victim@example.com"
	run(t, l, concat(fails(a, "", 0, 7), []step{
		{op: "fail", account: a, at: time.Minute, wantLock: true},
		{op: "check", account: a, at: 16 * time.Minute, wantAllow: true},
		{op: "fail", account: a, at: 16 * time.Minute, wantLock: true},
		{op: "check", account: a, at: 16 * time.Minute, wantWait: 15 * time.Minute},
		// A failure during a lockout (a caller that skipped Check) does not
		// extend it.
		{op: "fail", account: a, at: 20 * time.Minute},
		{op: "check", account: a, at: 20 * time.Minute, wantWait: 11 * time.Minute},
	}))
}

func TestLockoutDisabled(t *testing.T) {
	cfg := testConfig()
	cfg.LockoutAfter = 0
	l := mustNew(t, cfg)
	run(t, l, concat(fails("a", "", 0, 100), []step{
		{op: "check", account: "a", wantWait: 8 * time.Second},
	}))
}

func TestMaxKeysEvictsLeastRecentlyFailed(t *testing.T) {
	cfg := testConfig()
	cfg.MaxKeys = 3
	l := mustNew(t, cfg)
	run(t, l, concat(
		fails("old", "", 0, 8), // locked
		fails("mid", "", time.Second, 8),
		fails("new", "", 2*time.Second, 8),
		fails("old", "", 3*time.Second, 1), // old is touched again: now most recent
		fails("newest", "", 4*time.Second, 1),
		[]step{
			{op: "check", account: "mid", at: 5 * time.Second, wantAllow: true}, // evicted
			{op: "check", account: "old", at: 5 * time.Second, wantWait: 15*time.Minute - 5*time.Second},
			{op: "check", account: "new", at: 5 * time.Second, wantWait: 15*time.Minute - 3*time.Second},
		}))
	if got := l.Len(); got != 3 {
		t.Errorf("Len = %d, want 3", got)
	}
	for i := range 1000 {
		l.Failure(fmt.Sprint("spray", i), fmt.Sprint("10.0.0.", i%250), t0)
	}
	if got := l.Len(); got != 3 {
		t.Errorf("after spraying: Len = %d, want the cap 3", got)
	}
}

func TestExpiredEntriesAreForgotten(t *testing.T) {
	l := mustNew(t, testConfig())
	l.Failure("a", "1.2.3.4", t0)
	l.Check("a", "1.2.3.4", t0.Add(time.Hour))
	if got := l.Len(); got != 0 {
		t.Errorf("Len after the window = %d, want 0", got)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, edit := range map[string]func(*Config){
		"negative free":          func(c *Config) { c.FreeAttempts = -1 },
		"zero base delay":        func(c *Config) { c.BaseDelay = 0 },
		"max below base":         func(c *Config) { c.MaxDelay = c.BaseDelay / 2 },
		"lockout below free":     func(c *Config) { c.LockoutAfter = c.FreeAttempts },
		"lockout without time":   func(c *Config) { c.LockoutFor = 0 },
		"window below max":       func(c *Config) { c.Window = c.MaxDelay / 2 },
		"negative max keys":      func(c *Config) { c.MaxKeys = -1 },
		"negative ip multiplier": func(c *Config) { c.IPMultiplier = -1 },
	} {
		cfg := testConfig()
		edit(&cfg)
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New got %v, want ErrInvalidConfig", name, err)
		}
	}
	if _, err := New(DefaultConfig()); err != nil {
		t.Errorf("New(DefaultConfig()) = %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	l := mustNew(t, testConfig())
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 500 {
				acct := fmt.Sprint("u", i%20)
				ip := fmt.Sprint("10.0.", g, ".1")
				l.Check(acct, ip, t0)
				l.Failure(acct, ip, t0)
				if i%7 == 0 {
					l.Success(acct, ip, t0)
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
	if n := l.Len(); n > 24 {
		t.Errorf("Len = %d, want at most 20 accounts + 4 IPs", n)
	}
}

func BenchmarkCheckFailure(b *testing.B) {
	l, _ := New(DefaultConfig())
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		acct := "user@example.com"
		l.Check(acct, "203.0.113.7", t0)
		l.Failure(acct, "203.0.113.7", t0)
		i++
	}
}
