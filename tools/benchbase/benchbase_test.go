package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/cluster/clustertest"
	"github.com/sessiond/sessiond/internal/bench"
)

func TestTabulateRatiosPerRound(t *testing.T) {
	sum := func(ops, p99 float64) *bench.Summary {
		return &bench.Summary{Throughput: ops, Latency: bench.Stats{P99: p99}}
	}
	rows := []row{{key: "write", title: "writes", ratios: []ratio{{"etcd put", 1.0}}}}
	ms := []measurement{
		{Row: "write", Role: "sessiond", Round: 1, Summary: sum(800, 120)},
		{Row: "write", Role: "etcd put", Round: 1, Summary: sum(2000, 70)},
		{Row: "write", Role: "sessiond", Round: 2, Summary: sum(900, 110)},
		{Row: "write", Role: "etcd put", Round: 2, Summary: sum(3000, 60)},
		{Row: "other", Role: "sessiond", Round: 1, Summary: sum(1, 1)},
	}
	got := tabulate(rows, ms, 2)
	if len(got) != 1 {
		t.Fatalf("rows: got %d, want 1", len(got))
	}
	r := got[0]
	if want := []float64{800, 900}; fmt.Sprint(r.Sessiond.OpsPerS) != fmt.Sprint(want) {
		t.Errorf("sessiond ops/s: got %v, want %v", r.Sessiond.OpsPerS, want)
	}
	if vs := r.Ratios[0].Values; len(vs) != 2 || vs[0] != 0.4 || vs[1] != 0.3 {
		t.Errorf("ratios: got %v, want [0.4 0.3] (each round against its own anchor)", vs)
	}
	if v := verdict(r.Ratios[0]); !strings.HasPrefix(v, "missed") {
		t.Errorf("verdict of 0.3-0.4 against 1.0: got %q, want missed", v)
	}
	var b strings.Builder
	(&report{Config: map[string]string{}, Rows: got}).writeTable(&b)
	if !strings.Contains(b.String(), "| writes | 800–900 | 110.0–120.0 | etcd put | 2,000–3,000 | 0.30×–0.40× | missed (≥ 1.00×) |") {
		t.Errorf("table:\n%s", b.String())
	}
}

func TestTabulateSkipsFailedRounds(t *testing.T) {
	rows := []row{{key: "lin", title: "reads", ratios: []ratio{{"etcd", 1.0}}}}
	ms := []measurement{
		{Row: "lin", Role: "sessiond", Round: 1, Error: "exit status 1: boom"},
		{Row: "lin", Role: "etcd", Round: 1, Summary: &bench.Summary{Throughput: 10}},
	}
	r := tabulate(rows, ms, 1)[0]
	if len(r.Ratios[0].Values) != 0 || len(r.Sessiond.Failed) != 1 {
		t.Errorf("got ratios %v, failures %v; want no ratio and one failure", r.Ratios[0].Values, r.Sessiond.Failed)
	}
	if v := verdict(r.Ratios[0]); v != "" {
		t.Errorf("verdict without values: got %q, want none", v)
	}
}

func TestRate(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999.6: "1,000", 1234567: "1,234,567", 52900.2: "52,900"} {
		if got := rate(v); got != want {
			t.Errorf("rate(%v): got %q, want %q", v, got, want)
		}
	}
}

func TestParseRedisBenchmark(t *testing.T) {
	out := "SET: rps=0.0 (overall: nan) avg_msec=nan\rSET: 47348.49 requests per second, p50=0.663 msec\n" +
		"GET: 52910.05 requests per second, p50=0.591 msec\n"
	got := parseRedisBenchmark(out)
	if got["SET"] != 47348.49 || got["GET"] != 52910.05 || len(got) != 2 {
		t.Errorf("got %v, want SET 47348.49 and GET 52910.05", got)
	}
}

func TestParsePeers(t *testing.T) {
	ps, err := parsePeers("c1=127.0.0.1:1=127.0.0.1:2,c2=127.0.0.1:3=127.0.0.1:4")
	if err != nil || len(ps) != 2 || ps[1] != (peer{"c2", "127.0.0.1:3", "127.0.0.1:4"}) {
		t.Fatalf("got %v, %v", ps, err)
	}
	for _, bad := range []string{"", "c1=a", "c1=a=b=c", "=a=b"} {
		if _, err := parsePeers(bad); err == nil {
			t.Errorf("parsePeers(%q): got nil, want an error", bad)
		}
	}
}

