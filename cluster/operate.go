package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/cenkalti/backoff/v5"
	"google.golang.org/protobuf/types/known/durationpb"

	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1/clusterv1connect"
)

// The operations below take effect on the leader; any node takes them and,
// when it is not the leader, relays them to the leader over the peer
// channel (one hop), retrying while no leader is known or the target turns
// out not to be the leader. Without a deadline in ctx they give up after
// DefaultForwardTimeout.

// DefaultForwardTimeout bounds a relayed operation whose context has no
// deadline.
const DefaultForwardTimeout = 10 * time.Second

// JoinResult is the outcome of Join.
type JoinResult struct {
	// AlreadyMember: the node was already in the configuration with the
	// same address and suffrage; nothing changed.
	AlreadyMember bool
	// GossipError is set when the node was added to Raft but the node that
	// took the call could not join it into gossip (it finds gossip itself).
	GossipError string
	// ClusterID is the cluster's id.
	ClusterID string
}

func (r JoinResult) proto() *clusterv1.JoinResponse {
	return &clusterv1.JoinResponse{AlreadyMember: r.AlreadyMember, GossipError: r.GossipError, ClusterId: r.ClusterID}
}

func joinRequestFromProto(m *clusterv1.JoinRequest) JoinRequest {
	return JoinRequest{ID: m.GetNodeId(), RaftAddr: m.GetRaftAddr(), Voter: m.GetVoter(),
		APIAddr: m.GetApiAddr(), GossipAddr: m.GetGossipAddr(), Region: m.GetRegion()}
}

func (r JoinRequest) proto() *clusterv1.JoinRequest {
	return &clusterv1.JoinRequest{NodeId: r.ID, RaftAddr: r.RaftAddr, Voter: r.Voter,
		ApiAddr: r.APIAddr, GossipAddr: r.GossipAddr, Region: r.Region}
}

// validate checks a join request's fields (ErrInvalidArgument).
func (r JoinRequest) validate() error {
	if err := checkServer(r.ID, r.RaftAddr); err != nil {
		return err
	}
	for name, a := range map[string]string{"api address": r.APIAddr, "gossip address": r.GossipAddr} {
		if a == "" {
			continue
		}
		if err := ValidateAddr(a); err != nil {
			return fmt.Errorf("%w: %s %q: %v", ErrInvalidArgument, name, a, err)
		}
	}
	if r.Region != "" {
		if err := ValidateRegion(r.Region); err != nil {
			return fmt.Errorf("%w: region %q: %v", ErrInvalidArgument, r.Region, err)
		}
	}
	return nil
}

// checkPublished compares a join request with what gossip knows of the
// node: a region or API address other than the one the node publishes is
// refused (ErrInvalidArgument naming the field), so that an operator's
// typo is not silently kept or dropped.
func (r JoinRequest) checkPublished(m Member) error {
	if r.Region != "" && m.Region != "" && r.Region != m.Region {
		return fmt.Errorf("%w: region %q: node %s runs in region %q", ErrInvalidArgument, r.Region, r.ID, m.Region)
	}
	if r.APIAddr != "" && m.APIAddr != "" && r.APIAddr != m.APIAddr {
		return fmt.Errorf("%w: api address %q: node %s publishes %s", ErrInvalidArgument, r.APIAddr, r.ID, m.APIAddr)
	}
	return nil
}

// onLeader runs local when this node leads, else remote against the
// leader; not-leader outcomes are retried (see retryNotLeader).
func (n *Node) onLeader(ctx context.Context, local func(context.Context) error, remote func(context.Context, clusterv1connect.PeerServiceClient) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultForwardTimeout)
		defer cancel()
	}
	return n.retryNotLeader(ctx, func() error {
		if n.IsLeader() {
			return local(ctx)
		}
		c, leaderID, err := n.leaderClient()
		if err != nil {
			return err
		}
		err = fromConnectError(remote(ctx, c))
		if connect.CodeOf(err) == connect.CodeUnavailable && !errors.Is(err, ErrNotLeader) {
			// The leader this node knows did not answer (it may be dead
			// and a new one not yet elected): nothing reached it, so the
			// call is retried on whoever leads next, within the deadline.
			n.logger.Debug("relayed call: the leader did not answer; retrying", "leader", leaderID, "err", err)
			return &NotLeaderError{}
		}
		return err
	})
}

