package guard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1/sessionv1connect"
	"github.com/sessiond/sessiond/clients/go/policy"
)

// Guard verifies sessiond access tokens locally: signatures against the
// published keys, revocations against a local set kept current by a
// WatchRevocations stream, permissions against configured rules. It is safe
// for concurrent use. Create it with New, call Start once, Close when done.
type Guard struct {
	cfg     Config
	log     *slog.Logger
	policy  *policy.Policy
	clients []sessionv1connect.SessionServiceClient // parallel to cfg.Nodes
	now     func() time.Time

	keys      keyStore
	keysReady chan struct{}
	keysOnce  sync.Once

	revs      *revSet
	cache     *claimsCache
	snapReady chan struct{}
	snapOnce  sync.Once
	lastMsg   atomic.Int64 // Unix ns of the last watch message; 0 = none
	watches   sessionWatches

	mu        sync.Mutex
	node      string // node of the current or last stream
	connected bool
	failedAt  []time.Time // per node: last failure, for failover order

	started   atomic.Bool
	closeOnce sync.Once
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// New checks cfg and returns a Guard that is not started yet: Check
// refuses every token with ErrStale (FailClosed) until Start has loaded the
// revocation set.
func New(cfg Config) (*Guard, error) {
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	pol, err := policy.New(cfg.Rules)
	if err != nil {
		return nil, fmt.Errorf("guard: Config.Rules: %w", err)
	}
	g := &Guard{
		cfg: cfg, log: cfg.Logger, policy: pol, now: time.Now,
		keysReady: make(chan struct{}), snapReady: make(chan struct{}),
		revs: newRevSet(), cache: newClaimsCache(cfg.CacheSize),
		failedAt: make([]time.Time, len(cfg.Nodes)),
		cancel:   func() {},
	}
	for _, n := range cfg.Nodes {
		g.clients = append(g.clients, sessionv1connect.NewSessionServiceClient(cfg.HTTPClient, n.URL))
	}
	return g, nil
}

// ErrStarted is returned by Start when called more than once.
var ErrStarted = errors.New("guard: already started")

// Start starts the background work (key fetching and refreshing, the
// revocation watch with failover, pruning) and waits until the keys are
// fetched and the first revocation snapshot is loaded, or ctx ends. When ctx
// ends first it returns an error wrapping ctx.Err() that says what is
// missing; the background work goes on (Check answers ErrStale or falls back
// to remote checks until it catches up) until Close. ctx only bounds the
// wait.
func (g *Guard) Start(ctx context.Context) error {
	if !g.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	bg, cancel := context.WithCancel(context.Background())
	g.mu.Lock()
	g.cancel = cancel
	g.mu.Unlock()
	g.wg.Go(func() { g.keyLoop(bg) })
	g.wg.Go(func() { g.watchLoop(bg) })
	g.wg.Go(func() { g.pruneLoop(bg) })
	for _, w := range []struct {
		c    chan struct{}
		what string
	}{{g.keysReady, "the signing keys"}, {g.snapReady, "the first revocation snapshot"}} {
		select {
		case <-w.c:
		case <-ctx.Done():
			return fmt.Errorf("guard: start: waiting for %s: %w", w.what, ctx.Err())
		}
	}
	return nil
}

// Close stops the background work and waits for it. Check keeps working
// on what was loaded, but the state soon goes stale. Close is idempotent.
func (g *Guard) Close() {
	g.closeOnce.Do(func() {
		g.mu.Lock()
		cancel := g.cancel
		g.mu.Unlock()
		cancel()
		g.wg.Wait()
		g.watches.close()
		g.cache.purge()
	})
}

// WatchStatus describes the revocation watch.
type WatchStatus struct {
	// Node is the URL of the node of the current (or last) stream.
	Node string
	// Index is the applied log index the local revocation set reflects.
	Index uint64
	// LastMessage is when the last stream message arrived (zero: never).
	LastMessage time.Time
	// Connected is true while a stream is open and has delivered a
	// message.
	Connected bool
	// Entries is the number of revocation entries held.
	Entries int
}

// Status returns the watch's current status.
func (g *Guard) Status() WatchStatus {
	g.mu.Lock()
	st := WatchStatus{Node: g.node, Connected: g.connected}
	g.mu.Unlock()
	st.Index = g.revs.resumeIndex()
	st.Entries = g.revs.size()
	if ns := g.lastMsg.Load(); ns != 0 {
		st.LastMessage = time.Unix(0, ns)
	}
	return st
}

// fresh reports whether the revocation set may be trusted at now: the
// first snapshot is loaded and a message arrived within MaxStaleness.
func (g *Guard) fresh(now time.Time) bool {
	last := g.lastMsg.Load()
	return last != 0 && g.revs.loadedFast() && now.UnixNano()-last <= int64(g.cfg.MaxStaleness)
}

// pruneInterval is how often expired revocations are forgotten (the
// claims cache expires its own entries).
const pruneInterval = 30 * time.Second

func (g *Guard) pruneLoop(ctx context.Context) {
	for sleep(ctx, pruneInterval) {
		now := g.now()
		if n := g.revs.prune(now); n > 0 {
			g.log.Debug("guard: pruned", "revocations", n)
		}
	}
}

// Backoff bounds for reconnects and retries.
const (
	backoffBase = 100 * time.Millisecond
	backoffMax  = 5 * time.Second
)

// backoff returns the wait before retry number failures (0-based):
// exponential from backoffBase, capped at backoffMax, with jitter in
// [d/2, d].
func backoff(failures int) time.Duration {
	d := backoffMax
	if failures < 16 {
		d = min(backoffMax, backoffBase<<failures)
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx ends; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
