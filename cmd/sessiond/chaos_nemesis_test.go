//go:build linux

package main

// The nemesis of TestChaos: one fault at a time, chosen by a seeded
// random schedule: SIGKILL and restart from the data dir, SIGSTOP and
// SIGCONT, partitions (one node, the leader, or two random halves), and
// membership changes through the cluster API (join a fresh node, remove a
// node, replace a node: remove, wipe, join with a new id), alone or while
// another fault is in force. A refused membership change is a legal
// outcome: the nemesis goes by the configuration the cluster reports.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sessiond/sessiond/internal/chaos"
)

// chaosNemesis injects faults and records them.
type chaosNemesis struct {
	c *chaosCluster
	w *chaosWorkload
	h *chaos.History
	// rng draws the schedule (what, whom, how long); aux picks which node
	// to ask, as often as the cluster's answers require, so that it does
	// not shift the schedule.
	rng, aux *rand.Rand
	// faultFor draws how long a fault lasts.
	faultFor func() time.Duration

	mu      sync.Mutex
	faults  []chaos.Fault
	notes   []string
	crashes []string // nodes that could not start again, and why
}

func (m *chaosNemesis) note(format string, args ...any) {
	s := fmt.Sprintf("%s: ", m.h.Now().Round(time.Millisecond)) + fmt.Sprintf(format, args...)
	m.mu.Lock()
	m.notes = append(m.notes, s)
	m.mu.Unlock()
	m.c.t.Log("nemesis " + s)
}

// record adds a fault that began at start and ended now.
func (m *chaosNemesis) record(typ, target string, start time.Duration, outcome string) {
	m.mu.Lock()
	m.faults = append(m.faults, chaos.Fault{Type: typ, Target: target, Start: start, End: m.h.Now(), Outcome: outcome})
	m.mu.Unlock()
	m.c.t.Logf("nemesis %s: %s %s (%s) %s", start.Round(time.Millisecond), typ, target, (m.h.Now() - start).Round(time.Millisecond), outcome)
}

// run injects faults until the history's clock reaches until, pausing
// between faults; every fault is healed before run returns.
func (m *chaosNemesis) run(ctx context.Context, until time.Duration) {
	for ctx.Err() == nil && m.h.Now() < until {
		m.c.status(ctx, m.aux) // refresh the configuration
		m.step(ctx)
		// Quiet time between faults, part of the schedule.
		time.Sleep(time.Duration(1000+m.rng.IntN(2000)) * time.Millisecond)
	}
}

// step injects one fault (or a membership change, alone or under another
// fault) chosen at random.
func (m *chaosNemesis) step(ctx context.Context) {
	members := m.c.live()
	if len(members) == 0 {
		return
	}
	leader := m.leader(ctx)
	pick := func() *chaosNode { return members[m.rng.IntN(len(members))] }
	switch r := m.rng.IntN(100); {
	case r < 15:
		m.kill(pick(), "kill")
	case r < 22 && leader != nil:
		m.kill(leader, "kill-leader")
	case r < 34:
		m.pause(pick(), "pause")
	case r < 40 && leader != nil:
		m.pause(leader, "pause-leader")
	case r < 52:
		m.partition([]*chaosNode{pick()}, "partition")
	case r < 58 && leader != nil:
		m.partition([]*chaosNode{leader}, "partition-leader")
	case r < 64:
		shuffled := slices.Clone(members)
		m.rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		m.partition(shuffled[:len(shuffled)/2], "partition-halves")
	case r < 68:
		m.isolateAll()
	case r < 84:
		m.membership(ctx)
	default:
		m.membershipUnderFault(ctx, pick())
	}
}

// leader returns the leader as the cluster reports it, or nil.
func (m *chaosNemesis) leader(ctx context.Context) *chaosNode {
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if s := m.c.status(sctx, m.aux); s != nil {
		return m.c.node(s.GetLeaderId())
	}
	return nil
}

// kill SIGKILLs n, waits, and restarts it from its data dir.
func (m *chaosNemesis) kill(n *chaosNode, typ string) {
	start := m.h.Now()
	m.c.kill(n)
	time.Sleep(m.faultFor()) // the fault's duration
	outcome := ""
	if !m.restart(context.Background(), n) {
		outcome = "could not restart"
	}
	m.record(typ, n.id, start, outcome)
}

