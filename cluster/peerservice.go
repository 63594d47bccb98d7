package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"connectrpc.com/connect"

	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1/clusterv1connect"
)

// peerIdentityKey carries, in a PeerService call's context, the node id the
// caller's certificate names ("" in plaintext mode).
type peerIdentityKey struct{}

// callerNode returns the node id of a PeerService caller's certificate.
func callerNode(ctx context.Context) string {
	id, _ := ctx.Value(peerIdentityKey{}).(string)
	return id
}

// peerCompressMinBytes: smaller PeerService answers (a read index, the
// results of a forwarded batch of writes, up to several hundred of them)
// are sent as they are. Under write load the leader spent 1.5% of its CPU
// gzipping batch results of 1-4 KiB, more than sending the bytes costs.
const peerCompressMinBytes = 64 << 10

// newPeerServer returns the HTTP server of PeerService on the peer
// listener's RPC connections: HTTP/2 only (h2 over TLS, or h2c in
// plaintext mode), bounded headers, bodies and idle time.
func (n *Node) newPeerServer() *http.Server {
	path, h := clusterv1connect.NewPeerServiceHandler(&peerService{n: n},
		connect.WithInterceptors(clusterIDServer{n}), connect.WithReadMaxBytes(maxPeerMessage), connect.WithSendMaxBytes(maxPeerMessage),
		connect.WithCompressMinBytes(peerCompressMinBytes))
	mux := http.NewServeMux()
	mux.Handle(path, h)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := ""
		if r.TLS != nil {
			id = peerNodeID(*r.TLS)
			if id == "" { // the handshake admits node certificates only
				http.Error(w, "no node identity", http.StatusForbidden)
				return
			}
		}
		if r.URL.Path == clusterv1connect.PeerServiceApplyBatchProcedure && n.refuseApplyBatch.Load() {
			http.NotFound(w, r) // as a node that predates ApplyBatch
			return
		}
		mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), peerIdentityKey{}, id)))
	})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: newHCLogger(n.logger, "peer-rpc").StandardLogger(nil)}
	protos := new(http.Protocols)
	if n.cfg.TLS == nil {
		protos.SetUnencryptedHTTP2(true)
	} else {
		protos.SetHTTP2(true)
	}
	srv.Protocols = protos
	return srv
}

// clusterIDServer refuses calls from another cluster's node and tells every
// caller this node's cluster id.
type clusterIDServer struct{ n *Node }

func (c clusterIDServer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		from := "node " + callerNode(ctx)
		if callerNode(ctx) == "" {
			from = "peer " + req.Peer().Addr
		}
		if err := c.n.checkClusterID(req.Header().Get(ClusterIDHeader), from); err != nil {
			ce := connect.NewError(connect.CodeFailedPrecondition, err)
			ce.Meta().Set(ClusterIDHeader, c.n.ClusterID())
			return nil, ce
		}
		res, err := next(ctx, req)
		if err != nil {
			var ce *connect.Error
			if errors.As(err, &ce) {
				ce.Meta().Set(ClusterIDHeader, c.n.ClusterID())
			}
			return nil, err
		}
		res.Header().Set(ClusterIDHeader, c.n.ClusterID())
		return res, nil
	}
}

