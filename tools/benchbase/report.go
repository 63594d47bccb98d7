package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report is everything one `benchbase cluster` run measured: results.json.
type report struct {
	Started        time.Time                    `json:"started"`
	Config         map[string]string            `json:"config"`
	Systems        map[string]map[string]string `json:"systems"`
	Measurements   []measurement                `json:"measurements"`
	RedisBenchmark map[string]float64           `json:"redis_benchmark,omitempty"`
	Nodes          []nodeFact                   `json:"sessiond_nodes"`
	Rows           []tableRow                   `json:"rows"`
	Notes          []string                     `json:"notes,omitempty"`
}

// tableRow is one computed line of the table.
type tableRow struct {
	Key   string `json:"key"`
	Title string `json:"title"`
	// Sessiond is the sessiond measurement over the rounds.
	Sessiond spread `json:"sessiond"`
	// Anchors are the anchors' measurements over the rounds.
	Anchors map[string]spread `json:"anchors,omitempty"`
	// Ratios are sessiond / anchor throughput, per round, with the target.
	Ratios []ratioResult `json:"ratios,omitempty"`
	Goal   string        `json:"goal,omitempty"`
	// Latency marks a row judged on its p99 latency.
	Latency bool `json:"latency_row,omitempty"`
}

// spread is one role's throughput and p99 over the rounds.
type spread struct {
	OpsPerS []float64 `json:"ops_per_s"`
	P99MS   []float64 `json:"p99_ms"`
	Errors  int64     `json:"errors"`
	Failed  []string  `json:"failed,omitempty"`
	// ServerUSPerOp and LoadUSPerOp are the CPU microseconds per
	// successful operation of the serving processes and of the load
	// generator; ServerCores the serving processes' CPU per second.
	ServerUSPerOp []float64 `json:"server_us_per_op,omitempty"`
	ServerCores   []float64 `json:"server_cores,omitempty"`
	LoadUSPerOp   []float64 `json:"load_us_per_op,omitempty"`
	// PagesPerOp is what the state machines wrote per successful
	// operation, every node's pages together (sessiond only: its
	// sessiond_store_page_writes_total); EntriesPerTx the mean group
	// commit.
	PagesPerOp   []float64 `json:"pages_per_op,omitempty"`
	EntriesPerTx []float64 `json:"entries_per_tx,omitempty"`
}

type ratioResult struct {
	Anchor string    `json:"anchor"`
	Values []float64 `json:"values"`
	Target float64   `json:"target,omitempty"`
}

// tabulate computes the rows from the measurements.
func tabulate(rows []row, ms []measurement, rounds int) []tableRow {
	var out []tableRow
	for _, r := range rows {
		tr := tableRow{Key: r.key, Title: r.title, Goal: r.goal, Latency: r.latencyRow, Anchors: map[string]spread{}}
		byRound := map[string][]*measurement{}
		for i := range ms {
			m := &ms[i]
			if m.Row != r.key {
				continue
			}
			byRound[m.Role] = append(byRound[m.Role], m)
		}
		for role, list := range byRound {
			sp := spreadOf(list)
			if role == "sessiond" {
				tr.Sessiond = sp
			} else {
				tr.Anchors[role] = sp
			}
		}
		for _, ra := range r.ratios {
			rr := ratioResult{Anchor: ra.anchor, Target: ra.target}
			for round := 1; round <= rounds; round++ {
				s, a := find(ms, r.key, "sessiond", round), find(ms, r.key, ra.anchor, round)
				if s != nil && a != nil && a.Summary.Throughput > 0 {
					rr.Values = append(rr.Values, s.Summary.Throughput/a.Summary.Throughput)
				}
			}
			tr.Ratios = append(tr.Ratios, rr)
		}
		out = append(out, tr)
	}
	return out
}

func find(ms []measurement, row, role string, round int) *measurement {
	for i := range ms {
		if ms[i].Row == row && ms[i].Role == role && ms[i].Round == round && ms[i].Summary != nil {
			return &ms[i]
		}
	}
	return nil
}

