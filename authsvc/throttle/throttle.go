// Package throttle slows down password (and service-client secret)
// guessing, cluster-wide, the way OWASP's authentication cheat sheet and
// NIST SP 800-63B §5.2.2 suggest: progressive delays, no hard lockout.
//
// Failures are counted under three keys, each a SHA-256 hash:
//
//   - account+source (the email and the client IP): FreeAttempts failures
//     without delay, then BaseDelay doubling up to MaxDelay. This is what
//     stops one attacker guessing one account;
//   - source: the same with IPMultiplier times the free attempts, so one
//     address cannot guess many accounts (offices behind NAT get room);
//   - account, from every source: AccountFreeAttempts, then a delay that
//     doubles only up to AccountMaxDelay (short), which bounds a guessing
//     attack spread over many addresses while whoever knows an email can
//     at most slow its owner down by AccountMaxDelay, never lock it out.
//
// The counts live in the replicated store (Store, implemented over Raft by
// authsvc), so every node of the cluster imposes the same delays: three
// nodes do not give three times the guesses. Two local pre-filters bound
// what an attacker can make the cluster write: a per-node token bucket per
// account+source (x/time/rate, kept in an expiring LRU of MaxKeys
// entries), and a node-wide budget of failure writes (MaxWritesPerSecond);
// an attempt beyond either is refused before any password is checked.
package throttle

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/time/rate"
)

// Key is a throttle key: the SHA-256 of its kind, account and source.
type Key [32]byte

// Store holds the failure counts, shared by every node. authsvc
// implements it over the replicated store.
type Store interface {
	// Failures returns a key's failure count and the time of its latest
	// failure (zeros when it has none at now).
	Failures(key Key, now time.Time) (n uint32, last time.Time, err error)
	// RecordFailure counts one failure under each key, remembered for
	// window after now.
	RecordFailure(ctx context.Context, keys []Key, window time.Duration) error
	// ClearFailures forgets the counts of keys.
	ClearFailures(ctx context.Context, keys []Key) error
}

// Config sets the limits.
type Config struct {
	// FreeAttempts is how many failures of one account from one source
	// are allowed without delay.
	FreeAttempts int
	// BaseDelay is the wait after failure FreeAttempts+1; each further
	// failure doubles it, up to MaxDelay. The wait runs from the latest
	// failure.
	BaseDelay, MaxDelay time.Duration
	// IPMultiplier scales FreeAttempts for a source alone. Zero means 1.
	IPMultiplier int
	// AccountFreeAttempts is how many failures of one account, from all
	// sources together, are allowed without delay; beyond it the delay
	// doubles from BaseDelay up to AccountMaxDelay.
	AccountFreeAttempts int
	AccountMaxDelay     time.Duration
	// Window is how long counts are remembered after the latest failure;
	// at least MaxDelay, at most a day.
	Window time.Duration
	// LocalRate and LocalBurst bound one node's attempts per account+source
	// since its last success, before any count is read.
	LocalRate  rate.Limit
	LocalBurst int
	// MaxKeys caps the node's local per-key limiters (least recently used
	// evicted; an entry is also dropped after Window). Zero means
	// DefaultMaxKeys.
	MaxKeys int
	// MaxWritesPerSecond bounds the failures this node records in the
	// store per second (Raft writes); attempts are refused while the
	// budget is spent. Zero means 200.
	MaxWritesPerSecond float64
}

// DefaultMaxKeys is the local key cap when Config.MaxKeys is zero.
const DefaultMaxKeys = 100_000

// DefaultConfig returns the defaults: per account+source 5 free failures,
// then 1 s doubling to 15 min; per source 20 free; per account from any
// source 20 free, then 1 s doubling to 1 min; counts kept 1 h after the
// latest failure; a node takes at most 1 attempt a second per
// account+source after a burst of 10, and records at most 200 failures a
// second.
func DefaultConfig() Config {
	return Config{
		FreeAttempts: 5, BaseDelay: time.Second, MaxDelay: 15 * time.Minute, IPMultiplier: 4,
		AccountFreeAttempts: 20, AccountMaxDelay: time.Minute, Window: time.Hour,
		LocalRate: 1, LocalBurst: 10, MaxKeys: DefaultMaxKeys, MaxWritesPerSecond: 200,
	}
}

