package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds from 1 µs to one hour with three
// significant digits (a relative error of at most 0.1 %).
const (
	histMin     = 1
	histMax     = int64(time.Hour / time.Microsecond)
	histSigFigs = 3
)

func newHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histSigFigs) }

// record adds one latency to h, clamped to the histogram's range (a
// latency under 1 µs counts as 1 µs, one over an hour as an hour).
func record(h *hdrhistogram.Histogram, d time.Duration) {
	us := max(int64(d/time.Microsecond), histMin)
	_ = h.RecordValue(min(us, histMax))
}

// Stats summarises one latency distribution, in milliseconds.
type Stats struct {
	// Count is the number of latencies recorded.
	Count int64 `json:"count"`
	// Mean, P50, P90, P99, P999 and Max are in milliseconds; all zero when
	// Count is zero.
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
}

// statsOf reads the percentiles of h. A percentile is the highest value
// that q percent of the recordings are at or below, within the
// histogram's precision.
func statsOf(h *hdrhistogram.Histogram) Stats {
	if h == nil || h.TotalCount() == 0 {
		return Stats{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Stats{
		Count: h.TotalCount(),
		Mean:  h.Mean() / 1000,
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
	}
}

// KindSummary is the share of one kind of operation in a scenario that
// does several (mixed, watch).
type KindSummary struct {
	// Ops counts the kind's successful operations.
	Ops int64 `json:"ops"`
	// Throughput is Ops per second of the run.
	Throughput float64 `json:"ops_per_s"`
	// Latency is the kind's latency distribution.
	Latency Stats `json:"latency"`
}

// PreloadSummary reports a bulk load done before the run.
type PreloadSummary struct {
	// Sessions and Users count what was created.
	Sessions int64 `json:"sessions"`
	Users    int64 `json:"users"`
	// Seconds is the wall time of the load, PerSecond sessions per second.
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"sessions_per_s"`
}

// Summary is the result of one run.
type Summary struct {
	// Scenario names what ran; Params describe how (clients, targets,
	// protocol, consistency, ...), as given.
	Scenario string            `json:"scenario"`
	Params   map[string]string `json:"params,omitempty"`
	// Clients is the number of concurrent clients; Rate the open-loop rate
	// in operations per second (0: closed loop).
	Clients int     `json:"clients"`
	Rate    float64 `json:"rate,omitempty"`
	// Elapsed is the measured time in seconds: from the start of the first
	// operation to the end of the last.
	Elapsed float64 `json:"elapsed_s"`
	// StartedUnixNano is when the measured time began (wall clock), so that
	// a caller sampling the servers' CPU can take the same window.
	StartedUnixNano int64 `json:"started_unix_nano,omitempty"`
	// LoadCPUSeconds is the CPU time (user and system) the load generator
	// itself used during Elapsed, all its clients together: on a machine
	// the servers share with it, what the load cost the machine besides
	// the servers. 0 where the platform does not say.
	LoadCPUSeconds float64 `json:"load_cpu_s,omitempty"`
	// Ops counts successful operations, Errors failed ones.
	Ops    int64 `json:"ops"`
	Errors int64 `json:"errors"`
	// Throughput is Ops per second of Elapsed.
	Throughput float64 `json:"ops_per_s"`
	// Latency is the distribution of successful operations. In an open-loop
	// run (Rate > 0) it is measured from the time the operation was due,
	// not from when it started, so that a stall is not hidden (coordinated
	// omission).
	Latency Stats `json:"latency"`
	// ByKind splits a scenario of several operations (mixed, watch) by kind.
	ByKind map[string]KindSummary `json:"by_kind,omitempty"`
	// ErrorsByCode counts failures by code (a Connect code such as
	// "unavailable", or "transport", "deadline_exceeded", "http_503", or a
	// scenario's own such as "inactive"); ErrorSamples holds the first
	// message seen for each code.
	ErrorsByCode map[string]int64  `json:"errors_by_code,omitempty"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	// Preload reports the bulk load before the run, if any.
	Preload *PreloadSummary `json:"preload,omitempty"`
	// Store is what the targets' state machines wrote during the measured
	// time (pages per operation), when their /metrics could be read.
	Store *StoreSummary `json:"store,omitempty"`
	// Notes are remarks on the run (a pool that ran out, a profile that
	// could not be taken).
	Notes []string `json:"notes,omitempty"`
}

// perSecond is n per second of elapsed, 0 when elapsed is not positive.
func perSecond(n int64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(n) / elapsed.Seconds()
}

// WriteJSON writes s as indented JSON.
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("bench: encode summary: %w", err)
	}
	return nil
}

// WriteText writes s for a human: one block of aligned lines.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario    %s\n", s.Scenario)
	if len(s.Params) > 0 {
		var ps []string
		for _, k := range slices.Sorted(maps.Keys(s.Params)) {
			ps = append(ps, k+"="+s.Params[k])
		}
		fmt.Fprintf(&b, "params      %s\n", strings.Join(ps, " "))
	}
	if p := s.Preload; p != nil {
		fmt.Fprintf(&b, "preload     %d sessions, %d users in %.1fs (%.0f sessions/s)\n", p.Sessions, p.Users, p.Seconds, p.PerSecond)
	}
	mode := "closed loop"
	if s.Rate > 0 {
		mode = fmt.Sprintf("open loop at %.0f/s", s.Rate)
	}
	fmt.Fprintf(&b, "load        %d clients, %s\n", s.Clients, mode)
	fmt.Fprintf(&b, "ops         %d in %.2fs: %.1f/s\n", s.Ops, s.Elapsed, s.Throughput)
	fmt.Fprintf(&b, "latency     %s\n", s.Latency)
	for _, k := range slices.Sorted(maps.Keys(s.ByKind)) {
		ks := s.ByKind[k]
		fmt.Fprintf(&b, "  %-10s %d ops, %.1f/s, %s\n", k, ks.Ops, ks.Throughput, ks.Latency)
	}
	fmt.Fprintf(&b, "errors      %d", s.Errors)
	for _, c := range slices.Sorted(maps.Keys(s.ErrorsByCode)) {
		fmt.Fprintf(&b, "  %s=%d", c, s.ErrorsByCode[c])
	}
	b.WriteString("\n")
	for _, c := range slices.Sorted(maps.Keys(s.ErrorSamples)) {
		fmt.Fprintf(&b, "  %s: %s\n", c, s.ErrorSamples[c])
	}
	if st := s.Store; st != nil && st.Entries > 0 {
		fmt.Fprintf(&b, "store       %.1f pages written per op on %d nodes; %.1f per log entry, %.1f entries per transaction\n",
			st.PagesPerOp, st.Nodes, st.PagesPerEntry, st.EntriesPerTransaction)
	}
	for _, n := range s.Notes {
		fmt.Fprintf(&b, "note        %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// String formats the percentiles in milliseconds.
func (st Stats) String() string {
	if st.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  mean %s",
		fmtMS(st.P50), fmtMS(st.P90), fmtMS(st.P99), fmtMS(st.Max), fmtMS(st.Mean))
}

// fmtMS formats milliseconds with a precision that suits their size.
func fmtMS(ms float64) string {
	switch {
	case ms < 1:
		return fmt.Sprintf("%.3fms", ms)
	case ms < 100:
		return fmt.Sprintf("%.2fms", ms)
	default:
		return fmt.Sprintf("%.0fms", ms)
	}
}
