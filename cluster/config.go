package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// Timeouts are Raft's timing knobs. HashiCorp's and etcd's guidance: the
// election (and heartbeat) timeout should be at least 10x the worst
// round-trip time between voters, and the leader lease must not exceed the
// heartbeat timeout (raft.ValidateConfig enforces the latter).
type Timeouts struct {
	// HeartbeatTimeout is how long a follower goes without contact from the
	// leader before it starts an election. The leader sends heartbeats every
	// HeartbeatTimeout/10.
	HeartbeatTimeout time.Duration
	// ElectionTimeout is how long a candidate waits for votes before it starts
	// a new election. Must be >= HeartbeatTimeout.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout is how long a leader stays leader without hearing
	// from a quorum before it steps down. Must be <= HeartbeatTimeout.
	LeaderLeaseTimeout time.Duration
	// CommitTimeout is how long the leader waits without new entries before
	// it sends an AppendEntries to advance followers' commit index (Raft may
	// stagger it up to 2x).
	CommitTimeout time.Duration
}

// LANTimeouts is the profile for voters within one data centre or region
// (round trips of well under 10 ms). These are HashiCorp Raft's defaults
// (Consul's raft_multiplier = 1, its recommended production setting):
// heartbeat and election 1 s (>= 100x a 10 ms RTT, so a few lost packets or a
// GC pause do not trigger elections), leader lease 500 ms (half the heartbeat:
// a partitioned leader steps down before a new leader can be elected). The
// commit timeout is 10 ms rather than Raft's 50 ms: it bounds how long a
// follower waits, when no other entry follows, to learn that an entry
// committed, and so how soon a logout is visible on every node (revocation
// latency); the price is at most 100 small AppendEntries per second per
// follower while idle. A leader failure is detected in 1-2 s.
func LANTimeouts() Timeouts {
	return Timeouts{
		HeartbeatTimeout:   1000 * time.Millisecond,
		ElectionTimeout:    1000 * time.Millisecond,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      10 * time.Millisecond,
	}
}

// WANTimeouts is the profile for voters spread across regions with 100-300 ms
// round trips. Election and heartbeat are 3 s (>= 10x a 300 ms RTT; the
// leader then sends heartbeats every 300 ms, about one RTT), the leader lease
// is 1.5 s (<= heartbeat, and still 5 worst-case round trips for the leader
// to hear from a quorum), and the commit timeout is 25 ms: it only bounds
// how long a follower waits to learn of a commit when nothing else follows,
// so it adds directly to how soon a revocation is visible in other regions
// (one-way latency + up to 2x the commit timeout); the cost is a few small
// messages per second while idle.
// A leader failure is detected in 3-6 s.
func WANTimeouts() Timeouts {
	return Timeouts{
		HeartbeatTimeout:   3000 * time.Millisecond,
		ElectionTimeout:    3000 * time.Millisecond,
		LeaderLeaseTimeout: 1500 * time.Millisecond,
		CommitTimeout:      25 * time.Millisecond,
	}
}

// Scale returns t with every timeout multiplied by f (for example 0.25 to
// speed up tests on loopback, or 2 for a slow network).
func (t Timeouts) Scale(f float64) Timeouts {
	s := func(d time.Duration) time.Duration { return time.Duration(float64(d) * f) }
	return Timeouts{
		HeartbeatTimeout:   s(t.HeartbeatTimeout),
		ElectionTimeout:    s(t.ElectionTimeout),
		LeaderLeaseTimeout: s(t.LeaderLeaseTimeout),
		CommitTimeout:      s(t.CommitTimeout),
	}
}

