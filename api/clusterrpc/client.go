package clusterrpc

import (
	"net/http"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/proto/gen/sessiond/cluster/v1/clusterv1connect"
)

// ClientOptions configures a ClusterService client.
type ClientOptions struct {
	// Secret is the cluster secret sent as a bearer token. Required.
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
	return clusterv1connect.NewClusterServiceClient(hc, scheme+"://"+apiAddr, WithClusterSecret(opts.Secret))
}
