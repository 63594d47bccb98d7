package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/internal/bench"
)

// driver runs `benchbase cluster`: it owns the temporary directory, the
// processes and the plan.
type driver struct {
	sessiond, etcd, redisAddr string
	dir, out                  string
	keep, profile             bool
	// hold starts the systems, prints every measurement's command line
	// and waits for an interrupt instead of measuring: load and profile
	// them by hand.
	hold bool
	// tlsCost also runs a plaintext sessiond cluster (insecure_plaintext)
	// as an anchor of the write and LINEARIZABLE read rows: the price of
	// mutual TLS on the peer channel and TLS on the API.
	tlsCost bool
	// etcdTLS also runs a second etcd cluster with TLS on its client and
	// peer URLs and client-certificate auth, the like-for-like anchor of
	// sessiond (which cannot turn TLS off), beside the plaintext one the
	// issue filed its ratios against.
	etcdTLS         bool
	clients, rounds int
	duration        time.Duration
	preload         int64
	// memoryLimitMB runs every node of the sessiond cluster in a memory
	// cgroup of this many MiB (0: none).
	memoryLimitMB int64
	only          string
	// httpVersion is the HTTP version of sessiond's load generator: "1.1"
	// (the load, the default) or "2" (one connection per client,
	// as the etcd anchor's gRPC clients have).
	httpVersion string
	log         io.Writer

	tls   *pkiFiles
	ports map[string]bool
	self  string

	sd, rc, et *system
	// sp is the plaintext sessiond cluster (--tls-cost), nil without it.
	sp *system
	// etls is the TLS etcd cluster (--etcd-tls), nil without it.
	etls *system
}

