//go:build linux

package main

// TestChaos is the fault test on real processes (issue 10; docs/chaos.md):
// concurrent logins, revokes and checks at every consistency level against
// every node while a nemesis kills, pauses, partitions and changes the
// membership; then every node is killed and restarted and every
// acknowledged write is read on every node. The history is checked by
// internal/chaos (porcupine for LINEARIZABLE, the bound for DEFAULT).
//
// `make test` runs it for CHAOS_DURATION (60 s by default) with a seed from
// a fixed range; `make chaos` runs it longer. Every run prints its seed.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/internal/chaos"
)

// chaosStrict asserts the checks of the weaknesses issue 10 found (DEFAULT
// reads beyond the bound, answers whose index is not the applied index),
// fixed since; false would only report them (CHAOS_STRICT=1 asserts them
// whatever it says).
const chaosStrict = true

// chaosClockTolerance is added to cluster.DefaultFollowerMaxLag for the
// DEFAULT bound: the clients' clock is the nodes' (one host), but a loaded
// scheduler delays answers and heartbeats.
const chaosClockTolerance = 100 * time.Millisecond

// chaosRecoveryLimit is how long the cluster may take to serve writes and
// LINEARIZABLE reads on every node after the nemesis stops, and to be
// ready after every node was killed and restarted.
const chaosRecoveryLimit = 90 * time.Second

// chaosStartLimit bounds the start of the first nodes (the machine may be
// loaded by other tests).
const chaosStartLimit = time.Minute

// chaosSettings are a run's parameters.
type chaosSettings struct {
	seed     uint64
	duration time.Duration
	out      string // artefacts: CHAOS_OUT, "" for a temporary dir
	strict   bool
}

func chaosSettingsFromEnv(t *testing.T) chaosSettings {
	t.Helper()
	// A fixed range of 16 seeds, one per day: the schedule varies from day
	// to day and every failure replays.
	s := chaosSettings{seed: 1 + uint64(time.Now().Unix()/86400)%16, duration: 60 * time.Second,
		out: os.Getenv("CHAOS_OUT"), strict: chaosStrict || os.Getenv("CHAOS_STRICT") == "1"}
	switch v := os.Getenv("CHAOS_SEED"); v {
	case "":
	case "random":
		s.seed = rand.Uint64() % 1_000_000
	default:
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: want an unsigned integer or random", v)
		}
		s.seed = seed
	}
	if v := os.Getenv("CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("CHAOS_DURATION=%q: want a positive duration such as 10m", v)
		}
		s.duration = d
	}
	return s
}

