package clusterrpc

import (
	"context"
	"errors"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sessiond/sessiond/cluster"
	clusterv1 "github.com/sessiond/sessiond/proto/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/proto/gen/sessiond/cluster/v1/clusterv1connect"
)

// Options configures NewHandler.
type Options struct {
	// Secret is the node credential sent on forwarded calls (the cluster
	// secret while node-to-node calls use it). Required (NewHandler panics
	// on an empty secret: a programming error).
	Secret string
	// HTTPClient carries forwarded calls; nil means http.DefaultClient.
	HTTPClient connect.HTTPClient
	// Scheme of other nodes' API addresses, "http" (default) or "https".
	Scheme string
	// ForwardTimeout bounds a call (including forwarding and retries while
	// no leader is known) when the caller set no deadline; zero means 10 s.
	ForwardTimeout time.Duration
	// HandlerOptions are extra Connect handler options.
	HandlerOptions []connect.HandlerOption
}

// NewHandler returns the mount path and http.Handler of ClusterService over
// node. gossip supplies API addresses (forwarding), liveness (Join/Remove
// checks) and member details (Status); it may be nil for a single node
// without gossip, in which case nothing can be forwarded. It also installs a
// Forwarder on node (node.SetForwarder) so that node.Propose and
// linearizable reads on followers reach the leader.
func NewHandler(node *cluster.Node, gossip *cluster.Gossip, opts Options) (string, http.Handler) {
	if opts.Secret == "" {
		panic("clusterrpc: NewHandler needs a non-empty cluster secret")
	}
	if opts.ForwardTimeout <= 0 {
		opts.ForwardTimeout = 10 * time.Second
	}
	h := &handler{node: node, opts: opts}
	if gossip != nil {
		h.gossip = gossip
		h.fwd = NewForwarder(gossip, ClientOptions{Secret: opts.Secret, HTTPClient: opts.HTTPClient, Scheme: opts.Scheme})
		node.SetForwarder(h.fwd)
	}
	hopts := append([]connect.HandlerOption{connect.WithInterceptors(scopeInterceptor{})}, opts.HandlerOptions...)
	return clusterv1connect.NewClusterServiceHandler(h, hopts...)
}

type handler struct {
	node   *cluster.Node
	gossip *cluster.Gossip // may be nil
	fwd    *Forwarder      // nil without gossip
	opts   Options
}

// members returns the gossip lookup, or nil (an untyped nil interface).
func (h *handler) members() cluster.MemberLookup {
	if h.gossip == nil {
		return nil
	}
	return h.gossip
}

