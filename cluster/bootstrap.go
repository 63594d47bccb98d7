package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/hashicorp/raft"

	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
)

// ErrBootstrapRefused is wrapped when a node told to bootstrap finds that
// it must join an existing cluster instead.
var ErrBootstrapRefused = errors.New("cluster: bootstrap refused")

// peerView is what one peer address answered to Info.
type peerView struct {
	addr string
	info *clusterv1.InfoResponse
	err  error
}

// surveyPeers asks every peer address but this node's own for its Info, at
// once, and returns the answers in the order of peers.
func (n *Node) surveyPeers(ctx context.Context, peers []string) []peerView {
	out := make([]peerView, 0, len(peers))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, addr := range peers {
		if addr == n.RaftAddr() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			info, err := n.peerInfo(ctx, "", addr)
			mu.Lock()
			out = append(out, peerView{addr: addr, info: info, err: err})
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b peerView) int { return strings.Compare(a.addr, b.addr) })
	return out
}

// inCluster returns the first peer that belongs to a cluster, if any.
func inCluster(views []peerView) (peerView, bool) {
	for _, v := range views {
		if v.err == nil && (v.info.GetClusterId() != "" || v.info.GetHasState()) {
			return v, true
		}
	}
	return peerView{}, false
}

// BootstrapChecked is Bootstrap for a node told to bootstrap (bootstrap:
// true) that knows the peer addresses of the other servers: before
// bootstrapping an empty data dir it asks each of them for its Info, and
// if one already belongs to a cluster it refuses (ErrBootstrapRefused,
// naming the peer, its cluster and how to join instead) and changes
// nothing, so that a node whose data dir was wiped does not start a second
// cluster beside its old one. Peers that do not answer are logged at WARN
// and do not prevent the bootstrap. It also refuses a data dir that records
// a cluster id but has no Raft state (a partly wiped node). A node that
// already has Raft state does nothing.
func (n *Node) BootstrapChecked(ctx context.Context, peers []string) error {
	has, err := n.hasState()
	if err != nil {
		return fmt.Errorf("cluster: bootstrap: %w", err)
	}
	if id := n.ClusterID(); n.emptyAtOpen && (has || id != "") {
		// A leader that has just removed this node's old incarnation may
		// still be replicating to its address: the wiped node received that
		// cluster's log (or id) while starting. It belongs there.
		return fmt.Errorf("%w: this node started with an empty data dir and a member of cluster %s reached it at once: it must join that cluster, not start another: remove bootstrap and start it with join: [<a member's peer address>]",
			ErrBootstrapRefused, id)
	}
	if has {
		return nil
	}
	if id := n.ClusterID(); id != "" {
		return fmt.Errorf("%w: %s records cluster %s but holds no Raft state (its Raft files were lost): start it with join: [<a member's peer address>] instead of bootstrap",
			ErrBootstrapRefused, n.cfg.DataDir, id)
	}
	views := n.surveyPeers(ctx, peers)
	if v, ok := inCluster(views); ok {
		return fmt.Errorf("%w: peer %s (%s) already belongs to cluster %s: this node must join it, not start another: remove bootstrap and start it with join: [%s]",
			ErrBootstrapRefused, v.addr, v.info.GetNodeId(), v.info.GetClusterId(), v.addr)
	}
	for _, v := range views {
		if v.err != nil {
			n.logger.Warn("bootstrap: peer did not answer; bootstrapping anyway", "peer", v.addr, "err", unwrapConnect(v.err))
		}
	}
	if len(peers) == 0 {
		n.logger.Warn("bootstrapping a NEW cluster with no peers to check: if this node belonged to a cluster and lost its data dir, stop it now and join it instead (prefer bootstrap_expect with retry_join)")
	}
	return n.Bootstrap()
}

// BootstrapExpect forms or joins a cluster from a list of peer addresses
// (retry_join), like Consul's bootstrap_expect: every node of a new
// cluster is started with the same expect and peer list, in any order.
// Every interval (1 s, backing off to 5 s) until ctx ends:
//
//   - a node with Raft state (bootstrapped, or added by a leader) asks the
//     peers to join it (idempotent; it also puts it in gossip) and returns
//     once one accepts;
//   - a node without state asks every peer for its Info. If one belongs to
//     a cluster, it joins through it (as a voter-to-be unless NonVoter),
//     and never bootstraps: a node whose data dir was wiped rejoins its
//     cluster. Otherwise, once it sees expect-1 peers without state
//     configured with the same expect, the one of them with the lowest
//     node id bootstraps a cluster of all of them as voters; the others
//     receive its log and then join.
//
// A refusal that cannot change (another cluster, a certificate the peers
// refuse) is logged at ERROR and returned.
func (n *Node) BootstrapExpect(ctx context.Context, peers []string, expect int) error {
	if expect < 1 {
		return fmt.Errorf("%w: bootstrap_expect %d", ErrInvalidArgument, expect)
	}
	// The rounds' wait grows by a quarter from 1 s to 5 s; a refusal that
	// cannot change stops it (backoff.Permanent).
	b := &backoff.ExponentialBackOff{InitialInterval: time.Second, Multiplier: 1.25, MaxInterval: 5 * time.Second}
	errNotYet := errors.New("bootstrap_expect: not done yet")
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // the wait between rounds ends with the node
		select {
		case <-n.closed:
			cancel()
		case <-rctx.Done():
		}
	}()
	_, err := backoff.Retry(rctx, func() (struct{}, error) {
		done, err := n.bootstrapExpectRound(rctx, peers, expect)
		switch {
		case err != nil:
			n.logger.Error("bootstrap_expect: giving up: fix the cause and restart the node", "err", err)
			return struct{}{}, backoff.Permanent(err)
		case !done:
			return struct{}{}, errNotYet
		}
		return struct{}{}, nil
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0))
	select {
	case <-n.closed:
		if err != nil {
			return ErrShutdown
		}
	default:
	}
	if errors.Is(err, errNotYet) {
		return ctx.Err()
	}
	return err
}