func clusterMain(args []string) error {
	d := &driver{ports: map[string]bool{}, log: os.Stderr}
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.StringVar(&d.sessiond, "sessiond", "bin/sessiond", "the sessiond binary to run and to load with")
	fs.StringVar(&d.etcd, "etcd", "etcd", "the etcd binary (Debian: apt-get install etcd-server); missing: the etcd rows are skipped")
	fs.StringVar(&d.redisAddr, "redis", "127.0.0.1:6379", "a running redis-server; unreachable: the Redis rows are skipped")
	fs.StringVar(&d.out, "out", "bench-results", "directory for results.json, the table and profiles")
	fs.IntVar(&d.clients, "clients", 64, "concurrent clients of every measurement")
	fs.DurationVar(&d.duration, "duration", 10*time.Second, "length of every measurement")
	fs.IntVar(&d.rounds, "rounds", 2, "rounds: every row, sessiond then its anchors, once per round")
	fs.Int64Var(&d.preload, "preload", 0, "first open this many sessions in sessiond through the bulk-load API (scale: 1000000, 10000000)")
	fs.Int64Var(&d.memoryLimitMB, "memory-limit-mb", 0, "run every sessiond node in a memory cgroup of this many MiB, page cache included (needs root; the nodes set GOMEMLIMIT from it); the report gives each cgroup's peak and OOM kills")
	fs.BoolVar(&d.profile, "profile", false, "CPU profiles of the sessiond nodes during every sessiond measurement: pprof when the nodes serve it, and perf record when perf is installed")
	fs.StringVar(&d.only, "only", "", "comma-separated row keys to run (default: all): "+strings.Join(rowKeys(), ","))
	fs.BoolVar(&d.tlsCost, "tls-cost", true, "also run a plaintext sessiond cluster (insecure_plaintext) as an anchor of the write and linearizable-read rows: the cost of TLS")
	fs.BoolVar(&d.etcdTLS, "etcd-tls", true, "also run a TLS etcd cluster (client and peer URLs, client-certificate auth) as an anchor beside the plaintext one: like-for-like with sessiond")
	fs.StringVar(&d.httpVersion, "sessiond-http", "1.1", "HTTP version of the load on sessiond: 1.1 (keep-alive) or 2 (one HTTP/2 connection per client, as etcd's gRPC clients)")
	fs.BoolVar(&d.keep, "keep", false, "keep the temporary directory (data dirs, logs, certificates)")
	fs.BoolVar(&d.hold, "hold", false, "start the systems, print the load command of every measurement and wait for Ctrl-C instead of measuring (load and profile by hand)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if d.rounds < 1 || d.clients < 1 || d.duration <= 0 {
		return errors.New("cluster: rounds, clients and duration must be positive")
	}
	if d.memoryLimitMB < 0 {
		return errors.New("cluster: -memory-limit-mb must not be negative (0: no limit)")
	}
	if d.httpVersion != "1.1" && d.httpVersion != "2" {
		return fmt.Errorf("cluster: -sessiond-http: want 1.1 or 2, got %q", d.httpVersion)
	}
	var err error
	if d.sessiond, err = filepath.Abs(d.sessiond); err != nil {
		return err
	}
	if _, err := os.Stat(d.sessiond); err != nil {
		return fmt.Errorf("cluster: sessiond binary: %w (run make build)", err)
	}
	if d.self, err = os.Executable(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return d.run(ctx)
}

func (d *driver) logf(format string, args ...any) {
	fmt.Fprintf(d.log, "benchbase: "+format+"\n", args...)
}

// run starts everything, runs the plan and writes the report.
func (d *driver) run(ctx context.Context) error {
	var err error
	if d.dir, err = os.MkdirTemp("", "benchbase-"); err != nil {
		return err
	}
	if d.keep {
		d.logf("keeping %s", d.dir)
	} else {
		defer os.RemoveAll(d.dir)
	}
	if err := os.MkdirAll(d.out, 0o755); err != nil {
		return err
	}
	if d.tls, err = newPKI(d.dir, 3); err != nil {
		return fmt.Errorf("TLS material: %w", err)
	}
	rep := &report{Started: time.Now().UTC(), Config: d.config()}
	d.logf("starting 3 sessiond agents")
	if d.sd, err = d.startSessiond(ctx, false); err != nil {
		return fmt.Errorf("sessiond: %w", err)
	}
	defer d.sd.stop()
	if d.tlsCost {
		d.logf("starting 3 plaintext sessiond agents (the TLS-cost anchor)")
		if d.sp, err = d.startSessiond(ctx, true); err != nil {
			return fmt.Errorf("plaintext sessiond: %w", err)
		}
		defer d.sp.stop()
	}
	d.logf("starting 3 bare-Raft counter nodes")
	if d.rc, err = d.startRaftCounter(ctx); err != nil {
		return fmt.Errorf("raft counter: %w", err)
	}
	defer d.rc.stop()
	if path, lerr := exec.LookPath(d.etcd); lerr != nil {
		rep.Notes = append(rep.Notes, "no etcd binary ("+d.etcd+"): etcd anchors skipped; apt-get install etcd-server")
	} else {
		d.etcd = path
		d.logf("starting 3 etcd members")
		if d.et, err = d.startEtcd(ctx, false); err != nil {
			return fmt.Errorf("etcd: %w", err)
		}
		defer d.et.stop()
		if d.etcdTLS {
			d.logf("starting 3 etcd members with TLS")
			if d.etls, err = d.startEtcd(ctx, true); err != nil {
				return fmt.Errorf("etcd TLS: %w", err)
			}
			defer d.etls.stop()
		}
	}
	if !redisUp(d.redisAddr) {
		rep.Notes = append(rep.Notes, "no redis-server at "+d.redisAddr+": Redis anchors skipped")
		d.redisAddr = ""
	}
	rep.Systems = d.systemsInfo()
	if d.preload > 0 {
		d.logf("preloading %d sessions", d.preload)
		m := d.measure(ctx, "preload", "sessiond", 0, d.sessiondArgs(d.sd, "preload", d.sd.urls(), "--preload", strconv.FormatInt(d.preload, 10)), d.sd.token, nil)
		rep.Measurements = append(rep.Measurements, m)
		// The load is acknowledged once a quorum has it: wait for the
		// slowest node too, or the rows would measure its catching up.
		took, err := d.waitApplied(ctx, d.sd)
		if err != nil {
			return fmt.Errorf("after the preload: %w", err)
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("every sessiond node had applied the preload %s after its acknowledgement", took.Round(100*time.Millisecond)))
	}
	rows := d.plan()
	if d.hold {
		return d.holdSystems(ctx, rows)
	}
	for r := 1; r <= d.rounds; r++ {
		for _, rw := range rows {
			for _, mp := range rw.runs {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				d.logf("round %d/%d: %s: %s", r, d.rounds, rw.key, mp.role)
				rep.Measurements = append(rep.Measurements, d.measure(ctx, rw.key, mp.role, r, mp.argv, mp.token, mp.servers))
			}
		}
	}
	if d.redisAddr != "" {
		rep.RedisBenchmark = redisBenchmark(ctx, d.redisAddr, d.clients)
	}
	rep.Nodes = d.nodeFacts()
	rep.Rows = tabulate(rows, rep.Measurements, d.rounds)
	return rep.write(d.out, os.Stdout)
}

// holdSystems prints the command line of every planned measurement and
// keeps the systems running until ctx ends. An operator token is not
// printed: it is written to a file readable by the owner only, and the
// command line reads it into SESSIOND_TOKEN.
func (d *driver) holdSystems(ctx context.Context, rows []row) error {
	tokenFiles := map[string]string{}
	for _, rw := range rows {
		for _, mp := range rw.runs {
			env := ""
			if mp.token != "" {
				path, ok := tokenFiles[mp.token]
				if !ok {
					path = filepath.Join(d.dir, fmt.Sprintf("token-%d", len(tokenFiles)+1))
					if err := os.WriteFile(path, []byte(mp.token), 0o600); err != nil {
						return err
					}
					tokenFiles[mp.token] = path
				}
				env = "SESSIOND_TOKEN=$(cat " + path + ") "
			}
			fmt.Printf("# %s: %s\n%s%s\n", rw.key, mp.role, env, strings.Join(mp.argv, " "))
		}
	}
	d.logf("holding the systems (data in %s); Ctrl-C stops them", d.dir)
	<-ctx.Done()
	return nil
}

// config records how the run was made.
func (d *driver) config() map[string]string {
	host, _ := os.Hostname()
	return map[string]string{
		"clients": strconv.Itoa(d.clients), "duration": d.duration.String(), "rounds": strconv.Itoa(d.rounds),
		"preload": strconv.FormatInt(d.preload, 10), "memory_limit_mb": strconv.FormatInt(d.memoryLimitMB, 10), "cpus": strconv.Itoa(runtime.NumCPU()), "go": runtime.Version(),
		"host": host, "sessiond": d.sessiond, "profile": strconv.FormatBool(d.profile),
		"sessiond_http": cmp.Or(d.httpVersion, "1.1"), "etcd_tls": strconv.FormatBool(d.etcdTLS),
	}
}

// systemsInfo records who leads and which follower the follower rows use.
func (d *driver) systemsInfo() map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, s := range []*system{d.sd, d.sp, d.rc, d.et, d.etls} {
		if s == nil {
			continue
		}
		out[s.name] = map[string]string{"urls": strings.Join(s.urls(), ","), "leader": s.nodes[s.leader].url, "follower": s.nodes[s.follower].url}
	}
	return out
}

