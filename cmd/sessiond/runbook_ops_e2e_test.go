package main

// The runbooks of docs/operations.md, each run on real processes with the
// commands the page gives.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// opsSessions creates a user in the built-in directory and logs one
// device in through each node, on a platform of its own (web, ios,
// android...): the acknowledged sessions a runbook must keep.
func opsSessions(t *testing.T, c *e2eCluster, prefix string, nodes ...*e2eNode) []e2eLoginResponse {
	t.Helper()
	email := prefix + "@example.com"
	e2eBuiltinUser(t, c, nodes[0], email)
	var out []e2eLoginResponse
	for i, n := range nodes {
		platform := []string{"web", "ios", "android", "windows"}[i]
		var lr e2eLoginResponse
		var err error
		// A new cluster creates its first signing key a moment after it is ready.
		e2eWaitFor(t, e2eStartLimit, fmt.Sprintf("a login through %s (last error: %v)", n.id, &err), func() bool {
			lr, _, err = e2eTryLogin(n.url(), email, e2ePassword, platform, prefix+"-"+platform)
			return err == nil
		})
		out = append(out, lr)
	}
	return out
}

// opsCheckActive checks that every login's token is active on every node
// at LINEARIZABLE.
func opsCheckActive(t *testing.T, what string, logins []e2eLoginResponse, nodes ...*e2eNode) {
	t.Helper()
	for _, n := range nodes {
		for _, lr := range logins {
			if ct := e2eCheckToken(t, n.url(), lr.AccessToken, e2eLinear); !ct.GetActive() {
				t.Errorf("%s: session %s on %s: %s; want active", what, lr.SessionID, n.id, ct.GetReason())
			}
		}
	}
}

