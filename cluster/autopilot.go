package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Autopilot configures how the leader promotes non-voters that asked to be
// voters (the pattern of etcd learners and Consul's autopilot): a node
// always joins as a non-voter, so a newcomer that is down, slow or still
// catching up never counts towards quorum; the leader promotes it once it
// has been reachable and caught up for Stabilization.
type Autopilot struct {
	// Stabilization is how long a staged non-voter must stay healthy
	// (answering the leader's probes, its heartbeats not failing, within
	// MaxLagEntries of the commit index) before it is promoted. Zero means
	// DefaultStabilization.
	Stabilization time.Duration
	// MaxLagEntries is how far behind the leader's commit index a non-voter's
	// applied index may be and still count as caught up. Zero means
	// DefaultMaxLagEntries.
	MaxLagEntries uint64
	// Interval is how often the leader checks staged non-voters. Zero means
	// DefaultAutopilotInterval, or a quarter of Stabilization (at least
	// 50ms) when that is shorter.
	Interval time.Duration
}

// Autopilot defaults.
const (
	DefaultStabilization     = 10 * time.Second
	DefaultMaxLagEntries     = 256
	DefaultAutopilotInterval = time.Second
)

func (a Autopilot) withDefaults() Autopilot {
	if a.Stabilization == 0 {
		a.Stabilization = DefaultStabilization
	}
	if a.MaxLagEntries == 0 {
		a.MaxLagEntries = DefaultMaxLagEntries
	}
	if a.Interval == 0 {
		a.Interval = min(DefaultAutopilotInterval, max(a.Stabilization/4, 50*time.Millisecond))
	}
	return a
}

// autopilot is the leader's promotion state: which non-voters asked to be
// voters (from join requests; after a leadership change, from each
// non-voter's own Info), and since when each has been healthy.
type autopilot struct {
	mu      sync.Mutex
	intent  map[string]bool      // node id -> wants to be a voter (from a join request)
	healthy map[string]time.Time // node id -> healthy since
}

// stage records whether node id should become a voter.
func (a *autopilot) stage(id string, voter bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.intent == nil {
		a.intent = map[string]bool{}
	}
	a.intent[id] = voter
	delete(a.healthy, id)
}

// wants returns the recorded intent of node id (known=false: none).
func (a *autopilot) wants(id string) (voter, known bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	voter, known = a.intent[id]
	return voter, known
}

// healthyFor records a health check of id at now and returns how long it
// has been healthy without interruption (0 after a failed check).
func (a *autopilot) healthyFor(id string, ok bool, now time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !ok {
		delete(a.healthy, id)
		return 0
	}
	if a.healthy == nil {
		a.healthy = map[string]time.Time{}
	}
	since, seen := a.healthy[id]
	if !seen {
		a.healthy[id] = now
		return 0
	}
	return now.Sub(since)
}

// Staging reports whether node id is a non-voter the leader means to
// promote (it asked to be a voter).
func (n *Node) Staging(id string) bool {
	v, _ := n.autopilot.wants(id)
	return v
}

// runAutopilot is the leader-side promotion loop (every Interval, on the
// leader only): each non-voter that wants to be a voter (its join request
// said so, or, when this leader has no record, its Info does) is probed
// over the peer channel; it is healthy when it answers, the leader's
// heartbeats to it are not failing and its applied index is within
// MaxLagEntries of the commit index. After Stabilization of uninterrupted
// health it is promoted to voter, which is logged.
func (n *Node) runAutopilot() {
	cfg := n.cfg.Autopilot
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-n.closed:
			return
		case <-t.C:
		}
		if !n.IsLeader() || n.Removed() {
			continue
		}
		servers, err := n.Servers()
		if err != nil {
			continue
		}
		for _, s := range servers {
			if s.Voter || s.ID == n.cfg.NodeID {
				continue
			}
			n.autopilotCheck(s, cfg)
		}
	}
}

// autopilotCheck probes one non-voter and promotes it when it is due.
func (n *Node) autopilotCheck(s Server, cfg Autopilot) {
	ctx, cancel := context.WithTimeout(context.Background(), infoTimeout)
	defer cancel()
	info, err := n.peerInfo(ctx, s.ID, s.RaftAddr)
	want, known := n.autopilot.wants(s.ID)
	if !known {
		if err != nil {
			return
		}
		want = info.GetWantsVoter()
		n.autopilot.stage(s.ID, want)
	}
	if !want {
		return
	}
	ok := err == nil
	if _, failing := n.health.failingSince(s.ID); failing {
		ok = false
	}
	if ok {
		if commit := n.CommitIndex(); info.GetAppliedIndex()+cfg.MaxLagEntries < commit {
			ok = false
		}
	}
	if d := n.autopilot.healthyFor(s.ID, ok, time.Now()); !ok || d < cfg.Stabilization {
		return
	}
	pctx, pcancel := context.WithTimeout(context.Background(), DefaultForwardTimeout)
	defer pcancel()
	if err := n.AddVoter(pctx, s.ID, s.RaftAddr); err != nil {
		n.logger.Warn("autopilot: promotion to voter failed", "node", s.ID, "err", err)
		return
	}
	n.autopilot.stage(s.ID, false) // done: nothing more to promote
	n.logger.Info("autopilot: promoted to voter", "node", s.ID, "applied_index", info.GetAppliedIndex(),
		"healthy_for", fmt.Sprint(cfg.Stabilization))
}
