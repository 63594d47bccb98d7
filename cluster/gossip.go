package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Health is a member's gossip health as seen by the local node.
type Health int

const (
	// HealthAlive: the member answers probes.
	HealthAlive Health = iota
	// HealthSuspect: probes failed recently; the member is being checked and
	// becomes dead unless it refutes the suspicion.
	HealthSuspect
	// HealthDead: the member failed probes and was declared dead.
	HealthDead
	// HealthLeft: the member left gracefully (Gossip.Leave).
	HealthLeft
)

// String returns "alive", "suspect", "dead" or "left".
func (h Health) String() string {
	switch h {
	case HealthAlive:
		return "alive"
	case HealthSuspect:
		return "suspect"
	case HealthDead:
		return "dead"
	case HealthLeft:
		return "left"
	}
	return "Health(" + strconv.Itoa(int(h)) + ")"
}

// Member is a node as published through gossip.
type Member struct {
	// ID is the node id (the memberlist node name).
	ID string
	// Region is the node's region.
	Region string
	// APIAddr is the host:port of the node's Connect API (forwarding target).
	APIAddr string
	// RaftAddr is the host:port of the node's Raft transport.
	RaftAddr string
	// Voter is what the node last published about its suffrage.
	Voter bool
	// Version is the node's software version.
	Version string
	// AppliedIndex is the node's applied index as of its last metadata
	// refresh (see GossipConfig.MetaRefreshInterval); 0 if not published.
	AppliedIndex uint64
	// GossipAddr is the host:port of the node's gossip endpoint.
	GossipAddr string
	// ClusterID is the cluster id the node published ("" if it has none
	// yet).
	ClusterID string
	// Health is the node's gossip health as seen locally.
	Health Health
}

// GossipConfig configures a Gossip member.
type GossipConfig struct {
	// NodeID is the local node id (must equal the Raft node id). Required.
	NodeID string
	// Region is the local node's region, published in metadata.
	Region string
	// APIAddr is the local node's Connect API host:port, published so that
	// followers can forward to this node. Required.
	APIAddr string
	// RaftAddr is the local node's Raft host:port, published in metadata.
	RaftAddr string
	// Voter is the local node's suffrage to publish initially (see SetVoter).
	Voter bool
	// Version is the software version to publish.
	Version string
	// Bind is the host:port gossip listens on (TCP and UDP). Port 0 picks a
	// free port. Required.
	Bind string
	// Advertise is the host:port other members use to reach this member;
	// empty means derived from Bind by memberlist. A DNS name is resolved
	// once, when the member starts (memberlist publishes an IP).
	Advertise string
	// SecretKey encrypts and authenticates gossip (AES-GCM); it must be 16,
	// 24 or 32 bytes and identical on every member. Required unless
	// InsecurePlaintext.
	SecretKey []byte
	// InsecurePlaintext allows gossip without SecretKey: anyone who can
	// reach the gossip port can read member metadata and inject members.
	// Only for tests on loopback.
	InsecurePlaintext bool
	// ClusterID, when set, returns the local node's cluster id (it may
	// change once, from "" when a new node joins). It is published in
	// metadata, and a member publishing another id is ignored: never
	// listed, never merged.
	ClusterID func() string
	// WAN selects memberlist.DefaultWANConfig (slower probes and suspicion,
	// tolerant of 100-300 ms round trips) instead of DefaultLANConfig.
	WAN bool
	// AppliedIndex, when set, is published in metadata; it is re-read every
	// MetaRefreshInterval and the metadata rebroadcast when it changed.
	AppliedIndex func() uint64
	// MetaRefreshInterval is how often metadata is refreshed when
	// AppliedIndex is set; zero means 2 s.
	MetaRefreshInterval time.Duration
	// Logger receives memberlist's logs; nil means slog.Default().
	Logger *slog.Logger
	// Configure, if set, may tune the memberlist configuration (probe
	// intervals, suspicion multipliers...) after this package filled it in
	// and before memberlist starts. Mainly for tests.
	Configure func(*memberlist.Config)
}

