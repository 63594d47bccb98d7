package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/hashicorp/raft"
)

// NeverContacted is what Node.LastContact returns for a follower that has
// never heard from a leader since it started.
const NeverContacted = time.Duration(math.MaxInt64)

// Applied is the outcome of a successfully applied command.
type Applied struct {
	// Index is the Raft log index of the command.
	Index uint64
	// Response is the FSM's encoded result (may be nil).
	Response []byte
}

// Node is one Raft member replicating opaque commands into an FSM. All
// methods are safe for concurrent use.
type Node struct {
	cfg    Config
	logger *slog.Logger

	raft  *raft.Raft
	trans *raft.NetworkTransport
	store *logStore
	logs  *raft.LogCache
	snaps *raft.FileSnapshotStore
	fsm   *trackedFSM
	// emptyAtOpen: the data dir held neither Raft state nor a cluster id
	// when the node opened it (before any peer could reach it).
	emptyAtOpen bool

	barrierTerm atomic.Uint64
	// leaders follows the known leader; leaderRounds and followerRounds
	// share read-index rounds (see readRounds); caughtUp is set once the
	// node has applied a read index learned after it started.
	leaders        leaderWatch
	leaderRounds   readRounds
	followerRounds readRounds
	caughtUp       atomic.Bool

	peers   *peerListener
	rpcSrv  *http.Server
	clients peerClients
	gossip  atomic.Pointer[Gossip]

	idMu      sync.Mutex // serialises cluster-id changes
	clusterID atomic.Pointer[string]

	health    followerHealth
	autopilot autopilot
	removed   atomic.Bool
	removedC  chan struct{}
	inbound   inboundRaft
	reporter  atomic.Pointer[Reporter]
	// fwd batches the writes this node forwards to the leader.
	fwd forwarder
	// refuseApplyBatch makes PeerService.ApplyBatch answer Unimplemented,
	// as a node that predates it (set by tests only).
	refuseApplyBatch atomic.Bool

	shutdownOnce sync.Once
	shutdownErr  error
	closed       chan struct{}
}

