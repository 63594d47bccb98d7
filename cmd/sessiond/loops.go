package main

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/api/clusterrpc"
	"github.com/sessiond/sessiond/cluster"
	clusterv1 "github.com/sessiond/sessiond/proto/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/proto/gen/sessiond/cluster/v1/clusterv1connect"
)

// joinLoop asks the --join members, any of them, to add this node, with
// exponential backoff, until one succeeds or the node stops. A node that
// is already a member (a restart) is accepted at once by the idempotent
// Join.
func (n *node) joinLoop(ctx context.Context) {
	req := &clusterv1.JoinRequest{
		NodeId: n.raft.ID(), RaftAddr: n.raft.RaftAddr(), ApiAddr: n.apiAddr, Region: n.raft.Region(),
		Voter: n.cfg.Voter, GossipAddr: n.gossip.Addr(),
	}
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		for _, url := range n.cfg.Join {
			if url == n.apiURL {
				continue
			}
			c := clusterv1connect.NewClusterServiceClient(http.DefaultClient, url, clusterrpc.WithBearer(n.secret))
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			res, err := c.Join(cctx, connect.NewRequest(req))
			cancel()
			if err == nil {
				n.log.Info("joined the cluster", "via", url, "already_member", res.Msg.GetAlreadyMember())
				if e := res.Msg.GetGossipError(); e != "" {
					n.log.Warn("joined Raft but not gossip yet", "err", e)
				}
				return
			}
			if ctx.Err() != nil {
				return
			}
			level := n.log.Info
			if connect.CodeOf(err) == connect.CodeUnauthenticated || connect.CodeOf(err) == connect.CodeInvalidArgument ||
				connect.CodeOf(err) == connect.CodeAlreadyExists {
				level = n.log.Error
			}
			level("join attempt failed", "via", url, "attempt", attempt, "err", err)
		}
		jitter := time.Duration(rand.Int64N(int64(backoff) / 2))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff + jitter):
		}
		backoff = min(backoff*2, 15*time.Second)
	}
}

// peersFile keeps the gossip addresses of the members this node last saw,
// so a restarted node finds the cluster's gossip again without --join.
const peersFile = "peers.json"

// rejoinGossip joins gossip through the peers recorded in the data dir,
// then keeps that record current.
func (n *node) rejoinGossip(ctx context.Context) {
	path := filepath.Join(n.cfg.DataDir, peersFile)
	if raw, err := os.ReadFile(path); err == nil {
		var addrs []string
		if json.Unmarshal(raw, &addrs) == nil && len(addrs) > 0 {
			if _, err := n.gossip.Join(addrs); err != nil {
				n.log.Info("gossip rejoin through recorded peers failed", "err", err)
			}
		}
	}
	var last []string
	for {
		var addrs []string
		for _, m := range n.gossip.Members() {
			if m.ID != n.raft.ID() && m.Health == cluster.HealthAlive && m.GossipAddr != "" {
				addrs = append(addrs, m.GossipAddr)
			}
		}
		slices.Sort(addrs)
		if len(addrs) > 0 && !slices.Equal(addrs, last) {
			if raw, err := json.Marshal(addrs); err == nil {
				tmp := path + ".tmp"
				if os.WriteFile(tmp, raw, 0o600) == nil && os.Rename(tmp, path) == nil {
					last = addrs
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

// preferRegion hands leadership to a healthy voter of the preferred region
// when this node leads from elsewhere.
func (n *node) preferRegion(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
		if !n.raft.IsLeader() || n.raft.Region() == n.cfg.PreferredRegion {
			continue
		}
		servers, err := n.raft.Servers()
		if err != nil {
			continue
		}
		for _, m := range n.gossip.Members() {
			if m.Region != n.cfg.PreferredRegion || m.Health != cluster.HealthAlive {
				continue
			}
			if !slices.ContainsFunc(servers, func(s cluster.Server) bool { return s.ID == m.ID && s.Voter }) {
				continue
			}
			tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := n.raft.TransferLeadership(tctx, m.ID)
			cancel()
			if err == nil || errors.Is(err, context.Canceled) {
				n.log.Info("leadership handed to the preferred region", "to", m.ID, "region", m.Region)
			} else {
				n.log.Warn("leadership transfer to the preferred region failed", "to", m.ID, "err", err)
			}
			break
		}
	}
}