// sessiondArgs is a `sessiond bench` command line against the sessiond
// cluster s (its operator token goes in the environment).
func (d *driver) sessiondArgs(s *system, scenario string, targets []string, extra ...string) []string {
	args := []string{d.sessiond, "bench", scenario, "--targets", strings.Join(targets, ","),
		"--clients", strconv.Itoa(d.clients), "--duration", d.duration.String(), "-o", "json", "--quiet"}
	if d.httpVersion == "2" {
		args = append(args, "--http", "2")
	}
	args = append(args, s.benchFlags...)
	return append(args, extra...)
}

// baseArgs is a `benchbase load` command line.
func (d *driver) baseArgs(scenario string, targets []string, extra ...string) []string {
	args := []string{d.self, "load", scenario, "-targets", strings.Join(targets, ","),
		"-clients", strconv.Itoa(d.clients), "-duration", d.duration.String(), "-o", "json", "-q"}
	return append(args, extra...)
}

// measurement is one run of the load generator.
type measurement struct {
	Row     string         `json:"row"`
	Role    string         `json:"role"`
	Round   int            `json:"round"`
	Argv    []string       `json:"argv"`
	Summary *bench.Summary `json:"summary,omitempty"`
	Error   string         `json:"error,omitempty"`
	Perf    []string       `json:"perf,omitempty"`
	// ServerCPUSeconds is the CPU time the serving processes used over the
	// generator's measured window (not its preparation), all of them
	// together; 0 when not measured.
	ServerCPUSeconds float64 `json:"server_cpu_s,omitempty"`
}