// restart starts n again from its data dir and waits until it serves. A
// node that cannot start is a crash: it is recorded, and the node is
// replaced (removed, wiped, and joined again with a new id, as an operator
// would replace a machine whose disk is corrupt) so that the run goes on.
// It reports whether n started.
func (m *chaosNemesis) restart(ctx context.Context, n *chaosNode) bool {
	err := m.c.restart(n)
	if err == nil {
		err = m.c.started(ctx, 30*time.Second, n)
	}
	if err == nil {
		return true
	}
	m.mu.Lock()
	m.crashes = append(m.crashes, fmt.Sprintf("%s: %v", m.h.Now().Round(time.Millisecond), err))
	m.mu.Unlock()
	m.c.t.Logf("nemesis %s: %s cannot start again: %v", m.h.Now().Round(time.Millisecond), n.id, err)
	m.replaceDead(ctx, n)
	return false
}

// replaceDead removes a node that cannot start (retrying while the
// cluster refuses), wipes it and joins a fresh node on its host.
func (m *chaosNemesis) replaceDead(ctx context.Context, n *chaosNode) {
	start := m.h.Now()
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for !m.remove(rctx, n, "remove-crashed") {
		select {
		case <-rctx.Done():
			m.note("could not remove the crashed node %s: it stays a dead member", n.id)
			return
		case <-time.After(time.Second): // retry interval
		}
	}
	if err := os.RemoveAll(n.dataDir); err != nil {
		m.note("wiping %s: %v", n.id, err)
	}
	outcome := "join refused"
	if nn := m.join(ctx, n.host, "join-replacing-crashed"); nn != nil {
		outcome = "replaced by " + nn.id
	}
	m.record("replace-crashed", n.id, start, outcome)
}

// pause SIGSTOPs n, waits, and resumes it.
func (m *chaosNemesis) pause(n *chaosNode, typ string) {
	start := m.h.Now()
	if err := m.c.signal(n, true); err != nil {
		m.note("pausing %s: %v", n.id, err)
		return
	}
	time.Sleep(m.faultFor()) // the fault's duration
	if err := m.c.signal(n, false); err != nil {
		m.note("resuming %s: %v", n.id, err)
	}
	m.record(typ, n.id, start, "")
}

// partition cuts the nodes of side off from the other members, waits, and
// heals.
func (m *chaosNemesis) partition(side []*chaosNode, typ string) {
	others := slices.DeleteFunc(m.c.live(), func(n *chaosNode) bool { return slices.Contains(side, n) })
	if len(side) == 0 || len(others) == 0 {
		return
	}
	start := m.h.Now()
	if err := m.c.net.Partition(chaosHosts(side), chaosHosts(others)); err != nil {
		m.note("partition: %v", err)
	}
	time.Sleep(m.faultFor()) // the fault's duration
	if err := m.c.net.Heal(); err != nil {
		m.note("heal: %v", err)
	}
	m.record(typ, strings.Join(chaosIDs(side), ",")+" | "+strings.Join(chaosIDs(others), ","), start, "")
}

// isolateAll cuts every member off from every other: no quorum anywhere.
func (m *chaosNemesis) isolateAll() {
	members := m.c.live()
	groups := make([][]*chaos.Host, len(members))
	for i, n := range members {
		groups[i] = []*chaos.Host{n.host}
	}
	start := m.h.Now()
	if err := m.c.net.Partition(groups...); err != nil {
		m.note("partition: %v", err)
	}
	time.Sleep(m.faultFor()) // the fault's duration
	if err := m.c.net.Heal(); err != nil {
		m.note("heal: %v", err)
	}
	m.record("partition-all", strings.Join(chaosIDs(members), " | "), start, "")
}

// membership makes one change: join a fresh node while there are fewer
// than five members, remove one while more than three, else replace one.
func (m *chaosNemesis) membership(ctx context.Context) {
	members := m.c.live()
	switch {
	case len(members) < 4 || (len(members) < 5 && m.rng.IntN(3) == 0):
		m.join(ctx, nil, "join")
	case len(members) > 4 || (len(members) > 3 && m.rng.IntN(2) == 0):
		m.remove(ctx, members[m.rng.IntN(len(members))], "remove")
	default:
		m.replace(ctx, members[m.rng.IntN(len(members))])
	}
}

