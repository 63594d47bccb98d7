package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"

	authv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1/authv1connect"
	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1/sessionv1connect"
)

// Scenarios are the names NewScenario knows, in the order `sessiond bench`
// lists them.
var Scenarios = []string{"login", "refresh", "revoke", "check", "check-session", "watch", "mixed", "healthz", "code-flow", "backchannel"}

// Params configure a sessiond scenario.
type Params struct {
	// Conn says how to reach the nodes.
	Conn Conn
	// Consistency is the read level of check and check-session: stale,
	// default or linearizable.
	Consistency string
	// Pool is how many sessions revoke and watch prepare (each operation
	// ends one; the run ends when they run out).
	Pool int64
	// WatchTarget is the node whose WatchRevocations stream the watch
	// scenario listens on (default: the last target).
	WatchTarget string
	// Mix weighs the operations of the mixed scenario, as
	// "check=90,refresh=5,revoke=5" (kinds: login, refresh, revoke, check,
	// check-session, healthz).
	Mix string
	// Sessions are ids of live sessions (from a preload) that check-session
	// picks from; empty: it opens one per client. SessionsIndex is the log
	// index that wrote them (Prepare waits until every target applied it).
	Sessions      []string
	SessionsIndex uint64
	// OIDC configures code-flow and backchannel: the OpenID Connect
	// client they play.
	OIDC OIDCParams
	// Log receives what preparing does.
	Log io.Writer
}

// DefaultMix is the mixed scenario's default.
const DefaultMix = "check=90,refresh=5,revoke=5"

// platforms: the check and refresh sessions of a client are on the web;
// the login operation logs in from Windows, so that it replaces its own
// earlier login, never the session the client checks.
const (
	checkPlatform = authv1.Platform_PLATFORM_WEB
	loginPlatform = authv1.Platform_PLATFORM_WINDOWS
)

// sessiond runs one kind of operation, or a weighted mix, against a
// sessiond cluster.
type sessiond struct {
	p       Params
	kinds   []string
	weights []int
	total   int
	read    *clusterv1.ReadOptions

	setup    *setup
	pool     *pool
	emails   []string
	password string
	clients  []*client
	ids      []string // check-session picks from these
	revoke   []string // revoke and watch end these, in order
	next     atomic.Int64
	watch    *watcher
	// written is the highest log index Prepare's writes returned: before
	// the clock starts every target has applied it, so that a STALE read
	// of a prepared session finds it (read-your-writes).
	written atomic.Uint64
}

// client is one load client's connections and session.
type client struct {
	i        int
	hc       *http.Client
	target   string
	auth     authv1connect.AuthServiceClient
	sess     sessionv1connect.SessionServiceClient
	access   string
	refresh  string
	relogin  bool
	rng      *rand.Rand
	readOpts *clusterv1.ReadOptions
}

// NewScenario returns the named sessiond scenario.
func NewScenario(name string, p Params) (Scenario, error) {
	if !slices.Contains(Scenarios, name) {
		return nil, fmt.Errorf("unknown scenario %q (want one of %s)", name, strings.Join(Scenarios, ", "))
	}
	if err := p.Conn.Validate(); err != nil {
		return nil, err
	}
	if name == "code-flow" || name == "backchannel" {
		o, err := newOIDC(name, p)
		if err != nil {
			return nil, err
		}
		return o, nil
	}
	s := &sessiond{p: p}
	var err error
	if s.read, err = readOptions(p.Consistency); err != nil {
		return nil, err
	}
	if name == "mixed" {
		mix := p.Mix
		if mix == "" {
			mix = DefaultMix
		}
		if s.kinds, s.weights, err = ParseMix(mix); err != nil {
			return nil, err
		}
	} else {
		s.kinds, s.weights = []string{name}, []int{1}
	}
	for _, w := range s.weights {
		s.total += w
	}
	if s.needs("revoke", "watch") && p.Pool <= 0 {
		return nil, errors.New("pool: revoke and watch need a positive number of sessions to prepare")
	}
	return s, nil
}

// readOptions maps a consistency name to the request's read options.
func readOptions(name string) (*clusterv1.ReadOptions, error) {
	c, ok := map[string]clusterv1.ReadConsistency{
		"":             clusterv1.ReadConsistency_READ_CONSISTENCY_DEFAULT,
		"default":      clusterv1.ReadConsistency_READ_CONSISTENCY_DEFAULT,
		"stale":        clusterv1.ReadConsistency_READ_CONSISTENCY_STALE,
		"linearizable": clusterv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE,
	}[name]
	if !ok {
		return nil, fmt.Errorf("consistency: want stale, default or linearizable, got %q", name)
	}
	return &clusterv1.ReadOptions{Consistency: c}, nil
}

