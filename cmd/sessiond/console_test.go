package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/auditlog"
	"github.com/sessiond/sessiond/cluster/clustertest"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// TestConsoleClusterViews: the console's server side on a real in-process
// 3-node cluster. The audit query answers from this node alone or, asking
// every node over the peer channel, from all of them, naming a node that
// is down; the charts sum a region's samples; user search filters, sorts
// and bounds; rotating the signing key on one node makes a new active key
// everywhere and leaves the old one retiring.
func TestConsoleClusterViews(t *testing.T) {
	tc := startTestCluster(t, 3, nil)
	ctx := context.Background()
	const pw = "correct horse battery staple"
	for _, e := range []string{"zoe@example.com", "alice@example.com", "alina@example.org", "bob@example.com"} {
		tc.createUser(e, pw, "customs-agent")
	}
	for i, nd := range tc.nodes {
		if _, err := nd.auth.Login(ctx, authsvc.LoginInput{Email: "alice@example.com", Password: pw, Platform: storev1.Platform(i + 1), DeviceID: "d"}); err != nil {
			t.Fatalf("login on %s: %v", nd.cfg.NodeID, err)
		}
	}

	// Audit: local, then cluster-wide.
	a := nodeAudit{tc.nodes[0]}
	local, missing, err := a.QueryAudit(ctx, auditlog.Query{Type: "login"}, false)
	if err != nil || len(missing) != 0 || len(local) != 1 || local[0].Node != tc.nodes[0].cfg.NodeID {
		t.Errorf("local audit query: %d events %+v, missing %v, err %v; want this node's one login", len(local), local, missing, err)
	}
	all, missing, err := a.QueryAudit(ctx, auditlog.Query{Type: "login", User: "u-"}, true)
	var nodes []string
	for _, e := range all {
		nodes = append(nodes, e.Node)
	}
	slices.Sort(nodes)
	if err != nil || len(missing) != 0 || !slices.Equal(nodes, []string{"hk-1", "seoul-1", "tokyo-1"}) {
		t.Errorf("cluster audit query: nodes %v, missing %v, err %v; want one login from each node", nodes, missing, err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Time.After(all[i-1].Time) {
			t.Errorf("cluster audit answer not newest first at %d: %v after %v", i, all[i].Time, all[i-1].Time)
		}
	}

	// Charts: two samples on each node, summed by region.
	for i, nd := range tc.nodes {
		nd.sampler.sample(map[string]float64{"logins": 0})
		nd.sampler.sample(map[string]float64{"logins": float64(i + 1)})
	}
	step, series, missing := a.Charts(ctx)
	if step != sampleStep || len(missing) != 0 {
		t.Errorf("charts: step %v, missing %v; want %v, none", step, missing, sampleStep)
	}
	got := map[string]float64{}
	for _, s := range series {
		if s.Name == "logins" && len(s.Points) > 0 {
			got[s.Region] = s.Points[len(s.Points)-1]
		}
	}
	if want := map[string]float64{"hk": 6, "seoul": 12, "tokyo": 18}; len(got) != 3 || got["hk"] != want["hk"] || got["seoul"] != want["seoul"] || got["tokyo"] != want["tokyo"] {
		t.Errorf("latest logins per minute by region: %v; want %v (1, 2, 3 logins in 10 s)", got, want)
	}

	// Search.
	found, total, err := tc.nodes[1].auth.SearchUsers(ctx, "ALI", 1)
	if err != nil || total != 2 || len(found) != 1 || found[0].Email != "alice@example.com" {
		t.Errorf("search ALI limit 1: %v total %d err %v; want alice@example.com of 2", found, total, err)
	}
	if _, _, err := tc.nodes[1].auth.SearchUsers(ctx, string(make([]byte, 300)), 0); authsvc.ErrorKind(err) != authsvc.KindInvalid {
		t.Errorf("search with a 300-byte query: %v; want invalid", err)
	}

	// Keys: rotate on a follower.
	before, err := tc.nodes[2].auth.SigningKeys()
	if err != nil || len(before) == 0 || before[0].State != authsvc.KeyActive {
		t.Fatalf("keys before: %+v, %v; want an active key first", before, err)
	}
	kid, _, err := tc.nodes[2].auth.RotateSigningKey(ctx, "user/test")
	if err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 10*time.Second, "the new key active on hk", func() bool {
		ks, err := tc.nodes[0].auth.SigningKeys()
		if err != nil || len(ks) < 2 || ks[0].Kid != kid || ks[0].State != authsvc.KeyActive {
			return false
		}
		for _, k := range ks[1:] {
			if k.Kid == before[0].Kid {
				return k.State == authsvc.KeyRetiring
			}
		}
		return false
	})

	// A node down is named, the others still answer.
	tc.stop(tc.nodes[2])
	all, missing, err = a.QueryAudit(ctx, auditlog.Query{Type: "login"}, true)
	if err != nil || !slices.Equal(missing, []string{"tokyo-1"}) || len(all) != 2 {
		t.Errorf("with tokyo-1 down: %d events, missing %v, err %v; want 2 events and tokyo-1 named", len(all), missing, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the query waited out its deadline")
	}
}

// TestConsoleConfig: a bad console origin is refused with a message naming
// it; a good one passes.
func TestConsoleConfig(t *testing.T) {
	for o, ok := range map[string]bool{"https://ops.example.com": true, "http://127.0.0.1:8080": true, "ftp://x": false, "https://x/path": false, "ops.example.com": false} {
		errs := ConsoleConfig{Origins: []string{o}}.validate()
		if ok != (len(errs) == 0) || (!ok && !strings.Contains(errs[0].Error(), "console.origins")) {
			t.Errorf("origin %q: %v; want ok %t (errors naming console.origins)", o, errs, ok)
		}
	}
}