func TestChaos(t *testing.T) {
	e2eSkipShort(t)
	// Alongside the other end-to-end tests: they mostly wait, and so does
	// this one; nothing it asserts depends on the machine being quiet.
	t.Parallel()
	set := chaosSettingsFromEnv(t)
	t.Logf("chaos: seed %d, %s of faults; replay: CHAOS_SEED=%d CHAOS_DURATION=%s make chaos", set.seed, set.duration, set.seed, set.duration)
	out := chaosOutDir(t, set)
	c := newChaosCluster(t, filepath.Join(out, "logs"))
	h := chaos.NewHistory()
	rng := rand.New(rand.NewPCG(set.seed, 0))
	w := newChaosWorkload(c, h, set.seed)
	m := &chaosNemesis{c: c, w: w, h: h, rng: rand.New(rand.NewPCG(set.seed, 1)), aux: rand.New(rand.NewPCG(set.seed, 3))}
	m.faultFor = func() time.Duration { return time.Duration(1500+m.rng.IntN(3500)) * time.Millisecond }
	ctx, cancel := context.WithTimeout(context.Background(), set.duration+8*time.Minute)
	defer cancel()

	// Three nodes: n1 bootstraps, n2 and n3 join through it.
	first, err := c.newNode(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.start(first, true, nil); err != nil {
		t.Fatal(err)
	}
	c.setMember(first.id, true)
	if err := c.waitReady(ctx, chaosStartLimit, []*chaosNode{first}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		n, err := c.newNode(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.start(n, false, []string{first.raftAddr()}); err != nil {
			t.Fatal(err)
		}
	}
	e2eWaitFor(t, chaosStartLimit, "three voters", func() bool {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s := c.status(sctx, rng)
		return s != nil && len(e2eRaftMembers(s)) == 3
	})
	if err := c.waitReady(ctx, chaosStartLimit, c.live()); err != nil {
		t.Fatal(err)
	}

	// Users, then the clients: chaosWorkersPerNode per member.
	uctx, cancelUsers := context.WithTimeout(ctx, time.Minute)
	err = w.fillUsers(uctx, rng, true)
	cancelUsers()
	if err != nil {
		t.Fatal(err)
	}
	fillCtx, stopFill := context.WithCancel(ctx)
	var fill sync.WaitGroup
	fill.Add(1)
	go func() {
		defer fill.Done()
		_ = w.fillUsers(fillCtx, rand.New(rand.NewPCG(set.seed, 2)), false)
	}()
	for _, n := range c.live() {
		w.startWorkers(n)
	}

	// The nemesis, after a few seconds without faults.
	warm := h.Now() + 3*time.Second
	e2eWaitFor(t, chaosStartLimit, "an acknowledged login and 3 s of load", func() bool {
		return w.logins.Load() > 0 && h.Now() > warm
	})
	nemesisStart := h.Now()
	m.run(ctx, nemesisStart+set.duration)
	nemesisEnd := h.Now()
	t.Logf("chaos: nemesis stopped after %s, %d faults; members %v", (nemesisEnd - nemesisStart).Round(time.Millisecond), len(m.faults), chaosIDs(c.live()))

	// The clients stop; every member must serve writes and LINEARIZABLE
	// reads again within chaosRecoveryLimit.
	stopFill()
	fill.Wait()
	w.stopAll()
	recovered := chaosRecover(t, ctx, m, w, rng)
	t.Logf("chaos: every member served a login and a LINEARIZABLE read %s after the nemesis stopped", recovered.Round(time.Millisecond))

	// Kill every node, restart them all, and read every acknowledged write
	// on every node.
	chaosFinalReads(t, ctx, c, w, chaosRestartAll(t, ctx, m))

	// Check and report.
	ops := h.Ops()
	cfg := chaos.CheckConfig{DefaultBound: cluster.DefaultFollowerMaxLag + chaosClockTolerance, Timeout: time.Minute, Budget: 5 * time.Minute}
	for _, op := range ops {
		if op.Final && op.Outcome == chaos.OK && op.Level == chaos.Linearizable && (cfg.Settled == 0 || op.Return < cfg.Settled) {
			cfg.Settled = op.Return
		}
	}
	res := chaos.Check(ops, cfg)
	rep := chaos.NewReport(int64(set.seed), set.duration, cfg, ops, m.faults, res)
	rep.Unavailability = chaos.Unavailability(ops, m.faults, nemesisStart, nemesisEnd, 5*time.Second)
	for _, n := range c.nodes {
		rep.Nodes = append(rep.Nodes, n.id)
	}
	rep.Notes = append(rep.Notes, m.notes...)
	for _, cr := range m.crashes {
		rep.Notes = append(rep.Notes, "crash: "+cr)
	}
	rep.Counts["restart-crash"] = len(m.crashes)
	rep.Notes = append(rep.Notes, chaosHangs(ops, m.faults)...)
	rep.Notes = append(rep.Notes, chaosFastFailures(ops)...)
	if n := w.badCreds.Load(); n > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d logins were refused as invalid credentials (a node did not find a user created before)", n))
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("recovery after the nemesis stopped: %s", recovered.Round(time.Millisecond)))
	var table strings.Builder
	rep.WriteTable(&table, 5)
	t.Log("\n" + table.String())
	chaosArtefacts(t, out, rep, res, ops)

	// Asserted: the invariants that hold today.
	if len(res.Illegal) > 0 || rep.Counts[chaos.CheckLinearizable] > 0 {
		t.Errorf("linearizability: users %v not linearizable, %d LINEARIZABLE reads missed an acknowledged write; want none (seed %d)",
			res.Illegal, rep.Counts[chaos.CheckLinearizable], set.seed)
	}
	if len(res.Unknown) > 0 {
		// Not an anomaly, and not proof of its absence: the direct checks
		// above still covered these users' LINEARIZABLE reads.
		t.Logf("UNDECIDED: porcupine could not decide users %v within %s each, %s in all (seed %d)", res.Unknown, cfg.Timeout, cfg.Budget, set.seed)
	}
	for _, c := range []string{chaos.CheckNeverExisted, chaos.CheckLost, chaos.CheckDiverged} {
		if n := rep.Counts[c]; n > 0 {
			t.Errorf("%s: %d anomalies; want 0 (seed %d)", c, n, set.seed)
		}
	}
	if len(m.crashes) > 0 {
		t.Errorf("%d times a node could not start again: %v; want every node to restart from its data dir (seed %d)", len(m.crashes), m.crashes, set.seed)
	}
	if res.Verified == 0 {
		t.Errorf("no final read verified anything; want every acknowledged write read on every node")
	}
	// Asserted with chaosStrict (the fixes of issue 10).
	for _, c := range []string{chaos.CheckDefaultBound, chaos.CheckIndex} {
		if n := rep.Counts[c]; n > 0 {
			if set.strict {
				t.Errorf("%s: %d anomalies; want 0 (seed %d)", c, n, set.seed)
			} else {
				t.Logf("KNOWN (not asserted until fixed; CHAOS_STRICT=1 asserts; docs/chaos.md): %s: %d anomalies", c, n)
			}
		}
	}
}

// chaosRestartAll kills every member, starts them all again from their
// data dirs and waits until they are ready. A node that cannot start is
// recorded as a crash (which fails the test) and replaced once the others
// are ready, so that the final reads still cover every member.
func chaosRestartAll(t *testing.T, ctx context.Context, m *chaosNemesis) []*chaosNode {
	t.Helper()
	c := m.c
	members := c.live()
	for _, n := range members {
		c.kill(n)
	}
	for _, n := range members {
		if err := c.restart(n); err != nil {
			t.Fatal(err)
		}
	}
	var crashed, healthy []*chaosNode
	for _, n := range members {
		if err := c.started(ctx, 30*time.Second, n); err != nil {
			m.mu.Lock()
			m.crashes = append(m.crashes, fmt.Sprintf("final restart: %v", err))
			m.mu.Unlock()
			crashed = append(crashed, n)
			continue
		}
		healthy = append(healthy, n)
	}
	if err := c.waitReady(ctx, chaosRecoveryLimit, healthy); err != nil {
		t.Fatalf("after killing and restarting every node: %v (crashes: %v)", err, m.crashes)
	}
	for _, n := range crashed {
		m.replaceDead(ctx, n)
	}
	members = c.live()
	if err := c.waitReady(ctx, chaosRecoveryLimit, members); err != nil {
		t.Fatalf("after replacing the nodes that could not start: %v (crashes: %v)", err, m.crashes)
	}
	return members
}

// chaosRecover makes sure every member runs, then waits until each has
// served a login and a LINEARIZABLE read; it returns how long that took
// and fails the test after chaosRecoveryLimit.
func chaosRecover(t *testing.T, ctx context.Context, m *chaosNemesis, w *chaosWorkload, rng *rand.Rand) time.Duration {
	t.Helper()
	c := m.c
	start := w.h.Now()
	if err := c.net.Heal(); err != nil {
		t.Fatal(err)
	}
	members := c.live()
	for _, n := range members {
		switch {
		case !n.running():
			t.Logf("chaos: %s was not running after the nemesis; restarting it", n.id)
			m.restart(ctx, n)
		default:
			_ = c.signal(n, false) // in case it was left paused

		}
	}
	rctx, cancel := context.WithTimeout(ctx, chaosRecoveryLimit)
	defer cancel()
	client := int(w.clients.Add(1)) - 1
	users := w.users()
	for _, n := range c.live() {
		u := users[rng.IntN(len(users))]
		for attempt := 0; ; attempt++ {
			lop := w.login(client, n, u, rng.IntN(chaos.Slots), fmt.Sprintf("recovery-%s-%d", n.id, attempt))
			if lop.Outcome == chaos.OK {
				rop := w.check(client, n, u, lop.Session, chaos.Linearizable, chaosLevels[2].rc, false)
				if rop.Outcome == chaos.OK {
					break
				}
			}
			select {
			case <-rctx.Done():
				t.Fatalf("the cluster did not recover within %s of the nemesis stopping: %s gave %s", chaosRecoveryLimit, n.id, lop.Err)
			case <-time.After(200 * time.Millisecond): // retry interval
			}
		}
	}
	return w.h.Now() - start
}

// chaosFinalReads reads every acknowledged session and every user on every
// node: LINEARIZABLE first, then STALE once each node has applied the
// leader's commit index.
func chaosFinalReads(t *testing.T, ctx context.Context, c *chaosCluster, w *chaosWorkload, nodes []*chaosNode) {
	t.Helper()
	users := w.users()
	read := func(lvl int) {
		var wg sync.WaitGroup
		failures := make(chan string, len(nodes))
		for _, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := int(w.clients.Add(1)) - 1
				for _, u := range users {
					u.mu.Lock()
					sessions := append([]string(nil), u.sessions...)
					u.mu.Unlock()
					for _, sid := range sessions {
						if !chaosRetry(ctx, func() bool {
							return w.check(client, n, u, sid, chaosLevels[lvl].level, chaosLevels[lvl].rc, true).Outcome == chaos.OK
						}) {
							failures <- fmt.Sprintf("%s: session %s unreadable at %s", n.id, sid, chaosLevels[lvl].level)
							return
						}
					}
					if !chaosRetry(ctx, func() bool {
						return w.checkUser(client, n, u, chaosLevels[lvl].level, chaosLevels[lvl].rc, true).Outcome == chaos.OK
					}) {
						failures <- fmt.Sprintf("%s: user %s unreadable at %s", n.id, u.id, chaosLevels[lvl].level)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(failures)
		for f := range failures {
			t.Errorf("final reads: %s", f)
		}
	}
	read(2) // LINEARIZABLE
	// Catch-up: every node has applied what the leader had committed.
	var commit uint64
	for _, n := range nodes {
		if r, ok := c.readyz(ctx, n); ok {
			commit = max(commit, r.CommitIndex)
		}
	}
	e2eWaitFor(t, time.Minute, fmt.Sprintf("every node to apply index %d", commit), func() bool {
		for _, n := range nodes {
			r, ok := c.readyz(ctx, n)
			if !ok || r.AppliedIndex < commit {
				return false
			}
		}
		return true
	})
	read(0) // STALE
}

// chaosRetry runs f until it reports success, at most five times.
func chaosRetry(ctx context.Context, f func() bool) bool {
	for range 5 {
		if f() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(500 * time.Millisecond): // retry interval
		}
	}
	return false
}

// chaosHangs reports the requests that ran into the client's deadline on a
// node that was not paused meanwhile (a paused node cannot answer; any
// other should answer or fail within its own deadline).
func chaosHangs(ops []chaos.Op, faults []chaos.Fault) []string {
	count := map[chaos.Kind]int{}
	var first []string
	for _, op := range ops {
		limit := chaosReadTimeout
		if op.Kind.IsWrite() {
			limit = chaosWriteTimeout
		}
		if op.Outcome == chaos.OK || op.Return-op.Call < limit-100*time.Millisecond {
			continue
		}
		paused := false
		for _, f := range faults {
			if strings.HasPrefix(f.Type, "pause") && f.Target == op.Node && f.Start <= op.Return && f.End >= op.Call {
				paused = true
			}
		}
		if paused {
			continue
		}
		count[op.Kind]++
		if len(first) < 3 {
			first = append(first, fmt.Sprintf("op #%d %s on %s at %s: %s", op.ID, op.Kind, op.Node, op.Call.Round(time.Millisecond), op.Err))
		}
	}
	if len(count) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("requests to a running, unpaused node that took the client's whole deadline (%s writes, %s reads) without succeeding: %v; first: %s",
		chaosWriteTimeout, chaosReadTimeout, count, strings.Join(first, "; "))}
}

// chaosOutDir returns where the run's artefacts go: CHAOS_OUT, or a
// temporary directory that is kept only if the test fails.
func chaosOutDir(t *testing.T, set chaosSettings) string {
	t.Helper()
	if set.out != "" {
		if err := os.MkdirAll(set.out, 0o755); err != nil {
			t.Fatal(err)
		}
		return set.out
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("sessiond-chaos-%d-", set.seed))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chaos: the report, history, visualizations and node logs are kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return dir
}

// chaosFastFailures reports the reads above STALE that failed within a
// second because the node could not reach the leader it knew (issue 10:
// during an election a follower should wait, within the request's
// deadline, for the new leader rather than fail at once).
func chaosFastFailures(ops []chaos.Op) []string {
	n, first := 0, ""
	for _, op := range ops {
		if !op.Kind.IsWrite() && op.Level != chaos.Stale && op.Outcome == chaos.Failed &&
			op.Return-op.Call < time.Second && strings.Contains(op.Err, "dial peer") {
			n++
			if first == "" {
				first = fmt.Sprintf("op #%d %s/%s on %s at %s after %s: %s", op.ID, op.Kind, op.Level, op.Node,
					op.Call.Round(time.Millisecond), (op.Return - op.Call).Round(time.Millisecond), op.Err)
			}
		}
	}
	if n == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%d DEFAULT/LINEARIZABLE reads failed at once because the node could not reach the leader it knew; first: %s", n, first)}
}

// chaosArtefacts writes the report (JSON), the history and porcupine's
// visualization of every user found not linearizable to dir.
func chaosArtefacts(t *testing.T, dir string, rep *chaos.Report, res *chaos.Result, ops []chaos.Op) {
	t.Helper()
	if err := rep.WriteJSON(filepath.Join(dir, "chaos-report.json")); err != nil {
		t.Error(err)
	}
	if b, err := json.Marshal(ops); err == nil {
		if err := os.WriteFile(filepath.Join(dir, "history.json"), b, 0o644); err != nil {
			t.Error(err)
		}
	}
	for _, u := range res.Illegal {
		if err := res.Visualize(u, filepath.Join(dir, "linearizability-"+u+".html")); err != nil {
			t.Error(err)
		}
	}
}
