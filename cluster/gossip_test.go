package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/clustertest"
)

// fastGossip shortens memberlist's failure detection for loopback tests.
func fastGossip(c *memberlist.Config) {
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = 500 * time.Millisecond
	c.SuspicionMult = 1
	c.SuspicionMaxTimeoutMult = 1
	c.TCPTimeout = 500 * time.Millisecond
}

func startGossips(t *testing.T, n int, key []byte) []*cluster.Gossip {
	t.Helper()
	gs := make([]*cluster.Gossip, n)
	for i := range n {
		g, err := cluster.NewGossip(cluster.GossipConfig{
			NodeID:    fmt.Sprintf("node-%d", i),
			Region:    fmt.Sprintf("region-%d", i%2),
			APIAddr:   fmt.Sprintf("127.0.0.1:%d", 8000+i),
			RaftAddr:  fmt.Sprintf("127.0.0.1:%d", 9000+i),
			Voter:     i != 2,
			Version:   "v1.2.3",
			Bind:      "127.0.0.1:0",
			SecretKey: key,
			Logger:    clustertest.Logger(),
			Configure: fastGossip,
		})
		if err != nil {
			t.Fatalf("gossip %d: %v", i, err)
		}
		t.Cleanup(func() { _ = g.Shutdown() })
		gs[i] = g
		if i > 0 {
			if _, err := g.Join([]string{gs[0].Addr()}); err != nil {
				t.Fatalf("join %d: %v", i, err)
			}
		}
	}
	return gs
}

func TestGossipMembersSeeEachOtherWithMetadata(t *testing.T) {
	gs := startGossips(t, 3, []byte("0123456789abcdef"))
	for i, g := range gs {
		clustertest.WaitFor(t, 5*time.Second, fmt.Sprintf("node-%d sees 3 alive members", i), func() bool {
			alive := 0
			for _, m := range g.Members() {
				if m.Health == cluster.HealthAlive {
					alive++
				}
			}
			return alive == 3
		})
	}
	m, ok := gs[0].Member("node-2")
	want := cluster.Member{ID: "node-2", Region: "region-0", APIAddr: "127.0.0.1:8002", RaftAddr: "127.0.0.1:9002", Voter: false, Version: "v1.2.3", Health: cluster.HealthAlive, GossipAddr: gs[2].Addr()}
	if !ok || m != want {
		t.Fatalf("node-0's view of node-2: got %+v, want %+v", m, want)
	}
	if addr, ok := gs[1].APIAddr("node-0"); !ok || addr != "127.0.0.1:8000" {
		t.Errorf("APIAddr(node-0): got %q %v, want 127.0.0.1:8000", addr, ok)
	}
	if err := gs[2].SetVoter(true, time.Second); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 5*time.Second, "node-0 sees node-2 as voter", func() bool {
		m, _ := gs[0].Member("node-2")
		return m.Voter
	})
}

func TestGossipShutdownMemberBecomesDeadAndLeaverLeft(t *testing.T) {
	gs := startGossips(t, 3, []byte("0123456789abcdef0123456789abcdef"))
	clustertest.WaitFor(t, 5*time.Second, "3 members", func() bool { return len(gs[0].Members()) == 3 })

	if err := gs[1].Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	_ = gs[1].Shutdown()
	clustertest.WaitFor(t, 5*time.Second, "node-1 seen as left", func() bool {
		h, _ := gs[0].Health("node-1")
		return h == cluster.HealthLeft
	})
	if _, ok := gs[0].APIAddr("node-1"); ok {
		t.Errorf("APIAddr of a member that left: got ok, want not found")
	}

	_ = gs[2].Shutdown()
	clustertest.WaitFor(t, 10*time.Second, "node-2 seen as dead", func() bool {
		h, _ := gs[0].Health("node-2")
		return h == cluster.HealthDead
	})
}

func TestGossipRejectsBadKey(t *testing.T) {
	_, err := cluster.NewGossip(cluster.GossipConfig{NodeID: "a", APIAddr: "127.0.0.1:1", Bind: "127.0.0.1:0", SecretKey: []byte("short")})
	if err == nil {
		t.Fatal("NewGossip with a 5-byte key: got nil error, want ErrInvalidConfig")
	}
}