// Open starts a Raft node on cfg (after Validate) replicating into fsm.
// It creates DataDir/raft/wal/ (the Raft log and stable store, a
// hashicorp/raft-wal write-ahead log: one fsync per append, cheap
// truncation; behind a 512-entry log cache) and a file snapshot store under DataDir/raft/ keeping
// 2 snapshots, listens on cfg.RaftBind (the peer address: Raft and
// PeerService, over mutual TLS unless InsecurePlaintext), and persists the
// identity to DataDir/node.json (or reads NodeID/Region and the cluster id
// from it when cfg leaves them empty). With TLS, the certificate must name
// this node. Raft runs with NoSnapshotRestoreOnStart: the FSM must be
// persistent and skip entries it already applied. A fresh node has no
// configuration; call Bootstrap on exactly one node of a new cluster, or have
// the leader add it (AddVoter/AddNonvoter).
func Open(cfg Config, fsm raft.FSM) (*Node, error) {
	if fsm == nil {
		return nil, fmt.Errorf("%w: fsm is nil", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "raft"), 0o700); err != nil {
		return nil, fmt.Errorf("cluster: create data dir: %w", err)
	}
	if err := resolveIdentity(&cfg); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, logger: cfg.Logger, closed: make(chan struct{}), removedC: make(chan struct{})}
	n.leaders.init(time.Now())
	n.leaderRounds = readRounds{do: n.ReadIndex, timeout: cfg.RequestTimeout, closed: n.closed}
	n.followerRounds = readRounds{do: n.forwardReadIndex, timeout: cfg.RequestTimeout, closed: n.closed}
	hlog := newHCLogger(n.logger, "raft")

	var cleanup []func()
	fail := func(err error) (*Node, error) {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
		return nil, err
	}

	if cfg.clusterID != "" {
		id := cfg.clusterID
		n.clusterID.Store(&id)
	}
	if cfg.TLS != nil {
		if err := NodeCertCheck(cfg.TLS.TrustDomain, cfg.NodeID)(cfg.TLS.Store.Current()); err != nil {
			return nil, fmt.Errorf("%w: peer TLS certificate %s: %v", ErrInvalidConfig, cfg.TLS.Store.Files().CertFile, err)
		}
	}
	ln, err := net.Listen("tcp", cfg.RaftBind)
	if err != nil {
		return nil, fmt.Errorf("cluster: peer listener on %s: %w", cfg.RaftBind, err)
	}
	var advertise net.Addr = ln.Addr()
	if cfg.RaftAdvertise != cfg.RaftBind {
		// A DNS name stays a name: it is resolved each time a peer dials it.
		advertise = namedAddr(cfg.RaftAdvertise)
		if a, err := net.ResolveTCPAddr("tcp", cfg.RaftAdvertise); err == nil && a.String() == cfg.RaftAdvertise {
			advertise = a
		}
	}
	if ta, ok := advertise.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		_ = ln.Close()
		return nil, fmt.Errorf("%w: peer address %s is not advertisable: set RaftAdvertise", ErrInvalidConfig, advertise)
	}
	n.peers = newPeerListener(ln, cfg.TLS, cfg.HandshakeTimeout, n.logger.With("component", "peer"))
	n.peers.raftConn = n.acceptRaft
	n.peers.clusterID = n.ClusterID
	cleanup = append(cleanup, func() { _ = n.peers.Close() })
	// MaxRPCsInFlight 1 turns hashicorp/raft's pipelined replication off.
	// With it on (the default, 2, unbuffered channels), a follower's
	// rejected append ends the pipeline's decoder while the sender may
	// already block handing over one more request: replication to that
	// follower stops for good (heartbeats go on, so no election heals it)
	// and Raft's Shutdown never returns. Seen here as a test's cleanup
	// hanging after a leader removal; grafana/pyroscope#5518 describes the
	// same deadlock and turns pipelining off too. Batching already keeps
	// replication fast (raft#541: pipelining hurts commit latency under load).
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: &streamLayer{n: n, pl: n.peers, adv: advertise}, MaxPool: 3, Timeout: 10 * time.Second,
		MaxRPCsInFlight: 1, Logger: hlog.Named("transport"),
	})
	n.trans = trans
	n.cfg.RaftAdvertise = string(trans.LocalAddr())
	cleanup = append(cleanup, func() { _ = trans.Close() })
	n.rpcSrv = n.newPeerServer()
	cleanup = append(cleanup, func() { _ = n.rpcSrv.Close() })

	if _, err := os.Stat(filepath.Join(cfg.DataDir, "raft", "raft.db")); err == nil {
		return fail(fmt.Errorf("%w: %s holds a Raft log in the old raft.db format; this version keeps it in raft/wal: remove the node from the cluster, empty its data dir and join it again", ErrInvalidConfig, cfg.DataDir))
	}
	walDir := filepath.Join(cfg.DataDir, "raft", "wal")
	if err := os.MkdirAll(walDir, 0o700); err != nil {
		return fail(fmt.Errorf("cluster: create %s: %w", walDir, err))
	}
	store, err := openLogStore(walDir, hlog.Named("wal"))
	if err != nil {
		return fail(err)
	}
	n.store = store
	cleanup = append(cleanup, func() { _ = store.Close() })
	logs, err := raft.NewLogCache(512, store)
	if err != nil {
		return fail(fmt.Errorf("cluster: log cache: %w", err))
	}
	n.logs = logs
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(cfg.DataDir, "raft"), 2, hlog.Named("snapshot"))
	if err != nil {
		return fail(fmt.Errorf("cluster: snapshot store: %w", err))
	}
	n.snaps = snaps

	n.fsm = newTrackedFSM(fsm)
	n.fsm.snaps = snaps

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.Timeouts.HeartbeatTimeout
	rc.ElectionTimeout = cfg.Timeouts.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.Timeouts.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.Timeouts.CommitTimeout
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	// A persistent FSM holds at least the newest snapshot's state, and Raft
	// applies the log after it. One that is behind the snapshot (its file
	// was rebuilt after the machine stopped with unsynced commits, see
	// store.Options.DeferSync) gets the snapshot restored first.
	rc.NoSnapshotRestoreOnStart = true
	if ai, ok := fsm.(interface{ AppliedIndex() uint64 }); ok {
		list, err := snaps.List()
		if err != nil {
			return fail(fmt.Errorf("cluster: list snapshots: %w", err))
		}
		if len(list) > 0 && ai.AppliedIndex() < list[0].Index {
			n.logger.Warn("the state machine is behind the newest snapshot: restoring it", "applied", ai.AppliedIndex(), "snapshot", list[0].Index)
			rc.NoSnapshotRestoreOnStart = false
		}
	}
	// Group concurrent writes: up to 512 entries share one log write and
	// fsync on the leader, one AppendEntries to each follower, and one FSM
	// transaction (BatchingFSM) everywhere.
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 512
	rc.Logger = hlog
	if err := raft.ValidateConfig(rc); err != nil {
		return fail(fmt.Errorf("%w: %v", ErrInvalidConfig, err))
	}
	// Raft writes nothing before NewRaft, so this is the disk as found.
	had, err := raft.HasExistingState(logs, store, snaps)
	if err != nil {
		return fail(fmt.Errorf("cluster: read raft state: %w", err))
	}
	n.emptyAtOpen = !had && cfg.clusterID == ""
	r, err := raft.NewRaft(rc, n.fsm.wrap(), logs, store, snaps, trans)
	if err != nil {
		if n.fsm.pipe != nil {
			n.fsm.pipe.stop()
		}
		return fail(fmt.Errorf("cluster: start raft: %w", err))
	}
	n.raft = r
	// PeerService serves once Raft exists (its calls use it); connections
	// set up before wait for it.
	rpcLn := chanListener{ch: n.peers.rpc, closed: n.peers.closed, addr: advertise}
	go func() { _ = n.rpcSrv.Serve(rpcLn) }()
	// With NoSnapshotRestoreOnStart the persistent FSM already holds at least
	// the newest snapshot's state; Raft starts applying after it. An FSM
	// that records the index it applied (as the store does, in the same
	// transaction as the entries) says how far it really is, so reads after
	// a restart report the index of the state they serve.
	n.fsm.advance(r.AppliedIndex())
	if ai, ok := fsm.(interface{ AppliedIndex() uint64 }); ok {
		n.fsm.advance(ai.AppliedIndex())
	}
	n.health.observe(r, n.closed)
	n.leaders.observe(r, n.closed)
	go n.catchUp()
	go n.tuneSnapshots()
	go n.runAutopilot()
	go n.watchRemoval(max(cfg.Timeouts.HeartbeatTimeout, 500*time.Millisecond))
	return n, nil
}

