package main

import (
	"strconv"
)

// row is one line of the table: a sessiond measurement and the anchors it
// is compared with, all run in the same round.
type row struct {
	key, title string
	// runs are the measurements of a round, sessiond first.
	runs []run
	// ratios say which anchors the table divides by, with the target ratio
	// (0: no target).
	ratios []ratio
	// goal is the row's own target, printed as is (e.g. "≥ 2,000/s, p99 ≤ 50 ms").
	goal string
	// latencyRow reports the p99 latency rather than the throughput.
	latencyRow bool
}

type run struct {
	role  string // "sessiond" or the anchor's name
	argv  []string
	token string // SESSIOND_TOKEN for sessiond's load generator
	// servers are the processes serving the load, whose CPU the
	// measurement reports per operation (none: the load runs in the
	// generator itself, as bare argon2id does).
	servers []int
}

type ratio struct {
	anchor string
	target float64
}

// rowKeys lists the rows in plan order.
func rowKeys() []string {
	return []string{"write", "refresh", "linearizable-read", "stale-check", "default-check", "healthz", "watch", "login", "code-flow", "backchannel"}
}

// plan builds the rows for the started systems: anchors of a missing
// system are left out.
func (d *driver) plan() []row {
	sd := d.sd
	all := sd.urls()
	follower := []string{sd.nodes[sd.follower].url}
	var rows []row
	add := func(r row) {
		if d.only != "" && !contains(splitComma(d.only), r.key) {
			return
		}
		rows = append(rows, r)
	}

	write := row{key: "write", title: "replicated write (RevokeSession; put; inc), clients spread over 3 nodes",
		runs: []run{{"sessiond", d.sessiondArgs(sd, "revoke", all), sd.token, sd.pids()}}}
	for _, e := range d.etcds() {
		role := "etcd put" + e.suffix
		write.runs = append(write.runs, run{role, d.baseArgs("etcd-put", e.urls(), e.benchFlags...), "", e.pids()})
		write.ratios = append(write.ratios, ratio{role, 1.0})
	}
	if d.sp != nil {
		write.runs = append(write.runs, run{"sessiond plaintext", d.sessiondArgs(d.sp, "revoke", d.sp.urls()), d.sp.token, d.sp.pids()})
		write.ratios = append(write.ratios, ratio{"sessiond plaintext", 0.9})
	}
	write.runs = append(write.runs, run{"raft counter", d.baseArgs("raft-counter", d.rc.urls()), "", d.rc.pids()})
	write.ratios = append(write.ratios, ratio{"raft counter", 0.8})
	if d.redisAddr != "" {
		write.runs = append(write.runs, run{"redis SETEX", d.baseArgs("redis-setex", []string{d.redisAddr}), "", d.redisPIDs()})
		write.ratios = append(write.ratios, ratio{"redis SETEX", 0})
	}
	add(write)

	add(row{key: "refresh", title: "refresh (rotation), clients spread over 3 nodes",
		runs: []run{{"sessiond", d.sessiondArgs(sd, "refresh", all), sd.token, sd.pids()}},
		goal: "≥ 2,000/s, p99 ≤ 50 ms, ≥ 0.5× the write row's sessiond rate"})

	lin := row{key: "linearizable-read", title: "LINEARIZABLE CheckSession on a follower",
		runs: []run{{"sessiond", d.sessiondArgs(sd, "check-session", follower, "--consistency", "linearizable"), sd.token, sd.pids()}}}
	for _, e := range d.etcds() {
		role := "etcd linearizable get" + e.suffix
		lin.runs = append(lin.runs, run{role, d.baseArgs("etcd-get", []string{e.nodes[e.follower].url}, append([]string{"-consistency", "linearizable"}, e.benchFlags...)...), "", e.pids()})
		lin.ratios = append(lin.ratios, ratio{role, 1.0})
	}
	if sp := d.sp; sp != nil {
		lin.runs = append(lin.runs, run{"sessiond plaintext", d.sessiondArgs(sp, "check-session", []string{sp.nodes[sp.follower].url}, "--consistency", "linearizable"), sp.token, sp.pids()})
		lin.ratios = append(lin.ratios, ratio{"sessiond plaintext", 0.9})
	}
	add(lin)

	for _, c := range []string{"stale", "default"} {
		r := row{key: c + "-check", title: upper(c) + " CheckToken on a follower",
			runs: []run{{"sessiond", d.sessiondArgs(sd, "check", follower, "--consistency", c), sd.token, sd.pids()}}}
		for _, e := range d.etcds() {
			role := "etcd serializable get" + e.suffix
			r.runs = append(r.runs, run{role, d.baseArgs("etcd-get", []string{e.nodes[e.follower].url}, append([]string{"-consistency", "serializable"}, e.benchFlags...)...), "", e.pids()})
			r.ratios = append(r.ratios, ratio{role, 1.5})
		}
		if d.redisAddr != "" {
			r.runs = append(r.runs, run{"redis GET", d.baseArgs("redis-get", []string{d.redisAddr}), "", d.redisPIDs()})
			r.ratios = append(r.ratios, ratio{"redis GET", 0.5})
		}
		add(r)
	}

	add(row{key: "healthz", title: "GET /healthz on a follower (HTTP floor)",
		runs: []run{{"sessiond", d.sessiondArgs(sd, "healthz", follower), sd.token, sd.pids()}}})

	watcher := sd.nodes[(sd.follower+1)%3]
	if watcher == sd.nodes[sd.leader] {
		watcher = sd.nodes[sd.follower]
	}
	add(row{key: "watch", title: "revocation latency: RevokeSession acknowledged → WatchRevocations on another node, under the write load",
		runs: []run{{"sessiond", d.sessiondArgs(sd, "watch", all, "--watch-target", watcher.url), sd.token, sd.pids()}},
		goal: "p99 ≤ 50 ms", latencyRow: true})

	login := row{key: "login", title: "login, default argon2id, clients spread over 3 nodes",
		runs: []run{{"sessiond", d.sessiondArgs(sd, "login", all), sd.token, sd.pids()}}}
	login.runs = append(login.runs, run{"bare argon2id", d.baseArgs("argon2", nil, "-clients", strconv.Itoa(cpus())), "", nil})
	login.ratios = append(login.ratios, ratio{"bare argon2id", 0.9})
	add(login)

	// Single sign-on (issue 11): a full code flow against the password
	// login, both measured in the same round.
	oidc := func(scenario string) []string {
		return d.sessiondArgs(sd, scenario, all, sd.oidcFlags...)
	}
	add(row{key: "code-flow", title: "OIDC code flow (authorize with the SSO cookie → token → userinfo), clients spread over 3 nodes",
		runs:   []run{{"sessiond", oidc("code-flow"), sd.token, sd.pids()}, {"password login", d.sessiondArgs(sd, "login", all), sd.token, sd.pids()}},
		ratios: []ratio{{"password login", 0}}})
	add(row{key: "backchannel", title: "back-channel logout: client session ended (RevokeSession acknowledged) → logout token at the app",
		runs: []run{{"sessiond", oidc("backchannel"), sd.token, sd.pids()}}, latencyRow: true})
	return rows
}

// etcdAnchor is one started etcd cluster and the suffix of its roles.
type etcdAnchor struct {
	*system
	suffix string
}

// etcds are the started etcd clusters, each anchoring the etcd rows with
// the same targets: plaintext (the anchor), then TLS (" (TLS)").
func (d *driver) etcds() []etcdAnchor {
	var out []etcdAnchor
	if d.et != nil {
		out = append(out, etcdAnchor{d.et, ""})
	}
	if d.etls != nil {
		out = append(out, etcdAnchor{d.etls, " (TLS)"})
	}
	return out
}
