package main

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/sessiond/sessiond/cluster"
)

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