// namedAddr is an advertised peer address whose host is a DNS name.
type namedAddr string

func (a namedAddr) Network() string { return "tcp" }
func (a namedAddr) String() string  { return string(a) }

// AttachGossip gives the node its gossip member: Join and Remove then tell
// live nodes from stale entries by gossip health, Join adds newcomers to
// gossip, Status lists gossip members, and the node republishes its
// metadata when it learns its cluster id.
func (n *Node) AttachGossip(g *Gossip) { n.gossip.Store(g) }

// ID returns this node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// Region returns this node's region.
func (n *Node) Region() string { return n.cfg.Region }

// RaftAddr returns the node's peer address as other nodes reach it (the
// advertised, bound address): Raft and PeerService.
func (n *Node) RaftAddr() string { return n.cfg.RaftAdvertise }

// Config returns the node's effective configuration (defaults applied,
// identity resolved, RaftAdvertise set to the bound address).
func (n *Node) Config() Config { return n.cfg }

// Raft returns the underlying *raft.Raft for diagnostics. Do not Apply or
// change membership through it: use the Node's methods.
func (n *Node) Raft() *raft.Raft { return n.raft }

// Bootstrap makes this node a one-voter cluster of itself. When the node
// already has Raft state (a restart, or it was already bootstrapped or
// joined) it does nothing and returns nil, so it is safe on every start.
// A new cluster gets a new cluster id, stored in the data dir.
func (n *Node) Bootstrap() error {
	has, err := n.hasState()
	if err != nil {
		return fmt.Errorf("cluster: bootstrap: %w", err)
	}
	if has {
		return nil
	}
	return n.bootstrapWith([]raft.Server{{
		Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.NodeID), Address: raft.ServerAddress(n.cfg.RaftAdvertise),
	}})
}

// notLeader returns a *NotLeaderError naming the currently known leader.
func (n *Node) notLeader() error {
	id, addr := n.Leader()
	return &NotLeaderError{LeaderID: id, LeaderAddr: addr}
}

// timeoutFrom returns the time left before ctx's deadline (0 = none, which
// Raft treats as "no timeout").
func timeoutFrom(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		left := time.Until(d)
		if left <= 0 {
			return time.Nanosecond
		}
		return left
	}
	return 0
}

// awaitFuture waits for f or ctx, whichever comes first.
func awaitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// mapRaftErr turns Raft's errors into this package's: raft.ErrNotLeader and
// raft.ErrLeadershipTransferInProgress into *NotLeaderError (nothing was
// applied); raft.ErrLeadershipLost into ErrOutcomeUnknown; shutdown into
// ErrShutdown.
func (n *Node) mapRaftErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return n.notLeader()
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("cluster: %s: %w: %w", op, ErrOutcomeUnknown, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("cluster: %s: %w", op, ErrShutdown)
	default:
		return fmt.Errorf("cluster: %s: %w", op, err)
	}
}

