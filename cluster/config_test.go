package cluster_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/cluster"
)

func TestConfigValidate(t *testing.T) {
	base := cluster.Config{NodeID: "n1", Region: "eu", DataDir: "/tmp/x", RaftBind: "127.0.0.1:7000", InsecurePlaintext: true}
	tests := []struct {
		name    string
		mut     func(c *cluster.Config)
		wantErr string // substring of the message; "" = valid
	}{
		{"valid defaults", func(*cluster.Config) {}, ""},
		{"valid WAN", func(c *cluster.Config) { c.Timeouts = cluster.WANTimeouts() }, ""},
		{"bad node id", func(c *cluster.Config) { c.NodeID = "a b" }, "NodeID"},
		{"no data dir", func(c *cluster.Config) { c.DataDir = "" }, "DataDir"},
		{"no bind", func(c *cluster.Config) { c.RaftBind = "" }, "RaftBind"},
		{"bind not host:port", func(c *cluster.Config) { c.RaftBind = "localhost" }, "RaftBind"},
		{"advertise unspecified", func(c *cluster.Config) { c.RaftAdvertise = "0.0.0.0:7000" }, "RaftAdvertise"},
		{"neither TLS nor plaintext", func(c *cluster.Config) { c.InsecurePlaintext = false }, "TLS is required"},
		{"TLS without a store", func(c *cluster.Config) { c.InsecurePlaintext, c.TLS = false, &cluster.PeerTLS{} }, "TLS.Store"},
		{"lease above heartbeat", func(c *cluster.Config) {
			c.Timeouts = cluster.LANTimeouts()
			c.Timeouts.LeaderLeaseTimeout = 2 * time.Second
		}, "LeaderLeaseTimeout"},
		{"election below heartbeat", func(c *cluster.Config) {
			c.Timeouts = cluster.LANTimeouts()
			c.Timeouts.ElectionTimeout = 500 * time.Millisecond
		}, "ElectionTimeout"},
		{"heartbeat too low", func(c *cluster.Config) {
			c.Timeouts = cluster.Timeouts{HeartbeatTimeout: time.Millisecond, ElectionTimeout: time.Second, LeaderLeaseTimeout: time.Millisecond, CommitTimeout: time.Millisecond}
		}, "HeartbeatTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mut(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, cluster.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want ErrInvalidConfig mentioning %s", err, tt.wantErr)
			}
		})
	}
}

func TestTimeoutProfilesFollowGuidance(t *testing.T) {
	for name, p := range map[string]cluster.Timeouts{"LAN": cluster.LANTimeouts(), "WAN": cluster.WANTimeouts()} {
		if p.LeaderLeaseTimeout > p.HeartbeatTimeout {
			t.Errorf("%s: lease %s > heartbeat %s", name, p.LeaderLeaseTimeout, p.HeartbeatTimeout)
		}
	}
	if got, min := cluster.WANTimeouts().ElectionTimeout, 10*300*time.Millisecond; got < min {
		t.Errorf("WAN election timeout: got %s, want >= 10x 300ms RTT = %s", got, min)
	}
}
