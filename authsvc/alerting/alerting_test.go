package alerting

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/authsvctest"
	"github.com/sessiond/sessiond/authsvc/keys"
	"github.com/sessiond/sessiond/authsvc/notify"
	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/store"
)

// cluster is one replicated state (authsvctest: a real store, no Raft)
// and the auth services of several nodes over it, each claiming through
// authsvc.Service.ClaimAlert as the nodes of a cluster do through Raft
// (TestBotE2E in cmd/sessiond runs that for real).
type cluster struct {
	t   *testing.T
	env *authsvctest.Env
	now func() time.Time
}

func newSharedState(t *testing.T, now func() time.Time) *cluster {
	env := authsvctest.New(t, authsvctest.Options{Deps: func(d *authsvc.Deps) { d.Now = now }})
	return &cluster{t: t, env: env, now: now}
}

// node returns the auth service of node id.
func (c *cluster) node(id string) *authsvc.Service {
	cfg := c.env.Config
	cfg.NodeID = id
	svc, err := authsvc.New(cfg, authsvc.Deps{Cluster: c.env.Cluster, State: c.env.Store, Directory: c.env.Dir,
		Hasher: authsvctest.FastHasher(c.t), KEK: c.env.KEK, Now: c.now})
	if err != nil {
		c.t.Fatal(err)
	}
	return svc
}

// outbox collects dispatched events.
type outbox struct {
	mu  sync.Mutex
	evs []notify.Event
}

func (o *outbox) Dispatch(ev notify.Event) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.evs = append(o.evs, ev)
	return true
}

func (o *outbox) kinds() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, e := range o.evs {
		out = append(out, e.Kind)
	}
	return out
}

// view is a cluster view set by the test.
type view struct {
	mu     sync.Mutex
	leader string
	self   string
	st     *clusterv1.StatusResponse
}

