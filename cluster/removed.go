package cluster

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrRemoved is wrapped by what a node answers once it learned it was
// removed from its cluster's configuration.
var ErrRemoved = errors.New("cluster: this node was removed from the cluster")

// Removed reports whether this node learned that it is no longer in its
// cluster's configuration (see watchRemoval). A removed node stops Raft;
// it never becomes a member again without an empty data dir and a new join.
func (n *Node) Removed() bool { return n.removed.Load() }

// RemovedC is closed when this node learns it was removed.
func (n *Node) RemovedC() <-chan struct{} { return n.removedC }

// watchRemoval lets a node learn that it was removed: a leader stops
// replicating to a removed node at once, so the node may never see the
// entry that removes it. Every interval, a node with Raft state that is
// not in its own configuration, or has heard from no leader for longer
// than the election timeout, asks the other servers of its configuration
// (and the live gossip members) for their Info. When the leader itself
// answers that its configuration does not list this node, the node marks
// itself removed, logs it at WARN, shuts Raft down and calls
// Config.OnRemoved.
func (n *Node) watchRemoval(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-n.closed:
			return
		case <-t.C:
		}
		if n.Removed() {
			return
		}
		if n.checkRemoved() {
			n.markRemoved()
			return
		}
	}
}

// checkRemoved asks the leader, through the servers it knows, whether this
// node is still a member.
func (n *Node) checkRemoved() bool {
	if n.IsLeader() {
		return false
	}
	servers, err := n.Servers()
	if err != nil || len(servers) == 0 {
		return false
	}
	inConfig := false
	for _, s := range servers {
		if s.ID == n.cfg.NodeID {
			inConfig = true
		}
	}
	if inConfig && n.LastContact() <= 2*n.cfg.Timeouts.ElectionTimeout {
		return false
	}
	if has, err := n.hasState(); err != nil || !has {
		return false
	}
	targets := map[string]string{} // id -> peer address
	for _, s := range servers {
		if s.ID != n.cfg.NodeID {
			targets[s.ID] = s.RaftAddr
		}
	}
	if g := n.gossip.Load(); g != nil {
		for _, m := range g.Members() {
			if m.ID != n.cfg.NodeID && m.Health == HealthAlive && m.RaftAddr != "" {
				targets[m.ID] = m.RaftAddr
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), infoTimeout)
	defer cancel()
	var mu sync.Mutex
	removed := false
	var wg sync.WaitGroup
	for id, addr := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info, err := n.peerInfo(ctx, id, addr)
			if err != nil || info.GetLeaderId() != info.GetNodeId() || info.GetCallerIsMember() {
				return
			}
			if mine := n.ClusterID(); mine != "" && info.GetClusterId() != mine {
				return
			}
			mu.Lock()
			removed = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	return removed
}

// markRemoved records the removal once.
func (n *Node) markRemoved() {
	if !n.removed.CompareAndSwap(false, true) {
		return
	}
	n.logger.Warn("this node was removed from the cluster: it stops taking part in Raft and serving; to bring it back, empty its data dir and join it again",
		"node", n.cfg.NodeID, "cluster_id", n.ClusterID())
	close(n.removedC)
	go func() {
		if err := n.raft.Shutdown().Error(); err != nil {
			n.logger.Warn("raft shutdown after removal", "err", err)
		}
		if n.cfg.OnRemoved != nil {
			n.cfg.OnRemoved()
		}
	}()
}