func (c clusterIDServer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (c clusterIDServer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(context.Context, connect.StreamingHandlerConn) error {
		return connect.NewError(connect.CodeUnimplemented, errors.New("no streaming on the peer service"))
	}
}

// peerService implements PeerService. Calls that need the leader are
// answered locally or refused with not-leader: never relayed again.
type peerService struct{ n *Node }

func (s *peerService) Apply(ctx context.Context, req *connect.Request[clusterv1.ApplyRequest]) (*connect.Response[clusterv1.ApplyResponse], error) {
	a, err := s.n.Apply(ctx, req.Msg.GetCommand())
	var fe *FSMError
	if errors.As(err, &fe) {
		return connect.NewResponse(&clusterv1.ApplyResponse{Index: a.Index, FsmError: fe.Err.Error()}), nil
	}
	if err != nil {
		return nil, ToConnectError(err)
	}
	return connect.NewResponse(&clusterv1.ApplyResponse{Index: a.Index, Response: a.Response}), nil
}

// ApplyBatch applies several forwarded writes at once (see applyBatch):
// one result per command, an FSM error in its result's fsm_error.
func (s *peerService) ApplyBatch(ctx context.Context, req *connect.Request[clusterv1.ApplyBatchRequest]) (*connect.Response[clusterv1.ApplyBatchResponse], error) {
	out, errs, err := s.n.applyBatch(ctx, req.Msg.GetCommands())
	if err != nil {
		return nil, ToConnectError(err)
	}
	res := &clusterv1.ApplyBatchResponse{Results: make([]*clusterv1.ApplyResponse, len(out))}
	for i, a := range out {
		r := &clusterv1.ApplyResponse{Index: a.Index, Response: a.Response}
		var fe *FSMError
		if errors.As(errs[i], &fe) {
			r.FsmError = fe.Err.Error()
		}
		res.Results[i] = r
	}
	return connect.NewResponse(res), nil
}

func (s *peerService) ReadIndex(ctx context.Context, _ *connect.Request[clusterv1.ReadIndexRequest]) (*connect.Response[clusterv1.ReadIndexResponse], error) {
	idx, err := s.n.leaderReadIndex(ctx)
	if err != nil {
		return nil, ToConnectError(err)
	}
	return connect.NewResponse(&clusterv1.ReadIndexResponse{Index: idx}), nil
}

// Join adds the calling node: the id it asks for must be its certificate's.
// Any member takes it; a follower relays it to the leader as AddNode.
func (s *peerService) Join(ctx context.Context, req *connect.Request[clusterv1.PeerServiceJoinRequest]) (*connect.Response[clusterv1.PeerServiceJoinResponse], error) {
	jr := joinRequestFromProto(req.Msg.GetJoin())
	if caller := callerNode(ctx); caller != "" && caller != jr.ID {
		err := fmt.Errorf("%w: node %q asked to join as %q", ErrIdentity, caller, jr.ID)
		s.n.logger.Warn("join refused", "remote", req.Peer().Addr, "err", err)
		return nil, ToConnectError(err)
	}
	res, err := s.n.Join(ctx, jr)
	if err != nil {
		s.n.logger.Warn("join refused", "node", jr.ID, "remote", req.Peer().Addr, "err", err)
		return nil, ToConnectError(err)
	}
	return connect.NewResponse(&clusterv1.PeerServiceJoinResponse{Join: res.proto()}), nil
}

func (s *peerService) AddNode(ctx context.Context, req *connect.Request[clusterv1.AddNodeRequest]) (*connect.Response[clusterv1.AddNodeResponse], error) {
	res, err := s.n.joinOnLeader(ctx, joinRequestFromProto(req.Msg.GetJoin()))
	if err != nil {
		return nil, ToConnectError(err)
	}
	return connect.NewResponse(&clusterv1.AddNodeResponse{Join: res.proto()}), nil
}

func (s *peerService) RemoveNode(ctx context.Context, req *connect.Request[clusterv1.RemoveNodeRequest]) (*connect.Response[clusterv1.RemoveNodeResponse], error) {
	r := req.Msg.GetRemove()
	res, err := s.n.removeOnLeader(ctx, r.GetNodeId(), r.GetForce())
	if err != nil {
		return nil, ToConnectError(err)
	}
	return connect.NewResponse(&clusterv1.RemoveNodeResponse{Remove: res.proto()}), nil
}

// Info describes this node to the caller (any node answers).
func (s *peerService) Info(ctx context.Context, req *connect.Request[clusterv1.InfoRequest]) (*connect.Response[clusterv1.InfoResponse], error) {
	caller := req.Msg.GetNodeId()
	if c := callerNode(ctx); c != "" && caller != c {
		return nil, ToConnectError(fmt.Errorf("%w: node %q asked for info as %q", ErrIdentity, c, caller))
	}
	return connect.NewResponse(s.n.info(caller)), nil
}

func (s *peerService) TransferLeadership(ctx context.Context, req *connect.Request[clusterv1.PeerServiceTransferLeadershipRequest]) (*connect.Response[clusterv1.PeerServiceTransferLeadershipResponse], error) {
	id, err := s.n.handOffOnLeader(ctx, req.Msg.GetTransfer().GetTargetNodeId())
	if err != nil {
		return nil, ToConnectError(err)
	}
	return connect.NewResponse(&clusterv1.PeerServiceTransferLeadershipResponse{Transfer: &clusterv1.TransferLeadershipResponse{NewLeaderId: id}}), nil
}

func (s *peerService) Status(ctx context.Context, _ *connect.Request[clusterv1.PeerServiceStatusRequest]) (*connect.Response[clusterv1.PeerServiceStatusResponse], error) {
	if !s.n.IsLeader() {
		return nil, ToConnectError(s.n.notLeader())
	}
	st, err := s.n.localStatus()
	if err != nil {
		return nil, ToConnectError(err)
	}
	return connect.NewResponse(&clusterv1.PeerServiceStatusResponse{Status: st}), nil
}