// TestRunbookReplaceNode runs docs/operations.md, "Replace a node".
func TestRunbookReplaceNode(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c := newE2ECluster(t, false)
	x := newOpsExpect(c)
	hk, seoul, tokyo := x.all()
	logins := opsSessions(t, c, "replace", hk, seoul)

	tokyo.kill() // its machine is gone
	e2eWaitFor(t, e2eStartLimit, "status listing tokyo-1 dead", func() bool {
		m := opsMember(seoul.status(), tokyo.id)
		return m != nil && m.GetHealth().String() == "GOSSIP_HEALTH_DEAD"
	})
	if r := c.cli(seoul, "status"); r.code != 0 || !strings.Contains(r.stdout, "dead") {
		t.Errorf("cluster status: exit %d, %q; want tokyo-1 listed dead", r.code, r.stdout)
	}
	r := c.cli(seoul, "remove", tokyo.id)
	if r.code != 0 || !strings.Contains(r.stdout, tokyo.id+" removed: the configuration without it is committed") {
		t.Fatalf("cluster remove tokyo-1: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	replacement := x.start("tokyo") // same config, empty data dir
	seoul.waitMembers(e2eStartLimit, hk.id, seoul.id, replacement.id)
	replacement.waitReady(e2eStartLimit)
	opsCheckActive(t, "after replacing tokyo-1", logins, hk, seoul, replacement)
}

// TestRunbookLoseRegion runs docs/operations.md, "Lose a region".
func TestRunbookLoseRegion(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c, hk, seoul, tokyo := opsCluster(t)
	before := opsSessions(t, c, "region", hk, tokyo)

	tokyo.stop(20 * time.Second) // the region goes away
	for _, n := range []*e2eNode{hk, seoul} {
		n.waitReady(e2eStartLimit)
	}
	var during []e2eLoginResponse
	e2eWaitFor(t, e2eStartLimit, "logins through hk and seoul while tokyo is out", func() bool {
		during = nil
		for i, n := range []*e2eNode{hk, seoul} {
			lr, _, err := e2eTryLogin(n.url(), "region@example.com", e2ePassword, []string{"mac", "android"}[i], "outage")
			if err != nil {
				return false
			}
			during = append(during, lr)
		}
		return true
	})
	tokyo.restart() // the region comes back
	tokyo.waitReady(e2eStartLimit)
	hk.waitMembers(e2eStartLimit, hk.id, seoul.id, tokyo.id)
	opsCheckActive(t, "after the region returned", append(before, during...), hk, seoul, tokyo)
}

// TestRunbookLoseQuorum runs docs/operations.md, "Lose a quorum".
func TestRunbookLoseQuorum(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c, hk, seoul, tokyo := opsCluster(t)
	logins := opsSessions(t, c, "quorum", hk, seoul)

	seoul.kill()
	tokyo.kill()
	e2eWaitFor(t, e2eStartLimit, "hk-1 /readyz 503 no leader", func() bool {
		r, ok := hk.readyz()
		return ok && r.code == http.StatusServiceUnavailable && r.Status == "no leader"
	})
	hk.stop(20 * time.Second)
	peers := filepath.Join(t.TempDir(), "recovery.json")
	if err := os.WriteFile(peers, []byte(fmt.Sprintf(`[{"id": %q, "address": %q}]`, hk.id, hk.raftAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	rec := e2eCLI(t, "", "recover", "--data-dir", hk.dataDir, "--peers-file", peers)
	if rec.code != 0 || !strings.Contains(rec.stderr, "WARNING") || !strings.Contains(rec.stdout, "the configuration is now hk-1") {
		t.Fatalf("sessiond recover: exit %d, stdout %q, stderr %q; want warnings and the new configuration", rec.code, rec.stdout, rec.stderr)
	}
	cid := opsClusterIDOf(t, hk.dataDir)
	hk.restart()
	hk.waitReady(e2eStartLimit)
	hk.waitMembers(e2eStartLimit, hk.id)
	if got := opsReadyzClusterID(t, hk); got != cid {
		t.Errorf("cluster id after recovery: %q; want %q (kept)", got, cid)
	}
	opsCheckActive(t, "after recovery", logins, hk)
	// New nodes join the survivor.
	seoul2 := c.startNode(e2eNodeOpts{Region: "seoul", Join: []string{hk.raftAddr}})
	hk.waitMembers(e2eStartLimit, hk.id, seoul2.id)
	seoul2.waitReady(e2eStartLimit)
	opsCheckActive(t, "on a node joined after recovery", logins, seoul2)
}

// opsClusterIDOf reads the cluster id stored in a data dir.
func opsClusterIDOf(t *testing.T, dataDir string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir, "node.json"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, _ := strings.Cut(string(raw), `"cluster_id": "`)
	id, _, _ := strings.Cut(after, `"`)
	return id
}

// TestRunbookRestoreBackup runs docs/operations.md, "Restore from backup":
// a backup saved through a follower keeps every acknowledged session; it
// is inspected offline, restored into a new cluster (which a second node
// joins) and refused over an existing data dir.
func TestRunbookRestoreBackup(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c := newE2ECluster(t, false)
	x := newOpsExpect(c)
	hk, seoul, tokyo := x.all()
	logins := opsSessions(t, c, "backup", hk, seoul, tokyo)
	st := hk.status()
	_, followers := e2eLeaderAndFollowers(t, st, hk, seoul, tokyo)

	backup := filepath.Join(t.TempDir(), "sessiond.snap")
	tok := c.opToken(hk)
	save := e2eCLI(t, "", "snapshot", "save", backup, "--addr", followers[0].url(), "--token-file", tok)
	if save.code != 0 || !strings.Contains(save.stdout, "saved "+backup) || !strings.Contains(save.stdout, "cluster "+st.GetClusterId()) {
		t.Fatalf("snapshot save: exit %d, stdout %q, stderr %q", save.code, save.stdout, save.stderr)
	}
	if again := e2eCLI(t, "", "snapshot", "save", backup, "--addr", hk.url(), "--token-file", tok); again.code == 0 || !strings.Contains(again.stderr, "refusing to overwrite") {
		t.Errorf("snapshot save over an existing file: exit %d, %q; want a refusal", again.code, again.stderr)
	}
	reader := e2eCreateToken(t, hk, "reader", "cluster:read")
	if denied := e2eCLI(t, "", "snapshot", "save", backup+".2", "--addr", hk.url(), "--token-file", reader); denied.code == 0 || !strings.Contains(denied.stderr, "permission_denied") {
		t.Errorf("snapshot save with a cluster:read token: exit %d, %q; want permission_denied (a backup needs admin)", denied.code, denied.stderr)
	}
	if _, err := os.Stat(backup + ".2"); err == nil {
		t.Errorf("a refused snapshot save left %s behind", backup+".2")
	}
	insp := e2eCLI(t, "", "snapshot", "inspect", backup)
	if insp.code != 0 || !strings.Contains(insp.stdout, "checksums and database consistency OK") || !strings.Contains(insp.stdout, "cluster     "+st.GetClusterId()) {
		t.Fatalf("snapshot inspect: exit %d, stdout %q, stderr %q", insp.code, insp.stdout, insp.stderr)
	}
	var sessions int
	for _, line := range strings.Split(insp.stdout, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "sessions" {
			_, _ = fmt.Sscan(f[1], &sessions)
		}
	}
	if sessions < len(logins) {
		t.Errorf("snapshot inspect counts %d sessions; want at least %d:\n%s", sessions, len(logins), insp.stdout)
	}

	// Disaster: every node is gone.
	for _, n := range []*e2eNode{hk, seoul, tokyo} {
		n.kill()
	}
	newHK := filepath.Join(t.TempDir(), "hk-data")
	addr := e2eAddr(t)
	res := e2eCLI(t, "", "snapshot", "restore", backup, "--data-dir", newHK, "--node-id", "hk-1", "--region", "hk", "--raft-addr", addr)
	if res.code != 0 || !strings.Contains(res.stdout, "of NEW cluster") {
		t.Fatalf("snapshot restore: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if twice := e2eCLI(t, "", "snapshot", "restore", backup, "--data-dir", newHK, "--node-id", "hk-1", "--region", "hk", "--raft-addr", addr); twice.code == 0 || !strings.Contains(twice.stderr, "empty data dir") {
		t.Errorf("snapshot restore over a restored data dir: exit %d, %q; want a refusal naming an empty data dir", twice.code, twice.stderr)
	}
	// The operator token is in the restored state: it still works.
	c2 := &e2eCluster{t: t, kek: c.kek, gossipKey: c.gossipKey, opTokenFile: c.opTokenFile}
	y := newOpsExpect(c2)
	y.addrs["hk"].raftAddr = addr
	y.peers[0] = addr
	restored := y.start("hk", "--data-dir", newHK)
	restored.waitReady(e2eStartLimit)
	if cid := opsReadyzClusterID(t, restored); cid == "" || cid == st.GetClusterId() {
		t.Errorf("restored cluster id %q; want a new one (old %s)", cid, st.GetClusterId())
	}
	opsCheckActive(t, "after restoring the backup", logins, restored)
	seoul2 := y.start("seoul")
	restored.waitMembers(e2eStartLimit, restored.id, seoul2.id)
	seoul2.waitReady(e2eStartLimit)
	opsCheckActive(t, "on a node joined to the restored cluster", logins, seoul2)
}