// route runs local on the leader; on a follower it forwards once to the
// leader with remote (unless the call was itself forwarded). Not-leader
// outcomes (nothing applied) are retried with a 5-100 ms backoff within the
// deadline.
func (h *handler) route(ctx context.Context, hdr http.Header, local func(context.Context) error, remote func(context.Context, clusterv1connect.ClusterServiceClient) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.opts.ForwardTimeout)
		defer cancel()
	}
	forwarded := hdr.Get(forwardedHeader) != ""
	backoff := 5 * time.Millisecond
	for {
		var err error
		switch {
		case h.node.IsLeader():
			err = local(ctx)
		case forwarded || h.fwd == nil:
			err = &cluster.NotLeaderError{}
			if id, addr := h.node.Leader(); id != "" {
				err = &cluster.NotLeaderError{LeaderID: id, LeaderAddr: addr}
			}
		default:
			leaderID, _ := h.node.Leader()
			if leaderID == "" {
				err = &cluster.NotLeaderError{}
				break
			}
			var c clusterv1connect.ClusterServiceClient
			if c, err = h.fwd.client(leaderID); err == nil {
				err = fromConnectError(remote(ctx, c))
			}
		}
		if err == nil || !errors.Is(err, cluster.ErrNotLeader) || forwarded {
			return ToConnectError(err)
		}
		if d, _ := ctx.Deadline(); time.Until(d) < backoff {
			return ToConnectError(err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ToConnectError(err)
		case <-t.C:
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

func forwardReq[T any](msg *T) *connect.Request[T] {
	r := connect.NewRequest(msg)
	r.Header().Set(forwardedHeader, "1")
	return r
}

func (h *handler) Join(ctx context.Context, req *connect.Request[clusterv1.JoinRequest]) (*connect.Response[clusterv1.JoinResponse], error) {
	m := req.Msg
	if err := cluster.ValidateNodeID(m.GetNodeId()); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("node_id "+err.Error()))
	}
	if err := cluster.ValidateAddr(m.GetRaftAddr()); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("raft_addr: "+err.Error()))
	}
	if m.GetApiAddr() != "" {
		if err := cluster.ValidateAddr(m.GetApiAddr()); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("api_addr: "+err.Error()))
		}
	}
	if m.GetGossipAddr() != "" {
		if err := cluster.ValidateAddr(m.GetGossipAddr()); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("gossip_addr: "+err.Error()))
		}
	}
	out := &clusterv1.JoinResponse{}
	err := h.route(ctx, req.Header(), func(ctx context.Context) error {
		already, err := h.node.Join(ctx, cluster.JoinRequest{ID: m.GetNodeId(), RaftAddr: m.GetRaftAddr(), Voter: m.GetVoter()}, h.members())
		out.AlreadyMember = already
		if errors.Is(err, cluster.ErrOutcomeUnknown) {
			// Join is idempotent: retrying is safe.
			return &cluster.NotLeaderError{}
		}
		return err
	}, func(ctx context.Context, c clusterv1connect.ClusterServiceClient) error {
		resp, err := c.Join(ctx, forwardReq(m))
		if err == nil {
			out = resp.Msg
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if h.gossip != nil && m.GetGossipAddr() != "" && req.Header().Get(forwardedHeader) == "" {
		// Best effort: the newcomer also finds gossip through its own
		// recorded peers, and any member can merge it later.
		if _, err := h.gossip.Join([]string{m.GetGossipAddr()}); err != nil {
			out.GossipError = err.Error()
		}
	}
	return connect.NewResponse(out), nil
}

func (h *handler) Remove(ctx context.Context, req *connect.Request[clusterv1.RemoveRequest]) (*connect.Response[clusterv1.RemoveResponse], error) {
	m := req.Msg
	if err := cluster.ValidateNodeID(m.GetNodeId()); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("node_id "+err.Error()))
	}
	// A removal whose outcome is unknown (leadership lost while committing)
	// is retried; if the node is then gone, the earlier attempt removed it.
	uncertain := false
	err := h.route(ctx, req.Header(), func(ctx context.Context) error {
		err := h.node.Remove(ctx, m.GetNodeId(), m.GetForce(), h.members())
		switch {
		case errors.Is(err, cluster.ErrOutcomeUnknown):
			uncertain = true
			return &cluster.NotLeaderError{}
		case uncertain && errors.Is(err, cluster.ErrUnknownNode):
			return nil
		}
		return err
	}, func(ctx context.Context, c clusterv1connect.ClusterServiceClient) error {
		_, err := c.Remove(ctx, forwardReq(m))
		return err
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&clusterv1.RemoveResponse{}), nil
}

func (h *handler) TransferLeadership(ctx context.Context, req *connect.Request[clusterv1.TransferLeadershipRequest]) (*connect.Response[clusterv1.TransferLeadershipResponse], error) {
	m := req.Msg
	if m.TargetNodeId != nil {
		if err := cluster.ValidateNodeID(m.GetTargetNodeId()); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("target_node_id "+err.Error()))
		}
	}
	out := &clusterv1.TransferLeadershipResponse{}
	err := h.route(ctx, req.Header(), func(ctx context.Context) error {
		if err := h.node.TransferLeadership(ctx, m.GetTargetNodeId()); err != nil {
			return err
		}
		out.NewLeaderId = h.awaitNewLeader(ctx)
		return nil
	}, func(ctx context.Context, c clusterv1connect.ClusterServiceClient) error {
		resp, err := c.TransferLeadership(ctx, forwardReq(m))
		if err == nil {
			out = resp.Msg
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(out), nil
}

// awaitNewLeader waits (at most 2 s or the deadline) until this node knows a
// leader other than itself, and returns its id ("" if none by then).
func (h *handler) awaitNewLeader(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if id, _ := h.node.Leader(); id != "" && id != h.node.ID() {
			return id
		}
		select {
		case <-ctx.Done():
			return ""
		case <-t.C:
		}
	}
}

func (h *handler) Status(ctx context.Context, req *connect.Request[clusterv1.StatusRequest]) (*connect.Response[clusterv1.StatusResponse], error) {
	var out *clusterv1.StatusResponse
	// Forward to the leader when one is known; otherwise (or if forwarding
	// fails) answer with this node's own view.
	if !h.node.IsLeader() && req.Header().Get(forwardedHeader) == "" && h.fwd != nil {
		if leaderID, _ := h.node.Leader(); leaderID != "" {
			if c, err := h.fwd.client(leaderID); err == nil {
				fctx, cancel := context.WithTimeout(ctx, h.opts.ForwardTimeout)
				resp, err := c.Status(fctx, forwardReq(req.Msg))
				cancel()
				if err == nil {
					return connect.NewResponse(resp.Msg), nil
				}
				var ce *connect.Error
				if errors.As(err, &ce) && ce.Code() == connect.CodeUnauthenticated {
					return nil, err
				}
			}
		}
	}
	out, err := h.localStatus()
	if err != nil {
		return nil, ToConnectError(err)
	}
	return connect.NewResponse(out), nil
}

func healthToProto(hl cluster.Health) clusterv1.GossipHealth {
	switch hl {
	case cluster.HealthAlive:
		return clusterv1.GossipHealth_GOSSIP_HEALTH_ALIVE
	case cluster.HealthSuspect:
		return clusterv1.GossipHealth_GOSSIP_HEALTH_SUSPECT
	case cluster.HealthDead:
		return clusterv1.GossipHealth_GOSSIP_HEALTH_DEAD
	case cluster.HealthLeft:
		return clusterv1.GossipHealth_GOSSIP_HEALTH_LEFT
	}
	return clusterv1.GossipHealth_GOSSIP_HEALTH_UNSPECIFIED
}

func (h *handler) localStatus() (*clusterv1.StatusResponse, error) {
	n := h.node
	servers, err := n.Servers()
	if err != nil {
		return nil, err
	}
	leaderID, _ := n.Leader()
	out := &clusterv1.StatusResponse{
		LeaderId: leaderID, Term: n.Term(), CommitIndex: n.CommitIndex(), AppliedIndex: n.AppliedIndex(),
		LastIndex: n.LastIndex(), AnsweredBy: n.ID(),
	}
	gm := map[string]cluster.Member{}
	var gossipOrder []string
	if h.gossip != nil {
		for _, m := range h.gossip.Members() {
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
		}
		if m, ok := gm[s.ID]; ok {
			pm.Region, pm.ApiAddr, pm.Health, pm.AppliedIndex = m.Region, m.APIAddr, healthToProto(m.Health), m.AppliedIndex
		}
		if s.ID == n.ID() {
			pm.Region = n.Region()
			pm.AppliedIndex = n.AppliedIndex()
			if lc := n.LastContact(); lc != cluster.NeverContacted {
				pm.LastContact = durationpb.New(lc)
			}
		}
		out.Members = append(out.Members, pm)
	}
	for _, id := range gossipOrder {
		if inRaft[id] {
			continue
		}
		m := gm[id]
		out.Members = append(out.Members, &clusterv1.Member{NodeId: id, Region: m.Region, RaftAddr: m.RaftAddr, ApiAddr: m.APIAddr, Health: healthToProto(m.Health), AppliedIndex: m.AppliedIndex})
	}
	return out, nil
}

func (h *handler) Apply(ctx context.Context, req *connect.Request[clusterv1.ApplyRequest]) (*connect.Response[clusterv1.ApplyResponse], error) {
	a, err := h.node.Apply(ctx, req.Msg.GetCommand())
	var fe *cluster.FSMError
	if errors.As(err, &fe) {
		return connect.NewResponse(&clusterv1.ApplyResponse{Index: a.Index, FsmError: fe.Err.Error()}), nil
	}
	if err != nil {
		return nil, ToConnectError(err)
	}
	return connect.NewResponse(&clusterv1.ApplyResponse{Index: a.Index, Response: a.Response}), nil
}

func (h *handler) ReadIndex(ctx context.Context, req *connect.Request[clusterv1.ReadIndexRequest]) (*connect.Response[clusterv1.ReadIndexResponse], error) {
	idx, err := h.node.ReadIndex(ctx)
	if err != nil {
		return nil, ToConnectError(err)
	}
	return connect.NewResponse(&clusterv1.ReadIndexResponse{Index: idx}), nil
}
