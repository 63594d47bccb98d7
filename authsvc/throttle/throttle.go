// Package throttle slows down password guessing: it counts failed logins
// per account and per client IP, imposes a growing delay between attempts
// once the free attempts are used up, and locks the key out for a while
// after too many failures.
//
// The Limiter is node-local: each node of the cluster counts the failures
// it sees, so an attacker spreading attempts over N nodes gets up to N
// times the budget. Counters are kept in memory, capped at Config.MaxKeys
// keys; when full, the least recently failed key is forgotten (which ends
// its delay or lockout early). An attacker able to produce more than
// MaxKeys distinct failing keys within a lockout can therefore shorten
// other keys' lockouts; size MaxKeys generously (an entry is about 150
// bytes).
package throttle

import (
	"container/list"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Config sets the limits. Thresholds count failures within Window of each
// other: a key whose last failure is older than Window (and whose lockout
// has ended) starts again from zero.
type Config struct {
	// FreeAttempts is how many failures are allowed without delay.
	FreeAttempts int
	// BaseDelay is the wait imposed after failure FreeAttempts+1; each
	// further failure doubles it, up to MaxDelay. The wait runs from the
	// last failure.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// LockoutAfter failures lock the key for LockoutFor; while the count
	// stays at or above LockoutAfter, each further failure locks it again.
	// Zero disables lockouts.
	LockoutAfter int
	LockoutFor   time.Duration
	// Window is how long a key's failures are remembered after the last one.
	Window time.Duration
	// IPMultiplier scales FreeAttempts and LockoutAfter for client IPs,
	// which many users may share (NAT, offices). Zero means 1.
	IPMultiplier int
	// MaxKeys caps the number of tracked accounts plus IPs. Zero means
	// DefaultMaxKeys.
	MaxKeys int
}

// DefaultMaxKeys is the key cap when Config.MaxKeys is zero.
const DefaultMaxKeys = 100_000

// DefaultConfig returns sensible limits: 5 free attempts, then 1s doubling
// to 1m, lockout for 15m after 10 failures within 15m of each other, IP
// thresholds 4 times the account ones.
func DefaultConfig() Config {
	return Config{
		FreeAttempts: 5, BaseDelay: time.Second, MaxDelay: time.Minute,
		LockoutAfter: 10, LockoutFor: 15 * time.Minute, Window: 15 * time.Minute,
		IPMultiplier: 4, MaxKeys: DefaultMaxKeys,
	}
}

// ErrInvalidConfig is returned (wrapped) by New.
var ErrInvalidConfig = errors.New("throttle: invalid config")

func (c Config) validate() error {
	switch {
	case c.FreeAttempts < 0:
		return fmt.Errorf("%w: FreeAttempts %d < 0", ErrInvalidConfig, c.FreeAttempts)
	case c.BaseDelay <= 0 || c.MaxDelay < c.BaseDelay:
		return fmt.Errorf("%w: want 0 < BaseDelay (%s) <= MaxDelay (%s)", ErrInvalidConfig, c.BaseDelay, c.MaxDelay)
	case c.LockoutAfter < 0 || (c.LockoutAfter > 0 && c.LockoutAfter <= c.FreeAttempts):
		return fmt.Errorf("%w: LockoutAfter %d: want 0 or more than FreeAttempts (%d)", ErrInvalidConfig, c.LockoutAfter, c.FreeAttempts)
	case c.LockoutAfter > 0 && c.LockoutFor <= 0:
		return fmt.Errorf("%w: LockoutFor %s: want > 0", ErrInvalidConfig, c.LockoutFor)
	case c.Window < c.MaxDelay:
		return fmt.Errorf("%w: Window (%s) must be at least MaxDelay (%s)", ErrInvalidConfig, c.Window, c.MaxDelay)
	case c.IPMultiplier < 0 || c.MaxKeys < 0:
		return fmt.Errorf("%w: IPMultiplier and MaxKeys must not be negative", ErrInvalidConfig)
	}
	return nil
}

type kind uint8

const (
	kindAccount kind = iota
	kindIP
)

type key struct {
	kind kind
	name string
}

type entry struct {
	key         key
	failures    int
	lastFailure time.Time
	lockedUntil time.Time
}

// limits are the thresholds of one kind of key.
type limits struct{ free, lockoutAfter int }

// Limiter counts failures. It is safe for concurrent use. Every method
// takes the current time, so callers (and tests) control the clock.
type Limiter struct {
	cfg     Config
	lim     [2]limits
	maxKeys int

	mu      sync.Mutex
	entries map[key]*list.Element // of *entry
	lru     *list.List            // front: most recently failed
}

// New returns a limiter, or an error wrapping ErrInvalidConfig.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	mult := max(cfg.IPMultiplier, 1)
	maxKeys := cfg.MaxKeys
	if maxKeys == 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Limiter{
		cfg: cfg,
		lim: [2]limits{
			kindAccount: {cfg.FreeAttempts, cfg.LockoutAfter},
			kindIP:      {cfg.FreeAttempts * mult, cfg.LockoutAfter * mult},
		},
		maxKeys: maxKeys,
		entries: make(map[key]*list.Element),
		lru:     list.New(),
	}, nil
}

