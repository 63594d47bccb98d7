package clusterrpc

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"connectrpc.com/connect"

	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1/clusterv1connect"
	"github.com/sessiond/sessiond/cluster"
)

// Options configures NewHandler.
type Options struct {
	// HandlerOptions are extra Connect handler options.
	HandlerOptions []connect.HandlerOption
	// Backups writes backups for Snapshot; nil answers Unimplemented.
	Backups Backups
}

// Backups is what Snapshot needs of the node's state machine: write a
// backup file of its current state (the store's WriteBackup).
type Backups interface {
	// WriteBackup writes a backup of the current state to w, naming the
	// cluster and the node in its metadata.
	WriteBackup(w io.Writer, clusterID, nodeID string) error
}

// NewHandler returns the mount path and http.Handler of ClusterService over
// node. Every call takes effect on the leader: the node relays it there
// over the peer channel when it is not the leader (cluster.Node.Join,
// Remove, HandOff, Status).
func NewHandler(node *cluster.Node, opts Options) (string, http.Handler) {
	h := &handler{node: node, backups: opts.Backups}
	hopts := append([]connect.HandlerOption{connect.WithInterceptors(scopeInterceptor{})}, opts.HandlerOptions...)
	return clusterv1connect.NewClusterServiceHandler(h, hopts...)
}

type handler struct {
	node    *cluster.Node
	backups Backups
}

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
	if m.GetRegion() != "" {
		if err := cluster.ValidateRegion(m.GetRegion()); err != nil {
			return nil, invalid(fmt.Sprintf("region %q", m.GetRegion()), err)
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
	res, err := h.node.Remove(ctx, req.Msg.GetNodeId(), req.Msg.GetForce())
	if err != nil {
		return nil, ToConnectError(err)
	}
	return connect.NewResponse(&clusterv1.RemoveResponse{LeaderId: res.LeaderID, Voters: uint32(res.Voters)}), nil
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

// snapshotChunk is the size of one streamed piece of a backup.
const snapshotChunk = 256 << 10

// Snapshot streams a backup once this node has applied everything the
// leader had committed when the call arrived.
func (h *handler) Snapshot(ctx context.Context, _ *connect.Request[clusterv1.SnapshotRequest], stream *connect.ServerStream[clusterv1.SnapshotResponse]) error {
	if h.backups == nil {
		return connect.NewError(connect.CodeUnimplemented, fmt.Errorf("this node serves no backups"))
	}
	if _, err := h.node.ReadBarrier(ctx, cluster.ReadOptions{Consistency: cluster.ConsistencyLinearizable}); err != nil {
		return ToConnectError(fmt.Errorf("snapshot: this node cannot confirm it is caught up with the leader: %w", err))
	}
	w := &chunkWriter{send: func(b []byte) error { return stream.Send(&clusterv1.SnapshotResponse{Data: b}) }, buf: make([]byte, 0, snapshotChunk)}
	if err := h.backups.WriteBackup(w, h.node.ClusterID(), h.node.ID()); err != nil {
		return connect.NewError(connect.CodeInternal, fmt.Errorf("snapshot: %w", err))
	}
	return w.flush()
}

// chunkWriter groups writes into messages of at most snapshotChunk bytes.
type chunkWriter struct {
	send func([]byte) error
	buf  []byte
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(cap(w.buf)-len(w.buf), len(p))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.send(w.buf)
	w.buf = w.buf[:0]
	return err
}
