package main

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessiond/sessiond/api/operatorrpc"
	"github.com/sessiond/sessiond/store"
)

// The console's charts: every node samples its own counters every
// sampleStep and keeps the last sampleKeep samples (30 minutes) as rates
// per minute; the Metrics call asks every node (cluster.Node.AskAll) and
// sums by region.
const (
	sampleStep = 10 * time.Second
	sampleKeep = 180
	// reportMetrics is the report kind of a node's samples.
	reportMetrics = "metrics"
)

// chartSeries are the charts, in order: name, title, unit. Counts are per
// minute; revocation_latency_ms is the mean, over the revocations this node
// applied in a step, of apply time minus the proposer's stamp (the time a
// revocation took to take effect here; nodes' clocks are assumed in step).
var chartSeries = [][3]string{
	{"logins", "Logins", "per minute"},
	{"refreshes", "Refreshes", "per minute"},
	{"checks", "Token and session checks", "per minute"},
	{"errors", "Errors and refusals", "per minute"},
	{"revocation_latency_ms", "Revocation latency", "ms, mean"},
}

// nodeSampler keeps one node's recent rates.
type nodeSampler struct {
	mu     sync.Mutex
	prev   map[string]float64
	series map[string][]float64
	latSum float64
	latN   int
}

func newSampler() *nodeSampler {
	return &nodeSampler{series: map[string][]float64{}}
}

// observe records how long each applied revocation took to reach this node.
func (s *nodeSampler) observe(changes []store.Change, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range changes {
		if c.ProposedUnixNano > 0 && c.Kind != store.ChangeSessionExpired { // an expiry revokes nothing
			if d := now.UnixNano() - c.ProposedUnixNano; d >= 0 {
				s.latSum += float64(d) / 1e6
				s.latN++
			}
		}
	}
}

// sample turns counter totals into per-minute rates since the last sample.
func (s *nodeSampler) sample(totals map[string]float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	push := func(name string, v float64) {
		l := append(s.series[name], v)
		if len(l) > sampleKeep {
			l = l[len(l)-sampleKeep:]
		}
		s.series[name] = l
	}
	if s.prev != nil {
		for _, c := range chartSeries[:4] {
			d := totals[c[0]] - s.prev[c[0]]
			if d < 0 {
				d = 0
			}
			push(c[0], d*float64(time.Minute/sampleStep))
		}
		lat := 0.0
		if s.latN > 0 {
			lat = s.latSum / float64(s.latN)
		}
		push("revocation_latency_ms", lat)
	}
	s.prev, s.latSum, s.latN = totals, 0, 0
}

// snapshot returns a copy of the series.
func (s *nodeSampler) snapshot() map[string][]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]float64, len(s.series))
	for k, v := range s.series {
		out[k] = append([]float64(nil), v...)
	}
	return out
}

// run samples until ctx ends.
func (s *nodeSampler) run(ctx context.Context, totals func() map[string]float64) {
	t := time.NewTicker(sampleStep)
	defer t.Stop()
	s.sample(totals())
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sample(totals())
		}
	}
}

// counterTotals reads the node's counters by chart: successful logins,
// refreshes and token checks from the auth service (every door's, the
// counts the bot's /authstatus reads too), errors from the request
// counters (every non-OK Connect code, every HTTP auth status from 400).
func (n *node) counterTotals() map[string]float64 {
	out := map[string]float64{}
	if n.auth != nil {
		c := n.auth.Counts()
		out["logins"], out["refreshes"], out["checks"] = float64(c.Logins), float64(c.Refreshes), float64(c.Checks)
	}
	fams, err := n.reg.Gather()
	if err != nil {
		return out
	}
	for _, f := range fams {
		switch f.GetName() {
		case "sessiond_rpc_requests_total":
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "code" && l.GetValue() != "ok" {
						out["errors"] += m.GetCounter().GetValue()
					}
				}
			}
		case "sessiond_http_requests_total":
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if code, _ := strconv.Atoi(l.GetValue()); l.GetName() == "code" && code >= 400 {
						out["errors"] += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	return out
}

// httpCounter counts the plain HTTP auth routes (sessiond_http_requests_total
// by route pattern and status), for the console's charts.
func httpCounter(reg *prometheus.Registry) func(pattern string, h http.HandlerFunc) http.HandlerFunc {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sessiond", Name: "http_requests_total",
		Help: "Plain HTTP auth requests by route and status."}, []string{"route", "code"})
	reg.MustRegister(c)
	return func(pattern string, h http.HandlerFunc) http.HandlerFunc {
		if !strings.HasPrefix(pattern, "POST /auth/") {
			return h
		}
		return func(w http.ResponseWriter, r *http.Request) {
			sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
			h(sw, r)
			c.WithLabelValues(pattern, strconv.Itoa(sw.code)).Inc()
		}
	}
}

// statusWriter remembers the status an auth route answered.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// clusterCharts asks every node for its samples and combines them by
// region.
func (n *node) clusterCharts(ctx context.Context) ([]operatorrpc.Series, []string) {
	if n.raft == nil {
		return nil, nil
	}
	answers, missing := n.raft.AskAll(ctx, reportMetrics, nil)
	type nodeReport struct {
		Region string               `json:"region"`
		Series map[string][]float64 `json:"series"`
	}
	byRegion := map[string][]nodeReport{}
	var regions []string
	for id, b := range answers {
		var r nodeReport
		if err := json.Unmarshal(b, &r); err != nil {
			missing = append(missing, id)
			continue
		}
		if _, ok := byRegion[r.Region]; !ok {
			regions = append(regions, r.Region)
		}
		byRegion[r.Region] = append(byRegion[r.Region], r)
	}
	slices.Sort(regions)
	slices.Sort(missing)
	var out []operatorrpc.Series
	for _, c := range chartSeries {
		for _, region := range regions {
			var pts []float64
			for _, r := range byRegion[region] {
				s := r.Series[c[0]]
				// Align on the newest sample.
				if len(s) > len(pts) {
					pts = append(make([]float64, len(s)-len(pts)), pts...)
				}
				off := len(pts) - len(s)
				for i, v := range s {
					if c[0] == "revocation_latency_ms" {
						pts[off+i] = max(pts[off+i], v)
					} else {
						pts[off+i] += v
					}
				}
			}
			out = append(out, operatorrpc.Series{Name: c[0], Title: c[1], Unit: c[2], Region: region, Points: pts})
		}
	}
	return out, missing
}

// metricsReport is this node's answer to a metrics report question.
func (n *node) metricsReport() ([]byte, error) {
	return json.Marshal(struct {
		Region string               `json:"region"`
		Series map[string][]float64 `json:"series"`
	}{n.cfg.Region, n.sampler.snapshot()})
}

// Charts answers OperatorService.Metrics.
func (a nodeAudit) Charts(ctx context.Context) (time.Duration, []operatorrpc.Series, []string) {
	series, missing := a.n.clusterCharts(ctx)
	return sampleStep, series, missing
}
