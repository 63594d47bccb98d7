package cluster

import (
	"context"
	"fmt"
	"strings"

	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
)

// MemberLookup reports what gossip knows about a node; *Gossip implements
// it. Join and Remove use it to tell live nodes from stale entries.
type MemberLookup interface {
	// Member returns the gossip member with the given id.
	Member(id string) (Member, bool)
}

// JoinRequest describes a node to add to the Raft configuration.
type JoinRequest struct {
	// ID is the joining node's id.
	ID string
	// RaftAddr is the joining node's peer address (host:port): Raft and
	// node-to-node RPC.
	RaftAddr string
	// Voter adds the node as a voter (false: non-voter).
	Voter bool
	// APIAddr, GossipAddr and Region describe the node; the node that takes
	// the call joins GossipAddr into gossip when it is set.
	APIAddr, GossipAddr, Region string
}

// members returns the attached gossip as a MemberLookup, or nil (an untyped
// nil: without gossip every configured node counts as live).
func (n *Node) members() MemberLookup {
	if g := n.gossip.Load(); g != nil {
		return g
	}
	return nil
}

// addServer adds a node with safety checks. Leader only (*NotLeaderError
// elsewhere). Semantics:
//
//   - malformed id or address: ErrInvalidArgument;
//   - same id, same address: nothing changes (alreadyMember=true), except
//     that a voter asked to be a non-voter is demoted, and a non-voter
//     asked to be a voter is staged for promotion (autopilot);
//   - same id at another address: if gossip shows that id alive and still
//     publishing the old Raft address, ErrAlreadyExists (two live nodes
//     cannot share an id); otherwise the entry is stale and its address is
//     replaced;
//   - another id at the same address: that stale entry is removed first
//     (ErrAlreadyExists if it is this leader's own address).
//
// A node is always added as a non-voter: with req.Voter it is staged, and
// the autopilot loop promotes it once it is healthy (see Autopilot).
// Liveness comes from the attached gossip (none: every configured node
// counts as live). check, if not nil, runs after the request passed these
// rules and before anything changes; its error is returned as is.
func (n *Node) addServer(ctx context.Context, req JoinRequest, check func() error) (alreadyMember bool, err error) {
	members := n.members()
	if check == nil {
		check = func() error { return nil }
	}
	if err := checkServer(req.ID, req.RaftAddr); err != nil {
		return false, err
	}
	if !n.IsLeader() {
		return false, n.notLeader()
	}
	servers, err := n.Servers()
	if err != nil {
		return false, err
	}
	var byID, byAddr *Server
	for i := range servers {
		if servers[i].ID == req.ID {
			byID = &servers[i]
		}
		if servers[i].RaftAddr == req.RaftAddr {
			byAddr = &servers[i]
		}
	}
	if byID != nil && byID.RaftAddr == req.RaftAddr {
		switch {
		case byID.Voter == req.Voter:
			return true, nil
		case req.Voter:
			n.autopilot.stage(req.ID, true)
			return true, nil
		}
		if err := check(); err != nil {
			return false, err
		}
		n.autopilot.stage(req.ID, false)
		return false, n.demoteVoter(ctx, req.ID)
	}
	if byID != nil {
		live := byID.ID == n.cfg.NodeID
		if members != nil && !live {
			if m, ok := members.Member(req.ID); ok && m.Health == HealthAlive && m.RaftAddr == byID.RaftAddr {
				live = true
			}
		}
		if live {
			return false, fmt.Errorf("%w: node %q is alive at Raft address %s; remove it before joining it at %s, or pick another id", ErrAlreadyExists, req.ID, byID.RaftAddr, req.RaftAddr)
		}
	}
	if byAddr != nil && byAddr.ID == n.cfg.NodeID && req.ID != n.cfg.NodeID {
		return false, fmt.Errorf("%w: Raft address %s belongs to the leader %q", ErrAlreadyExists, req.RaftAddr, n.cfg.NodeID)
	}
	if err := check(); err != nil {
		return false, err
	}
	if byAddr != nil && byAddr.ID != req.ID {
		if err := n.RemoveServer(ctx, byAddr.ID); err != nil {
			return false, fmt.Errorf("cluster: join %s: remove stale entry %q at %s: %w", req.ID, byAddr.ID, req.RaftAddr, err)
		}
	}
	n.autopilot.stage(req.ID, req.Voter)
	if byID != nil && byID.Voter {
		// A stale voter entry at a new address: it keeps its vote (the
		// entry is replaced in place).
		return false, n.AddVoter(ctx, req.ID, req.RaftAddr)
	}
	return false, n.AddNonvoter(ctx, req.ID, req.RaftAddr)
}

// RemoveResult describes an accepted removal.
type RemoveResult struct {
	// LeaderID is the leader that committed the new configuration.
	LeaderID string
	// Voters is the number of voters left.
	Voters int
}

func (r RemoveResult) proto() *clusterv1.RemoveResponse {
	return &clusterv1.RemoveResponse{LeaderId: r.LeaderID, Voters: uint32(r.Voters)}
}

// removeOnLeader removes a node with safety checks. Leader only. Semantics:
//
//   - unknown id: ErrUnknownNode;
//   - unless force, removing a voter must leave the remaining voters with a
//     quorum (majority) of reachable voters, judged by this leader from
//     Raft's own view (voters whose heartbeats are failing count as down)
//     and a direct Info probe of each over the peer channel, never from
//     gossip; otherwise ErrQuorumAtRisk naming the voters judged down, and
//     nothing changes;
//   - removing this leader first transfers leadership and then returns a
//     *NotLeaderError: the caller retries on the new leader (nothing was
//     removed yet), which performs the removal.
//
// Success means the configuration without the node is committed.
func (n *Node) removeOnLeader(ctx context.Context, id string, force bool) (RemoveResult, error) {
	if !n.IsLeader() {
		return RemoveResult{}, n.notLeader()
	}
	servers, err := n.Servers()
	if err != nil {
		return RemoveResult{}, err
	}
	var target *Server
	var remaining []Server
	for i := range servers {
		if servers[i].ID == id {
			target = &servers[i]
		} else if servers[i].Voter {
			remaining = append(remaining, servers[i])
		}
	}
	if target == nil {
		return RemoveResult{}, fmt.Errorf("%w: %q is not in the Raft configuration", ErrUnknownNode, id)
	}
	if target.Voter && !force {
		alive, down := n.voterHealth(ctx, remaining)
		need := len(remaining)/2 + 1
		if len(remaining) == 0 || alive < need {
			return RemoveResult{}, fmt.Errorf("%w: removing %q leaves %d voters of which %d are reachable, need %d (down: %s); nothing was changed: bring the down voters back or replace them first, or use force",
				ErrQuorumAtRisk, id, len(remaining), alive, need, strings.Join(down, "; "))
		}
	}
	if id == n.cfg.NodeID && len(remaining) > 0 {
		if err := n.TransferLeadership(ctx, ""); err != nil {
			return RemoveResult{}, fmt.Errorf("cluster: remove leader %q: transfer leadership: %w", id, err)
		}
		return RemoveResult{}, n.notLeader()
	}
	if err := n.RemoveServer(ctx, id); err != nil {
		return RemoveResult{}, err
	}
	n.autopilot.stage(id, false)
	n.logger.Info("node removed from the configuration", "node", id, "voters_left", len(remaining))
	return RemoveResult{LeaderID: n.cfg.NodeID, Voters: len(remaining)}, nil
}
