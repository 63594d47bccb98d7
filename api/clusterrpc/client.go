package clusterrpc

import (
	"net/http"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1/clusterv1connect"
)

// ClientOptions configures a ClusterService client.
type ClientOptions struct {
	// Token is an operator token sent as a bearer token; empty sends none
	// (the HTTP client's certificate authenticates the caller).
	Token string
	// HTTPClient carries the calls; nil means http.DefaultClient.
	HTTPClient connect.HTTPClient
	// Scheme is "http" (default) or "https".
	Scheme string
}

// NewClient returns a ClusterService client for the node at apiAddr
// (host:port) that sends opts.Token (for the CLI and tests).
func NewClient(apiAddr string, opts ClientOptions) clusterv1connect.ClusterServiceClient {
	hc := opts.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	scheme := opts.Scheme
	if scheme == "" {
		scheme = "http"
	}
	return clusterv1connect.NewClusterServiceClient(hc, scheme+"://"+apiAddr, WithBearer(opts.Token))
}
