// Package alerting raises the alerts the operators ask for (a node or a
// region out of contact, no quorum, repeated token errors from one address,
// spikes of sessions ending by expiry or refresh-token reuse, a signing key
// about to run out) once per event for the whole cluster, not once per node.
//
// Dedup has two layers. Cluster-level events (contact, spikes, keys) are
// judged by the Raft leader only, from the leader's own view. Every event,
// whoever observes it, is then claimed through the replicated store
// (authsvc.Service.ClaimAlert, store command ClaimAlert) under an event key
// for a window: the first claim wins and only that node dispatches the
// alert, so a leader change, or two nodes seeing the same address, yields
// one alert. A node that cannot reach a quorum cannot claim; it raises
// KindNoQuorum locally, once per window (each cut-off node says so itself).
// On top, each node's dispatches are rate-limited (MaxPerMinute).
package alerting

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/sessiond/sessiond/authsvc/keys"
	"github.com/sessiond/sessiond/authsvc/notify"
	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/store"
)

// Claimer claims an event key for a window cluster-wide; true means this
// node is the first and should alert. *authsvc.Service implements it.
type Claimer interface {
	ClaimAlert(ctx context.Context, key string, window time.Duration) (bool, error)
}

// Cluster is the view of the cluster the checks need.
type Cluster interface {
	// IsLeader reports whether this node leads.
	IsLeader() bool
	// LeaderID is the leader this node knows of, "" when none.
	LeaderID() string
	// LocalStatus is this node's own view of the members (on the leader:
	// which followers' heartbeats fail, and since when).
	LocalStatus() (*clusterv1.StatusResponse, error)
}

// Keys lists the published signing keys. *authsvc.Service implements it.
type Keys interface {
	PublishedKeys() []keys.KeyInfo
}

// Dispatcher sends an event to the notifiers without blocking.
// *notify.Dispatcher implements it.
type Dispatcher interface {
	Dispatch(ev notify.Event) bool
}