func (v *view) IsLeader() bool { v.mu.Lock(); defer v.mu.Unlock(); return v.leader == v.self }
func (v *view) LeaderID() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.leader
}
func (v *view) LocalStatus() (*clusterv1.StatusResponse, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.st, nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// drain claims and dispatches what was raised, as Run does.
func drain(a *Alerter) {
	for {
		select {
		case r := <-a.queue:
			a.send(context.Background(), r)
		default:
			return
		}
	}
}

func newAlerter(clk *clock, s *cluster, id string, v *view, k Keys, out *outbox) *Alerter {
	var c Cluster
	if v != nil {
		c = v
	}
	return New(Config{Node: id, Region: "r-" + id, Now: clk.now, TokenErrors: 5, ContactLoss: 10 * time.Second}, s.node(id), c, k, out)
}

// Two nodes see the same address fail tokens: one alert for the cluster;
// another address gets its own; after the cooldown it may alert again.
func TestTokenErrorsOneAlertForTheCluster(t *testing.T) {
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := newSharedState(t, clk.now)
	out := &outbox{}
	a1, a2 := newAlerter(clk, s, "n1", nil, nil, out), newAlerter(clk, s, "n2", nil, nil, out)
	for range 4 {
		a1.ObserveTokenError("203.0.113.7", "invalid_refresh_token")
		a2.ObserveTokenError("203.0.113.7", "invalid_refresh_token")
	}
	drain(a1)
	drain(a2)
	if got := out.kinds(); len(got) != 0 {
		t.Fatalf("after 4 errors per node: %v, want no alert below the threshold of 5", got)
	}
	for range 3 {
		a1.ObserveTokenError("203.0.113.7", "invalid_refresh_token")
		a2.ObserveTokenError("203.0.113.7", "refresh_token_reused")
	}
	a2.ObserveTokenError("198.51.100.1", "x")
	drain(a1)
	drain(a2)
	if got := out.kinds(); len(got) != 1 || got[0] != notify.KindTokenErrors {
		t.Fatalf("alerts: %v, want one token_errors for the cluster", got)
	}
	if ev := out.evs[0]; ev.IP != "203.0.113.7" || !strings.Contains(ev.Detail, "5 refused tokens") {
		t.Errorf("event %+v: want the address and the count", ev)
	}
	clk.add(31 * time.Minute)
	for range 5 {
		a2.ObserveTokenError("203.0.113.7", "invalid_refresh_token")
	}
	drain(a2)
	if got := out.kinds(); len(got) != 2 {
		t.Errorf("after the cooldown: %v, want a second alert", got)
	}
}

func member(id, region string, down time.Duration) *clusterv1.Member {
	m := &clusterv1.Member{NodeId: id, Region: region, Suffrage: clusterv1.Suffrage_SUFFRAGE_VOTER}
	if down > 0 {
		m.LastContact = durationpb.New(down)
	}
	return m
}

// The leader reports a voter out of contact and a region none of whose
// nodes it reaches, once even when the next leader sees the same; a
// follower reports nothing; a node without a leader reports no quorum,
// once per cooldown, without a claim.
func TestContactAlerts(t *testing.T) {
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := newSharedState(t, clk.now)
	out := &outbox{}
	st := &clusterv1.StatusResponse{Members: []*clusterv1.Member{
		{NodeId: "hk-1", Region: "hk", Leader: true, Suffrage: clusterv1.Suffrage_SUFFRAGE_VOTER},
		member("seoul-1", "seoul", 12*time.Second),
		member("tokyo-1", "tokyo", 12*time.Second),
		member("tokyo-2", "tokyo", 0),
		member("osaka-1", "osaka", 4*time.Second), // not long enough
	}}
	v1 := &view{leader: "hk-1", self: "hk-1", st: st}
	v2 := &view{leader: "hk-1", self: "tokyo-2", st: st}
	a1, a2 := newAlerter(clk, s, "hk-1", v1, nil, out), newAlerter(clk, s, "tokyo-2", v2, nil, out)
	for range 3 {
		a1.Check()
		a2.Check()
		drain(a1)
		drain(a2)
	}
	got := fmt.Sprint(out.kinds())
	if got != "[node_unreachable node_unreachable region_unreachable]" {
		t.Fatalf("alerts: %s, want seoul-1 and tokyo-1 unreachable and region seoul (tokyo-2 answers), once each", got)
	}
	if ev := out.evs[2]; ev.Region != "seoul" {
		t.Errorf("region alert %+v: want region seoul", ev)
	}
	// Leadership moves to tokyo-2, which sees the same: nothing new.
	v1.mu.Lock()
	v1.leader = "tokyo-2"
	v1.mu.Unlock()
	v2.mu.Lock()
	v2.leader = "tokyo-2"
	v2.mu.Unlock()
	a2.Check()
	drain(a2)
	if n := len(out.kinds()); n != 3 {
		t.Errorf("after the leader change: %v, want no new alert", out.kinds())
	}
	// No leader for longer than ContactLoss: each such node says so once.
	v2.mu.Lock()
	v2.leader = ""
	v2.mu.Unlock()
	a2.Check()
	clk.add(11 * time.Second)
	a2.Check()
	a2.Check()
	if k := out.kinds(); len(k) != 4 || k[3] != notify.KindNoQuorum {
		t.Errorf("without a leader: %v, want one no_quorum", k)
	}
}

// Sessions ending by expiry: a spike over the hour's average alerts once.
func TestExpirySpike(t *testing.T) {
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := newSharedState(t, clk.now)
	out := &outbox{}
	v := &view{leader: "hk-1", self: "hk-1", st: &clusterv1.StatusResponse{}}
	a := newAlerter(clk, s, "hk-1", v, nil, out)
	expired := func(n int) []store.Change {
		var ch []store.Change
		for range n {
			ch = append(ch, store.Change{Kind: store.ChangeSessionExpired})
		}
		return ch
	}
	// An hour of 20 a minute (100 per 5m window): usual.
	for range 60 {
		a.ObserveChanges(expired(20))
		clk.add(time.Minute)
	}
	a.Check()
	drain(a)
	if k := out.kinds(); len(k) != 0 {
		t.Fatalf("steady expiry: %v, want no alert", k)
	}
	// 5 minutes of 100 a minute: 500 against 100 usual.
	for range 5 {
		a.ObserveChanges(expired(100))
		clk.add(time.Minute)
	}
	a.ObserveChanges(expired(100))
	a.Check()
	a.Check()
	drain(a)
	if k := out.kinds(); len(k) != 1 || k[0] != notify.KindSessionExpirySpike {
		t.Errorf("spike: %v, want one session_expiry_spike", k)
	}
}

type keyList []keys.KeyInfo

func (k keyList) PublishedKeys() []keys.KeyInfo { return k }

// No key able to sign KeyAhead from now: an alert; a next key published
// in time: none.
func TestSigningKeyExpiring(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := &clock{t: now}
	s := newSharedState(t, clk.now)
	v := &view{leader: "hk-1", self: "hk-1", st: &clusterv1.StatusResponse{}}
	out := &outbox{}
	active := keys.KeyInfo{Kid: "k1", ActivatesAt: now.Add(-23 * time.Hour), RetiresAt: now.Add(20 * time.Minute)}
	a := newAlerter(clk, s, "hk-1", v, keyList{active, {Kid: "k2", ActivatesAt: now.Add(20 * time.Minute), RetiresAt: now.Add(24 * time.Hour)}}, out)
	a.Check()
	drain(a)
	if k := out.kinds(); len(k) != 0 {
		t.Fatalf("with the next key published: %v, want no alert", k)
	}
	a = newAlerter(clk, s, "hk-1", v, keyList{active}, out)
	a.Check()
	drain(a)
	if k := out.kinds(); len(k) != 1 || k[0] != notify.KindSigningKeyExpiring || !strings.Contains(out.evs[0].Detail, "k1") {
		t.Errorf("rotation stuck: %v, want one signing_key_expiring naming k1", out.evs)
	}
}

// A burst of distinct events is cut at MaxPerMinute per node; the rest are
// dropped (logged), never queued without bound.
func TestRateLimit(t *testing.T) {
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := newSharedState(t, clk.now)
	out := &outbox{}
	a := New(Config{Node: "n1", Now: clk.now, TokenErrors: 1, MaxPerMinute: 2}, s.node("n1"), nil, nil, out)
	for i := range 5 {
		a.ObserveTokenError(fmt.Sprintf("198.51.100.%d", i), "invalid_refresh_token")
	}
	drain(a)
	if n := len(out.kinds()); n != 2 {
		t.Errorf("alerts from a burst of 5: %d, want MaxPerMinute 2", n)
	}
	for i := range 300 {
		a.Raise(fmt.Sprintf("k%d", i), notify.Event{Kind: "x"})
	}
	if n := len(a.queue); n != cap(a.queue) {
		t.Errorf("queue: %d, want it full at %d and the rest dropped", n, cap(a.queue))
	}
}