// bootstrapExpectRound is one round of BootstrapExpect.
func (n *Node) bootstrapExpectRound(ctx context.Context, peers []string, expect int) (done bool, err error) {
	has, err := n.hasState()
	if err != nil {
		return false, err
	}
	if !has && n.ClusterID() == "" && expect == 1 && len(peers) == 0 {
		n.logger.Info("bootstrap_expect 1: bootstrapping a one-node cluster")
		return true, n.Bootstrap()
	}
	req := n.selfJoinRequest(!n.cfg.NonVoter)
	tryJoin := func(addrs []string) (bool, error) {
		for _, addr := range addrs {
			res, err := n.joinVia(ctx, addr, req)
			if err == nil {
				n.logger.Info("joined the cluster", "via", addr, "already_member", res.AlreadyMember, "cluster_id", n.ClusterID())
				return true, nil
			}
			if permanentJoinError(err) {
				return false, fmt.Errorf("join through %s: %w", addr, err)
			}
			n.logger.Debug("join attempt failed", "via", addr, "err", err)
		}
		return false, nil
	}
	views := n.surveyPeers(ctx, peers)
	var members []string
	for _, v := range views {
		if v.err == nil && v.info.GetLeaderId() != "" && v.info.GetClusterId() != "" {
			members = append(members, v.addr)
		}
	}
	if has {
		return tryJoin(members)
	}
	if v, ok := inCluster(views); ok {
		if len(members) == 0 {
			n.logger.Info("bootstrap_expect: peers belong to a cluster that has no leader yet; waiting", "peer", v.addr, "cluster_id", v.info.GetClusterId())
			return false, nil
		}
		return tryJoin(members)
	}
	servers := []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.NodeID), Address: raft.ServerAddress(n.RaftAddr())}}
	var waiting []string
	for _, v := range views {
		switch {
		case v.err != nil:
			waiting = append(waiting, v.addr)
		case int(v.info.GetBootstrapExpect()) != expect:
			n.logger.Warn("bootstrap_expect: peer expects another cluster size; ignoring it", "peer", v.addr, "node", v.info.GetNodeId(),
				"its_bootstrap_expect", v.info.GetBootstrapExpect(), "bootstrap_expect", expect)
		case v.info.GetNodeId() == n.cfg.NodeID:
			return false, fmt.Errorf("%w: peer %s has this node's id %q", ErrInvalidArgument, v.addr, n.cfg.NodeID)
		default:
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(v.info.GetNodeId()), Address: raft.ServerAddress(v.addr)})
		}
	}
	if len(servers) < expect {
		n.logger.Info("bootstrap_expect: waiting for peers", "found", len(servers), "expect", expect, "unreachable", waiting)
		return false, nil
	}
	slices.SortFunc(servers, func(a, b raft.Server) int { return strings.Compare(string(a.ID), string(b.ID)) })
	if string(servers[0].ID) != n.cfg.NodeID {
		n.logger.Info("bootstrap_expect: peers found; the node with the lowest id bootstraps", "bootstrapper", servers[0].ID, "expect", expect)
		return false, nil
	}
	return false, n.bootstrapWith(servers)
}

// selfJoinRequest is this node's own join request.
func (n *Node) selfJoinRequest(voter bool) JoinRequest {
	req := JoinRequest{ID: n.cfg.NodeID, RaftAddr: n.RaftAddr(), Voter: voter, Region: n.cfg.Region}
	if g := n.gossip.Load(); g != nil {
		req.GossipAddr, req.APIAddr = g.Addr(), g.cfg.APIAddr
	}
	return req
}

// bootstrapWith bootstraps a new cluster whose configuration is servers
// (this node among them), with a new cluster id.
func (n *Node) bootstrapWith(servers []raft.Server) error {
	n.idMu.Lock()
	if n.ClusterID() == "" {
		id, err := newClusterID()
		if err == nil {
			err = n.adoptClusterIDLocked(id, "bootstrap")
		}
		if err != nil {
			n.idMu.Unlock()
			return fmt.Errorf("cluster: bootstrap: %w", err)
		}
	}
	n.idMu.Unlock()
	ids := make([]string, len(servers))
	for i, s := range servers {
		ids[i] = string(s.ID)
	}
	n.logger.Info("bootstrapping a new cluster", "voters", ids, "cluster_id", n.ClusterID())
	f := n.raft.BootstrapCluster(raft.Configuration{Servers: servers})
	if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("cluster: bootstrap: %w", err)
	}
	return nil
}