// TestRaftCounterBaseline runs the bare-Raft counter cluster in this
// process and loads it through every node with the raft-counter adapter:
// writes through followers are forwarded, none fails.
func TestRaftCounterBaseline(t *testing.T) {
	var peers []peer
	var lns []net.Listener
	for i := range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		rl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ra := rl.Addr().String()
		rl.Close()
		lns = append(lns, ln)
		peers = append(peers, peer{fmt.Sprintf("c%d", i+1), ra, ln.Addr().String()})
	}
	httpOf := map[raft.ServerID]string{}
	for _, p := range peers {
		httpOf[raft.ServerID(p.id)] = p.http
	}
	var rafts []*raft.Raft
	for i, p := range peers {
		r, trans, err := openCounterRaft(p, peers, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		rafts = append(rafts, r)
		srv := &http.Server{Handler: counterFront(r, p.id, httpOf)}
		go func() { _ = srv.Serve(lns[i]) }()
		t.Cleanup(func() {
			_ = srv.Close()
			_ = r.Shutdown().Error()
			_ = trans.Close()
		})
	}
	clustertest.WaitFor(t, 30*time.Second, "a leader known to all three counter nodes", func() bool {
		_, l0 := rafts[0].LeaderWithID()
		_, l1 := rafts[1].LeaderWithID()
		_, l2 := rafts[2].LeaderWithID()
		return l0 != "" && l0 == l1 && l1 == l2
	})
	c := bench.Conn{HTTP: "1.1"}
	for _, p := range peers {
		c.Targets = append(c.Targets, "http://"+p.http)
	}
	sc, err := newBaseline("raft-counter", c, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	s, err := bench.Run(context.Background(), "raft-counter", sc, bench.Options{Clients: 6, Total: 300})
	if err != nil {
		t.Fatal(err)
	}
	if s.Ops != 300 || s.Errors != 0 {
		t.Errorf("got %d ops, %d errors %v, want 300 and none", s.Ops, s.Errors, s.ErrorSamples)
	}
}

func TestCPUSamplerCoversTheWindow(t *testing.T) {
	// This process burns CPU for 300 ms: the sampler must see about that
	// much over the window, and refuse a window it did not cover.
	s := startCPUSampler([]int{os.Getpid()})
	from := time.Now()
	for time.Since(from) < 300*time.Millisecond {
	}
	to := time.Now()
	s.finish()
	got, ok := s.between(from, to)
	if !ok || got < 0.1 || got > 1 {
		t.Errorf("CPU over a 300 ms busy loop: %.3f s (ok %v)", got, ok)
	}
	if _, ok := s.between(from.Add(-time.Minute), to); ok {
		t.Errorf("a window before the first sample was accepted")
	}
	if _, err := procCPU(1 << 30); err == nil {
		t.Errorf("procCPU of a missing process: no error")
	}
}

func TestSessiondHTTPVersion(t *testing.T) {
	if err := clusterMain([]string{"-sessiond-http", "3"}); err == nil || !strings.Contains(err.Error(), "-sessiond-http") {
		t.Errorf("-sessiond-http 3: %v, want an error naming the flag", err)
	}
	d := &driver{sessiond: "sessiond", clients: 4, duration: time.Second, httpVersion: "2"}
	args := strings.Join(d.sessiondArgs(&system{}, "check", []string{"https://n1"}), " ")
	if !strings.Contains(args, "--http 2") {
		t.Errorf("sessiond bench arguments with -sessiond-http 2: %s", args)
	}
	d.httpVersion = "1.1"
	if args := strings.Join(d.sessiondArgs(&system{}, "check", []string{"https://n1"}), " "); strings.Contains(args, "--http") {
		t.Errorf("sessiond bench arguments by default: %s", args)
	}
}

// TestPlanEtcdTLSTwins: with the TLS etcd cluster started, every etcd
// anchor has a TLS twin with the same ratio target, loaded over https://
// with the run's CA and operator certificate; the plaintext anchor keeps
// its name and plain command line; without the TLS cluster no twin.
func TestPlanEtcdTLSTwins(t *testing.T) {
	sys := func(name, scheme string, flags ...string) *system {
		s := &system{name: name, benchFlags: flags, leader: 0, follower: 1}
		for i := range 3 {
			s.nodes = append(s.nodes, &node{id: fmt.Sprintf("n%d", i+1), url: fmt.Sprintf("%s://%s-%d", scheme, strings.ReplaceAll(name, " ", "-"), i+1)})
		}
		return s
	}
	tlsFlags := []string{"--ca-file", "ca.pem", "--cert", "op.pem", "--key", "op-key.pem"}
	d := &driver{sessiond: "sessiond", self: "benchbase", clients: 4, duration: time.Second,
		only: "write,linearizable-read,stale-check,default-check",
		sd:   sys("sessiond", "https", tlsFlags...), rc: sys("raft-counter", "http"),
		et: sys("etcd", "http"), etls: sys("etcd TLS", "https", tlsFlags...)}
	anchors := map[string]string{"write": "etcd put", "linearizable-read": "etcd linearizable get",
		"stale-check": "etcd serializable get", "default-check": "etcd serializable get"}
	rows := d.plan()
	if len(rows) != len(anchors) {
		t.Fatalf("plan: %d rows, want %d", len(rows), len(anchors))
	}
	for _, r := range rows {
		plain, twin := anchors[r.key], anchors[r.key]+" (TLS)"
		argv := map[string]string{}
		for _, rn := range r.runs {
			argv[rn.role] = strings.Join(rn.argv, " ")
		}
		target := map[string]float64{}
		for _, ra := range r.ratios {
			target[ra.anchor] = ra.target
		}
		pt, ok1 := target[plain]
		tt, ok2 := target[twin]
		if !ok1 || !ok2 || pt != tt || pt == 0 {
			t.Errorf("%s: ratio targets %v, want %q and %q with the same nonzero target", r.key, target, plain, twin)
		}
		if a := argv[twin]; !strings.Contains(a, "https://etcd-TLS-") || !strings.Contains(a, strings.Join(tlsFlags, " ")) {
			t.Errorf("%s %s: %q, want https:// targets of the TLS cluster and its TLS flags", r.key, twin, a)
		}
		if a := argv[plain]; !strings.Contains(a, "http://etcd-") || strings.Contains(a, "--ca-file") || strings.Contains(a, "etcd-TLS") {
			t.Errorf("%s %s: %q, want the plaintext cluster without TLS flags", r.key, plain, a)
		}
		if r.key != "write" && !strings.Contains(argv[twin], "etcd-TLS-2") {
			t.Errorf("%s %s: %q, want the TLS cluster's follower", r.key, twin, argv[twin])
		}
	}
	d.etls = nil
	for _, r := range d.plan() {
		for _, rn := range r.runs {
			if strings.HasSuffix(rn.role, "(TLS)") {
				t.Errorf("%s: %s planned without the TLS etcd cluster", r.key, rn.role)
			}
		}
	}
}

// TestClientTLS: the configuration from the run's PEM files completes a
// handshake with a server that asks for a client certificate signed by
// the run's CA, as an etcd member with --client-cert-auth does.
func TestClientTLS(t *testing.T) {
	p, err := newPKI(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := tls.LoadX509KeyPair(p.nodeCert[0], p.nodeKey[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peers := make(chan string, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if tc.Handshake() == nil && len(tc.ConnectionState().PeerCertificates) > 0 {
				peers <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
			} else {
				peers <- ""
			}
			c.Close()
		}
	}()
	handshake := func(cfg *tls.Config) (string, error) {
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err == nil {
			err = c.Handshake()
			_, _ = c.Read(make([]byte, 1)) // TLS 1.3: the server's verdict on the client certificate
			c.Close()
		}
		return <-peers, err
	}

	cfg, err := clientTLS(p.caCert, p.opCert, p.opKey)
	if err != nil {
		t.Fatal(err)
	}
	if cn, err := handshake(cfg); err != nil || cn != "operator.benchbase" {
		t.Errorf("with the CA and the operator certificate: peer %q, %v; want operator.benchbase", cn, err)
	}
	cfg, err = clientTLS(p.caCert, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if cn, _ := handshake(cfg); cn != "" {
		t.Errorf("without a client certificate the server saw %q", cn)
	}

	if cfg, err := clientTLS("", "", ""); cfg != nil || err != nil {
		t.Errorf("no files: %v, %v; want nil, nil", cfg, err)
	}
	if _, err := clientTLS(p.caCert, p.opCert, ""); err == nil {
		t.Errorf("a certificate without its key: no error")
	}
	if _, err := clientTLS(p.opKey, "", ""); err == nil {
		t.Errorf("a CA file without a certificate: no error")
	}
}