// Check reports whether a login for account from ip may be attempted at
// now. When not, retryAfter is how long until it may (the longer of the
// account's and the IP's waits). An empty account or ip is not checked.
// Check does not count an attempt; call Failure or Success with its outcome.
func (l *Limiter) Check(account, ip string, now time.Time) (retryAfter time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if account != "" {
		retryAfter = max(retryAfter, l.wait(key{kindAccount, account}, now))
	}
	if ip != "" {
		retryAfter = max(retryAfter, l.wait(key{kindIP, ip}, now))
	}
	return retryAfter, retryAfter == 0
}

// wait returns how long k must wait at now; l.mu is held.
func (l *Limiter) wait(k key, now time.Time) time.Duration {
	el, ok := l.entries[k]
	if !ok {
		return 0
	}
	e := el.Value.(*entry)
	if l.expired(e, now) {
		l.remove(el)
		return 0
	}
	if now.Before(e.lockedUntil) {
		return e.lockedUntil.Sub(now)
	}
	free := l.lim[k.kind].free
	if e.failures <= free {
		return 0
	}
	if next := e.lastFailure.Add(l.delay(e.failures - free)); now.Before(next) {
		return next.Sub(now)
	}
	return 0
}

// delay is the wait after the n-th failure beyond the free ones (n >= 1):
// BaseDelay * 2^(n-1), capped at MaxDelay.
func (l *Limiter) delay(n int) time.Duration {
	d := l.cfg.BaseDelay
	for i := 1; i < n && d < l.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, l.cfg.MaxDelay)
}

// expired reports whether e can be forgotten at now.
func (l *Limiter) expired(e *entry, now time.Time) bool {
	return !now.Before(e.lockedUntil) && now.Sub(e.lastFailure) >= l.cfg.Window
}

// Failure records a failed login for account from ip at now (an empty
// account or ip is not recorded). It reports whether this failure started
// a lockout of the account or the IP, for alerting.
func (l *Limiter) Failure(account, ip string, now time.Time) (lockedOut bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if account != "" && l.fail(key{kindAccount, account}, now) {
		lockedOut = true
	}
	if ip != "" && l.fail(key{kindIP, ip}, now) {
		lockedOut = true
	}
	return lockedOut
}

func (l *Limiter) fail(k key, now time.Time) (locked bool) {
	var e *entry
	if el, ok := l.entries[k]; ok {
		e = el.Value.(*entry)
		if l.expired(e, now) {
			e.failures = 0
		}
		l.lru.MoveToFront(el)
	} else {
		for l.lru.Len() >= l.maxKeys {
			l.remove(l.lru.Back())
		}
		e = &entry{key: k}
		l.entries[k] = l.lru.PushFront(e)
	}
	e.failures++
	if now.After(e.lastFailure) {
		e.lastFailure = now
	}
	if lim := l.lim[k.kind].lockoutAfter; lim > 0 && e.failures >= lim && !now.Before(e.lockedUntil) {
		e.lockedUntil = now.Add(l.cfg.LockoutFor)
		return true
	}
	return false
}

func (l *Limiter) remove(el *list.Element) {
	delete(l.entries, el.Value.(*entry).key)
	l.lru.Remove(el)
}

// Success records a successful login at now: it forgets the account's
// failures and any lockout of it. The IP's failures are kept, so that one
// valid account does not reset an attacker's budget for guessing others.
func (l *Limiter) Success(account, ip string, now time.Time) {
	if account == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.entries[key{kindAccount, account}]; ok {
		l.remove(el)
	}
}

// Len returns the number of tracked keys (accounts plus IPs).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}
