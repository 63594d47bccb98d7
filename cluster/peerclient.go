package cluster

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1/clusterv1connect"
)

// peerClients caches PeerService clients, one per (address, expected node
// id): each has its own HTTP/2 transport whose dialer checks that the
// server's certificate names that node. Forwarded writes multiplex over one
// HTTP/2 connection per peer. It holds at most maxPeerClients; the oldest
// is dropped (and its connections closed) beyond.
type peerClients struct {
	mu sync.Mutex
	m  map[peerKey]*peerClient
	// order is the insertion order, for eviction.
	order []peerKey
}

type peerKey struct{ addr, id string }

type peerClient struct {
	c  clusterv1connect.PeerServiceClient
	tr *http.Transport
}

const maxPeerClients = 64

// peer returns the PeerService client of the node at addr (wantID: the node
// its certificate must name; "" accepts any node of the cluster).
func (n *Node) peer(addr, wantID string) clusterv1connect.PeerServiceClient {
	pc := &n.clients
	pc.mu.Lock()
	defer pc.mu.Unlock()
	k := peerKey{addr, wantID}
	if c, ok := pc.m[k]; ok {
		return c.c
	}
	if pc.m == nil {
		pc.m = map[peerKey]*peerClient{}
	}
	if len(pc.order) >= maxPeerClients {
		old := pc.order[0]
		pc.order = pc.order[1:]
		if c := pc.m[old]; c != nil {
			c.tr.CloseIdleConnections()
		}
		delete(pc.m, old)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 4, ForceAttemptHTTP2: true, HTTP2: n.peerHTTP2()}
	protos := new(http.Protocols)
	scheme := "https://"
	if n.cfg.TLS == nil {
		protos.SetUnencryptedHTTP2(true)
		scheme = "http://"
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return n.dialPeer(ctx, addr, alpnRPC, wantID)
		}
	} else {
		protos.SetHTTP2(true)
		tr.DialTLSContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return n.dialPeer(ctx, addr, alpnRPC, wantID)
		}
	}
	tr.Protocols = protos
	c := clusterv1connect.NewPeerServiceClient(&http.Client{Transport: tr}, scheme+addr,
		connect.WithInterceptors(clusterIDClient{n}), connect.WithSendMaxBytes(maxPeerMessage), connect.WithReadMaxBytes(maxPeerMessage))
	pc.m[k] = &peerClient{c: c, tr: tr}
	pc.order = append(pc.order, k)
	return c
}

// peerHTTP2 is the HTTP/2 setting of the peer clients: a health check, so
// that a connection which stops carrying bytes without being closed (a
// peer or path that went silent: no FIN, no reset) is dropped instead of
// swallowing every call sent on it. Without one the HTTP/2 client keeps
// multiplexing new calls onto such a connection and each waits for an
// answer until its deadline: forwarded writes then fail as unavailable
// although the leader is fine. When no frame arrived for a fifth of the
// request timeout the client pings; no answer within two fifths closes the
// connection, which fails the calls on it (retried by Propose and the
// read paths, over a new connection, within their bound). A write that
// makes no progress for as long closes it too.
func (n *Node) peerHTTP2() *http.HTTP2Config {
	return &http.HTTP2Config{
		SendPingTimeout:  n.cfg.RequestTimeout / 5,
		PingTimeout:      n.cfg.RequestTimeout * 2 / 5,
		WriteByteTimeout: n.cfg.RequestTimeout * 2 / 5,
	}
}

// close drops every cached client and its connections.
func (pc *peerClients) close() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for _, c := range pc.m {
		c.tr.CloseIdleConnections()
	}
	pc.m, pc.order = nil, nil
}

// maxPeerMessage bounds one node-to-node message (a forwarded command or
// its answer).
const maxPeerMessage = 32 << 20

// leaderClient returns the client of the leader this node knows, or a
// *NotLeaderError when it knows none (or is the leader itself).
func (n *Node) leaderClient() (clusterv1connect.PeerServiceClient, string, error) {
	id, addr := n.Leader()
	if id == "" || addr == "" || id == n.cfg.NodeID {
		return nil, "", n.notLeader()
	}
	return n.peer(addr, id), id, nil
}

// clusterIDClient sends this node's cluster id on every peer call and
// checks the one the answer carries.
type clusterIDClient struct{ n *Node }

func (c clusterIDClient) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set(ClusterIDHeader, c.n.ClusterID())
		res, err := next(ctx, req)
		var theirs string
		switch {
		case err == nil:
			theirs = res.Header().Get(ClusterIDHeader)
		default:
			var ce *connect.Error
			if errors.As(err, &ce) {
				theirs = ce.Meta().Get(ClusterIDHeader)
			}
		}
		if cerr := c.n.checkClusterID(theirs, "peer "+req.Peer().Addr); cerr != nil {
			return nil, cerr
		}
		return res, err
	}
}

func (c clusterIDClient) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (c clusterIDClient) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
