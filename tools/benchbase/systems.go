package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// node is one started member of a system under test.
type node struct {
	id   string
	url  string // API URL (sessiond, raft-counter, etcd client URL)
	dir  string // data dir
	proc *proc
	// cg is the memory cgroup a sessiond agent runs in (--memory-limit-mb),
	// nil without one.
	cg *memCgroup
}

// system is three members of one system, and which of them leads.
type system struct {
	name string
	// token is the operator token `sessiond bench` uses against a sessiond
	// system (admin, check, watch:details), minted through its first
	// node's local socket; benchFlags are its TLS flags.
	token      string
	benchFlags []string
	// oidcFlags are the code-flow and backchannel scenarios' flags: the
	// OpenID Connect client the cluster's configuration registers (none on
	// the plaintext anchor, which runs no OIDC row).
	oidcFlags []string
	nodes     []*node
	leader    int // index in nodes
	follower  int // a node that does not lead
}

func (s *system) urls() []string {
	var out []string
	for _, n := range s.nodes {
		out = append(out, n.url)
	}
	return out
}

func (s *system) stop() {
	for _, n := range s.nodes {
		if n.proc != nil {
			n.proc.stop(15 * time.Second)
		}
		if n.cg != nil {
			n.cg.remove()
		}
	}
}

func (s *system) procs() []*proc {
	var out []*proc
	for _, n := range s.nodes {
		out = append(out, n.proc)
	}
	return out
}

// pids are the system's processes (of the nodes that have one).
func (s *system) pids() []int {
	var out []int
	for _, p := range s.procs() {
		if p != nil {
			out = append(out, p.pid())
		}
	}
	return out
}

// redisPIDs is the Redis server's process, as its INFO says (it runs on
// this machine: the address is a loopback one); none when it does not say.
func (d *driver) redisPIDs() []int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: d.redisAddr})
	defer c.Close()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return nil
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			if pid, err := strconv.Atoi(v); err == nil {
				return []int{pid}
			}
		}
	}
	return nil
}

// randomB64 returns n random bytes in base64.
func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

var regions = []string{"hk", "seoul", "tokyo"}