// Defaults used by Open for zero Config fields.
const (
	// DefaultSnapshotInterval is used when Config.SnapshotInterval is zero.
	DefaultSnapshotInterval = 120 * time.Second
	// DefaultSnapshotThreshold is used when Config.SnapshotThreshold is zero.
	DefaultSnapshotThreshold = 8192
	// DefaultTrailingLogs is used when Config.TrailingLogs is zero.
	DefaultTrailingLogs = 10240
	// DefaultFollowerMaxLag is used when Config.FollowerMaxLag is zero.
	DefaultFollowerMaxLag = 100 * time.Millisecond
	// DefaultRequestTimeout is used when Config.RequestTimeout is zero.
	DefaultRequestTimeout = 5 * time.Second
	// DefaultHandshakeTimeout is used when Config.HandshakeTimeout is zero.
	DefaultHandshakeTimeout = 10 * time.Second
)

// Config configures a Node. Zero fields documented as defaulted take their
// default in Open (and in Validate, which checks the defaulted config).
type Config struct {
	// NodeID is this node's unique, permanent Raft server id (letters, digits,
	// '-', '_', '.', at most 64 bytes). May be empty when DataDir already holds
	// node.json from an earlier run; if both are set they must agree.
	NodeID string
	// Region is the region this node runs in (same character set as NodeID).
	// May be empty when DataDir/node.json provides it; if both are set they
	// must agree.
	Region string
	// DataDir holds node.json and raft/ (the log in raft/wal, and snapshots). Required.
	DataDir string
	// RaftBind is the host:port of the node's peer address: the one listener
	// that carries Raft and node-to-node RPC (forwarded writes and reads,
	// joins). Port 0 picks a free port (then RaftAdvertise must be empty: the
	// bound address is advertised). Required.
	RaftBind string
	// RaftAdvertise is the peer address other nodes use to reach this node.
	// Defaults to the bound address. Its host is an IP address that is not
	// unspecified (0.0.0.0 or ::) or a DNS name, which other nodes resolve
	// each time they dial it (so it may move, and name resolution must work
	// from every node). Peers are verified by the node identity in their
	// certificates, not by host name, so the peer certificate needs no DNS
	// name; a client API reached by name needs one (api_tls).
	RaftAdvertise string
	// TLS secures the peer address with mutual TLS. Required unless
	// InsecurePlaintext.
	TLS *PeerTLS
	// InsecurePlaintext runs the peer address without TLS: anyone who can
	// reach it can take part in Raft as any node. Only for tests on loopback
	// and networks nothing else can reach. Exclusive with TLS.
	InsecurePlaintext bool
	// HandshakeTimeout bounds setting up one inbound peer connection (TLS
	// handshake, cluster-id preamble). Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// DialPeer, if set, opens the TCP connections this node makes to other
	// nodes' peer addresses (TLS runs on top of them); nil means a
	// net.Dialer. For tests that inject network faults.
	DialPeer func(ctx context.Context, addr string) (net.Conn, error)
	// Timeouts are Raft's timing knobs; the zero value means LANTimeouts().
	Timeouts Timeouts
	// SnapshotInterval is how often Raft checks whether to snapshot (staggered
	// up to 2x). Zero means DefaultSnapshotInterval.
	SnapshotInterval time.Duration
	// SnapshotThreshold is how many log entries at least must accumulate
	// since the last snapshot before Raft takes a new one. Zero means
	// DefaultSnapshotThreshold. A node whose snapshots are large waits
	// longer: until the log since its newest snapshot holds a quarter of
	// that snapshot's bytes (Node.SnapshotThreshold, snapshotpolicy.go).
	SnapshotThreshold uint64
	// TrailingLogs is how many log entries are kept after a snapshot, so that
	// slightly lagging followers catch up from the log instead of a snapshot.
	// Zero means DefaultTrailingLogs.
	TrailingLogs uint64
	// FollowerMaxLag bounds how stale a DEFAULT-consistency read may be: a
	// node serves it locally only once it has applied the index of a
	// read-index round (its round trip to the leader, or on the leader its
	// check that it still leads) that started at most FollowerMaxLag ago;
	// otherwise it runs a new round first. Zero means
	// DefaultFollowerMaxLag.
	FollowerMaxLag time.Duration
	// RequestTimeout bounds every write (Propose) and every DEFAULT or
	// LINEARIZABLE read (ReadBarrier) on this node, besides the caller's own
	// deadline: within it they wait for a leader; past it they fail with an
	// *UnavailableError saying why. Zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Logger receives the node's and Raft's logs (Raft's hclog output is
	// adapted to slog). Nil means slog.Default().
	Logger *slog.Logger
	// Autopilot configures the leader's promotion of staged non-voters.
	Autopilot Autopilot
	// NonVoter says this node is meant to stay a non-voter (a read
	// replica): it tells the leader so when asked (PeerService.Info), and
	// autopilot never promotes it on its own account.
	NonVoter bool
	// BootstrapExpect is the number of voters this node expects to form a
	// new cluster with (see BootstrapExpect); 0 when not used. Peers
	// discovering each other compare it.
	BootstrapExpect int
	// OnRemoved, if set, is called once (in its own goroutine) when the
	// node learns it was removed from the cluster (see Node.Removed).
	OnRemoved func()

	// clusterID is the cluster id stored in DataDir (set by Open).
	clusterID string
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.RaftAdvertise == "" {
		c.RaftAdvertise = c.RaftBind
	}
	if c.Timeouts == (Timeouts{}) {
		c.Timeouts = LANTimeouts()
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = DefaultTrailingLogs
	}
	if c.FollowerMaxLag == 0 {
		c.FollowerMaxLag = DefaultFollowerMaxLag
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	c.Autopilot = c.Autopilot.withDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("cluster: invalid config")

// Validate reports the first problem with c after zero fields take their
// defaults: a missing or malformed field, or a relation Raft requires
// (ElectionTimeout >= HeartbeatTimeout, LeaderLeaseTimeout <=
// HeartbeatTimeout, minimum timeouts as in raft.ValidateConfig). NodeID and
// Region may be empty here; Open fills them from DataDir/node.json and fails
// if they are still empty. The error wraps ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if c.NodeID != "" {
		if err := validateName(c.NodeID); err != nil {
			return bad("NodeID %q: %v", c.NodeID, err)
		}
	}
	if c.Region != "" {
		if err := ValidateRegion(c.Region); err != nil {
			return bad("Region %q: %v", c.Region, err)
		}
	}
	if c.DataDir == "" {
		return bad("DataDir is required")
	}
	if c.RaftBind == "" {
		return bad("RaftBind is required")
	}
	if _, _, err := splitHostPort(c.RaftBind, true); err != nil {
		return bad("RaftBind %q: %v", c.RaftBind, err)
	}
	if c.RaftAdvertise != c.RaftBind {
		if err := ValidateAddr(c.RaftAdvertise); err != nil {
			return bad("RaftAdvertise %q: %v", c.RaftAdvertise, err)
		}
		host, _, _ := net.SplitHostPort(c.RaftAdvertise)
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			return bad("RaftAdvertise %q: host must be a specific IP address or a DNS name, not a wildcard", c.RaftAdvertise)
		}
	}
	switch {
	case c.TLS == nil && !c.InsecurePlaintext:
		return bad("TLS is required (or InsecurePlaintext, for tests on loopback only)")
	case c.TLS != nil && c.InsecurePlaintext:
		return bad("TLS and InsecurePlaintext together")
	case c.TLS != nil && c.TLS.Store == nil:
		return bad("TLS.Store is required")
	case c.HandshakeTimeout < 0:
		return bad("HandshakeTimeout %s is negative", c.HandshakeTimeout)
	}
	t := c.Timeouts
	switch {
	case t.HeartbeatTimeout < 5*time.Millisecond:
		return bad("HeartbeatTimeout %s is below 5ms", t.HeartbeatTimeout)
	case t.ElectionTimeout < 5*time.Millisecond:
		return bad("ElectionTimeout %s is below 5ms", t.ElectionTimeout)
	case t.LeaderLeaseTimeout < 5*time.Millisecond:
		return bad("LeaderLeaseTimeout %s is below 5ms", t.LeaderLeaseTimeout)
	case t.CommitTimeout < time.Millisecond:
		return bad("CommitTimeout %s is below 1ms", t.CommitTimeout)
	case t.ElectionTimeout < t.HeartbeatTimeout:
		return bad("ElectionTimeout (%s) must be >= HeartbeatTimeout (%s)", t.ElectionTimeout, t.HeartbeatTimeout)
	case t.LeaderLeaseTimeout > t.HeartbeatTimeout:
		return bad("LeaderLeaseTimeout (%s) must be <= HeartbeatTimeout (%s)", t.LeaderLeaseTimeout, t.HeartbeatTimeout)
	case t.CommitTimeout >= t.HeartbeatTimeout:
		return bad("CommitTimeout (%s) must be < HeartbeatTimeout (%s)", t.CommitTimeout, t.HeartbeatTimeout)
	}
	if c.SnapshotInterval < 5*time.Millisecond {
		return bad("SnapshotInterval %s is below 5ms", c.SnapshotInterval)
	}
	if c.FollowerMaxLag < 0 {
		return bad("FollowerMaxLag %s is negative", c.FollowerMaxLag)
	}
	if c.RequestTimeout < 10*time.Millisecond {
		return bad("RequestTimeout %s is below 10ms", c.RequestTimeout)
	}
	if a := c.Autopilot; a.Stabilization < 0 || a.Interval < 0 {
		return bad("Autopilot stabilization %s and interval %s must not be negative", a.Stabilization, a.Interval)
	}
	if c.BootstrapExpect < 0 {
		return bad("BootstrapExpect %d is negative", c.BootstrapExpect)
	}
	return nil
}