// Gossip is the local memberlist member. Its methods are safe for
// concurrent use.
type Gossip struct {
	cfg GossipConfig
	ml  *memberlist.Memberlist

	mu      sync.Mutex
	voter   bool
	applied uint64
	leaving bool
	members map[string]Member // by id, maintained from memberlist events
	refused map[string]bool   // members of other clusters already logged

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// NewGossip starts a memberlist member for the local node (it knows only
// itself until Join).
func NewGossip(cfg GossipConfig) (*Gossip, error) {
	if err := validateName(cfg.NodeID); err != nil {
		return nil, fmt.Errorf("%w: gossip NodeID %q: %v", ErrInvalidConfig, cfg.NodeID, err)
	}
	if err := ValidateAddr(cfg.APIAddr); err != nil {
		return nil, fmt.Errorf("%w: gossip APIAddr %q: %v", ErrInvalidConfig, cfg.APIAddr, err)
	}
	host, port, err := splitHostPort(cfg.Bind, true)
	if err != nil {
		return nil, fmt.Errorf("%w: gossip Bind %q: %v", ErrInvalidConfig, cfg.Bind, err)
	}
	switch len(cfg.SecretKey) {
	case 0:
		if !cfg.InsecurePlaintext {
			return nil, fmt.Errorf("%w: gossip SecretKey is required (or InsecurePlaintext, for tests on loopback only)", ErrInvalidConfig)
		}
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("%w: gossip SecretKey is %d bytes, want 16, 24 or 32", ErrInvalidConfig, len(cfg.SecretKey))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MetaRefreshInterval <= 0 {
		cfg.MetaRefreshInterval = 2 * time.Second
	}
	g := &Gossip{cfg: cfg, voter: cfg.Voter, members: map[string]Member{}, stop: make(chan struct{})}
	if cfg.AppliedIndex != nil {
		g.applied = cfg.AppliedIndex()
	}
	if meta := g.encodeLocalMeta(); len(meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: gossip metadata is %d bytes, limit %d (shorten addresses/version)", ErrInvalidConfig, len(meta), memberlist.MetaMaxSize)
	}

	var mc *memberlist.Config
	if cfg.WAN {
		mc = memberlist.DefaultWANConfig()
	} else {
		mc = memberlist.DefaultLANConfig()
	}
	mc.Name = cfg.NodeID
	if host == "" {
		host = "0.0.0.0"
	}
	mc.BindAddr = host
	mc.BindPort = port
	mc.AdvertisePort = port
	if cfg.Advertise != "" {
		ah, ap, err := splitHostPort(cfg.Advertise, false)
		if err != nil {
			return nil, fmt.Errorf("%w: gossip Advertise %q: %v", ErrInvalidConfig, cfg.Advertise, err)
		}
		if net.ParseIP(ah) == nil {
			// memberlist needs an IP: a DNS name is resolved once, at start.
			ips, err := net.LookupIP(ah)
			if err != nil || len(ips) == 0 {
				return nil, fmt.Errorf("%w: gossip Advertise %q: cannot resolve %s: %v", ErrInvalidConfig, cfg.Advertise, ah, err)
			}
			ah = ips[0].String()
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ah, ap
	}
	if len(cfg.SecretKey) > 0 {
		mc.SecretKey = append([]byte(nil), cfg.SecretKey...)
	}
	hl := newHCLogger(cfg.Logger, "gossip").(*slogAdapter)
	mc.Logger = log.New(adapterWriter{hl}, "", 0)
	mc.LogOutput = nil
	mc.Delegate = gossipDelegate{g}
	mc.Events = gossipEvents{g}
	mc.Alive = gossipFilter{g}
	mc.Merge = gossipFilter{g}
	if cfg.Configure != nil {
		cfg.Configure(mc)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster: start gossip on %s: %w", cfg.Bind, err)
	}
	g.ml = ml
	if cfg.AppliedIndex != nil {
		g.wg.Add(1)
		go g.refreshLoop()
	}
	return g, nil
}

// Addr returns the host:port other members use to join this one.
func (g *Gossip) Addr() string {
	n := g.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Join contacts the given gossip addresses (host:port) and merges their
// view of the cluster. It returns how many were reached; the error is nil
// if at least one was.
func (g *Gossip) Join(addrs []string) (int, error) {
	n, err := g.ml.Join(addrs)
	if err != nil {
		return n, fmt.Errorf("cluster: gossip join %v: %w", addrs, err)
	}
	return n, nil
}

// Members returns every member seen since this member started, sorted by
// id: alive ones and those declared dead or that left. (memberlist's
// suspect state is not observable race-free through its API, so a suspect
// member shows as alive until it is declared dead.)
func (g *Gossip) Members() []Member {
	g.mu.Lock()
	out := make([]Member, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, m)
	}
	g.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Member returns the member with the given id.
func (g *Gossip) Member(id string) (Member, bool) {
	for _, m := range g.Members() {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// APIAddr returns the Connect API address a live (alive or suspect) member
// published.
func (g *Gossip) APIAddr(nodeID string) (string, bool) {
	m, ok := g.Member(nodeID)
	if !ok || m.Health == HealthDead || m.Health == HealthLeft || m.APIAddr == "" {
		return "", false
	}
	return m.APIAddr, true
}

// Health returns the gossip health of a member; false if it was never seen.
func (g *Gossip) Health(nodeID string) (Health, bool) {
	m, ok := g.Member(nodeID)
	return m.Health, ok
}

// SetVoter publishes a new suffrage for the local node, waiting up to
// timeout for the update to be broadcast.
func (g *Gossip) SetVoter(voter bool, timeout time.Duration) error {
	g.mu.Lock()
	changed := g.voter != voter
	g.voter = voter
	g.mu.Unlock()
	if !changed {
		return nil
	}
	return g.ml.UpdateNode(timeout)
}

// refreshMeta rebroadcasts the local metadata (after the cluster id
// changed).
func (g *Gossip) refreshMeta() {
	go func() { _ = g.ml.UpdateNode(g.cfg.MetaRefreshInterval) }()
}

// clusterID returns the local cluster id ("" if unknown).
func (g *Gossip) clusterID() string {
	if g.cfg.ClusterID == nil {
		return ""
	}
	return g.cfg.ClusterID()
}

func (g *Gossip) refreshLoop() {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.MetaRefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
			idx := g.cfg.AppliedIndex()
			g.mu.Lock()
			changed := idx != g.applied
			g.applied = idx
			g.mu.Unlock()
			if changed {
				_ = g.ml.UpdateNode(g.cfg.MetaRefreshInterval)
			}
		}
	}
}

// Leave broadcasts that this member is leaving and waits up to timeout for
// the broadcast; others then see it as HealthLeft. Call Shutdown afterwards.
func (g *Gossip) Leave(timeout time.Duration) error {
	g.stopRefresh()
	// Publish a "leaving" flag first: memberlist's leave notification does
	// not tell a graceful leave from a death.
	g.mu.Lock()
	g.leaving = true
	g.mu.Unlock()
	_ = g.ml.UpdateNode(timeout / 2)
	if err := g.ml.Leave(timeout); err != nil {
		return fmt.Errorf("cluster: gossip leave: %w", err)
	}
	return nil
}

// Shutdown stops gossiping without telling others (they will see this
// member turn suspect, then dead). Safe to call more than once.
func (g *Gossip) Shutdown() error {
	g.stopRefresh()
	if err := g.ml.Shutdown(); err != nil {
		return fmt.Errorf("cluster: gossip shutdown: %w", err)
	}
	return nil
}

func (g *Gossip) stopRefresh() {
	g.stopOnce.Do(func() { close(g.stop) })
	g.wg.Wait()
}

// Metadata encoding (at most memberlist.MetaMaxSize bytes):
//
//	byte    format version (1)
//	byte    flags (bit 0: voter, bit 1: leaving)
//	uvarint applied index
//	4x (uvarint length, bytes): region, API addr, Raft addr, version
//	optionally (uvarint length, bytes): cluster id
//
// A decoder ignores what follows the fields it knows, so the cluster id was
// added without a new format version.
const metaFormat = 1

func (g *Gossip) encodeLocalMeta() []byte {
	g.mu.Lock()
	voter, applied, leaving := g.voter, g.applied, g.leaving
	g.mu.Unlock()
	return encodeMeta(Member{Region: g.cfg.Region, APIAddr: g.cfg.APIAddr, RaftAddr: g.cfg.RaftAddr, Version: g.cfg.Version, Voter: voter, AppliedIndex: applied, ClusterID: g.clusterID()}, leaving)
}

func encodeMeta(m Member, leaving bool) []byte {
	b := make([]byte, 0, 64)
	b = append(b, metaFormat)
	var flags byte
	if m.Voter {
		flags |= 1
	}
	if leaving {
		flags |= 2
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, m.AppliedIndex)
	for _, s := range []string{m.Region, m.APIAddr, m.RaftAddr, m.Version, m.ClusterID} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

var errBadMeta = errors.New("cluster: malformed gossip metadata")

// decodeMeta parses metadata into m's published fields and reports the
// leaving flag; it never panics.
func decodeMeta(b []byte, m *Member) (leaving bool, err error) {
	if len(b) < 2 || b[0] != metaFormat {
		return false, errBadMeta
	}
	m.Voter = b[1]&1 != 0
	leaving = b[1]&2 != 0
	b = b[2:]
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return false, errBadMeta
	}
	m.AppliedIndex = v
	b = b[n:]
	fields := []*string{&m.Region, &m.APIAddr, &m.RaftAddr, &m.Version}
	for _, f := range fields {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return false, errBadMeta
		}
		*f = string(b[n : n+int(l)])
		b = b[n+int(l):]
	}
	if len(b) > 0 {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return false, errBadMeta
		}
		m.ClusterID = string(b[n : n+int(l)])
	}
	return leaving, nil
}

// memberFromNode converts a node passed to an event callback (where reading
// it is safe) into a Member, reporting the leaving flag of its metadata.
func memberFromNode(n *memberlist.Node) (Member, bool) {
	m := Member{ID: n.Name, Health: HealthAlive, GossipAddr: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))}
	leaving, _ := decodeMeta(n.Meta, &m) // a member with bad metadata is listed without it
	return m, leaving
}

