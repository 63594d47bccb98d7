package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
)

// TestUpgradeAcrossStoreLayouts runs docs/operations.md's "Upgrading
// across a store layout change" on real processes: three agents of the
// last version that wrote store layout 3 (built from this repository's
// history) are upgraded one at a time to this build, the followers first,
// then the leader after it handed leadership over, while a user logs in,
// out and in again on another device through nodes of both versions. Every
// node must answer every check alike throughout, and at the end the
// earlier version must refuse an upgraded node's data (no way back).
func TestUpgradeAcrossStoreLayouts(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	old := e2eLayout3Binary(t)
	c := newE2ECluster(t, false)
	hk := c.startNode(e2eNodeOpts{Region: "hk", Binary: old})
	hk.waitReady(e2eStartLimit)
	seoul := c.startNode(e2eNodeOpts{Region: "seoul", Join: []string{hk.raftAddr}, Binary: old})
	tokyo := c.startNode(e2eNodeOpts{Region: "tokyo", Join: []string{hk.raftAddr, seoul.raftAddr}, Binary: old})
	nodes := []*e2eNode{hk, seoul, tokyo}
	hk.waitMembers(e2eStartLimit, hk.id, seoul.id, tokyo.id)
	for _, n := range nodes {
		n.waitReady(e2eStartLimit)
	}
	const email = "upgrade@example.com"
	e2eBuiltinUser(t, c, hk, email)

	// One round of what a user does on the web platform: log in on the
	// laptop through a, see the phone refused while the laptop is live,
	// log out through b, log in on the phone through b without force (the
	// laptop's slot is free), and every node must agree on both tokens.
	round := func(a, b *e2eNode, step string) {
		t.Helper()
		laptop := e2eLogin(t, a.url(), email, e2ePassword, "web", "laptop")
		if _, code, _ := e2eTryLogin(b.url(), email, e2ePassword, "web", "phone"); code != http.StatusConflict {
			t.Fatalf("%s: a login on the phone through %s while the laptop is live answered %d, want 409", step, b.id, code)
		}
		if code, body, err := e2ePost(b.url()+"/auth/logout", map[string]any{}, "Authorization", "Bearer "+laptop.AccessToken); err != nil || code != http.StatusNoContent {
			t.Fatalf("%s: logout through %s: %d %s %v, want 204", step, b.id, code, body, err)
		}
		phone := e2eLogin(t, b.url(), email, e2ePassword, "web", "phone")
		for _, n := range nodes {
			if r := e2eCheckToken(t, n.url(), laptop.AccessToken, e2eLinear); r.GetActive() {
				t.Fatalf("%s: %s says the logged-out laptop's token is active", step, n.id)
			}
			if r := e2eCheckToken(t, n.url(), phone.AccessToken, e2eLinear); !r.GetActive() {
				t.Fatalf("%s: %s says the phone's token is not active: %v", step, n.id, r.GetReason())
			}
		}
		if code, body, err := e2ePost(a.url()+"/auth/logout", map[string]any{}, "Authorization", "Bearer "+phone.AccessToken); err != nil || code != http.StatusNoContent {
			t.Fatalf("%s: logout of the phone through %s: %d %s %v, want 204", step, a.id, code, body, err)
		}
	}
	round(seoul, tokyo, "all on layout 3")

	leader, followers := e2eLeaderAndFollowers(t, hk.waitMembers(e2eStartLimit, hk.id, seoul.id, tokyo.id), nodes...)
	upgrade := func(n *e2eNode) {
		t.Helper()
		n.stop(30 * time.Second)
		n.restartWith(e2eBinary(t), n.id+"-upgraded")
		n.waitReady(e2eStartLimit)
		leader.waitMembers(e2eStartLimit, hk.id, seoul.id, tokyo.id)
	}
	upgrade(followers[0])
	round(followers[0], followers[1], "one follower upgraded")
	round(followers[1], followers[0], "one follower upgraded, the other way")
	upgrade(followers[1])
	round(leader, followers[1], "both followers upgraded")

	// The old leader hands leadership to an upgraded node, then upgrades.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	target := followers[0].id
	if _, err := leader.client().TransferLeadership(ctx, connect.NewRequest(&clusterv1.TransferLeadershipRequest{TargetNodeId: &target})); err != nil {
		t.Fatalf("transfer leadership to %s: %v", target, err)
	}
	followers[0].waitMembers(e2eStartLimit, hk.id, seoul.id, tokyo.id)
	upgrade(leader)
	leader = followers[0]
	round(hk, tokyo, "all upgraded")
	round(tokyo, seoul, "all upgraded, again")

	// No way back: the earlier version refuses an upgraded node's file.
	seoul.stop(30 * time.Second)
	seoul.restartWith(old, seoul.id+"-downgraded")
	select {
	case <-seoul.done:
	case <-time.After(e2eStartLimit):
		t.Fatalf("the layout 3 binary kept running on an upgraded data dir:\n%s", seoul.tail(20))
	}
	if seoul.exitCode() == 0 || !strings.Contains(seoul.stderr(), "unsupported layout version") {
		t.Fatalf("the layout 3 binary on an upgraded data dir exited %d; want an error naming the unsupported layout version:\n%s", seoul.exitCode(), seoul.tail(20))
	}
}

// e2eLayout3Binary builds sessiond as of the last commit that wrote store
// layout 3 (the parent of the commit that set layoutVersion to 4), from
// this checkout's history, and returns its path.
func e2eLayout3Binary(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, ".git")); err != nil {
		t.Skipf("not a git checkout (%v): the earlier version to upgrade from is built from the history", err)
	}
	git := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("git", append([]string{"-C", root}, args...)...).Output()
		if err != nil {
			t.Fatalf("git %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	if git("rev-parse", "--is-shallow-repository") == "true" {
		t.Skip("a shallow clone: the earlier version to upgrade from is built from the history; run git fetch --unshallow (.ci/run does)")
	}
	change := git("log", "-1", "--format=%H", "-S", "const layoutVersion = 4", "--", "store/bolt.go")
	if change == "" {
		t.Fatal("no commit in the history sets layoutVersion to 4")
	}
	rev := git("rev-parse", change+"^")
	src := t.TempDir()
	archive := exec.Command("git", "-C", root, "archive", "--format=tar", rev)
	untar := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	untar.Stdin = pipe
	if err := untar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s: %v", rev, err)
	}
	if err := untar.Wait(); err != nil {
		t.Fatalf("untar %s: %v", rev, err)
	}
	bin := filepath.Join(t.TempDir(), "sessiond-layout3")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sessiond")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build of %s: %v\n%s", rev, err, out)
	}
	return bin
}