// ParseMix parses "kind=weight,..." for the mixed scenario.
func ParseMix(s string) (kinds []string, weights []int, err error) {
	allowed := []string{"login", "refresh", "revoke", "check", "check-session", "healthz"}
	for part := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		w, err := strconv.Atoi(v)
		if !ok || err != nil || w < 0 {
			return nil, nil, fmt.Errorf("mix: %q is not kind=weight with a weight >= 0", part)
		}
		if !slices.Contains(allowed, k) {
			return nil, nil, fmt.Errorf("mix: unknown kind %q (want %s)", k, strings.Join(allowed, ", "))
		}
		if slices.Contains(kinds, k) {
			return nil, nil, fmt.Errorf("mix: %q given twice", k)
		}
		if w > 0 {
			kinds, weights = append(kinds, k), append(weights, w)
		}
	}
	if len(kinds) == 0 {
		return nil, nil, errors.New("mix: no kind with a positive weight")
	}
	return kinds, weights, nil
}

func (s *sessiond) needs(kinds ...string) bool {
	for _, k := range kinds {
		if slices.Contains(s.kinds, k) {
			return true
		}
	}
	return false
}

// Prepare creates users and logs every client in (login, refresh, check),
// prepares the sessions check-session and revoke use, and opens the watch
// stream.
func (s *sessiond) Prepare(ctx context.Context, n int) error {
	var err error
	if s.setup, err = newSetup(s.p.Conn, s.p.Log); err != nil {
		return err
	}
	if s.pool, err = newPool(s.p.Conn, n); err != nil {
		return err
	}
	for i := range n {
		hc, t := s.pool.http(i)
		s.clients = append(s.clients, &client{
			i: i, hc: hc, target: t,
			auth:     authv1connect.NewAuthServiceClient(hc, t, s.pool.anonymous()...),
			sess:     sessionv1connect.NewSessionServiceClient(hc, t, s.pool.service()...),
			rng:      rand.New(rand.NewPCG(uint64(i), 0x5e55)),
			readOpts: s.read,
		})
	}
	if s.needs("login", "refresh", "check") {
		fmt.Fprintf(s.setup.log, "preparing: %d users\n", n)
		if s.emails, s.password, err = s.setup.createUsers(ctx, n); err != nil {
			return fmt.Errorf("create users: %w", err)
		}
	}
	if s.needs("refresh", "check") {
		fmt.Fprintf(s.setup.log, "preparing: %d logins\n", n)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8)
		for _, c := range s.clients {
			g.Go(func() error { return s.login(gctx, c) })
		}
		if err := g.Wait(); err != nil {
			return fmt.Errorf("log clients in: %w", err)
		}
	}
	if s.needs("check-session") {
		s.ids = s.p.Sessions
		s.wrote(s.p.SessionsIndex)
		if len(s.ids) == 0 {
			var idx uint64
			if s.ids, idx, err = s.setup.load(ctx, int64(n), "", "", 4, nil); err != nil {
				return fmt.Errorf("open sessions to check: %w", err)
			}
			s.wrote(idx)
		}
	}
	if s.needs("revoke", "watch") {
		fmt.Fprintf(s.setup.log, "preparing: %d sessions to revoke\n", s.p.Pool)
		var idx uint64
		if s.revoke, idx, err = s.setup.load(ctx, s.p.Pool, "", "", 2*len(s.p.Conn.Targets), nil); err != nil {
			return fmt.Errorf("open sessions to revoke: %w", err)
		}
		s.wrote(idx)
		if s.needs("watch") {
			t := s.p.WatchTarget
			if t == "" {
				t = s.p.Conn.Targets[len(s.p.Conn.Targets)-1]
			}
			if s.watch, err = startWatcher(ctx, s.setup, strings.TrimRight(t, "/"), idx); err != nil {
				return err
			}
		}
	}
	return s.settle(ctx)
}

// wrote records a log index Prepare's writes reached.
func (s *sessiond) wrote(idx uint64) {
	for {
		cur := s.written.Load()
		if idx <= cur || s.written.CompareAndSwap(cur, idx) {
			return
		}
	}
}

// settle waits until every target has applied what Prepare wrote: one
// STALE read with min_index on each.
func (s *sessiond) settle(ctx context.Context) error {
	idx := s.written.Load()
	if idx == 0 {
		return nil
	}
	for k := range s.p.Conn.Targets {
		hc, t := s.setup.pool.http(k)
		cl := sessionv1connect.NewSessionServiceClient(hc, t, s.setup.pool.service()...)
		_, err := cl.CheckSession(ctx, connect.NewRequest(&sessionv1.CheckSessionRequest{SessionId: "bench-settle",
			Read: &clusterv1.ReadOptions{Consistency: clusterv1.ReadConsistency_READ_CONSISTENCY_STALE, MinIndex: idx}}))
		if err != nil {
			return fmt.Errorf("wait until %s applied index %d: %w", t, idx, err)
		}
	}
	return nil
}