// Apply replicates cmd through Raft and applies it to the FSM. It only works
// on the leader: elsewhere it returns a *NotLeaderError (errors.Is
// ErrNotLeader) without applying anything; use Propose to forward. On success
// Applied holds the log index and the FSM's []byte response. When the FSM
// answers with an error value, Apply returns Applied (with the index) and
// a *FSMError wrapping it (errors.Is/As reach the FSM's error). If ctx ends first the error wraps
// both ErrOutcomeUnknown and ctx.Err(): the command may still be applied.
func (n *Node) Apply(ctx context.Context, cmd []byte) (Applied, error) {
	if err := ctx.Err(); err != nil {
		return Applied{}, err
	}
	if n.raft.State() != raft.Leader {
		return Applied{}, n.notLeader()
	}
	return n.awaitApply(ctx, n.raft.Apply(cmd, timeoutFrom(ctx)))
}

// awaitApply waits for f, a command given to Raft on this node, and returns
// its outcome as Apply does.
func (n *Node) awaitApply(ctx context.Context, f raft.ApplyFuture) (Applied, error) {
	if err := awaitFuture(ctx, f); err != nil {
		if errors.Is(err, raft.ErrEnqueueTimeout) {
			return Applied{}, fmt.Errorf("cluster: apply: %w", context.DeadlineExceeded)
		}
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return Applied{}, fmt.Errorf("cluster: apply: %w: %w", ErrOutcomeUnknown, err)
		}
		return Applied{}, n.mapRaftErr("apply", err)
	}
	out := Applied{Index: f.Index()}
	resp := f.Response()
	if p, ok := resp.(*pendingResponse); ok {
		// Committed and handed to the FSM's pipeline: wait for the
		// transaction that applies it.
		var err error
		if resp, err = p.wait(ctx); err != nil {
			return Applied{}, fmt.Errorf("cluster: apply: %w: %w", ErrOutcomeUnknown, err)
		}
	}
	switch resp := resp.(type) {
	case nil:
	case []byte:
		out.Response = resp
	case error:
		return out, &FSMError{Index: out.Index, Err: resp}
	default:
		return out, fmt.Errorf("cluster: fsm returned unsupported response type %T (want []byte or error)", resp)
	}
	return out, nil
}

// maxApplyBatch bounds the commands of one applyBatch (PeerService.ApplyBatch).
const maxApplyBatch = 1024

