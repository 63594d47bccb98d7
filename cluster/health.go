package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"

	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
)

// followerHealth is the leader's own view of its followers, from Raft: the
// replication goroutines report a failed heartbeat (with the time the
// follower was last reached) and its resumption as observations. A
// follower absent from failing has answered its last heartbeat. The view
// is reset whenever leadership changes (a new leader knows nothing yet),
// and a follower's entry when it is added or removed.
type followerHealth struct {
	mu      sync.Mutex
	failing map[string]time.Time // follower id -> last contact before the failures
}

// observe registers the Raft observer that maintains h until done closes.
func (h *followerHealth) observe(r *raft.Raft, done <-chan struct{}) {
	ch := make(chan raft.Observation, 64)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.LeaderObservation, raft.PeerObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(obs)
	go func() {
		defer r.DeregisterObserver(obs)
		for {
			var o raft.Observation
			select {
			case <-done:
				return
			case o = <-ch:
			}
			h.mu.Lock()
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				if h.failing == nil {
					h.failing = map[string]time.Time{}
				}
				if _, ok := h.failing[string(d.PeerID)]; !ok {
					h.failing[string(d.PeerID)] = d.LastContact
				}
			case raft.ResumedHeartbeatObservation:
				delete(h.failing, string(d.PeerID))
			case raft.PeerObservation:
				// Added or removed: a new replication starts from scratch
				// (it reports failures of its own).
				delete(h.failing, string(d.Peer.ID))
			case raft.LeaderObservation:
				h.failing = nil
			}
			h.mu.Unlock()
		}
	}()
}

// failingSince reports whether heartbeats to id are failing, and when the
// leader last reached it.
func (h *followerHealth) failingSince(id string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.failing[id]
	return t, ok
}

// infoTimeout bounds one Info probe of a peer.
const infoTimeout = 2 * time.Second

// peerInfo asks the node id at addr for its Info over the peer channel (its
// certificate must name id), within infoTimeout.
func (n *Node) peerInfo(ctx context.Context, id, addr string) (*clusterv1.InfoResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, infoTimeout)
	defer cancel()
	resp, err := n.peer(addr, id).Info(ctx, connect.NewRequest(&clusterv1.InfoRequest{NodeId: n.cfg.NodeID}))
	if err != nil {
		return nil, fmt.Errorf("cluster: info from %s at %s: %w", id, addr, err)
	}
	if id != "" && resp.Msg.GetNodeId() != id {
		return nil, fmt.Errorf("%w: the node at %s says it is %q, want %q", ErrIdentity, addr, resp.Msg.GetNodeId(), id)
	}
	return resp.Msg, nil
}

// info is this node's answer to PeerService.Info for caller.
func (n *Node) info(caller string) *clusterv1.InfoResponse {
	out := &clusterv1.InfoResponse{
		NodeId: n.cfg.NodeID, ClusterId: n.ClusterID(), Region: n.cfg.Region,
		BootstrapExpect: uint32(n.cfg.BootstrapExpect), WantsVoter: !n.cfg.NonVoter,
		AppliedIndex: n.AppliedIndex(), LastIndex: n.LastIndex(), Removed: n.Removed(),
	}
	out.LeaderId, _ = n.Leader()
	// A configuration, not just a term: a fresh node at an address a
	// leader still heartbeats to records the leader's term, no more.
	servers := n.raft.GetConfiguration().Configuration().Servers
	out.HasState = len(servers) > 0
	for _, s := range servers {
		if caller != "" && string(s.ID) == caller {
			out.CallerIsMember = true
		}
	}
	return out
}

// hasState reports whether this node holds Raft state (a log, a snapshot
// or a term): it was bootstrapped or joined a cluster.
func (n *Node) hasState() (bool, error) {
	return raft.HasExistingState(n.logs, n.store, n.snaps)
}

// voterHealth counts the voters of remaining that are reachable as the
// leader sees them: this node itself, and every other voter whose
// heartbeats from this leader are not failing AND that answers a direct
// Info probe over the peer channel now. Probes run concurrently. It
// returns the count and, for each voter judged down, why.
func (n *Node) voterHealth(ctx context.Context, remaining []Server) (alive int, down []string) {
	type result struct {
		id  string
		err error
	}
	results := make(chan result, len(remaining))
	for _, s := range remaining {
		if s.ID == n.cfg.NodeID {
			results <- result{s.ID, nil}
			continue
		}
		if since, failing := n.health.failingSince(s.ID); failing {
			results <- result{s.ID, fmt.Errorf("heartbeats failing (last reached %s ago)", time.Since(since).Round(time.Millisecond))}
			continue
		}
		go func() {
			_, err := n.peerInfo(ctx, s.ID, s.RaftAddr)
			results <- result{s.ID, err}
		}()
	}
	for range remaining {
		r := <-results
		if r.err == nil {
			alive++
			continue
		}
		down = append(down, fmt.Sprintf("%s: %v", r.id, unwrapConnect(r.err)))
	}
	return alive, down
}

// unwrapConnect shortens a Connect error to its message for reports.
func unwrapConnect(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return errors.New(ce.Message())
	}
	return err
}
