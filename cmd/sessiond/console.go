package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"

	"github.com/sessiond/sessiond/api/console"
	"github.com/sessiond/sessiond/authsvc/auditlog"
)

// Bounds of the node's audit ring (auditlog): the latest 10,000 events,
// at most 8 MiB.
const (
	auditRingEvents = 10000
	auditRingBytes  = 8 << 20
)

// auditLog is the node's audit logger: its lines go to the node's log and
// into its audit ring (for QueryAudit and the console's Audit page).
func (n *node) auditLog() *slog.Logger {
	if n.auditRing == nil {
		return n.log.With("component", "audit")
	}
	return slog.New(n.auditRing.Handler(n.log.Handler())).With("component", "audit")
}

// ConsoleConfig configures the operator console (console:, docs/console.md).
type ConsoleConfig struct {
	// Off stops serving /console/ on this node (the API procedures it
	// calls stay, behind their caller rules).
	Off bool `yaml:"off"`
	// Origins are origins (https://ops.example.com) besides the node's own
	// whose pages may send the console's requests: the address a
	// TLS-terminating proxy serves the console at.
	Origins []string `yaml:"origins"`
}

// validate reports every bad console setting.
func (c ConsoleConfig) validate() []error {
	var errs []error
	for _, o := range c.Origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("console.origins %q: want scheme://host[:port], e.g. https://ops.example.com", o))
		}
	}
	return errs
}

// consoleRoutes mounts the operator console (api/console). Its calls reach
// the API through the caller-authentication layer as the console user, so
// every procedure it calls keeps its caller rule (callers.go).
func (n *node) consoleRoutes(mux *routeMux) {
	if n.cfg.Console.Off {
		return
	}
	console.Register(mux, console.Options{
		Origins: n.cfg.Console.Origins,
		Auth:    n.auth,
		API: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.api == nil {
				http.Error(w, "starting", http.StatusServiceUnavailable)
				return
			}
			n.api.ServeHTTP(w, r)
		}),
		TLS:  n.tls != nil && n.apiTLS() != nil,
		Node: n.cfg.NodeID, Region: n.cfg.Region,
		Log: n.auditLog(),
	})
}

// Report kinds this node answers for other nodes (cluster.Node.AskAll).
const reportAudit = "audit"

// report answers PeerService.Report: this node's own audit events.
func (n *node) report(_ context.Context, kind string, query []byte) ([]byte, error) {
	switch kind {
	case reportAudit:
		var q auditlog.Query
		if err := json.Unmarshal(query, &q); err != nil {
			return nil, fmt.Errorf("audit query: %w", err)
		}
		if q.Limit <= 0 || q.Limit > 2000 {
			q.Limit = 2000
		}
		return json.Marshal(n.auditRing.Query(q))
	case reportMetrics:
		return n.metricsReport()
	}
	return nil, fmt.Errorf("unknown report %q", kind)
}

// nodeAudit answers QueryAudit from this node's ring or every node's.
type nodeAudit struct{ n *node }

func (a nodeAudit) QueryAudit(ctx context.Context, q auditlog.Query, cluster bool) ([]auditlog.Event, []string, error) {
	if a.n.auditRing == nil {
		return nil, nil, errors.New("no audit ring")
	}
	if !cluster || a.n.raft == nil {
		return a.n.auditRing.Query(q), nil, nil
	}
	raw, _ := json.Marshal(q)
	answers, missing := a.n.raft.AskAll(ctx, reportAudit, raw)
	lists := make([][]auditlog.Event, 0, len(answers))
	for id, b := range answers {
		var l []auditlog.Event
		if err := json.Unmarshal(b, &l); err != nil {
			missing = append(missing, id)
			continue
		}
		lists = append(lists, l)
	}
	slices.Sort(missing)
	return auditlog.Merge(q.Limit, lists...), missing, nil
}