// Join adds a node to the Raft configuration (see joinOnLeader for the
// rules), then joins it into gossip when GossipAddr is set (best effort).
func (n *Node) Join(ctx context.Context, req JoinRequest) (JoinResult, error) {
	if err := req.validate(); err != nil {
		return JoinResult{}, err
	}
	var out JoinResult
	err := n.onLeader(ctx, func(ctx context.Context) error {
		var err error
		out, err = n.joinOnLeader(ctx, req)
		return err
	}, func(ctx context.Context, c clusterv1connect.PeerServiceClient) error {
		resp, err := c.AddNode(ctx, connect.NewRequest(&clusterv1.AddNodeRequest{Join: req.proto()}))
		if err == nil {
			j := resp.Msg.GetJoin()
			out = JoinResult{AlreadyMember: j.GetAlreadyMember(), ClusterID: j.GetClusterId()}
		}
		return err
	})
	if err != nil {
		return JoinResult{}, err
	}
	if g := n.gossip.Load(); g != nil && req.GossipAddr != "" {
		if _, err := g.Join([]string{req.GossipAddr}); err != nil {
			out.GossipError = err.Error()
		}
	}
	return out, nil
}

// joinOnLeader is the one place a node becomes a member. Leader only
// (*NotLeaderError elsewhere). It first dials the node's peer address and
// completes a TLS handshake, checking the certificate there names req.ID
// (ErrIdentity otherwise; ErrUnreachable when the node does not answer), so
// that no address that is not a running node of this cluster is ever added
// (a configuration of unreachable voters loses quorum). The rules of
// addServer decide what changes; the probe runs only when something does.
func (n *Node) joinOnLeader(ctx context.Context, req JoinRequest) (JoinResult, error) {
	if err := req.validate(); err != nil {
		return JoinResult{}, err
	}
	if !n.IsLeader() {
		return JoinResult{}, n.notLeader()
	}
	if g := n.gossip.Load(); g != nil {
		if m, ok := g.Member(req.ID); ok && m.Health == HealthAlive {
			if err := req.checkPublished(m); err != nil {
				return JoinResult{}, err
			}
		}
	}
	already, err := n.addServer(ctx, req, func() error {
		if err := n.probe(ctx, req.ID, req.RaftAddr); err != nil {
			return err
		}
		return n.refuseRemoved(ctx, req)
	})
	if errors.Is(err, ErrOutcomeUnknown) {
		// Joining is idempotent: retry on whoever leads next.
		return JoinResult{}, &NotLeaderError{}
	}
	if err != nil {
		return JoinResult{}, err
	}
	return JoinResult{AlreadyMember: already, ClusterID: n.ClusterID()}, nil
}

// refuseRemoved refuses a node that holds Raft state of this cluster but
// is not in its configuration: it was removed, and a removed node comes
// back only with an empty data dir (its old log and vote must not mix with
// the cluster's). A node that does not answer Info (an older version) is
// let through.
func (n *Node) refuseRemoved(ctx context.Context, req JoinRequest) error {
	servers, err := n.Servers()
	if err != nil {
		return err
	}
	for _, s := range servers {
		if s.ID == req.ID {
			return nil
		}
	}
	info, err := n.peerInfo(ctx, req.ID, req.RaftAddr)
	if err != nil || !info.GetHasState() || info.GetClusterId() != n.ClusterID() {
		return nil
	}
	return fmt.Errorf("%w: join %s: it holds this cluster's Raft state but is not in the configuration: it was removed; to bring it back, stop it, empty its data dir and join it again",
		ErrRemoved, req.ID)
}

// probeTimeout bounds the leader's handshake with a joining node.
const probeTimeout = 5 * time.Second

// probe completes a handshake with the node at addr and checks it is node
// id (with TLS; in plaintext mode anything answering there passes) and not
// a member of another cluster: the node answers with its cluster id.
func (n *Node) probe(ctx context.Context, id, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	c, err := n.dialPeer(ctx, addr, alpnProbe, id)
	if err == nil && n.cfg.TLS == nil {
		_ = c.Close()
		return nil
	}
	var theirs string
	if err == nil {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(probeTimeout))
		theirs, err = readID(c)
	}
	if err != nil {
		if errors.Is(err, ErrIdentity) {
			return fmt.Errorf("cluster: join %s: the node at %s is not %s: %w", id, addr, id, err)
		}
		return fmt.Errorf("%w: join %s: no handshake with its peer address %s (is it running, and is the address reachable from the leader %s?): %v",
			ErrUnreachable, id, addr, n.cfg.NodeID, err)
	}
	if mine := n.ClusterID(); theirs != "" && theirs != mine {
		return fmt.Errorf("%w: join %s: the node at %s is in cluster %s, this cluster is %s", ErrClusterMismatch, id, addr, theirs, mine)
	}
	return nil
}