// startSessiond starts three `sessiond agent` processes (plaintext: with
// insecure_plaintext, no TLS anywhere, as the anchor that prices TLS) in the
// bootstrap_expect form (every node lists the three peer addresses; the
// cluster forms with three voters at once, so the benchmark never runs
// while joining nodes wait to be promoted). The secrets go through the
// environment, never argv.
func (d *driver) startSessiond(ctx context.Context, plaintext bool) (*system, error) {
	s := &system{name: "sessiond", benchFlags: d.tls.wiring(0).benchFlags}
	prefix := "sessiond-"
	hc := d.tls.httpClient()
	if plaintext {
		s = &system{name: "sessiond plaintext"}
		prefix = "sessiond-plain-"
		hc = &http.Client{Timeout: 2 * time.Second}
	}
	env := []string{"SESSIOND_KEK=" + randomB64(32), "SESSIOND_GOSSIP_KEY=" + randomB64(32)}
	raftAddrs := make([]string, 3)
	for i := range raftAddrs {
		a, err := d.freeAddr()
		if err != nil {
			return nil, err
		}
		raftAddrs[i] = a
	}
	httpAddrs := make([]string, 3)
	for i := range httpAddrs {
		a, err := d.freeAddr()
		if err != nil {
			return nil, err
		}
		httpAddrs[i] = a
	}
	var extra []string
	if !plaintext {
		// The OpenID Provider, with the client the OIDC rows play: its
		// back-channel logout URI is where `sessiond bench backchannel`
		// listens.
		bc, err := d.freeAddr()
		if err != nil {
			return nil, err
		}
		cfg, flags := oidcConfig("https://"+httpAddrs[0], "http://"+bc+"/backchannel-logout")
		path := filepath.Join(d.dir, "sessiond-oidc.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			return nil, err
		}
		extra, s.oidcFlags = []string{"--config", path}, flags
	}
	for i := range 3 {
		httpAddr := httpAddrs[i]
		raftAddr := raftAddrs[i]
		gossipAddr, err := d.freeAddr()
		if err != nil {
			return nil, err
		}
		tl := d.tls.wiring(i)
		if plaintext {
			tl = tlsWiring{agentFlags: []string{"--insecure-plaintext"}, scheme: "http"}
		}
		n := &node{id: regions[i] + "-1", dir: filepath.Join(d.dir, prefix+regions[i]), url: tl.scheme + "://" + httpAddr}
		args := []string{"agent", "--node-id", n.id, "--region", regions[i], "--data-dir", n.dir,
			"--http-addr", httpAddr, "--raft-addr", raftAddr, "--gossip-addr", gossipAddr, "--log-level", "error",
			"--bootstrap-expect", "3", "--retry-join", strings.Join(raftAddrs, ",")}
		args = append(args, tl.agentFlags...)
		args = append(args, extra...)
		if d.memoryLimitMB > 0 && !plaintext {
			if n.cg, err = newMemCgroup(fmt.Sprintf("benchbase-%d-%s", os.Getpid(), n.id), d.memoryLimitMB<<20); err != nil {
				s.stop()
				return nil, err
			}
		}
		s.nodes = append(s.nodes, n)
		if n.proc, err = startProc(d.dir, prefix+regions[i], env, d.sessiond, args...); err != nil {
			s.stop()
			return nil, err
		}
		if n.cg != nil {
			// The runtime's first megabytes stay charged where they
			// started; everything the node does from here on counts.
			if err := n.cg.add(n.proc.pid()); err != nil {
				s.stop()
				return nil, fmt.Errorf("memory cgroup: %w", err)
			}
		}
	}
	err := waitFor(ctx, 60*time.Second, "three ready sessiond nodes with a signing key", s.procs(), func() bool {
		for _, n := range s.nodes {
			if !statusOK(hc, n.url+"/readyz") || !hasKeys(hc, n.url+"/.well-known/jwks.json") {
				return false
			}
		}
		return true
	})
	if err == nil {
		err = d.findLeader(ctx, s, func(n *node) (string, string, bool) {
			var r struct{ Node, Leader string }
			ok := getJSON(hc, n.url+"/readyz", &r)
			return r.Node, r.Leader, ok
		})
	}
	if err == nil {
		s.token, err = d.operatorToken(ctx, s.nodes[0])
	}
	if err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// Benchmark OIDC client of the sessiond cluster: public (PKCE), first-party
// (no consent page), redirecting to a URI nothing listens on (the load
// reads the code from the redirect).
const (
	oidcClient   = "benchbase-app"
	oidcRedirect = "http://127.0.0.1:1/cb"
)

// oidcConfig is the agents' configuration file turning the OpenID Provider
// on (issuer: the first node) with the benchmark's client, and the
// `sessiond bench` flags that play that client.
func oidcConfig(issuer, backchannel string) (string, []string) {
	cfg := fmt.Sprintf(`auth:
  issuer: %s
  oidc:
    enabled: true
    clients:
      - id: %s
        name: Benchbase App
        auth_method: none
        first_party: true
        redirect_uris: [%s]
        backchannel_logout_uri: %s
`, issuer, oidcClient, oidcRedirect, backchannel)
	return cfg, []string{"--oidc-client", oidcClient, "--oidc-redirect-uri", oidcRedirect, "--oidc-backchannel-uri", backchannel}
}

// operatorToken mints the load tool's operator token through n's local
// operator socket, as an operator on the node's host would.
func (d *driver) operatorToken(ctx context.Context, n *node) (string, error) {
	out, err := exec.CommandContext(ctx, d.sessiond, "operator", "token", "create", "--socket", filepath.Join(n.dir, "operator.sock"),
		"--name", "benchbase", "--scope", "admin,check,watch:details,metrics").Output()
	if err != nil {
		return "", fmt.Errorf("sessiond operator token create: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// findLeader asks every node who leads (id) until all agree on a member.
func (d *driver) findLeader(ctx context.Context, s *system, ask func(*node) (self, leader string, ok bool)) error {
	return waitFor(ctx, 30*time.Second, s.name+" nodes agreeing on a leader", s.procs(), func() bool {
		var leader string
		for _, n := range s.nodes {
			_, l, ok := ask(n)
			if !ok || l == "" || (leader != "" && l != leader) {
				return false
			}
			leader = l
		}
		for i, n := range s.nodes {
			if n.id == leader {
				s.leader, s.follower = i, (i+1)%len(s.nodes)
				return true
			}
		}
		return false
	})
}

// startRaftCounter starts three bare-Raft counter nodes (this binary's
// raft-node command).
func (d *driver) startRaftCounter(ctx context.Context) (*system, error) {
	s := &system{name: "raft-counter"}
	var peers []string
	for i := range 3 {
		ra, err := d.freeAddr()
		if err != nil {
			return nil, err
		}
		ha, err := d.freeAddr()
		if err != nil {
			return nil, err
		}
		n := &node{id: fmt.Sprintf("c%d", i+1), url: "http://" + ha, dir: filepath.Join(d.dir, fmt.Sprintf("counter-%d", i+1))}
		s.nodes = append(s.nodes, n)
		peers = append(peers, n.id+"="+ra+"="+ha)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	for _, n := range s.nodes {
		if n.proc, err = startProc(d.dir, "counter-"+n.id, nil, self, "raft-node", "--id", n.id, "--data-dir", n.dir, "--peers", strings.Join(peers, ",")); err != nil {
			s.stop()
			return nil, err
		}
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	if err := d.findLeader(ctx, s, func(n *node) (string, string, bool) {
		var r struct{ ID, Leader string }
		ok := getJSON(hc, n.url+"/status", &r)
		return r.ID, r.Leader, ok
	}); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// startEtcd starts a three-member etcd cluster (the etcd binary of
// Debian's etcd-server package, or --etcd) with its default Raft timing
// (100 ms heartbeat, 1 s election) and its default fsync on every commit.
// Plaintext (http:// client and peer URLs) is the anchor issue 12 filed
// its ratios against; with secure, TLS on the client and peer URLs and
// client-certificate auth on both, as sessiond always runs: each member
// serves, and dials its peers with, the run's node certificate of the same
// index (P-256, server and client auth, 127.0.0.1 and localhost), and the
// load generator presents the operator certificate.
func (d *driver) startEtcd(ctx context.Context, secure bool) (*system, error) {
	s := &system{name: "etcd"}
	scheme, prefix, token := "http", "etcd-", "benchbase"
	hc := &http.Client{Timeout: 2 * time.Second}
	if secure {
		s = &system{name: "etcd TLS", benchFlags: d.tls.wiring(0).benchFlags}
		scheme, prefix, token = "https", "etcd-tls-", "benchbase-tls"
		hc = d.tls.httpClient()
	}
	var initial []string
	peerURLs := make([]string, 3)
	for i := range 3 {
		ca, err := d.freeAddr()
		if err != nil {
			return nil, err
		}
		pa, err := d.freeAddr()
		if err != nil {
			return nil, err
		}
		n := &node{id: fmt.Sprintf("e%d", i+1), url: scheme + "://" + ca, dir: filepath.Join(d.dir, fmt.Sprintf("%s%d", prefix, i+1))}
		peerURLs[i] = scheme + "://" + pa
		initial = append(initial, n.id+"="+peerURLs[i])
		s.nodes = append(s.nodes, n)
	}
	var err error
	for i, n := range s.nodes {
		args := []string{"--name", n.id, "--data-dir", n.dir,
			"--listen-client-urls", n.url, "--advertise-client-urls", n.url,
			"--listen-peer-urls", peerURLs[i], "--initial-advertise-peer-urls", peerURLs[i],
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", token, "--log-level", "error"}
		if secure {
			args = append(args, d.tls.etcdFlags(i)...)
		}
		if n.proc, err = startProc(d.dir, prefix+n.id, nil, d.etcd, args...); err != nil {
			s.stop()
			return nil, err
		}
	}
	err = waitFor(ctx, 30*time.Second, "an "+s.name+" leader known to every member", s.procs(), func() bool {
		leaders := 0
		for i, n := range s.nodes {
			has, is, ok := etcdLeaderMetrics(hc, n.url)
			if !ok || !has {
				return false
			}
			if is {
				leaders++
				s.leader, s.follower = i, (i+1)%len(s.nodes)
			}
		}
		return leaders == 1
	})
	if err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// etcdLeaderMetrics reads etcd_server_has_leader and etcd_server_is_leader
// from a member's /metrics (on its client URL: over TLS, hc presents the
// operator certificate).
func etcdLeaderMetrics(hc *http.Client, base string) (has, is, ok bool) {
	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		return false, false, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return false, false, false
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		switch strings.TrimSpace(line) {
		case "etcd_server_has_leader 1":
			has = true
		case "etcd_server_is_leader 1":
			is = true
		}
	}
	return has, is, true
}

func statusOK(hc *http.Client, u string) bool {
	resp, err := hc.Get(u)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func getJSON(hc *http.Client, u string, v any) bool {
	resp, err := hc.Get(u)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v) == nil
}

func hasKeys(hc *http.Client, u string) bool {
	var r struct{ Keys []json.RawMessage }
	return getJSON(hc, u, &r) && len(r.Keys) > 0
}

// redisUp reports whether something answers on addr.
func redisUp(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