func spreadOf(list []*measurement) spread {
	var sp spread
	for _, m := range list {
		if m.Summary == nil {
			sp.Failed = append(sp.Failed, m.Error)
			continue
		}
		sp.OpsPerS = append(sp.OpsPerS, m.Summary.Throughput)
		sp.P99MS = append(sp.P99MS, m.Summary.Latency.P99)
		sp.Errors += m.Summary.Errors
		if ops, el := float64(m.Summary.Ops), m.Summary.Elapsed; ops > 0 && el > 0 {
			if m.ServerCPUSeconds > 0 {
				sp.ServerUSPerOp = append(sp.ServerUSPerOp, m.ServerCPUSeconds/ops*1e6)
				sp.ServerCores = append(sp.ServerCores, m.ServerCPUSeconds/el)
			}
			if m.Summary.LoadCPUSeconds > 0 {
				sp.LoadUSPerOp = append(sp.LoadUSPerOp, m.Summary.LoadCPUSeconds/ops*1e6)
			}
			if st := m.Summary.Store; st != nil && st.Entries > 0 {
				sp.PagesPerOp = append(sp.PagesPerOp, st.PagesPerOp)
				sp.EntriesPerTx = append(sp.EntriesPerTx, st.EntriesPerTransaction)
			}
		}
	}
	return sp
}

// rangeOf formats the values as "lo–hi" (or one value), with format f.
func rangeOf(vs []float64, f func(float64) string) string {
	if len(vs) == 0 {
		return "—"
	}
	lo, hi := slices.Min(vs), slices.Max(vs)
	if f(lo) == f(hi) {
		return f(lo)
	}
	return f(lo) + "–" + f(hi)
}

