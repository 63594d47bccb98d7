package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sessiond/sessiond/api/authhttp"
	"github.com/sessiond/sessiond/api/authrpc"
	"github.com/sessiond/sessiond/api/callerauth"
	"github.com/sessiond/sessiond/api/clusterrpc"
	"github.com/sessiond/sessiond/api/gateway"
	"github.com/sessiond/sessiond/api/httplimit"
	"github.com/sessiond/sessiond/api/openapi"
	"github.com/sessiond/sessiond/api/operatorrpc"
	"github.com/sessiond/sessiond/api/sessionrpc"
	"github.com/sessiond/sessiond/authsvc/callers"
	"github.com/sessiond/sessiond/clients/go/connectjson"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1/authv1connect"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1/clusterv1connect"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/operator/v1/operatorv1connect"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1/sessionv1connect"
)

// routes builds the node's HTTP handler: the Connect services (Connect,
// gRPC and gRPC-Web on one port), the HTTP/JSON auth routes, health and
// metrics, behind the request limits (limits.go) and the
// caller-authentication middleware (callers.go says who may call what).
func (n *node) routes() http.Handler {
	mux, routes := n.mux()
	// Limits first (before anything reads a header's worth of work), then
	// who is calling, then the routes.
	n.api = callerauth.New(n.newAuthenticator(), routes, n.auditLog(), mux)
	return httplimit.New(n.cfg.Limits.httplimit(), n.refuseWhenRemoved(n.api))
}

// routeMux is an http.ServeMux that remembers the patterns it was given, so
// a test can compare the served routes with api/openapi/openapi.yaml.
type routeMux struct {
	*http.ServeMux
	patterns []string
	// count, if set, wraps the handlers of HandleFunc (request counters).
	count func(pattern string, h http.HandlerFunc) http.HandlerFunc
}

// Handle registers h for pattern.
func (m *routeMux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

// HandleFunc registers h for pattern.
func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.patterns = append(m.patterns, pattern)
	if m.count != nil {
		h = m.count(pattern, h)
	}
	m.ServeMux.HandleFunc(pattern, h)
}