// ErrInvalidConfig is returned (wrapped) by New.
var ErrInvalidConfig = errors.New("throttle: invalid config")

func (c Config) validate() error {
	switch {
	case c.FreeAttempts < 0 || c.AccountFreeAttempts < 0:
		return fmt.Errorf("%w: FreeAttempts and AccountFreeAttempts must not be negative", ErrInvalidConfig)
	case c.BaseDelay <= 0 || c.MaxDelay < c.BaseDelay || c.AccountMaxDelay < c.BaseDelay:
		return fmt.Errorf("%w: want 0 < BaseDelay (%s) <= MaxDelay (%s), AccountMaxDelay (%s)", ErrInvalidConfig, c.BaseDelay, c.MaxDelay, c.AccountMaxDelay)
	case c.Window < max(c.MaxDelay, c.AccountMaxDelay) || c.Window > 24*time.Hour:
		return fmt.Errorf("%w: Window (%s) must be at least the delays and at most 24h", ErrInvalidConfig, c.Window)
	case c.IPMultiplier < 0 || c.MaxKeys < 0 || c.MaxWritesPerSecond < 0:
		return fmt.Errorf("%w: IPMultiplier, MaxKeys and MaxWritesPerSecond must not be negative", ErrInvalidConfig)
	case c.LocalRate <= 0 || c.LocalBurst <= 0:
		return fmt.Errorf("%w: LocalRate and LocalBurst must be positive", ErrInvalidConfig)
	}
	return nil
}

// Kinds of keys.
const (
	kindPair    = "pair"
	kindSource  = "source"
	kindAccount = "account"
)

// KeyOf returns the throttle key of kind for account and source.
func KeyOf(kind, account, source string) Key {
	h := sha256.New()
	for _, s := range []string{kind, account, source} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var k Key
	h.Sum(k[:0])
	return k
}

// limits are the thresholds of one kind of key.
type limits struct {
	free     int
	maxDelay time.Duration
}

// Limiter applies the policy. It is safe for concurrent use. Every method
// takes the current time, so callers (and tests) control the clock.
type Limiter struct {
	cfg    Config
	st     Store
	lim    map[string]limits
	local  *expirable.LRU[string, *rate.Limiter]
	writes *rate.Limiter
}

// New returns a limiter over st, or an error wrapping ErrInvalidConfig.
func New(cfg Config, st Store) (*Limiter, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("%w: a Store is required", ErrInvalidConfig)
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	if cfg.MaxWritesPerSecond == 0 {
		cfg.MaxWritesPerSecond = 200
	}
	mult := max(cfg.IPMultiplier, 1)
	return &Limiter{
		cfg: cfg, st: st,
		lim: map[string]limits{
			kindPair:    {cfg.FreeAttempts, cfg.MaxDelay},
			kindSource:  {cfg.FreeAttempts * mult, cfg.MaxDelay},
			kindAccount: {cfg.AccountFreeAttempts, cfg.AccountMaxDelay},
		},
		local:  expirable.NewLRU[string, *rate.Limiter](cfg.MaxKeys, nil, cfg.Window),
		writes: rate.NewLimiter(rate.Limit(cfg.MaxWritesPerSecond), int(max(1, cfg.MaxWritesPerSecond))),
	}, nil
}

// keyed is one key of an attempt with its kind.
type keyed struct {
	kind string
	key  Key
}

// keys returns the keys of an attempt; an empty account or source drops
// the keys that need it.
func keys(account, source string) []keyed {
	var out []keyed
	if account != "" && source != "" {
		out = append(out, keyed{kindPair, KeyOf(kindPair, account, source)})
	}
	if source != "" {
		out = append(out, keyed{kindSource, KeyOf(kindSource, "", source)})
	}
	if account != "" {
		out = append(out, keyed{kindAccount, KeyOf(kindAccount, account, "")})
	}
	return out
}

