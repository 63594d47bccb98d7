package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMachineStopRebuildsTheStore: the store commits without fsync and
// relies on the Raft log (store.Options.DeferSync). A node whose machine
// stopped while it ran finds state.db marked with another boot's id, may
// find it torn, moves it aside and rebuilds it from its Raft snapshot and
// log: every login acknowledged before the stop is active there again, read
// from its own state (STALE), and the sessions that later logins replaced
// are still ended.
func TestMachineStopRebuildsTheStore(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c := newE2ECluster(t, true)
	hk := c.startNode(e2eNodeOpts{Region: "hk", Extra: e2eSnapshotFlags})
	hk.waitReady(e2eStartLimit)
	seoul := c.startNode(e2eNodeOpts{Region: "seoul", Join: []string{hk.raftAddr}, Extra: e2eSnapshotFlags})
	tokyo := c.startNode(e2eNodeOpts{Region: "tokyo", Join: []string{hk.raftAddr}, Extra: e2eSnapshotFlags})
	all := []*e2eNode{hk, seoul, tokyo}
	st := hk.waitMembers(e2eStartLimit, hk.id, seoul.id, tokyo.id)
	c.createUser("dee@example.com", e2ePassword)
	_, followers := e2eLeaderAndFollowers(t, st, all...)
	victim := followers[0]
	marker := filepath.Join(victim.dataDir, "state.db.open")
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("%s runs without the unsynced-store marker %s: %v (is DeferSync on?)", victim.id, marker, err)
	}

	// Logins on three platforms, each replacing the last one of its
	// device, until the victim has a snapshot; then a few more, which only
	// its log holds.
	platforms := []string{"web", "android", "mac"}
	first := map[string]e2eLoginResponse{}
	last := map[string]e2eLoginResponse{}
	login := func(i int) {
		p := platforms[i%len(platforms)]
		lr := e2eLogin(t, all[i%len(all)].url(), "dee@example.com", e2ePassword, p, p+"-device")
		if _, ok := first[p]; !ok {
			first[p] = lr
		}
		last[p] = lr
	}
	i := 0
	e2eWaitFor(t, e2eStartLimit, victim.id+" to write a snapshot", func() bool {
		login(i)
		i++
		return e2eSnapshotIndex(t, victim.dataDir) > 0
	})
	for range 10 {
		login(i)
		i++
	}
	var target uint64
	for _, lr := range last {
		target = max(target, lr.Index)
	}
	e2eWaitFor(t, e2eStartLimit, fmt.Sprintf("%s to apply index %d", victim.id, target), func() bool {
		r, ok := victim.readyz()
		return ok && r.AppliedIndex >= target
	})

	// The machine stops: the process dies, the next boot has another id,
	// and the unsynced file is torn.
	victim.kill()
	if err := os.WriteFile(marker, []byte("00000000-0000-0000-0000-000000000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(victim.dataDir, "state.db")
	if err := os.Truncate(db, 8192); err != nil {
		t.Fatal(err)
	}
	victim.restart()
	e2eWaitFor(t, e2eStartLimit, fmt.Sprintf("the restarted %s's /readyz applied_index to reach %d", victim.id, target), func() bool {
		if victim.exited() {
			t.Fatalf("restarted %s exited with code %d: %s", victim.id, victim.exitCode(), victim.tail(20))
		}
		r, ok := victim.readyz()
		return ok && r.code == http.StatusOK && r.AppliedIndex >= target
	})
	if !strings.Contains(victim.stderr(), "moved aside") && !strings.Contains(victim.stderr(), "moved_to") {
		t.Errorf("the restarted %s's log does not say the store file was moved aside:\n%s", victim.id, victim.tail(30))
	}
	if _, err := os.Stat(filepath.Join(victim.dataDir, "state.db.unclean")); err != nil {
		t.Errorf("the torn store is not kept as state.db.unclean: %v", err)
	}
	for p, lr := range last {
		if ct := e2eCheckToken(t, victim.url(), lr.AccessToken, e2eStale); !ct.GetActive() {
			t.Errorf("CheckToken STALE on the rebuilt %s for the last %s login (index %d): inactive (%q); want active", victim.id, p, lr.Index, ct.GetReason())
		}
	}
	for p, lr := range first {
		if lr.SessionID == last[p].SessionID {
			continue
		}
		if ct := e2eCheckToken(t, victim.url(), lr.AccessToken, e2eStale); ct.GetActive() {
			t.Errorf("CheckToken STALE on the rebuilt %s for the first %s login, which a later login replaced: active; want inactive", victim.id, p)
		}
	}
	// And it is a working member again.
	after := e2eLogin(t, victim.url(), "dee@example.com", e2ePassword, "ios", "phone")
	for _, n := range all {
		if ct := e2eCheckToken(t, n.url(), after.AccessToken, e2eLinear); !ct.GetActive() {
			t.Errorf("CheckToken LINEARIZABLE on %s for a login through the rebuilt %s: inactive (%q)", n.id, victim.id, ct.GetReason())
		}
	}
}
