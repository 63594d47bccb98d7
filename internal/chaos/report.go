package chaos

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Fault is one fault the nemesis injected, from when it began to when it
// was healed (for a membership change: while the change was being made).
type Fault struct {
	// Type is kill, pause, partition, join, remove or replace, with a
	// suffix for variants (kill-leader, partition-halves, ...).
	Type string `json:"type"`
	// Target names the nodes concerned.
	Target string `json:"target"`
	// Start and End are times since the run's start.
	Start time.Duration `json:"start"`
	End   time.Duration `json:"end"`
	// Outcome says how a membership change ended (done, refused: why).
	Outcome string `json:"outcome,omitempty"`
}

// Outage is the longest stretch without a successful write or
// LINEARIZABLE read attributed to one fault type.
type Outage struct {
	// Longest is its length; Start when it began.
	Longest time.Duration `json:"longest"`
	Start   time.Duration `json:"start"`
	// Fault is the fault it overlapped ("" for type none).
	Fault string `json:"fault,omitempty"`
	// Count is how many faults of the type were injected.
	Count int `json:"count"`
}

// NoFault is the Unavailability key of stretches that overlap no fault.
const NoFault = "none"

// Unavailability returns, per fault type, the longest stretch of [from, to]
// in which no write and no LINEARIZABLE read succeeded (between two
// successive answers of any client), attributed to the faults whose window
// (the fault and the grace period after it, cut short where the next fault
// begins) it overlaps most: any fault overlapping it at least half as long
// as the one overlapping it longest. Stretches that overlap no fault are
// under NoFault. Faults outside [from, to] are ignored.
func Unavailability(ops []Op, faults []Fault, from, to, grace time.Duration) map[string]Outage {
	var ok []time.Duration
	for _, op := range ops {
		if op.Outcome == OK && !op.Final && (op.Kind.IsWrite() || op.Level == Linearizable) && op.Return >= from && op.Return <= to {
			ok = append(ok, op.Return)
		}
	}
	slices.Sort(ok)
	points := append(append([]time.Duration{from}, ok...), to)
	// A fault's grace ends where the next fault begins.
	faults = slices.DeleteFunc(slices.Clone(faults), func(f Fault) bool { return f.Start > to || f.End < from })
	slices.SortStableFunc(faults, func(a, b Fault) int { return cmp.Compare(a.Start, b.Start) })
	until := make([]time.Duration, len(faults))
	for i, f := range faults {
		until[i] = f.End + grace
		for _, next := range faults[i+1:] {
			if next.Start >= f.End {
				until[i] = min(until[i], max(next.Start, f.End))
				break
			}
		}
	}
	out := map[string]Outage{}
	for _, f := range faults {
		o := out[f.Type]
		o.Count++
		out[f.Type] = o
	}
	overlap := make([]time.Duration, len(faults))
	for i := 1; i < len(points); i++ {
		a, b := points[i-1], points[i]
		gap := b - a
		most := time.Duration(-1)
		for j, f := range faults {
			overlap[j] = min(b, until[j]) - max(a, f.Start)
			most = max(most, overlap[j])
		}
		// The gap is the doing of the faults it overlaps most (nested
		// faults share it).
		hit := false
		for j, f := range faults {
			if overlap[j] < 0 || overlap[j] < most/2 {
				continue
			}
			hit = true
			if o := out[f.Type]; gap > o.Longest {
				o.Longest, o.Start, o.Fault = gap, a, fmt.Sprintf("%s %s at %s", f.Type, f.Target, f.Start.Round(time.Millisecond))
				out[f.Type] = o
			}
		}
		if o := out[NoFault]; !hit && gap > o.Longest {
			o.Longest, o.Start = gap, a
			out[NoFault] = o
		}
	}
	return out
}

// Report is the outcome of one run: printed as a table and written as JSON.
type Report struct {
	// Seed replays the run's schedule (CHAOS_SEED); Duration is how long
	// the nemesis ran.
	Seed     int64         `json:"seed"`
	Duration time.Duration `json:"duration"`
	// DefaultBound is the bound DEFAULT reads were held to.
	DefaultBound time.Duration `json:"default_bound"`
	// Nodes lists every node that ran, in order of creation.
	Nodes []string `json:"nodes"`
	// Ops counts operations by kind (and level) and outcome.
	Ops map[string]map[string]int `json:"ops"`
	// Faults lists what the nemesis did.
	Faults []Fault `json:"faults"`
	// Unavailability is the longest outage per fault type.
	Unavailability map[string]Outage `json:"unavailability"`
	// Result holds the checks' findings.
	Result *Result `json:"result"`
	// Counts summarises the anomalies per check.
	Counts map[string]int `json:"counts"`
	// Notes are remarks of the run (refused membership changes, requests
	// that hit the client's deadline, ...).
	Notes []string `json:"notes,omitempty"`
}

