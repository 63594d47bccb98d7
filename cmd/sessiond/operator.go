package main

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/sessiond/sessiond/api/callerauth"
	"github.com/sessiond/sessiond/authsvc/callers"
)

// Operator-only HTTP routes on the client API, behind the caller
// authentication like ClusterService: the rule in callerRoutes
// (operatorRouteRule: scope admin, audited) and, in the handler,
// operatorOnly's check of the same scope:
//
//	GET /debug/pprof/...      net/http/pprof (no cmdline: argv may hold a DSN);
//	                          ?seconds is at most maxProfileSeconds
//	GET /debug/config         the node's effective configuration, secrets redacted
//
// `sessiond debug bundle` collects them with the status and the metrics.

// maxProfileSeconds bounds a CPU profile or trace asked for over HTTP.
const maxProfileSeconds = 60

// operatorRoutePrefix covers every operator-only HTTP route.
const operatorRoutePrefix = "/debug/"

// operatorRouteRule is the caller-authentication rule of those routes.
var operatorRouteRule = callerauth.Rule{Scope: callers.ScopeAdmin, Audit: true}

// operatorOnly refuses a caller without the admin scope (checked again
// here, so that a route mounted without the middleware stays closed).
func (n *node) operatorOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := callers.Require(r.Context(), operatorRouteRule.Scope); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// operatorRoutes mounts the operator-only HTTP routes on mux.
func (n *node) operatorRoutes(mux *routeMux) {
	bounded := func(h http.HandlerFunc) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s := r.URL.Query().Get("seconds"); s != "" {
				if v, err := strconv.Atoi(s); err != nil || v < 1 || v > maxProfileSeconds {
					http.Error(w, "seconds: want 1-"+strconv.Itoa(maxProfileSeconds), http.StatusBadRequest)
					return
				}
			}
			h(w, r)
		})
	}
	mux.Handle("GET /debug/pprof/", n.operatorOnly(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/profile", n.operatorOnly(bounded(pprof.Profile)))
	mux.Handle("GET /debug/pprof/trace", n.operatorOnly(bounded(pprof.Trace)))
	mux.Handle("GET /debug/pprof/symbol", n.operatorOnly(http.HandlerFunc(pprof.Symbol)))
	mux.Handle("GET /debug/config", n.operatorOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		_ = enc.Encode(n.cfg.redacted())
	})))
}

// refuseWhenRemoved answers every request but /healthz, /readyz and
// /metrics with 503 once the node learned it was removed from the cluster,
// so that clients and load balancers move to another node.
func (n *node) refuseWhenRemoved(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.raft.Removed() {
			switch r.URL.Path {
			case "/healthz", "/readyz", "/metrics":
			default:
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": "unavailable",
					"message": "node " + n.raft.ID() + " was removed from the cluster: use another node"})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// onRemoved runs when the node learns it was removed: it leaves gossip, so
// that no member lists it any more.
func (n *node) onRemoved() {
	n.log.Warn("removed from the cluster: leaving gossip; /readyz now says so and client calls are refused")
	if n.gossip != nil {
		_ = n.gossip.Leave(2 * time.Second)
		_ = n.gossip.Shutdown()
	}
}

const redactedValue = "<redacted>"

var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('[^']*'|\S+)`)

// redacted returns the configuration with every secret value replaced:
// notifier tokens and secrets, service clients' secret hashes, passwords
// in the database URL and query strings of URLs. The key-encryption and
// gossip keys are never in Config's exported fields.
func (c Config) redacted() Config {
	r := c
	red := func(s *string) {
		if *s != "" {
			*s = redactedValue
		}
	}
	red(&r.Auth.Notify.TelegramBotToken)
	red(&r.Auth.Notify.WebhookSecret)
	if u, err := url.Parse(r.Auth.Notify.WebhookURL); err == nil && u.RawQuery != "" {
		u.RawQuery = redactedValue
		r.Auth.Notify.WebhookURL = u.String()
	}
	if r.DatabaseURL != "" {
		if u, err := url.Parse(r.DatabaseURL); err == nil && u.Scheme != "" {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), redactedValue)
			}
			q := u.Query()
			if q.Has("password") {
				q.Set("password", redactedValue)
				u.RawQuery = q.Encode()
			}
			r.DatabaseURL = u.String()
		} else {
			r.DatabaseURL = dsnPassword.ReplaceAllString(r.DatabaseURL, "${1}"+redactedValue)
		}
	}
	r.Auth.ServiceClients = append([]ServiceClient(nil), c.Auth.ServiceClients...)
	for i := range r.Auth.ServiceClients {
		red(&r.Auth.ServiceClients[i].SecretHash)
	}
	r.Auth.OIDC.Clients = append([]OIDCClientConfig(nil), c.Auth.OIDC.Clients...)
	for i := range r.Auth.OIDC.Clients {
		red(&r.Auth.OIDC.Clients[i].SecretHash)
	}
	return r
}