// Config tunes the alerts. Zero fields take the defaults shown.
type Config struct {
	// Node and Region stamp the events.
	Node, Region string
	// Cooldown is the claim window: one alert per event key per Cooldown
	// for the cluster (30m).
	Cooldown time.Duration
	// MaxPerMinute bounds the alerts this node dispatches (20 a minute,
	// bursts of 20); beyond it they are dropped and logged.
	MaxPerMinute int
	// Interval is how often the checks run (5s).
	Interval time.Duration
	// ContactLoss is how long the leader's heartbeats to a node must fail
	// before it is reported unreachable (30s); also how long a node must
	// know no leader before it reports no quorum.
	ContactLoss time.Duration
	// TokenErrors refused tokens from one address within TokenErrorWindow
	// raise KindTokenErrors (20 in 5m). Addresses are tracked in an LRU of
	// TrackedAddresses (4096).
	TokenErrors      int
	TokenErrorWindow time.Duration
	TrackedAddresses int
	// SpikeWindow is the window a spike is measured over (5m): sessions
	// ending by expiry (or by reuse) within it raise a spike alert when
	// they are at least SpikeMin (50; reuse: SpikeMin/10, at least 3) and
	// at least SpikeFactor (3) times the average of the windows of the
	// hour before.
	SpikeWindow time.Duration
	SpikeMin    int
	SpikeFactor float64
	// KeyAhead raises KindSigningKeyExpiring when no published key can
	// sign this far ahead (30m; key rotation publishes the next key an
	// hour before it signs).
	KeyAhead time.Duration
	// Logger receives what the alerter decides (slog.Default()).
	Logger *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Cooldown, 30*time.Minute)
	def(&c.Interval, 5*time.Second)
	def(&c.ContactLoss, 30*time.Second)
	def(&c.TokenErrorWindow, 5*time.Minute)
	def(&c.SpikeWindow, 5*time.Minute)
	def(&c.KeyAhead, 30*time.Minute)
	if c.MaxPerMinute <= 0 {
		c.MaxPerMinute = 20
	}
	if c.TokenErrors <= 0 {
		c.TokenErrors = 20
	}
	if c.TrackedAddresses <= 0 {
		c.TrackedAddresses = 4096
	}
	if c.SpikeMin <= 0 {
		c.SpikeMin = 50
	}
	if c.SpikeFactor <= 0 {
		c.SpikeFactor = 3
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Alerter raises the alerts. Create it with New, feed it with
// ObserveTokenError and ObserveChanges, and run Run.
type Alerter struct {
	cfg     Config
	claim   Claimer
	cluster Cluster
	keys    Keys
	out     Dispatcher
	lim     *rate.Limiter
	queue   chan raise

	mu       sync.Mutex
	addrs    *lru.Cache[string, *addrCount]
	expired  *buckets
	reused   *buckets
	noLeader time.Time // when this node last knew a leader
	local    map[string]time.Time
	// decided remembers, per key, until when a claim this node made (won
	// or lost) holds, so that an event seen on every check does not cost a
	// Raft write each time.
	decided map[string]time.Time
}

type raise struct {
	key string
	ev  notify.Event
}

type addrCount struct {
	start time.Time
	n     int
}

// New returns an alerter; claim and out are required, cluster and keys may
// be nil (their checks are skipped).
func New(cfg Config, claim Claimer, cluster Cluster, k Keys, out Dispatcher) *Alerter {
	cfg.defaults()
	addrs, _ := lru.New[string, *addrCount](cfg.TrackedAddresses)
	return &Alerter{
		cfg: cfg, claim: claim, cluster: cluster, keys: k, out: out,
		lim:      rate.NewLimiter(rate.Limit(float64(cfg.MaxPerMinute)/60), cfg.MaxPerMinute),
		queue:    make(chan raise, 256),
		addrs:    addrs,
		expired:  newBuckets(cfg.SpikeWindow),
		reused:   newBuckets(cfg.SpikeWindow),
		noLeader: cfg.Now(),
		local:    map[string]time.Time{},
		decided:  map[string]time.Time{},
	}
}

// Raise queues ev under key: it is claimed cluster-wide and dispatched if
// this node wins the claim. It never blocks; it reports false when the
// queue is full (the event is dropped and logged).
func (a *Alerter) Raise(key string, ev notify.Event) bool {
	if ev.Node == "" {
		ev.Node, ev.Region = a.cfg.Node, a.cfg.Region
	}
	if ev.At.IsZero() {
		ev.At = a.cfg.Now()
	}
	select {
	case a.queue <- raise{key, ev}:
		return true
	default:
		a.cfg.Logger.Warn("alert dropped: queue full", "kind", ev.Kind, "key", key)
		return false
	}
}

// ObserveTokenError counts a refused token from ip; the TokenErrors-th
// within TokenErrorWindow raises KindTokenErrors. It never blocks.
func (a *Alerter) ObserveTokenError(ip, code string) {
	if ip == "" {
		return
	}
	now := a.cfg.Now()
	a.mu.Lock()
	c, ok := a.addrs.Get(ip)
	if !ok || now.Sub(c.start) > a.cfg.TokenErrorWindow {
		c = &addrCount{start: now}
		a.addrs.Add(ip, c)
	}
	c.n++
	n := c.n
	a.mu.Unlock()
	if n == a.cfg.TokenErrors {
		a.Raise("token_errors:"+ip, notify.Event{Kind: notify.KindTokenErrors, IP: ip, At: now,
			Detail: fmt.Sprintf("%d refused tokens from %s within %s (last: %s)", n, ip, a.cfg.TokenErrorWindow, code)})
	}
}

// ObserveChanges counts the sessions ending by expiry and by refresh-token
// reuse in a batch the store applied (store.Options.OnChanges). Every node
// counts; the leader judges.
func (a *Alerter) ObserveChanges(changes []store.Change) {
	now := a.cfg.Now()
	var exp, reuse int
	for _, c := range changes {
		switch {
		case c.Kind == store.ChangeSessionExpired:
			exp++
		case c.Kind == store.ChangeSessionEnded && c.Reason == "refresh_reuse":
			reuse++
		}
	}
	if exp == 0 && reuse == 0 {
		return
	}
	a.mu.Lock()
	a.expired.add(now, exp)
	a.reused.add(now, reuse)
	a.mu.Unlock()
}

// Run claims and dispatches raised alerts and runs the checks every
// Interval until ctx ends.
func (a *Alerter) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case r := <-a.queue:
				a.send(ctx, r)
			}
		}
	}()
	tick := time.NewTicker(a.cfg.Interval)
	defer func() { tick.Stop(); wg.Wait() }()
	for {
		a.Check()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// send claims r's key and dispatches r's event when this node wins.
func (a *Alerter) send(ctx context.Context, r raise) {
	now := a.cfg.Now()
	a.mu.Lock()
	until, known := a.decided[r.key]
	if !known || !now.Before(until) {
		for k, u := range a.decided {
			if !now.Before(u) {
				delete(a.decided, k)
			}
		}
	}
	a.mu.Unlock()
	if known && now.Before(until) {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	won, err := a.claim.ClaimAlert(cctx, r.key, a.cfg.Cooldown)
	cancel()
	if err != nil {
		a.cfg.Logger.Warn("alert not sent: the claim was not replicated", "kind", r.ev.Kind, "key", r.key, "err", err)
		return
	}
	a.mu.Lock()
	a.decided[r.key] = now.Add(a.cfg.Cooldown)
	a.mu.Unlock()
	if !won {
		a.cfg.Logger.Info("alert already sent by another node of the cluster", "kind", r.ev.Kind, "key", r.key)
		return
	}
	a.dispatch(r)
}

func (a *Alerter) dispatch(r raise) {
	if !a.lim.Allow() {
		a.cfg.Logger.Warn("alert dropped: rate limit", "kind", r.ev.Kind, "key", r.key)
		return
	}
	a.cfg.Logger.Info("alert", "kind", r.ev.Kind, "key", r.key, "detail", r.ev.Detail)
	a.out.Dispatch(r.ev)
}

// Check runs the periodic checks once: no leader (every node), and on
// the leader the members' contact, the spikes and the signing keys.
func (a *Alerter) Check() {
	now := a.cfg.Now()
	if a.cluster == nil {
		return
	}
	if a.cluster.LeaderID() != "" {
		a.mu.Lock()
		a.noLeader = now
		a.mu.Unlock()
	} else {
		a.mu.Lock()
		since := a.noLeader
		a.mu.Unlock()
		if now.Sub(since) >= a.cfg.ContactLoss {
			a.raiseLocal("no_quorum", notify.Event{Kind: notify.KindNoQuorum, Node: a.cfg.Node, Region: a.cfg.Region, At: now,
				Detail: fmt.Sprintf("node %s has known no leader since %s: it is cut off or the cluster lost its quorum; writes fail on it",
					a.cfg.Node, since.UTC().Format(time.RFC3339))})
		}
		return
	}
	if !a.cluster.IsLeader() {
		return
	}
	a.checkContact(now)
	a.checkSpikes(now)
	a.checkKeys(now)
}

// raiseLocal dispatches ev at most once per Cooldown from this node,
// without a claim (for when no claim can be replicated).
func (a *Alerter) raiseLocal(key string, ev notify.Event) {
	a.mu.Lock()
	last, ok := a.local[key]
	if ok && ev.At.Sub(last) < a.cfg.Cooldown {
		a.mu.Unlock()
		return
	}
	a.local[key] = ev.At
	a.mu.Unlock()
	a.dispatch(raise{key, ev})
}

// checkContact reports the members whose heartbeats have failed for
// ContactLoss, and the regions none of whose members the leader reaches.
func (a *Alerter) checkContact(now time.Time) {
	st, err := a.cluster.LocalStatus()
	if err != nil {
		return
	}
	type region struct{ total, down int }
	regions := map[string]*region{}
	var downIDs []string
	for _, m := range st.GetMembers() {
		if m.GetSuffrage() == clusterv1.Suffrage_SUFFRAGE_UNSPECIFIED || m.GetLeader() {
			if m.GetLeader() && m.GetRegion() != "" {
				r := regions[m.GetRegion()]
				if r == nil {
					r = &region{}
					regions[m.GetRegion()] = r
				}
				r.total++
			}
			continue
		}
		r := regions[m.GetRegion()]
		if r == nil {
			r = &region{}
			regions[m.GetRegion()] = r
		}
		r.total++
		lc := m.GetLastContact()
		if lc == nil || lc.AsDuration() < a.cfg.ContactLoss {
			continue
		}
		r.down++
		downIDs = append(downIDs, m.GetNodeId())
		a.Raise("node_unreachable:"+m.GetNodeId(), notify.Event{Kind: notify.KindNodeUnreachable, Node: m.GetNodeId(), Region: m.GetRegion(), At: now,
			Detail: fmt.Sprintf("leader %s has not reached %s (%s, %s) for %s: it is out of the quorum",
				a.cfg.Node, m.GetNodeId(), strings.ToLower(strings.TrimPrefix(m.GetSuffrage().String(), "SUFFRAGE_")), regionName(m.GetRegion()), lc.AsDuration().Round(time.Second))})
	}
	names := make([]string, 0, len(regions))
	for name := range regions {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		r := regions[name]
		if name == "" || r.total == 0 || r.down < r.total {
			continue
		}
		a.Raise("region_unreachable:"+name, notify.Event{Kind: notify.KindRegionUnreachable, Region: name, Node: a.cfg.Node, At: now,
			Detail: fmt.Sprintf("leader %s (%s) reaches none of the %d nodes of region %s (%s)", a.cfg.Node, a.cfg.Region, r.total, name, strings.Join(downIDs, ", "))})
	}
}

func regionName(r string) string {
	if r == "" {
		return "region unknown"
	}
	return "region " + r
}

// checkSpikes compares the sessions ended by expiry and by reuse in the
// last SpikeWindow with the hour before.
func (a *Alerter) checkSpikes(now time.Time) {
	a.mu.Lock()
	expNow, expBase := a.expired.last(now)
	reuseNow, reuseBase := a.reused.last(now)
	a.mu.Unlock()
	win := now.Truncate(a.cfg.SpikeWindow).UTC().Format(time.RFC3339)
	if spike(expNow, expBase, a.cfg.SpikeMin, a.cfg.SpikeFactor) {
		a.Raise("session_expiry_spike:"+win, notify.Event{Kind: notify.KindSessionExpirySpike, At: now,
			Detail: fmt.Sprintf("%d sessions ended by expiry in the last %s (usual: %.1f per %s)", expNow, a.cfg.SpikeWindow, expBase, a.cfg.SpikeWindow)})
	}
	if spike(reuseNow, reuseBase, max(a.cfg.SpikeMin/10, 3), a.cfg.SpikeFactor) {
		a.Raise("refresh_reuse_spike:"+win, notify.Event{Kind: notify.KindRefreshReuseSpike, At: now,
			Detail: fmt.Sprintf("%d sessions ended by refresh-token reuse (stolen tokens) in the last %s (usual: %.1f per %s)", reuseNow, a.cfg.SpikeWindow, reuseBase, a.cfg.SpikeWindow)})
	}
}

func spike(n int, base float64, minN int, factor float64) bool {
	return n >= minN && float64(n) >= factor*base
}

// checkKeys raises KindSigningKeyExpiring when no published key signs
// KeyAhead from now.
func (a *Alerter) checkKeys(now time.Time) {
	if a.keys == nil {
		return
	}
	ks := a.keys.PublishedKeys()
	if len(ks) == 0 {
		return // before the first key: rotation creates it
	}
	at := now.Add(a.cfg.KeyAhead)
	var last keys.KeyInfo
	for _, k := range ks {
		if !k.ActivatesAt.After(at) && k.RetiresAt.After(at) {
			return
		}
		if k.RetiresAt.After(last.RetiresAt) {
			last = k
		}
	}
	a.Raise("signing_key_expiring:"+last.Kid, notify.Event{Kind: notify.KindSigningKeyExpiring, At: now,
		Detail: fmt.Sprintf("no signing key can sign at %s: the last one (%s) stops at %s; key rotation is not keeping up (is the leader able to write?)",
			at.UTC().Format(time.RFC3339), last.Kid, last.RetiresAt.UTC().Format(time.RFC3339))})
}

// buckets counts events per minute for the last hour and a window.
type buckets struct {
	window time.Duration
	counts map[int64]int // minute (unix) -> count
}

func newBuckets(window time.Duration) *buckets {
	return &buckets{window: window, counts: map[int64]int{}}
}

func (b *buckets) add(now time.Time, n int) {
	if n == 0 {
		return
	}
	m := now.Unix() / 60
	b.counts[m] += n
	for k := range b.counts {
		if k < m-int64((time.Hour+b.window)/time.Minute) {
			delete(b.counts, k)
		}
	}
}

// last returns the count of the last window and the average count per
// window over the hour before it.
func (b *buckets) last(now time.Time) (int, float64) {
	m := now.Unix() / 60
	w := max(int64(b.window/time.Minute), 1)
	var cur, before int
	for k, n := range b.counts {
		switch {
		case k > m-w && k <= m:
			cur += n
		case k > m-w-60 && k <= m-w:
			before += n
		}
	}
	return cur, float64(before) * float64(w) / 60
}