// ValidateRegion reports whether r is a well-formed region name: 1-32
// lower-case letters, digits and '-', starting with a letter (hk, seoul,
// ap-northeast-2).
func ValidateRegion(r string) error {
	if r == "" {
		return errors.New("empty")
	}
	if len(r) > 32 {
		return fmt.Errorf("longer than 32 bytes (%d)", len(r))
	}
	for i, c := range r {
		ok := c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '-')
		if !ok {
			return fmt.Errorf("character %q not allowed: use lower-case letters, digits and '-', starting with a letter (hk, seoul, ap-northeast-2)", c)
		}
	}
	return nil
}

// validateName checks a node id or region: 1-64 bytes of [A-Za-z0-9._-].
func validateName(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > 64 {
		return fmt.Errorf("longer than 64 bytes (%d)", len(s))
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return fmt.Errorf("character %q not allowed (use letters, digits, '-', '_', '.')", r)
		}
	}
	return nil
}

// ValidateNodeID reports whether id is a well-formed node id: 1-64 bytes of
// letters, digits, '-', '_' and '.'.
func ValidateNodeID(id string) error { return validateName(id) }

// ValidateAddr reports whether addr is a dialable host:port: a non-empty host
// without spaces or a scheme and a port in 1-65535.
func ValidateAddr(addr string) error {
	_, _, err := splitHostPort(addr, false)
	return err
}

func splitHostPort(addr string, allowZeroPort bool) (string, int, error) {
	if strings.Contains(addr, "://") {
		return "", 0, errors.New("want host:port, not a URL")
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("want host:port: %w", err)
	}
	if host == "" && !allowZeroPort {
		return "", 0, errors.New("host is empty")
	}
	if strings.ContainsAny(host, " \t/") {
		return "", 0, fmt.Errorf("host %q is malformed", host)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 || (port == 0 && !allowZeroPort) {
		return "", 0, fmt.Errorf("port %q is not in 1-65535", portStr)
	}
	return host, port, nil
}
