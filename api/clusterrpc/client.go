package clusterrpc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/cluster"
	clusterv1 "github.com/sessiond/sessiond/proto/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/proto/gen/sessiond/cluster/v1/clusterv1connect"
)

// AddrResolver finds a node's API address; *cluster.Gossip implements it.
type AddrResolver interface {
	// APIAddr returns the host:port of the node's Connect API.
	APIAddr(nodeID string) (string, bool)
}

// ClientOptions configures Connect clients to other nodes.
type ClientOptions struct {
	// Secret is the credential sent as a bearer token: an operator token,
	// or between nodes the node credential.
	Secret string
	// HTTPClient carries the calls; nil means http.DefaultClient.
	HTTPClient connect.HTTPClient
	// Scheme is "http" (default) or "https".
	Scheme string
}

// NewClient returns a ClusterService client for the node at apiAddr
// (host:port) that sends the cluster secret (for the CLI and tests).
func NewClient(apiAddr string, opts ClientOptions) clusterv1connect.ClusterServiceClient {
	hc := opts.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	scheme := opts.Scheme
	if scheme == "" {
		scheme = "http"
	}
	return clusterv1connect.NewClusterServiceClient(hc, scheme+"://"+apiAddr, WithBearer(opts.Secret))
}

// Forwarder implements cluster.Forwarder with ClusterService.Apply and
// ClusterService.ReadIndex calls to the leader's API address (found through
// an AddrResolver, normally the node's *cluster.Gossip). Clients are cached
// per address. Safe for concurrent use.
type Forwarder struct {
	resolver AddrResolver
	opts     ClientOptions

	mu      sync.Mutex
	clients map[string]clusterv1connect.ClusterServiceClient
}

var _ cluster.Forwarder = (*Forwarder)(nil)

// NewForwarder returns a Forwarder; install it with node.SetForwarder.
func NewForwarder(resolver AddrResolver, opts ClientOptions) *Forwarder {
	return &Forwarder{resolver: resolver, opts: opts, clients: map[string]clusterv1connect.ClusterServiceClient{}}
}

// client returns a client for the given node; a *cluster.NotLeaderError
// when its API address is unknown (so callers retry until gossip knows it).
func (f *Forwarder) client(nodeID string) (clusterv1connect.ClusterServiceClient, error) {
	addr, ok := f.resolver.APIAddr(nodeID)
	if !ok {
		return nil, fmt.Errorf("%w (API address of leader %q not known to gossip yet)", &cluster.NotLeaderError{LeaderID: nodeID}, nodeID)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.clients[addr]
	if !ok {
		c = NewClient(addr, f.opts)
		f.clients[addr] = c
	}
	return c, nil
}

// ForwardApply calls ClusterService.Apply on leaderID. A response with
// fsm_error comes back as Applied plus a *cluster.FSMError; a not-leader
// answer as *cluster.NotLeaderError (nothing applied); transport errors as
// the Connect error (the command may have been applied).
func (f *Forwarder) ForwardApply(ctx context.Context, leaderID string, cmd []byte) (cluster.Applied, error) {
	c, err := f.client(leaderID)
	if err != nil {
		return cluster.Applied{}, err
	}
	resp, err := c.Apply(ctx, connect.NewRequest(&clusterv1.ApplyRequest{Command: cmd}))
	if err != nil {
		return cluster.Applied{}, fromConnectError(err)
	}
	out := cluster.Applied{Index: resp.Msg.GetIndex(), Response: resp.Msg.GetResponse()}
	if msg := resp.Msg.GetFsmError(); msg != "" {
		return out, &cluster.FSMError{Index: out.Index, Err: errors.New(msg)}
	}
	return out, nil
}

// ForwardReadIndex calls ClusterService.ReadIndex on leaderID.
func (f *Forwarder) ForwardReadIndex(ctx context.Context, leaderID string) (uint64, error) {
	c, err := f.client(leaderID)
	if err != nil {
		return 0, err
	}
	resp, err := c.ReadIndex(ctx, connect.NewRequest(&clusterv1.ReadIndexRequest{}))
	if err != nil {
		return 0, fromConnectError(err)
	}
	return resp.Msg.GetIndex(), nil
}