// membershipUnderFault makes a membership change while target is killed,
// paused or cut off.
func (m *chaosNemesis) membershipUnderFault(ctx context.Context, target *chaosNode) {
	start := m.h.Now()
	var heal func()
	var typ string
	switch m.rng.IntN(3) {
	case 0:
		typ = "kill"
		m.c.kill(target)
		heal = func() { m.restart(ctx, target) }
	case 1:
		typ = "pause"
		if err := m.c.signal(target, true); err != nil {
			m.note("pausing %s: %v", target.id, err)
		}
		heal = func() { _ = m.c.signal(target, false) }
	default:
		typ = "partition"
		others := slices.DeleteFunc(m.c.live(), func(n *chaosNode) bool { return n == target })
		if err := m.c.net.Partition([]*chaos.Host{target.host}, chaosHosts(others)); err != nil {
			m.note("partition: %v", err)
		}
		heal = func() { _ = m.c.net.Heal() }
	}
	// Remove the faulty node itself now and then, as an operator replacing
	// a dead machine would; otherwise change another.
	members := m.c.live()
	switch r := m.rng.IntN(3); {
	case r == 0 && len(members) > 3:
		m.remove(ctx, target, "remove-under-"+typ)
	case r == 1 && len(members) < 5:
		m.join(ctx, nil, "join-under-"+typ)
	default:
		others := slices.DeleteFunc(members, func(n *chaosNode) bool { return n == target })
		if len(others) > 0 && len(members) > 3 {
			m.remove(ctx, others[m.rng.IntN(len(others))], "remove-under-"+typ)
		} else if len(members) < 5 {
			m.join(ctx, nil, "join-under-"+typ)
		}
	}
	if !m.c.isGone(target) {
		heal()
	}
	m.record(typ, target.id, start, "with a membership change")
}

// join starts a fresh node (on host, or a new one) and asks the cluster to
// add it. It returns the node if it became a member.
func (m *chaosNemesis) join(ctx context.Context, host *chaos.Host, typ string) *chaosNode {
	start := m.h.Now()
	n, err := m.c.newNode(host)
	if err != nil {
		m.note("new node: %v", err)
		return nil
	}
	if err := m.c.start(n, false, nil); err != nil {
		m.note("starting %s: %v", n.id, err)
		return nil
	}
	jctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	err = m.c.join(jctx, m.aux, n)
	cancel()
	outcome := "done"
	if err != nil {
		outcome = "refused: " + err.Error()
	}
	// The cluster's word decides, whatever the answer said.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	m.c.status(sctx, m.aux)
	cancel()
	if err == nil {
		m.c.setMember(n.id, true)
	}
	if !m.c.isMember(n.id) {
		m.c.kill(n)
		m.c.setGone(n)
		if host == nil {
			_ = m.c.net.RemoveHost(n.host)
		}
		m.record(typ, n.id, start, outcome)
		return nil
	}
	if err != nil {
		m.note("join of %s answered %v but %s is a member", n.id, err, n.id)
	}
	m.w.startWorkers(n)
	m.record(typ, n.id, start, outcome)
	return n
}

// remove asks the cluster to remove n; if it is no longer a member, its
// clients stop, its process is killed and it is gone. It reports whether
// n was removed.
func (m *chaosNemesis) remove(ctx context.Context, n *chaosNode, typ string) bool {
	start := m.h.Now()
	err := m.c.remove(ctx, m.aux, n.id)
	outcome := "done"
	if err != nil {
		outcome = "refused: " + err.Error()
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	s := m.c.status(sctx, m.aux)
	cancel()
	removed := s != nil && !m.c.isMember(n.id)
	if err == nil && s == nil {
		removed = true // accepted, and nobody answers a status: trust the answer
		m.c.setMember(n.id, false)
	}
	if removed {
		if err != nil {
			m.note("remove of %s answered %v but %s is no longer a member", n.id, err, n.id)
		}
		m.w.stopWorkers(n.id)
		m.c.kill(n)
		m.c.setGone(n)
	} else if err == nil {
		m.note("remove of %s was accepted but %s is still a member", n.id, n.id)
	}
	m.record(typ, n.id, start, outcome)
	return removed
}

// replace removes n, wipes its data and joins a node with a new id on its
// host.
func (m *chaosNemesis) replace(ctx context.Context, n *chaosNode) {
	start := m.h.Now()
	if !m.remove(ctx, n, "replace-remove") {
		m.record("replace", n.id, start, "remove refused")
		return
	}
	if err := os.RemoveAll(n.dataDir); err != nil {
		m.note("wiping %s: %v", n.id, err)
	}
	outcome := "done"
	if nn := m.join(ctx, n.host, "replace-join"); nn == nil {
		outcome = "join refused"
	} else {
		outcome = "replaced by " + nn.id
	}
	m.record("replace", n.id, start, outcome)
}