// measure runs argv (a load generator printing a JSON summary) and
// records its summary, with CPU profiles of the sessiond nodes for
// sessiond measurements when asked.
func (d *driver) measure(ctx context.Context, row, role string, round int, argv []string, token string, servers []int) measurement {
	m := measurement{Row: row, Role: role, Round: round, Argv: argv}
	var perf []*proc
	if d.profile && role == "sessiond" && row != "preload" {
		pdir, _ := filepath.Abs(filepath.Join(d.out, "profiles", fmt.Sprintf("%s-r%d", row, round)))
		_ = os.MkdirAll(pdir, 0o755)
		argv = append(argv, "--profile-dir", pdir)
		perf, m.Perf = d.startPerf(pdir)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = os.Environ()
	if token != "" {
		cmd.Env = append(cmd.Env, "SESSIOND_TOKEN="+token)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var cpu *cpuSampler
	if len(servers) > 0 {
		cpu = startCPUSampler(servers)
	}
	err := cmd.Run()
	if cpu != nil {
		cpu.finish()
	}
	for _, p := range perf {
		select { // perf stops by itself after the duration
		case <-p.done:
		case <-time.After(15 * time.Second):
			p.stop(10 * time.Second)
		}
	}
	if err != nil {
		m.Error = fmt.Sprintf("%v: %s", err, lastLines(stderr.String(), 5))
		d.logf("%s %s failed: %s", row, role, m.Error)
		return m
	}
	var s bench.Summary
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		m.Error = fmt.Sprintf("decode summary: %v", err)
		return m
	}
	m.Summary = &s
	if cpu != nil && s.StartedUnixNano > 0 {
		from := time.Unix(0, s.StartedUnixNano)
		if v, ok := cpu.between(from, from.Add(time.Duration(s.Elapsed*float64(time.Second)))); ok {
			m.ServerCPUSeconds = v
		}
	}
	return m
}

// startPerf records each sessiond node with perf for the measurement's
// duration, when perf is installed.
func (d *driver) startPerf(dir string) ([]*proc, []string) {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return nil, nil
	}
	var ps []*proc
	var files []string
	secs := strconv.Itoa(int(d.duration.Seconds()) + 5)
	for _, n := range d.sd.nodes {
		f := filepath.Join(dir, "perf-"+n.id+".data")
		p, err := startProc(dir, "perf-"+n.id, nil, perf, "record", "-F", "499", "-g", "-p", strconv.Itoa(n.proc.pid()), "-o", f, "--", "sleep", secs)
		if err != nil {
			continue
		}
		ps, files = append(ps, p), append(files, f)
	}
	return ps, files
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// nodeFact is what a sessiond node holds after the run.
type nodeFact struct {
	Node       string `json:"node"`
	RSSBytes   int64  `json:"rss_bytes"`
	AnonBytes  int64  `json:"rss_anon_bytes"`
	FileBytes  int64  `json:"rss_file_bytes"`
	StateBytes int64  `json:"state_db_bytes"`
	// CgroupLimitBytes, CgroupPeakBytes and OOMKills describe the node's
	// memory cgroup (--memory-limit-mb): its limit, the highest usage it
	// saw (page cache included) and the processes the kernel killed.
	CgroupLimitBytes int64 `json:"cgroup_limit_bytes,omitempty"`
	CgroupPeakBytes  int64 `json:"cgroup_peak_bytes,omitempty"`
	OOMKills         int64 `json:"oom_kills,omitempty"`
}

func (d *driver) nodeFacts() []nodeFact {
	var out []nodeFact
	for _, n := range d.sd.nodes {
		f := nodeFact{Node: n.id}
		f.RSSBytes, f.AnonBytes, f.FileBytes = n.proc.memory()
		if n.cg != nil {
			f.CgroupLimitBytes, f.CgroupPeakBytes, f.OOMKills = d.memoryLimitMB<<20, n.cg.peak(), n.cg.oomKills()
		}
		if st, err := os.Stat(filepath.Join(n.dir, "state.db")); err == nil {
			f.StateBytes = st.Size()
		}
		out = append(out, f)
	}
	return out
}

// waitApplied waits until every node of the sessiond system s has applied
// what its leader had applied when called, and says how long that took.
func (d *driver) waitApplied(ctx context.Context, s *system) (time.Duration, error) {
	type readyz struct {
		AppliedIndex uint64 `json:"applied_index"`
	}
	hc := d.tls.httpClient()
	var lead readyz
	if !getJSON(hc, s.nodes[s.leader].url+"/readyz", &lead) {
		return 0, fmt.Errorf("no answer from the leader's /readyz")
	}
	start := time.Now()
	err := waitFor(ctx, 30*time.Minute, "every node applying the preload", s.procs(), func() bool {
		for _, n := range s.nodes {
			var r readyz
			if !getJSON(hc, n.url+"/readyz", &r) || r.AppliedIndex < lead.AppliedIndex {
				return false
			}
		}
		return true
	})
	return time.Since(start), err
}