// login logs client c in on its target (a new web session of its user).
func (s *sessiond) login(ctx context.Context, c *client) error {
	var resp *connect.Response[authv1.LoginResponse]
	err := retrySetup(ctx, func() (err error) {
		resp, err = c.auth.Login(ctx, connect.NewRequest(&authv1.LoginRequest{
			Email: s.emails[c.i], Password: s.password, Platform: checkPlatform, DeviceId: "bench-" + strconv.Itoa(c.i),
		}))
		return err
	})
	if err != nil {
		return fmt.Errorf("login of client %d through %s: %w", c.i, c.target, err)
	}
	c.access, c.refresh = resp.Msg.GetTokens().GetAccessToken(), resp.Msg.GetTokens().GetRefreshToken()
	c.relogin = false
	s.wrote(resp.Msg.GetTokens().GetIndex())
	return nil
}

// Op returns client i's operation.
func (s *sessiond) Op(i int) Op {
	c := s.clients[i]
	if len(s.kinds) == 1 {
		return s.op(s.kinds[0], c)
	}
	ops := make([]Op, len(s.kinds))
	for k, kind := range s.kinds {
		ops[k] = s.op(kind, c)
	}
	return func(ctx context.Context) (Outcome, error) {
		k := pick(c.rng, s.weights, s.total)
		out, err := ops[k](ctx)
		out.Kind = s.kinds[k]
		return out, err
	}
}

func (s *sessiond) op(kind string, c *client) Op {
	switch kind {
	case "login":
		return func(ctx context.Context) (Outcome, error) {
			_, err := c.auth.Login(ctx, connect.NewRequest(&authv1.LoginRequest{
				Email: s.emails[c.i], Password: s.password, Platform: loginPlatform, DeviceId: "bench-" + strconv.Itoa(c.i),
			}))
			return Outcome{}, err
		}
	case "refresh":
		return func(ctx context.Context) (Outcome, error) { return Outcome{}, s.doRefresh(ctx, c) }
	case "check":
		return func(ctx context.Context) (Outcome, error) {
			resp, err := c.sess.CheckToken(ctx, connect.NewRequest(&sessionv1.CheckTokenRequest{Token: c.access, Read: c.readOpts}))
			if err == nil && !resp.Msg.GetActive() {
				err = Failf("inactive", "CheckToken of a live session's token: %s", resp.Msg.GetReason())
			}
			return Outcome{}, err
		}
	case "check-session":
		return func(ctx context.Context) (Outcome, error) {
			id := s.ids[c.rng.IntN(len(s.ids))]
			resp, err := c.sess.CheckSession(ctx, connect.NewRequest(&sessionv1.CheckSessionRequest{SessionId: id, Read: c.readOpts}))
			if err == nil && !resp.Msg.GetActive() {
				err = Failf("inactive", "CheckSession of a live session: %s", resp.Msg.GetReason())
			}
			return Outcome{}, err
		}
	case "revoke":
		return func(ctx context.Context) (Outcome, error) {
			id, err := s.nextToRevoke()
			if err != nil {
				return Outcome{}, err
			}
			_, err = c.sess.RevokeSession(ctx, connect.NewRequest(&sessionv1.RevokeSessionRequest{SessionId: id}))
			return Outcome{}, err
		}
	case "watch":
		return func(ctx context.Context) (Outcome, error) { return s.doWatch(ctx, c) }
	default: // healthz
		return func(ctx context.Context) (Outcome, error) { return Outcome{}, getOK(ctx, c.hc, c.target+"/healthz") }
	}
}

// nextToRevoke hands out the prepared sessions in turn.
func (s *sessiond) nextToRevoke() (string, error) {
	k := s.next.Add(1) - 1
	if k >= int64(len(s.revoke)) {
		return "", ErrExhausted
	}
	return s.revoke[k], nil
}

// doRefresh rotates client c's refresh token. After a failure that ended
// the chain, the next call logs in again first (not counted).
func (s *sessiond) doRefresh(ctx context.Context, c *client) error {
	if c.relogin {
		if err := s.login(ctx, c); err != nil {
			return err
		}
	}
	resp, err := c.auth.Refresh(ctx, connect.NewRequest(&authv1.RefreshRequest{RefreshToken: c.refresh}))
	if err != nil {
		if connect.CodeOf(err) == connect.CodeUnauthenticated {
			c.relogin = true
		}
		return err
	}
	c.access, c.refresh = resp.Msg.GetTokens().GetAccessToken(), resp.Msg.GetTokens().GetRefreshToken()
	return nil
}

// getOK GETs u and wants 200.
func getOK(ctx context.Context, hc *http.Client, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Failf("http_"+strconv.Itoa(resp.StatusCode), "GET %s: %s", u, resp.Status)
	}
	return nil
}

// Close ends the watch stream and drops idle connections.
func (s *sessiond) Close() error {
	if s.watch != nil {
		s.watch.close()
	}
	if s.pool != nil {
		s.pool.close()
	}
	if s.setup != nil {
		s.setup.pool.close()
	}
	return nil
}
