package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Server is one member of the Raft configuration.
type Server struct {
	// ID is the node id.
	ID string
	// RaftAddr is the node's Raft transport address.
	RaftAddr string
	// Voter is true for voters, false for non-voters (which replicate the log
	// but neither vote nor count towards quorum).
	Voter bool
}

// Servers returns the latest Raft configuration (possibly not yet
// committed), in configuration order.
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, n.mapRaftErr("get configuration", err)
	}
	cfg := f.Configuration()
	out := make([]Server, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		out = append(out, Server{ID: string(s.ID), RaftAddr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

func (n *Node) membershipChange(ctx context.Context, op string, f func(timeout time.Duration) raft.IndexFuture) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !n.IsLeader() {
		return n.notLeader()
	}
	if err := awaitFuture(ctx, f(timeoutFrom(ctx))); err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return fmt.Errorf("cluster: %s: %w: %w", op, ErrOutcomeUnknown, err)
		}
		return n.mapRaftErr(op, err)
	}
	return nil
}

// AddVoter adds (or promotes to) a voter with the given id and Raft address,
// or updates the address of an existing server with that id. Leader only
// (*NotLeaderError elsewhere); returns once the change is committed.
func (n *Node) AddVoter(ctx context.Context, id, raftAddr string) error {
	if err := checkServer(id, raftAddr); err != nil {
		return err
	}
	return n.membershipChange(ctx, "add voter "+id, func(t time.Duration) raft.IndexFuture {
		return n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, t)
	})
}

// AddNonvoter adds a non-voter with the given id and Raft address (an
// existing voter with that id keeps its vote). Leader only; returns once the
// change is committed.
func (n *Node) AddNonvoter(ctx context.Context, id, raftAddr string) error {
	if err := checkServer(id, raftAddr); err != nil {
		return err
	}
	return n.membershipChange(ctx, "add nonvoter "+id, func(t time.Duration) raft.IndexFuture {
		return n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, t)
	})
}

// demoteVoter turns a voter into a non-voter. Leader only.
func (n *Node) demoteVoter(ctx context.Context, id string) error {
	return n.membershipChange(ctx, "demote "+id, func(t time.Duration) raft.IndexFuture {
		return n.raft.DemoteVoter(raft.ServerID(id), 0, t)
	})
}

// RemoveServer removes the server with the given id from the configuration
// without any safety check (see Remove for the checked variant). Leader
// only; returns once the change is committed. Removing the leader itself
// makes it step down.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	return n.membershipChange(ctx, "remove "+id, func(t time.Duration) raft.IndexFuture {
		return n.raft.RemoveServer(raft.ServerID(id), 0, t)
	})
}

// TransferLeadership asks the leader to hand leadership to targetID (any
// up-to-date voter when targetID is ""). Leader only. It returns once this
// node has stepped down (or the transfer failed); the new leader may take a
// moment to be known to other nodes.
func (n *Node) TransferLeadership(ctx context.Context, targetID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !n.IsLeader() {
		return n.notLeader()
	}
	var f raft.Future
	if targetID == "" {
		f = n.raft.LeadershipTransfer()
	} else {
		if targetID == n.cfg.NodeID {
			return nil
		}
		servers, err := n.Servers()
		if err != nil {
			return err
		}
		var target *Server
		for i := range servers {
			if servers[i].ID == targetID {
				target = &servers[i]
			}
		}
		if target == nil {
			return fmt.Errorf("cluster: transfer leadership to %q: %w", targetID, ErrUnknownNode)
		}
		if !target.Voter {
			return fmt.Errorf("cluster: transfer leadership to %q: %w: it is a non-voter", targetID, ErrInvalidArgument)
		}
		f = n.raft.LeadershipTransferToServer(raft.ServerID(target.ID), raft.ServerAddress(target.RaftAddr))
	}
	if err := awaitFuture(ctx, f); err != nil {
		return n.mapRaftErr("transfer leadership", err)
	}
	return nil
}

func checkServer(id, raftAddr string) error {
	if err := validateName(id); err != nil {
		return fmt.Errorf("%w: node id %q: %v", ErrInvalidArgument, id, err)
	}
	if err := ValidateAddr(raftAddr); err != nil {
		return fmt.Errorf("%w: raft address %q: %v", ErrInvalidArgument, raftAddr, err)
	}
	return nil
}
