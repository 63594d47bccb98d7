package main

import (
	"encoding/json"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sessiond/sessiond/api/authhttp"
	"github.com/sessiond/sessiond/api/authrpc"
	"github.com/sessiond/sessiond/api/clusterrpc"
	"github.com/sessiond/sessiond/api/sessionrpc"
	"github.com/sessiond/sessiond/proto/gen/sessiond/auth/v1/authv1connect"
	"github.com/sessiond/sessiond/proto/gen/sessiond/cluster/v1/clusterv1connect"
	"github.com/sessiond/sessiond/proto/gen/sessiond/session/v1/sessionv1connect"
)

// routes builds the node's HTTP handler: the Connect services (Connect,
// gRPC and gRPC-Web on one port), the HTTP/JSON auth routes, health and
// metrics.
func (n *node) routes() http.Handler {
	mux := http.NewServeMux()
	// Small answers (every check) are not worth gzip: compressing a 300-byte
	// CheckToken response cost a third of the CPU of a check.
	metrics := connect.WithHandlerOptions(connect.WithInterceptors(n.rpcMetrics()), connect.WithCompressMinBytes(1024))
	secret := connect.WithInterceptors(clusterrpc.RequireSecret(n.secret))

	mux.Handle(clusterrpc.NewHandler(n.raft, n.gossip, clusterrpc.Options{
		Secret: n.secret, HTTPClient: peerClient(), HandlerOptions: []connect.HandlerOption{metrics},
	}))
	mux.Handle(authrpc.NewHandler(n.auth, authrpc.Options{
		CookieAlways: n.cfg.Auth.RefreshCookie, HandlerOptions: []connect.HandlerOption{metrics},
	}))
	mux.Handle(authrpc.NewAdminHandler(n.auth, metrics, secret))
	mux.Handle(authrpc.NewPreloadHandler(n.auth, metrics, secret))
	clients := make([]authhttp.ServiceClient, 0, len(n.cfg.Auth.ServiceClients))
	for _, c := range n.cfg.Auth.ServiceClients {
		clients = append(clients, authhttp.ServiceClient{ID: c.ID, SecretHash: c.SecretHash, Scopes: c.Scopes})
	}
	mux.Handle(sessionrpc.NewHandler(n.auth, n.raft, n.events, sessionrpc.Options{
		Admin: authhttp.NewClientAuth(clients, n.hasher, n.secret), Done: n.stopping, HandlerOptions: []connect.HandlerOption{metrics},
	}))
	authhttp.Register(mux, n.auth, authhttp.Options{CookieAlways: n.cfg.Auth.RefreshCookie, Clients: clients, Hasher: n.hasher})

	reflector := grpcreflect.NewStaticReflector(
		clusterv1connect.ClusterServiceName, authv1connect.AuthServiceName,
		authv1connect.UserAdminServiceName, sessionv1connect.SessionServiceName,
	)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))

	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeHealth(w, http.StatusOK, map[string]any{"status": "ok", "node": n.raft.ID()})
	})
	mux.HandleFunc("GET /readyz", n.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg}))
	return mux
}

// peerClient is the HTTP client of node-to-node calls (forwarded writes,
// read-index). Followers forward many writes at once: keep enough idle
// connections to the leader that each does not pay a new TCP handshake
// (http.DefaultTransport keeps two per host).
func peerClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 512
	t.MaxIdleConnsPerHost = 256
	return &http.Client{Transport: t}
}

// readyz answers 200 when the node has a leader and has applied what it
// knows is committed, else 503 with the reason.
func (n *node) readyz(w http.ResponseWriter, _ *http.Request) {
	leader, _ := n.raft.Leader()
	applied, commit := n.raft.AppliedIndex(), n.raft.CommitIndex()
	body := map[string]any{"node": n.raft.ID(), "leader": leader, "applied_index": applied, "commit_index": commit}
	switch {
	case leader == "":
		body["status"] = "no leader"
		writeHealth(w, http.StatusServiceUnavailable, body)
	case applied < commit:
		body["status"] = "catching up"
		writeHealth(w, http.StatusServiceUnavailable, body)
	default:
		body["status"] = "ready"
		writeHealth(w, http.StatusOK, body)
	}
}

func writeHealth(w http.ResponseWriter, status int, body map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	body["time"] = time.Now().UTC().Format(time.RFC3339Nano)
	_ = json.NewEncoder(w).Encode(body)
}