// rate formats a throughput with thousands separators.
func rate(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func ms(v float64) string    { return strconv.FormatFloat(v, 'f', 1, 64) }
func times(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + "×" }

// verdict says whether the lowest value of a ratio meets its target.
func verdict(rr ratioResult) string {
	if rr.Target == 0 || len(rr.Values) == 0 {
		return ""
	}
	if slices.Min(rr.Values) >= rr.Target {
		return "met (≥ " + times(rr.Target) + ")"
	}
	return "missed (≥ " + times(rr.Target) + ")"
}

// writeTable prints the table as Markdown.
func (rep *report) writeTable(w io.Writer) {
	fmt.Fprintf(w, "\n%s clients, %s per measurement, %s rounds, %s CPUs (%s), started %s\n\n",
		rep.Config["clients"], rep.Config["duration"], rep.Config["rounds"], rep.Config["cpus"], rep.Config["go"], rep.Started.Format(time.RFC3339))
	if rep.Config["sessiond_http"] == "2" {
		fmt.Fprintf(w, "The load on sessiond is Connect over HTTP/2, one connection per client (-sessiond-http 2); the targets are set for HTTP/1.1.\n\n")
	}
	fmt.Fprintln(w, "| operation | sessiond ops/s | sessiond p99 ms | anchor, same rounds | anchor ops/s | ratio | target |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, r := range rep.Rows {
		sd := fmt.Sprintf("| %s | %s | %s |", r.Title, rangeOf(r.Sessiond.OpsPerS, rate), rangeOf(r.Sessiond.P99MS, ms))
		if len(r.Sessiond.Failed) > 0 {
			sd = fmt.Sprintf("| %s | failed: %s | |", r.Title, r.Sessiond.Failed[0])
		}
		if r.Sessiond.Errors > 0 {
			sd = strings.TrimSuffix(sd, " |") + fmt.Sprintf(" (%d errors) |", r.Sessiond.Errors)
		}
		if len(r.Ratios) == 0 {
			fmt.Fprintf(w, "%s | | | %s |\n", sd, r.Goal)
			continue
		}
		for i, rr := range r.Ratios {
			lead := sd
			if i > 0 {
				lead = "| | | |"
			}
			a := r.Anchors[rr.Anchor]
			fmt.Fprintf(w, "%s %s | %s | %s | %s |\n", lead, rr.Anchor, rangeOf(a.OpsPerS, rate), rangeOf(rr.Values, times), verdict(rr))
		}
	}
	rep.writeCPU(w)
	if len(rep.RedisBenchmark) > 0 {
		var parts []string
		for _, k := range slices.Sorted(mapsKeys(rep.RedisBenchmark)) {
			parts = append(parts, fmt.Sprintf("%s %s/s", k, rate(rep.RedisBenchmark[k])))
		}
		fmt.Fprintf(w, "\nredis-benchmark -c %s (reference): %s\n", rep.Config["clients"], strings.Join(parts, ", "))
	}
	for _, n := range rep.Nodes {
		fmt.Fprintf(w, "sessiond %s after the run: RSS %.0f MB (anonymous %.0f MB, file-backed %.0f MB), state.db %.1f MB\n", n.Node,
			float64(n.RSSBytes)/(1<<20), float64(n.AnonBytes)/(1<<20), float64(n.FileBytes)/(1<<20), float64(n.StateBytes)/(1<<20))
		if n.CgroupLimitBytes > 0 {
			fmt.Fprintf(w, "  in a %.0f MB memory cgroup: peak usage %.0f MB (page cache included), OOM kills %d\n",
				float64(n.CgroupLimitBytes)/(1<<20), float64(n.CgroupPeakBytes)/(1<<20), n.OOMKills)
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// writeCPU prints what each measurement cost in CPU per operation: the
// figure behind a ratio on a machine the servers share with the load
// generator.
func (rep *report) writeCPU(w io.Writer) {
	var lines []string
	for _, r := range rep.Rows {
		roles := append([]string{"sessiond"}, slices.Sorted(func(yield func(string) bool) {
			for k := range r.Anchors {
				if !yield(k) {
					return
				}
			}
		})...)
		for _, role := range roles {
			sp := r.Sessiond
			if role != "sessiond" {
				sp = r.Anchors[role]
			}
			if len(sp.ServerUSPerOp) == 0 && len(sp.LoadUSPerOp) == 0 {
				continue
			}
			lines = append(lines, fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %s |", r.Key, role, rangeOf(sp.OpsPerS, rate),
				rangeOf(sp.ServerUSPerOp, us), rangeOf(sp.ServerCores, cores), rangeOf(sp.LoadUSPerOp, us),
				rangeOf(sp.PagesPerOp, tenths), rangeOf(sp.EntriesPerTx, tenths)))
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w, "\nCPU per operation, same rounds (servers: all of the system's processes over the measured window; load: the generator;")
	fmt.Fprintln(w, "pages: what sessiond's state machines wrote per operation, every node together, and their mean group commit, from /metrics):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| row | system | ops/s | servers µs/op | servers' cores | load generator µs/op | pages written/op | entries/transaction |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

func us(v float64) string     { return strconv.FormatFloat(v, 'f', 0, 64) }
func cores(v float64) string  { return strconv.FormatFloat(v, 'f', 2, 64) }
func tenths(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func mapsKeys(m map[string]float64) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// write prints the table to w and writes results.json and table.md to dir.
func (rep *report) write(dir string, w io.Writer) error {
	var b strings.Builder
	rep.writeTable(&b)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "table.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "results.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nraw results: %s\n", path)
	return nil
}

// redisBenchRE matches redis-benchmark -q lines such as
// "GET: 47348.49 requests per second, p50=0.663 msec".
var redisBenchRE = regexp.MustCompile(`(?m)^\s*([A-Z]+): ([0-9.]+) requests per second`)

// redisBenchmark runs redis-benchmark's GET and SET with as many clients,
// the reference figure Redis users know; nil when it is not installed.
func redisBenchmark(ctx context.Context, addr string, clients int) map[string]float64 {
	bin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		return nil
	}
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-c", strconv.Itoa(clients), "-n", "200000", "-t", "get,set", "-q").Output()
	if err != nil {
		return nil
	}
	return parseRedisBenchmark(string(out))
}

func parseRedisBenchmark(out string) map[string]float64 {
	res := map[string]float64{}
	// redis-benchmark redraws its progress with \r: keep the final lines.
	for _, line := range strings.Split(strings.ReplaceAll(out, "\r", "\n"), "\n") {
		if m := redisBenchRE.FindStringSubmatch(line); m != nil {
			if v, err := strconv.ParseFloat(m[2], 64); err == nil {
				res[m[1]] = v
			}
		}
	}
	return res
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }

func splitComma(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func upper(s string) string { return strings.ToUpper(s) }

func cpus() int { return runtime.NumCPU() }