// Check reports whether an attempt for account from source may be made at
// now. When not, retryAfter is how long until it may. Check counts the
// attempt against the node's local per-key rate; the outcome must be
// reported with Failure or Success. A store that cannot be read refuses
// (err set): guessing is never unthrottled.
func (l *Limiter) Check(account, source string, now time.Time) (retryAfter time.Duration, ok bool, err error) {
	if l.writes.TokensAt(now) < 1 {
		return time.Second, false, nil
	}
	if account != "" || source != "" {
		lk := localKey(account, source)
		rl, found := l.local.Get(lk)
		if !found {
			rl = rate.NewLimiter(l.cfg.LocalRate, l.cfg.LocalBurst)
			l.local.Add(lk, rl)
		}
		if r := rl.ReserveN(now, 1); r.DelayFrom(now) > 0 {
			d := r.DelayFrom(now)
			r.CancelAt(now)
			return d, false, nil
		}
	}
	for _, k := range keys(account, source) {
		n, last, err := l.st.Failures(k.key, now)
		if err != nil {
			return time.Second, false, err
		}
		retryAfter = max(retryAfter, l.wait(k.kind, n, last, now))
	}
	return retryAfter, retryAfter == 0, nil
}

// localKey is the key of an account+source's local rate limiter.
func localKey(account, source string) string { return account + "\x00" + source }

// wait is how long a key of kind with n failures, the latest at last, must
// wait at now.
func (l *Limiter) wait(kind string, n uint32, last, now time.Time) time.Duration {
	lim := l.lim[kind]
	if int(n) <= lim.free {
		return 0
	}
	if next := last.Add(Delay(l.cfg.BaseDelay, lim.maxDelay, int(n)-lim.free)); now.Before(next) {
		return next.Sub(now)
	}
	return 0
}

// Delay is the wait after the n-th failure beyond the free ones (n >= 1):
// base * 2^(n-1), capped at maxDelay.
func Delay(base, maxDelay time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < maxDelay; i++ {
		d *= 2
	}
	return min(d, maxDelay)
}

// Failure records a failed attempt for account from source at now, in
// the shared store. It reports whether this failure is the first to impose
// a delay on the account+source (for alerting). An error means the failure
// was not recorded; the attempt was refused all the same.
func (l *Limiter) Failure(ctx context.Context, account, source string, now time.Time) (delayed bool, err error) {
	ks := keys(account, source)
	if len(ks) == 0 {
		return false, nil
	}
	if len(ks) > 0 && ks[0].kind == kindPair {
		if n, _, err := l.st.Failures(ks[0].key, now); err == nil && int(n) == l.lim[kindPair].free {
			delayed = true
		}
	}
	// Bounded Raft writes: wait for the node's budget (Check refuses new
	// attempts while it is spent, so this wait is short).
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := l.writes.Wait(wctx); err != nil {
		return delayed, fmt.Errorf("throttle: failure write budget: %w", err)
	}
	raw := make([]Key, len(ks))
	for i, k := range ks {
		raw[i] = k.key
	}
	return delayed, l.st.RecordFailure(ctx, raw, l.cfg.Window)
}

// Success records a successful attempt at now: it forgets the failures of
// the account (from this source and overall) when it has any, and the
// account+source's local rate (so logging in often is never throttled).
// The source's failures are kept, so that one valid account does not reset
// an attacker's budget for guessing others.
func (l *Limiter) Success(ctx context.Context, account, source string, now time.Time) error {
	l.local.Remove(localKey(account, source))
	var clear []Key
	for _, k := range keys(account, source) {
		if k.kind == kindSource {
			continue
		}
		if n, _, err := l.st.Failures(k.key, now); err == nil && n > 0 {
			clear = append(clear, k.key)
		}
	}
	if len(clear) == 0 {
		return nil
	}
	return l.st.ClearFailures(ctx, clear)
}

// Len returns the number of local per-key limiters held.
func (l *Limiter) Len() int { return l.local.Len() }
