// Package authsvctest runs an auth service in one process without Raft:
// Cluster applies every proposed command to a real store.Store in log
// order, as a single-voter cluster would, so the flows of authsvc can be
// tested in milliseconds against the real state machine (bbolt file,
// validation, rules, indexes). The 3-node tests in authsvc and the
// end-to-end tests in cmd/sessiond remain the integration layer above it.
package authsvctest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/keys"
	"github.com/sessiond/sessiond/authsvc/password"
	"github.com/sessiond/sessiond/authsvc/throttle"
	"github.com/sessiond/sessiond/authsvc/users"
	"github.com/sessiond/sessiond/store"
)

// Cluster is an in-memory authsvc.Cluster over one store: Propose applies
// the command at the next log index and returns the state machine's
// result, so every write is acknowledged only once it is in the store, as
// with Raft. It leads unless SetLeader(false) says otherwise.
type Cluster struct {
	st *store.Store

	mu    sync.Mutex // serialises Propose, as a Raft log does
	index uint64

	notLeader atomic.Bool
	// down, when set, makes Propose and Sync fail with ErrNoQuorum.
	down atomic.Bool
	// repeat, when set, makes Propose apply each command twice.
	repeat atomic.Bool
}

// ErrNoQuorum is what Propose and Sync return while SetDown(true): the
// answer of a cluster that has lost its quorum.
var ErrNoQuorum = errors.New("authsvctest: no quorum")

var _ authsvc.Cluster = (*Cluster)(nil)

// NewCluster returns a cluster that applies commands to st, starting after
// the index st has applied.
func NewCluster(st *store.Store) *Cluster {
	return &Cluster{st: st, index: st.AppliedIndex()}
}

// Propose applies cmd at the next index.
func (c *Cluster) Propose(ctx context.Context, cmd []byte) (uint64, []byte, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	if c.down.Load() {
		return 0, nil, ErrNoQuorum
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.repeat.Load() {
		// The first answer is lost on its way back; the retry is answered.
		c.index++
		c.st.Apply(&raft.Log{Index: c.index, Term: 1, Type: raft.LogCommand, Data: cmd})
	}
	c.index++
	switch r := c.st.Apply(&raft.Log{Index: c.index, Term: 1, Type: raft.LogCommand, Data: cmd}).(type) {
	case []byte:
		return c.index, r, nil
	case error:
		return 0, nil, r
	default:
		return 0, nil, fmt.Errorf("authsvctest: unexpected apply response %T", r)
	}
}

// IsLeader reports whether this node leads (true unless SetLeader(false)).
func (c *Cluster) IsLeader() bool { return !c.notLeader.Load() }

// Sync returns at once: every acknowledged write is already applied.
func (c *Cluster) Sync(ctx context.Context) error {
	if c.down.Load() {
		return ErrNoQuorum
	}
	return ctx.Err()
}

// SetLeader makes the node lead or follow (background work that runs on
// the leader only, such as key rotation, stops while it follows).
func (c *Cluster) SetLeader(leads bool) { c.notLeader.Store(!leads) }

// SetDown makes writes and linearizable reads fail as without a quorum.
func (c *Cluster) SetDown(down bool) { c.down.Store(down) }

// SetRepeat makes every write reach the log twice and answers the second
// entry, as when a node retries a write whose answer it lost (a leader
// change, a broken connection); the store deduplicates by request id.
func (c *Cluster) SetRepeat(repeat bool) { c.repeat.Store(repeat) }

// Clock is a settable clock for Deps.Now. Its zero value is not usable;
// NewClock returns one.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Env is one auth service over an in-memory cluster and a real store in a
// temporary directory, with the built-in user directory.
type Env struct {
	Svc      *authsvc.Service
	Store    *store.Store
	Cluster  *Cluster
	Dir      *authsvc.BuiltinDirectory
	Throttle *throttle.Limiter
	KEK      keys.KEK
	// Clock is the service's clock; Advance it to expire things.
	Clock *Clock
	// Config is the configuration the service was built with.
	Config authsvc.Config
}

// Options adjust an Env before its service is built.
type Options struct {
	// Config, when set, adjusts the default configuration.
	Config func(*authsvc.Config)
	// Deps, when set, adjusts the default dependencies.
	Deps func(*authsvc.Deps)
}

// FastHasher returns an argon2id hasher cheap enough for tests.
func FastHasher(t testing.TB) *password.Hasher {
	t.Helper()
	h, err := password.NewHasher(password.Config{Params: password.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// DefaultConfig is the configuration New starts from.
func DefaultConfig() authsvc.Config {
	return authsvc.Config{
		Issuer: "https://auth.test", Audience: "test", AccessTTL: 5 * time.Minute, RefreshTTL: time.Hour,
		SessionIdle: time.Hour, SessionAbsolute: 24 * time.Hour, RefreshGrace: time.Second,
		KeyRotation: 24 * time.Hour, Region: "test", NodeID: "node-1",
	}
}

// New starts an Env whose clock reads the current time and returns once
// the service holds a signing key. Everything stops at the end of the test.
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{NoSync: true, InitialMmapSize: 1 << 20})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	kek, err := keys.NewKEK(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	c := NewCluster(st)
	clock := NewClock(time.Now())
	dir := authsvc.NewBuiltinDirectory(st, c)
	lim, err := throttle.New(throttle.DefaultConfig(), authsvc.NewThrottleStore(c, st))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if opts.Config != nil {
		opts.Config(&cfg)
	}
	d := authsvc.Deps{Cluster: c, State: st, Directory: dir, Hasher: FastHasher(t), KEK: kek, Throttle: lim, Now: clock.Now}
	if opts.Deps != nil {
		opts.Deps(&d)
	}
	svc, err := authsvc.New(cfg, d)
	if err != nil {
		t.Fatalf("authsvc.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); svc.RunKeyRotation(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for len(svc.PublishedKeys()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("authsvctest: no signing key after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return &Env{Svc: svc, Store: st, Cluster: c, Dir: dir, Throttle: lim, KEK: kek, Clock: clock, Config: cfg}
}

// CreateUser creates an active user with password pw.
func (e *Env) CreateUser(t testing.TB, email, pw string) users.User {
	t.Helper()
	u, err := e.Svc.CreateUser(context.Background(), authsvc.NewUserInput{
		Email: email, Password: pw, DisplayName: "Test User", OrgName: "Org", Country: "TH", OrgType: users.OrgCustomer,
	})
	if err != nil {
		t.Fatalf("create user %s: %v", email, err)
	}
	return u
}