// mux builds the node's routes (before caller authentication) and their
// caller rules.
func (n *node) mux() (*routeMux, callerauth.Routes) {
	mux := &routeMux{ServeMux: http.NewServeMux(), count: n.httpCount}
	routes := n.callerRoutes()
	audit := callerauth.Audit(routes, n.auditLog())
	// Small answers (every check) are not worth gzip: compressing a 300-byte
	// CheckToken response cost a third of the CPU of a check; login and
	// refresh answers (about 1.2 KB) are mostly tokens, which barely
	// compress.
	// JSON is snake_case on Connect as on the HTTP routes (connectjson).
	metrics := connect.WithHandlerOptions(connect.WithInterceptors(n.rpcMetrics(), audit), connect.WithCompressMinBytes(4096), connectjson.Option(),
		n.cfg.Limits.connectLimits())

	mux.Handle(clusterrpc.NewHandler(n.raft, clusterrpc.Options{
		HandlerOptions: []connect.HandlerOption{metrics}, Backups: n.st,
	}))
	n.operatorRoutes(mux)
	// Over TLS the refresh cookie is __Host- prefixed; a plaintext dev API
	// keeps the plain name (browsers refuse __Host- cookies without TLS).
	cookie := authrpc.Cookie{HostPrefix: n.tls != nil && n.apiTLS() != nil, Origins: n.cfg.Auth.CookieOrigins}
	mux.Handle(authrpc.NewHandler(n.auth, authrpc.Options{
		CookieAlways: n.cfg.Auth.RefreshCookie, Cookie: cookie, HandlerOptions: []connect.HandlerOption{metrics},
	}))
	mux.Handle(authrpc.NewAdminHandler(n.auth, n.oidcClients(), metrics))
	mux.Handle(authrpc.NewPreloadHandler(n.auth, metrics))
	mux.Handle(operatorrpc.NewHandler(n.auth, nodeAudit{n}, metrics))
	mux.Handle(sessionrpc.NewHandler(n.auth, n.raft, n.events, sessionrpc.Options{
		Streams: callers.NewStreamCaps(n.cfg.Auth.Callers.MaxWatchStreams, n.cfg.Auth.Callers.MaxWatchStreamsPerClient),
		Done:    n.stopping, HandlerOptions: []connect.HandlerOption{metrics},
	}))
	op := n.registerOIDC(mux)
	authhttp.Register(mux, n.auth, authhttp.Options{CookieAlways: n.cfg.Auth.RefreshCookie, Cookie: cookie,
		MaxBodyBytes: n.cfg.Limits.MaxBodyBytes, PasswordGrant: n.cfg.Auth.PasswordGrant, JWTAccessTokens: n.cfg.Auth.JWTAccessTokens,
		Metadata: op.Metadata, ExtraJWKs: op.JWKS})
	n.upstreamRoutes(mux, cookie)
	gateway.Register(mux, n.auth, n.raft, gateway.Options{MaxAge: n.cfg.Auth.Gateway.MaxAge, HandlerOptions: []connect.HandlerOption{metrics}})

	services := []string{clusterv1connect.ClusterServiceName, authv1connect.AuthServiceName,
		authv1connect.UserAdminServiceName, sessionv1connect.SessionServiceName, operatorv1connect.OperatorServiceName,
		gateway.AuthorizationServiceName}
	reflector := grpcreflect.NewStaticReflector(append(services, grpchealth.HealthV1ServiceName)...)
	limits := n.cfg.Limits.connectLimits()
	mux.Handle(grpcreflect.NewHandlerV1(reflector, limits))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, limits))
	mux.Handle(grpchealth.NewHandler(healthChecker{n: n, services: services}, limits))

	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeHealth(w, http.StatusOK, map[string]any{"status": "ok", "node": n.raft.ID()})
	})
	mux.HandleFunc("GET /readyz", n.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg}))
	mux.Handle("GET "+openapi.Path, openapi.Handler())
	n.consoleRoutes(mux)
	// Telegram's webhook authenticates with its secret token header (bot.go).
	mux.HandleFunc("POST "+telegramWebhookPath, n.telegramWebhook)
	return mux, routes
}

// readiness says whether the node has a leader and has applied what it
// knows is committed, and why not.
func (n *node) readiness() (status string, ready bool) {
	leader, _ := n.raft.Leader()
	switch {
	case n.raft.Removed():
		return "removed from the cluster", false
	case leader == "":
		return "no leader", false
	case !n.raft.CaughtUp():
		return "catching up after start (has not yet applied what the leader had committed)", false
	case n.raft.AppliedIndex() < n.raft.CommitIndex():
		return "catching up", false
	}
	return "ready", true
}

// readyz answers 200 when the node has a leader, has caught up since it
// started (applied a read index learned from the leader) and has applied
// what it knows is committed, else 503 with the reason.
func (n *node) readyz(w http.ResponseWriter, _ *http.Request) {
	leader, _ := n.raft.Leader()
	status, ok := n.readiness()
	body := map[string]any{"node": n.raft.ID(), "leader": leader, "applied_index": n.raft.AppliedIndex(),
		"commit_index": n.raft.CommitIndex(), "status": status, "cluster_id": n.raft.ClusterID()}
	if ok {
		writeHealth(w, http.StatusOK, body)
	} else {
		writeHealth(w, http.StatusServiceUnavailable, body)
	}
}

// healthChecker answers the gRPC health service (grpc.health.v1.Health):
// SERVING when the node is ready (as /readyz), NOT_SERVING otherwise, for
// the whole server ("") and each of its services; NotFound for others.
type healthChecker struct {
	n        *node
	services []string
}

func (h healthChecker) Check(_ context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	if req.Service != "" && !slices.Contains(h.services, req.Service) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("unknown service %q", req.Service))
	}
	if _, ok := h.n.readiness(); ok {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
}

func writeHealth(w http.ResponseWriter, status int, body map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	body["time"] = time.Now().UTC().Format(time.RFC3339Nano)
	_ = json.NewEncoder(w).Encode(body)
}
