package clusterrpc

import (
	"context"
	"fmt"
	"net/http"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/cluster"
	clusterv1 "github.com/sessiond/sessiond/proto/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/proto/gen/sessiond/cluster/v1/clusterv1connect"
)

// Options configures NewHandler.
type Options struct {
	// HandlerOptions are extra Connect handler options.
	HandlerOptions []connect.HandlerOption
}

// NewHandler returns the mount path and http.Handler of ClusterService over
// node. Every call takes effect on the leader: the node relays it there
// over the peer channel when it is not the leader (cluster.Node.Join,
// Remove, HandOff, Status).
func NewHandler(node *cluster.Node, opts Options) (string, http.Handler) {
	h := &handler{node: node}
	hopts := append([]connect.HandlerOption{connect.WithInterceptors(scopeInterceptor{})}, opts.HandlerOptions...)
	return clusterv1connect.NewClusterServiceHandler(h, hopts...)
}

type handler struct{ node *cluster.Node }

func invalid(field string, err error) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: %w", field, err))
}

func (h *handler) Join(ctx context.Context, req *connect.Request[clusterv1.JoinRequest]) (*connect.Response[clusterv1.JoinResponse], error) {
	m := req.Msg
	if err := cluster.ValidateNodeID(m.GetNodeId()); err != nil {
		return nil, invalid("node_id", err)
	}
	if err := cluster.ValidateAddr(m.GetRaftAddr()); err != nil {
		return nil, invalid("raft_addr", err)
	}
	for field, v := range map[string]string{"api_addr": m.GetApiAddr(), "gossip_addr": m.GetGossipAddr()} {
		if v == "" {
			continue
		}
		if err := cluster.ValidateAddr(v); err != nil {
			return nil, invalid(field, err)
		}
	}
	res, err := h.node.Join(ctx, cluster.JoinRequest{ID: m.GetNodeId(), RaftAddr: m.GetRaftAddr(), Voter: m.GetVoter(),
		APIAddr: m.GetApiAddr(), GossipAddr: m.GetGossipAddr(), Region: m.GetRegion()})
	if err != nil {
		return nil, ToConnectError(err)
	}
	return connect.NewResponse(&clusterv1.JoinResponse{AlreadyMember: res.AlreadyMember, GossipError: res.GossipError, ClusterId: res.ClusterID}), nil
}

func (h *handler) Remove(ctx context.Context, req *connect.Request[clusterv1.RemoveRequest]) (*connect.Response[clusterv1.RemoveResponse], error) {
	if err := cluster.ValidateNodeID(req.Msg.GetNodeId()); err != nil {
		return nil, invalid("node_id", err)
	}
	if err := h.node.Remove(ctx, req.Msg.GetNodeId(), req.Msg.GetForce()); err != nil {
		return nil, ToConnectError(err)
	}
	return connect.NewResponse(&clusterv1.RemoveResponse{}), nil
}

func (h *handler) TransferLeadership(ctx context.Context, req *connect.Request[clusterv1.TransferLeadershipRequest]) (*connect.Response[clusterv1.TransferLeadershipResponse], error) {
	if req.Msg.TargetNodeId != nil {
		if err := cluster.ValidateNodeID(req.Msg.GetTargetNodeId()); err != nil {
			return nil, invalid("target_node_id", err)
		}
	}
	id, err := h.node.HandOff(ctx, req.Msg.GetTargetNodeId())
	if err != nil {
		return nil, ToConnectError(err)
	}
	return connect.NewResponse(&clusterv1.TransferLeadershipResponse{NewLeaderId: id}), nil
}

func (h *handler) Status(ctx context.Context, _ *connect.Request[clusterv1.StatusRequest]) (*connect.Response[clusterv1.StatusResponse], error) {
	st, err := h.node.Status(ctx)
	if err != nil {
		return nil, ToConnectError(err)
	}
	return connect.NewResponse(st), nil
}