// applyBatch applies cmds on the leader as Apply applies one: it gives
// them all to Raft before waiting for any (so Raft appends them together)
// and returns each one's outcome in order (an FSM error as that
// command's *FSMError). Any other failure is returned for the whole
// batch: a *NotLeaderError when no command was applied, else the first
// failure (or ErrOutcomeUnknown when the rest were refused as leadership
// was lost), the others' outcome unknown.
func (n *Node) applyBatch(ctx context.Context, cmds [][]byte) ([]Applied, []error, error) {
	if len(cmds) == 0 || len(cmds) > maxApplyBatch {
		return nil, nil, fmt.Errorf("cluster: apply batch: %w: %d commands, want 1 to %d", ErrInvalidArgument, len(cmds), maxApplyBatch)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if n.raft.State() != raft.Leader {
		return nil, nil, n.notLeader()
	}
	timeout := timeoutFrom(ctx)
	fs := make([]raft.ApplyFuture, len(cmds))
	for i, cmd := range cmds {
		fs[i] = n.raft.Apply(cmd, timeout)
	}
	out := make([]Applied, len(cmds))
	errs := make([]error, len(cmds))
	refused := 0
	var failed error
	for i, f := range fs {
		out[i], errs[i] = n.awaitApply(ctx, f)
		var fe *FSMError
		switch err := errs[i]; {
		case err == nil, errors.As(err, &fe):
		case errors.Is(err, ErrNotLeader):
			refused++
		case failed == nil:
			failed = err
		}
	}
	switch {
	case failed != nil:
		return nil, nil, failed
	case refused == len(cmds):
		return nil, nil, n.notLeader()
	case refused > 0:
		return nil, nil, fmt.Errorf("cluster: apply batch: %w: %d of %d commands refused: %w", ErrOutcomeUnknown, refused, len(cmds), raft.ErrLeadershipLost)
	}
	return out, errs, nil
}

// Leader returns the id and Raft address of the leader this node knows of,
// or empty strings when there is none.
func (n *Node) Leader() (id, raftAddr string) {
	addr, sid := n.raft.LeaderWithID()
	return string(sid), string(addr)
}

// IsLeader reports whether this node currently believes it is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// State returns the node's Raft state (Follower, Candidate, Leader, Shutdown).
func (n *Node) State() raft.RaftState { return n.raft.State() }

// CommitIndex returns the highest log index this node knows to be committed.
func (n *Node) CommitIndex() uint64 { return n.raft.CommitIndex() }

// LastIndex returns the index of the last entry in this node's log.
func (n *Node) LastIndex() uint64 { return n.raft.LastIndex() }

// Term returns this node's current Raft term.
func (n *Node) Term() uint64 { return n.raft.CurrentTerm() }

// LastContact returns the time since this node last heard from a leader: 0 on
// the leader, NeverContacted if it never has.
func (n *Node) LastContact() time.Duration { return n.lastContact(time.Now()) }

func (n *Node) lastContact(now time.Time) time.Duration {
	if n.raft.State() == raft.Leader {
		return 0
	}
	t := n.raft.LastContact()
	if t.IsZero() {
		return NeverContacted
	}
	if d := now.Sub(t); d > 0 {
		return d
	}
	return 0
}

// AppliedIndex returns the highest log index whose effects the FSM reflects:
// every command at or below it has been applied by the FSM. Raft's own
// AppliedIndex may run ahead of the FSM (entries handed over, not yet
// applied) and, for a moment, behind it (Raft records it after handing a
// batch over, and the FSM may finish that batch first): the answer is the
// FSM's own index, or Raft's when only non-command entries lie between.
func (n *Node) AppliedIndex() uint64 {
	fa := n.fsm.applied.Load()
	if ra := n.raft.AppliedIndex(); ra > fa && n.fsmCaughtUp(ra) {
		return ra
	}
	return fa
}

// fsmCaughtUp reports whether the FSM reflects every command with index <=
// idx. Raft hands only command entries to the FSM (no-op, barrier and
// configuration entries never reach it), so once Raft has dispatched up to
// idx the FSM is caught up when no command lies between the FSM's applied
// index and idx.
func (n *Node) fsmCaughtUp(idx uint64) bool {
	fa := n.fsm.applied.Load()
	if fa >= idx {
		return true
	}
	if n.raft.AppliedIndex() < idx {
		return false
	}
	var l raft.Log
	for j := idx; j > fa; j-- {
		if err := n.logs.GetLog(j, &l); err != nil {
			// Compacted away: it was covered by a snapshot the FSM holds.
			return true
		}
		if l.Type == raft.LogCommand {
			return false
		}
	}
	return true
}

// WaitApplied blocks until the FSM reflects every command up to index, ctx
// ends (returns ctx.Err()) or the node shuts down (ErrShutdown). It wakes on
// each FSM apply and otherwise polls with a backoff of 1-20 ms.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	bo := &backoff.ExponentialBackOff{InitialInterval: time.Millisecond, Multiplier: 2, MaxInterval: 20 * time.Millisecond}
	bo.Reset()
	timer := time.NewTimer(bo.NextBackOff())
	defer timer.Stop()
	for {
		ch := n.fsm.changed()
		if n.fsmCaughtUp(index) {
			return nil
		}
		select {
		case <-ch:
		case <-timer.C:
			timer.Reset(bo.NextBackOff())
		case <-ctx.Done():
			return fmt.Errorf("cluster: wait for index %d (applied %d): %w", index, n.AppliedIndex(), ctx.Err())
		case <-n.closed:
			return ErrShutdown
		}
	}
}

// Shutdown stops Raft and closes the transport and the stores. The FSM is
// not closed (it belongs to the caller). Calling it again returns the first
// call's result.
func (n *Node) Shutdown() error {
	n.shutdownOnce.Do(func() {
		close(n.closed)
		var errs []error
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("raft: %w", err))
		}
		if n.fsm.pipe != nil {
			n.fsm.pipe.stop() // applies what Raft handed over
		}
		if err := n.trans.Close(); err != nil {
			errs = append(errs, fmt.Errorf("transport: %w", err))
		}
		_ = n.rpcSrv.Close()
		_ = n.peers.Close()
		n.inbound.closeAndWait(5 * time.Second)
		n.clients.close()
		if err := n.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("raft log: %w", err))
		}
		if len(errs) > 0 {
			n.shutdownErr = fmt.Errorf("cluster: shutdown: %w", errors.Join(errs...))
		}
	})
	return n.shutdownErr
}