// Remove removes a node from the Raft configuration; see removeOnLeader.
// A nil error means the configuration without the node is committed.
func (n *Node) Remove(ctx context.Context, id string, force bool) (RemoveResult, error) {
	if err := validateName(id); err != nil {
		return RemoveResult{}, fmt.Errorf("%w: node id %q: %v", ErrInvalidArgument, id, err)
	}
	// A removal whose outcome is unknown (leadership lost while committing)
	// is retried; if the node is then gone, the earlier attempt removed it.
	uncertain := false
	var out RemoveResult
	err := n.onLeader(ctx, func(ctx context.Context) error {
		var err error
		out, err = n.removeOnLeader(ctx, id, force)
		switch {
		case errors.Is(err, ErrOutcomeUnknown):
			uncertain = true
			return &NotLeaderError{}
		case uncertain && errors.Is(err, ErrUnknownNode):
			out = RemoveResult{LeaderID: n.cfg.NodeID}
			return nil
		}
		return err
	}, func(ctx context.Context, c clusterv1connect.PeerServiceClient) error {
		resp, err := c.RemoveNode(ctx, connect.NewRequest(&clusterv1.RemoveNodeRequest{Remove: &clusterv1.RemoveRequest{NodeId: id, Force: force}}))
		if err == nil {
			r := resp.Msg.GetRemove()
			out = RemoveResult{LeaderID: r.GetLeaderId(), Voters: int(r.GetVoters())}
		}
		if connect.CodeOf(err) == connect.CodeUnavailable || connect.CodeOf(err) == connect.CodeUnknown {
			uncertain = true // the leader may have removed it before the answer was lost
		}
		return err
	})
	return out, err
}

// HandOff makes the leader hand leadership to targetID (any up-to-date
// voter when ""), and returns the new leader's id once known ("" if not
// within 2 s).
func (n *Node) HandOff(ctx context.Context, targetID string) (string, error) {
	if targetID != "" {
		if err := validateName(targetID); err != nil {
			return "", fmt.Errorf("%w: target node id %q: %v", ErrInvalidArgument, targetID, err)
		}
	}
	var out string
	err := n.onLeader(ctx, func(ctx context.Context) error {
		var err error
		out, err = n.handOffOnLeader(ctx, targetID)
		return err
	}, func(ctx context.Context, c clusterv1connect.PeerServiceClient) error {
		req := &clusterv1.TransferLeadershipRequest{}
		if targetID != "" {
			req.TargetNodeId = &targetID
		}
		resp, err := c.TransferLeadership(ctx, connect.NewRequest(&clusterv1.PeerServiceTransferLeadershipRequest{Transfer: req}))
		if err == nil {
			out = resp.Msg.GetTransfer().GetNewLeaderId()
		}
		return err
	})
	return out, err
}

func (n *Node) handOffOnLeader(ctx context.Context, targetID string) (string, error) {
	if err := n.TransferLeadership(ctx, targetID); err != nil {
		return "", err
	}
	return n.awaitNewLeader(ctx), nil
}

// awaitNewLeader waits (at most 2 s or the deadline) until this node knows a
// leader other than itself, and returns its id ("" if none by then).
func (n *Node) awaitNewLeader(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if id, _ := n.Leader(); id != "" && id != n.cfg.NodeID {
			return id
		}
		select {
		case <-ctx.Done():
			return ""
		case <-t.C:
		}
	}
}

// Status describes the cluster as the leader sees it; when no leader is
// known or it cannot be reached, as this node sees it (AnsweredBy says
// which).
func (n *Node) Status(ctx context.Context) (*clusterv1.StatusResponse, error) {
	if !n.IsLeader() {
		if c, _, err := n.leaderClient(); err == nil {
			fctx, cancel := context.WithTimeout(ctx, DefaultForwardTimeout)
			resp, err := c.Status(fctx, connect.NewRequest(&clusterv1.PeerServiceStatusRequest{}))
			cancel()
			if err == nil {
				return resp.Msg.GetStatus(), nil
			}
			n.logger.Debug("status from the leader failed; answering with this node's view", "err", err)
		}
	}
	return n.localStatus()
}