// NewReport summarises a checked history.
func NewReport(seed int64, duration time.Duration, cfg CheckConfig, ops []Op, faults []Fault, res *Result) *Report {
	r := &Report{Seed: seed, Duration: duration, DefaultBound: cfg.DefaultBound, Ops: map[string]map[string]int{},
		Faults: faults, Result: res, Counts: map[string]int{}}
	for _, op := range ops {
		k := string(op.Kind)
		if op.Level != "" {
			k += "/" + string(op.Level)
		}
		if op.Final {
			k = "final " + k
		}
		if r.Ops[k] == nil {
			r.Ops[k] = map[string]int{}
		}
		r.Ops[k][op.Outcome.String()]++
	}
	for _, c := range []string{CheckLinearizable, CheckDefaultBound, CheckNeverExisted, CheckLost, CheckDiverged, CheckIndex, CheckRegression} {
		r.Counts[c] = res.Count(c)
	}
	return r
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// WriteTable prints the report for people: the checks, the unavailability
// per fault type, the operations, and the first anomalies of each check.
func (r *Report) WriteTable(w io.Writer, maxPerCheck int) {
	res := r.Result
	fmt.Fprintf(w, "chaos: seed %d, %s of faults, %d faults, nodes %s\n", r.Seed, r.Duration, len(r.Faults), strings.Join(r.Nodes, " "))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tFOUND\t")
	fmt.Fprintf(tw, "linearizability (porcupine, writes + LINEARIZABLE reads)\t%d of %d users not linearizable, %d undecided\t\n", len(res.Illegal), res.Users, len(res.Unknown))
	fmt.Fprintf(tw, "LINEARIZABLE reads missing an acknowledged write\t%d\t\n", r.Counts[CheckLinearizable])
	fmt.Fprintf(tw, "DEFAULT reads staler than %s\t%d (worst %s)\t\n", r.DefaultBound, r.Counts[CheckDefaultBound], res.MaxDefaultStaleness.Round(time.Millisecond))
	fmt.Fprintf(tw, "states that never existed (any level)\t%d\t\n", r.Counts[CheckNeverExisted])
	fmt.Fprintf(tw, "acknowledged writes lost (final reads on every node)\t%d (of %d final reads)\t\n", r.Counts[CheckLost], res.Verified)
	fmt.Fprintf(tw, "nodes disagreeing after catch-up\t%d\t\n", r.Counts[CheckDiverged])
	fmt.Fprintf(tw, "answers whose index is not the applied index\t%d\t\n", r.Counts[CheckIndex])
	fmt.Fprintf(tw, "per-node regressions (allowed at STALE)\t%d\t\n", r.Counts[CheckRegression])
	_ = tw.Flush()

	fmt.Fprintln(w, "\nlongest unavailability (no write or LINEARIZABLE read succeeded), per fault type:")
	types := make([]string, 0, len(r.Unavailability))
	for t := range r.Unavailability {
		types = append(types, t)
	}
	sort.Strings(types)
	fmt.Fprintln(tw, "FAULT\tCOUNT\tLONGEST\tWHEN\t")
	for _, t := range types {
		o := r.Unavailability[t]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t\n", t, o.Count, o.Longest.Round(time.Millisecond), o.Fault)
	}
	_ = tw.Flush()

	fmt.Fprintln(w, "\noperations (outcomes):")
	kinds := make([]string, 0, len(r.Ops))
	for k := range r.Ops {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(tw, "%s\tok %d\tfailed %d\tunknown %d\t\n", k, r.Ops[k]["ok"], r.Ops[k]["failed"], r.Ops[k]["unknown"])
	}
	_ = tw.Flush()
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	shown := map[string]int{}
	for _, a := range res.Anomalies {
		if shown[a.Check]++; shown[a.Check] <= maxPerCheck {
			fmt.Fprintf(w, "anomaly %s at %s: %s\n", a.Check, a.At.Round(time.Millisecond), a.Detail)
		}
	}
	for c, n := range shown {
		if n > maxPerCheck {
			fmt.Fprintf(w, "... %d more %s anomalies in the JSON report\n", n-maxPerCheck, c)
		}
	}
}
