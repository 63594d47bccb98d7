package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"connectrpc.com/connect"
	"github.com/cenkalti/backoff/v5"

	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
)

// JoinCluster asks the members at seeds (peer addresses), any of them, to
// add this node as itself (PeerService.Join, authenticated by this node's
// certificate), as a voter or not, publishing the API and gossip addresses
// of the attached gossip. It retries with exponential backoff (200 ms
// doubling to 15 s, with jitter) until a member accepts (a node that is
// already a member, after a restart, is accepted at once), ctx ends, or an
// answer shows the join can never succeed: the other side refused this
// node's certificate or this node refused its (another CA, an expired
// certificate, not a node), a node of another cluster, an id that is not
// this node's or belongs to a live node elsewhere, a malformed request.
// Then it logs the refusal at ERROR and returns it. On success the node
// adopts the cluster id of the answer.
func (n *Node) JoinCluster(ctx context.Context, seeds []string, voter bool) error {
	req := n.selfJoinRequest(voter)
	b := &backoff.ExponentialBackOff{InitialInterval: 200 * time.Millisecond, RandomizationFactor: 0.25, Multiplier: 2, MaxInterval: 15 * time.Second}
	attempt := 0
	res, err := backoff.Retry(ctx, func() (JoinResult, error) {
		attempt++
		var errs []error
		for _, seed := range seeds {
			if seed == n.RaftAddr() {
				continue
			}
			res, err := n.joinVia(ctx, seed, req)
			if err == nil {
				n.logger.Info("joined the cluster", "via", seed, "already_member", res.AlreadyMember, "cluster_id", n.ClusterID())
				return res, nil
			}
			if ctx.Err() != nil {
				return res, backoff.Permanent(ctx.Err())
			}
			if permanentJoinError(err) {
				return res, backoff.Permanent(fmt.Errorf("join through %s: %w", seed, err))
			}
			n.logger.Info("join attempt failed", "via", seed, "attempt", attempt, "err", err)
			errs = append(errs, err)
		}
		if len(errs) == 0 {
			return JoinResult{}, backoff.Permanent(errors.New("no seed other than this node"))
		}
		return JoinResult{}, errors.Join(errs...)
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n.logger.Error("join refused; not retrying: fix the cause and restart the node", "err", err)
		return err
	}
	if res.GossipError != "" {
		n.logger.Warn("joined Raft but not gossip yet", "err", res.GossipError)
	}
	return nil
}

// joinVia sends one join request to the member at seed.
func (n *Node) joinVia(ctx context.Context, seed string, req JoinRequest) (JoinResult, error) {
	cctx, cancel := context.WithTimeout(ctx, DefaultForwardTimeout)
	defer cancel()
	resp, err := n.peer(seed, n.serverIDAt(seed)).Join(cctx, connect.NewRequest(&clusterv1.PeerServiceJoinRequest{Join: req.proto()}))
	if err != nil {
		return JoinResult{}, err
	}
	j := resp.Msg.GetJoin()
	if err := n.checkClusterID(j.GetClusterId(), "the join answer of "+seed); err != nil {
		return JoinResult{}, err
	}
	return JoinResult{AlreadyMember: j.GetAlreadyMember(), GossipError: j.GetGossipError(), ClusterID: j.GetClusterId()}, nil
}

// permanentJoinError reports whether retrying a join cannot help.
func permanentJoinError(err error) bool {
	if errors.Is(err, ErrIdentity) || errors.Is(err, ErrClusterMismatch) || errors.Is(err, ErrRemoved) {
		return true
	}
	var alert tls.AlertError
	if errors.As(err, &alert) {
		switch alert {
		case 42, 43, 44, 45, 46, 48: // bad, unsupported, revoked, expired, unknown certificate; unknown CA
			return true
		}
	}
	switch connect.CodeOf(err) {
	case connect.CodePermissionDenied, connect.CodeInvalidArgument, connect.CodeAlreadyExists, connect.CodeUnauthenticated:
		return true
	case connect.CodeFailedPrecondition:
		// This node was removed from the cluster.
		var ce *connect.Error
		return errors.As(err, &ce) && ce.Meta().Get(RemovedMetaKey) != ""
	}
	return false
}

// PeersFile is the name, under a node's data dir, of the record of the
// gossip addresses of the members it last saw.
const PeersFile = "peers.json"

// KeepPeers joins gossip through the peers recorded in dataDir/PeersFile (so
// that a restarted node finds the cluster again without seeds), then keeps
// the record current every 2 s until ctx ends.
func (g *Gossip) KeepPeers(ctx context.Context, dataDir string) {
	path := filepath.Join(dataDir, PeersFile)
	if raw, err := os.ReadFile(path); err == nil {
		var addrs []string
		if json.Unmarshal(raw, &addrs) == nil && len(addrs) > 0 {
			if _, err := g.Join(addrs); err != nil {
				g.cfg.Logger.Info("gossip rejoin through recorded peers failed", "err", err)
			}
		}
	}
	var last []string
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		var addrs []string
		for _, m := range g.Members() {
			if m.ID != g.cfg.NodeID && m.Health == HealthAlive && m.GossipAddr != "" {
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
		case <-t.C:
		}
	}
}