func healthToProto(hl Health) clusterv1.GossipHealth {
	switch hl {
	case HealthAlive:
		return clusterv1.GossipHealth_GOSSIP_HEALTH_ALIVE
	case HealthSuspect:
		return clusterv1.GossipHealth_GOSSIP_HEALTH_SUSPECT
	case HealthDead:
		return clusterv1.GossipHealth_GOSSIP_HEALTH_DEAD
	case HealthLeft:
		return clusterv1.GossipHealth_GOSSIP_HEALTH_LEFT
	}
	return clusterv1.GossipHealth_GOSSIP_HEALTH_UNSPECIFIED
}

// LocalStatus is this node's own view of the cluster, never forwarded: on
// the leader, which followers' heartbeats are failing and for how long.
func (n *Node) LocalStatus() (*clusterv1.StatusResponse, error) { return n.localStatus() }

// localStatus is this node's view: the Raft configuration, then nodes known
// only to gossip.
func (n *Node) localStatus() (*clusterv1.StatusResponse, error) {
	servers, err := n.Servers()
	if err != nil {
		return nil, err
	}
	leaderID, _ := n.Leader()
	out := &clusterv1.StatusResponse{
		LeaderId: leaderID, Term: n.Term(), CommitIndex: n.CommitIndex(), AppliedIndex: n.AppliedIndex(),
		LastIndex: n.LastIndex(), AnsweredBy: n.ID(), ClusterId: n.ClusterID(),
	}
	gm := map[string]Member{}
	var gossipOrder []string
	if g := n.gossip.Load(); g != nil {
		for _, m := range g.Members() {
			gm[m.ID] = m
			gossipOrder = append(gossipOrder, m.ID)
		}
	}
	if m, ok := gm[leaderID]; ok {
		out.LeaderRegion = m.Region
	} else if leaderID == n.ID() {
		out.LeaderRegion = n.Region()
	}
	inRaft := map[string]bool{}
	for _, s := range servers {
		inRaft[s.ID] = true
		pm := &clusterv1.Member{NodeId: s.ID, RaftAddr: s.RaftAddr, Leader: s.ID == leaderID, Suffrage: clusterv1.Suffrage_SUFFRAGE_NONVOTER}
		if s.Voter {
			pm.Suffrage = clusterv1.Suffrage_SUFFRAGE_VOTER
		} else if n.IsLeader() {
			pm.Staging = n.Staging(s.ID)
		}
		if since, failing := n.health.failingSince(s.ID); failing && n.IsLeader() && s.ID != n.ID() {
			pm.LastContact = durationpb.New(time.Since(since))
		}
		if m, ok := gm[s.ID]; ok {
			pm.Region, pm.ApiAddr, pm.Health, pm.AppliedIndex = m.Region, m.APIAddr, healthToProto(m.Health), m.AppliedIndex
		}
		if s.ID == n.ID() {
			pm.Region = n.Region()
			pm.AppliedIndex = n.AppliedIndex()
			if lc := n.LastContact(); lc != NeverContacted {
				pm.LastContact = durationpb.New(lc)
			}
		}
		out.Members = append(out.Members, pm)
	}
	for _, id := range gossipOrder {
		m := gm[id]
		// Nodes known only to gossip: those about to join. One that left or
		// died (a removed node leaves gossip) is not listed.
		if inRaft[id] || m.Health == HealthLeft || m.Health == HealthDead {
			continue
		}
		out.Members = append(out.Members, &clusterv1.Member{NodeId: id, Region: m.Region, RaftAddr: m.RaftAddr, ApiAddr: m.APIAddr, Health: healthToProto(m.Health), AppliedIndex: m.AppliedIndex})
	}
	return out, nil
}

// retryNotLeader runs op until it succeeds, fails with an error other than
// ErrNotLeader, the node shuts down (ErrShutdown) or ctx ends (then the
// last not-leader error is returned). Between attempts it backs off 5 ms
// doubling to 100 ms (with jitter); only ErrNotLeader is retried because it
// guarantees nothing was done.
func (n *Node) retryNotLeader(ctx context.Context, op func() error) error {
	b := &backoff.ExponentialBackOff{InitialInterval: 5 * time.Millisecond, RandomizationFactor: 0.2, Multiplier: 2, MaxInterval: 100 * time.Millisecond}
	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		select {
		case <-n.closed:
			return struct{}{}, backoff.Permanent(ErrShutdown)
		default:
		}
		last = op()
		if last != nil && !errors.Is(last, ErrNotLeader) {
			return struct{}{}, backoff.Permanent(last)
		}
		return struct{}{}, last
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0))
	if err != nil && last != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return last
	}
	return err
}