// gossipDelegate supplies the local metadata; no user messages are used.
type gossipDelegate struct{ g *Gossip }

func (d gossipDelegate) NodeMeta(limit int) []byte {
	b := d.g.encodeLocalMeta()
	if len(b) > limit {
		return nil
	}
	return b
}
func (gossipDelegate) NotifyMsg([]byte)                           {}
func (gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (gossipDelegate) LocalState(join bool) []byte                { return nil }
func (gossipDelegate) MergeRemoteState(buf []byte, join bool)     {}

// gossipEvents maintains Gossip.members. memberlist calls these with its
// node lock held, the only time reading the *Node is race-free.
type gossipEvents struct{ g *Gossip }

func (e gossipEvents) NotifyJoin(n *memberlist.Node) { e.put(n, false) }

func (e gossipEvents) NotifyUpdate(n *memberlist.Node) { e.put(n, false) }

// NotifyLeave: memberlist does not set Node.State here, so a graceful leave
// is recognised by the leaving flag the member published just before.
func (e gossipEvents) NotifyLeave(n *memberlist.Node) { e.put(n, true) }

func (e gossipEvents) put(n *memberlist.Node, gone bool) {
	m, leaving := memberFromNode(n)
	e.g.mu.Lock()
	defer e.g.mu.Unlock()
	if gone {
		m.Health = HealthDead
		if leaving || e.g.members[m.ID].Health == HealthLeft {
			m.Health = HealthLeft
		}
	}
	e.g.members[m.ID] = m
}

// gossipFilter keeps members of other clusters out: memberlist asks it
// before it adds or updates a member (alive messages) and before it merges
// another member's view (joins, push-pull). A member with no cluster id (a
// new node) is let in: it adopts the cluster's when it joins.
type gossipFilter struct{ g *Gossip }

func (f gossipFilter) check(n *memberlist.Node) error {
	if n.Name == f.g.cfg.NodeID {
		return nil
	}
	var m Member
	if _, err := decodeMeta(n.Meta, &m); err != nil {
		return nil // listed without metadata, as before
	}
	mine := f.g.clusterID()
	if m.ClusterID == "" || mine == "" || m.ClusterID == mine {
		return nil
	}
	err := fmt.Errorf("%w: gossip member %s (%s) is in cluster %s, this node %s is in cluster %s",
		ErrClusterMismatch, n.Name, n.Address(), m.ClusterID, f.g.cfg.NodeID, mine)
	f.g.warnOnce(n.Name, err)
	return err
}

// NotifyAlive implements memberlist.AliveDelegate.
func (f gossipFilter) NotifyAlive(n *memberlist.Node) error { return f.check(n) }

// NotifyMerge implements memberlist.MergeDelegate.
func (f gossipFilter) NotifyMerge(peers []*memberlist.Node) error {
	for _, n := range peers {
		if err := f.check(n); err != nil {
			return err
		}
	}
	return nil
}

// warnOnce logs a refused member once per member name (at most 1024).
func (g *Gossip) warnOnce(name string, err error) {
	g.mu.Lock()
	if g.refused == nil {
		g.refused = map[string]bool{}
	}
	first := !g.refused[name] && len(g.refused) < 1024
	if first {
		g.refused[name] = true
	}
	g.mu.Unlock()
	if first {
		g.cfg.Logger.Warn("gossip member ignored", "member", name, "err", err)
	}
}
