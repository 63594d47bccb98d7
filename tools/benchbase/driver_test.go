package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the driver's children run as this test binary: the driver
// starts os.Executable() with `raft-node ...` or `load ...`.
func TestMain(m *testing.M) {
	if os.Getenv("BENCHBASE_TEST_AS_MAIN") == "1" && len(os.Args) > 1 && (os.Args[1] == "raft-node" || os.Args[1] == "load") {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestClusterDriver is `make bench-cluster` in small: it builds sessiond,
// runs five rows (the write row with its plaintext-sessiond anchor, the
// OIDC code flow with its password-login anchor, the back-channel logout
// latency, the STALE check) for one short round against real processes and
// checks the table, the raw results and that every process it started is
// gone. With an etcd binary on the PATH, the write and STALE check rows
// also measure the plaintext and the TLS etcd clusters.
func TestClusterDriver(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sessiond, counter and etcd processes")
	}
	t.Setenv("BENCHBASE_TEST_AS_MAIN", "1")
	bin := filepath.Join(t.TempDir(), "sessiond")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sessiond")
	build.Dir = filepath.Join("..", "..") // the product's module, not this one
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build sessiond: %v\n%s", err, out)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var log strings.Builder
	d := &driver{
		sessiond: bin, etcd: "etcd", redisAddr: "127.0.0.1:6379", out: out, clients: 4, rounds: 1,
		duration: 2 * time.Second, only: "write,healthz,code-flow,backchannel,stale-check", tlsCost: true, etcdTLS: true, ports: map[string]bool{}, self: self, log: &log,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := d.run(ctx); err != nil {
		t.Fatalf("driver: %v\n%s", err, log.String())
	}
	table, err := os.ReadFile(filepath.Join(out, "table.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| replicated write", "raft counter", "| GET /healthz", "| OIDC code flow", "| password login |", "| back-channel logout"} {
		if !strings.Contains(string(table), want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	raw, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	roles := map[string]bool{}
	for _, m := range rep.Measurements {
		if m.Summary == nil || m.Summary.Ops == 0 || m.Summary.Throughput <= 0 {
			t.Errorf("%s %s: no operations (error %q)", m.Row, m.Role, m.Error)
			continue
		}
		roles[m.Row+"/"+m.Role] = true
	}
	for _, want := range []string{"write/sessiond", "write/sessiond plaintext", "write/raft counter", "healthz/sessiond",
		"code-flow/sessiond", "code-flow/password login", "backchannel/sessiond"} {
		if !roles[want] {
			t.Errorf("no measurement %s in %v", want, roles)
		}
	}
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Logf("no etcd binary: the etcd anchors are not checked")
	} else {
		// Both etcd clusters served the load: the plaintext anchor and its
		// TLS twin, each with a ratio in the table.
		for _, want := range []string{"write/etcd put", "write/etcd put (TLS)", "stale-check/etcd serializable get", "stale-check/etcd serializable get (TLS)"} {
			if !roles[want] {
				t.Errorf("no measurement %s in %v", want, roles)
			}
		}
		for _, want := range []string{" etcd put | ", " etcd put (TLS) | ", " etcd serializable get (TLS) | "} {
			if !strings.Contains(string(table), want) {
				t.Errorf("table lacks the anchor %q:\n%s", want, table)
			}
		}
		if d.etls == nil || d.etls.nodes[0].url[:8] != "https://" {
			t.Errorf("the TLS etcd cluster: %+v, want https:// members", d.etls)
		}
	}
	for _, m := range rep.Measurements {
		// Every server row reports its servers' CPU and the generator's
		// over the measured window: on this machine, loaded for 2 s, both
		// are well above zero and below all the CPUs for the window.
		if m.Summary == nil || m.Row != "write" {
			continue
		}
		if m.ServerCPUSeconds <= 0 || m.ServerCPUSeconds > float64(cpus())*m.Summary.Elapsed {
			t.Errorf("write %s: servers' CPU %.3f s over %.2f s", m.Role, m.ServerCPUSeconds, m.Summary.Elapsed)
		}
		if m.Summary.LoadCPUSeconds <= 0 {
			t.Errorf("write %s: load generator CPU %.3f s", m.Role, m.Summary.LoadCPUSeconds)
		}
		// sessiond's writes come with what its three state machines wrote
		// (its token has the metrics scope): each revoke rewrites at least
		// its session's leaf on every node.
		if st := m.Summary.Store; m.Role == "sessiond" && (st == nil || st.Nodes != 3 || st.PagesPerOp < 3 || st.EntriesPerTransaction < 1) {
			t.Errorf("write sessiond: store figures %+v (notes %q); want three nodes, 3 pages per revoke at least", st, m.Summary.Notes)
		}
	}
	if !strings.Contains(string(table), "| write | raft counter |") {
		t.Errorf("table lacks the CPU-per-operation line of the raft counter:\n%s", table)
	}
	for _, r := range rep.Rows {
		if r.Key == "code-flow" && (len(r.Ratios) != 1 || len(r.Ratios[0].Values) != 1) {
			t.Errorf("code-flow row: ratios %+v, want one ratio to the password login", r.Ratios)
		}
		if r.Key == "backchannel" && !r.Latency {
			t.Errorf("backchannel row: not a latency row")
		}
	}
	for _, m := range rep.Measurements {
		if (m.Row == "code-flow" || m.Row == "backchannel") && m.Role == "sessiond" && m.Summary != nil && m.Summary.Errors != 0 {
			t.Errorf("%s: %d errors %v %v, want none", m.Row, m.Summary.Errors, m.Summary.ErrorsByCode, m.Summary.ErrorSamples)
		}
	}
	for _, s := range []*system{d.sd, d.sp, d.rc, d.et, d.etls} {
		if s == nil {
			continue
		}
		for _, n := range s.nodes {
			if !n.proc.exited() {
				t.Errorf("%s %s still runs after the driver returned", s.name, n.id)
			}
		}
	}
}
