package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// A cluster id names one cluster for its whole life: Bootstrap generates it
// and stores it in the data dir (node.json), a joining node learns it from
// the join answer (or from the first peer that contacts it) and stores it.
// It travels in the Raft connection preamble, in every peer RPC (the
// ClusterIDHeader) and in gossip metadata, so that a node of another
// cluster, even one holding a certificate of the same CA, is refused.

// ClusterIDHeader is the HTTP header carrying the caller's cluster id on
// every PeerService call (and the answering node's on every answer).
const ClusterIDHeader = "Sessiond-Cluster-Id"

// ErrClusterMismatch is wrapped when a peer belongs to another cluster.
var ErrClusterMismatch = errors.New("cluster: peer belongs to another cluster")

// newClusterID returns a fresh random id (128 bits, hex).
func newClusterID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("cluster: generate cluster id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// validateClusterID checks an id received from a peer or read from disk:
// 1-64 bytes of lower-case letters, digits and '-'.
func validateClusterID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("want 1-64 characters, got %d", len(id))
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("character %q not allowed", r)
		}
	}
	return nil
}

// ClusterID returns the id of the cluster this node belongs to, "" while a
// new node has not joined one yet.
func (n *Node) ClusterID() string {
	if p := n.clusterID.Load(); p != nil {
		return *p
	}
	return ""
}

// checkClusterID compares a peer's cluster id with this node's. A node with
// no id yet adopts the peer's (and stores it); a peer with none is
// accepted (it is new and adopts ours). A different id is an error wrapping
// ErrClusterMismatch that names both.
func (n *Node) checkClusterID(peer, from string) error {
	if peer == "" {
		return nil
	}
	if err := validateClusterID(peer); err != nil {
		return fmt.Errorf("%w: %s sent a malformed cluster id: %v", ErrClusterMismatch, from, err)
	}
	n.idMu.Lock()
	defer n.idMu.Unlock()
	mine := n.ClusterID()
	switch {
	case mine == peer:
		return nil
	case mine == "":
		return n.adoptClusterIDLocked(peer, from)
	default:
		return fmt.Errorf("%w: %s is in cluster %s, this node %s is in cluster %s", ErrClusterMismatch, from, peer, n.cfg.NodeID, mine)
	}
}

// adoptClusterIDLocked stores id as this node's cluster id (idMu held).
func (n *Node) adoptClusterIDLocked(id, from string) error {
	if err := saveIdentity(n.cfg.DataDir, Identity{NodeID: n.cfg.NodeID, Region: n.cfg.Region, ClusterID: id}); err != nil {
		return err
	}
	n.clusterID.Store(&id)
	n.logger.Info("joined cluster", "cluster_id", id, "learned_from", from)
	if g := n.gossip.Load(); g != nil {
		g.refreshMeta()
	}
	return nil
}

// Raft connection preamble, sent by the dialing side right after the TLS
// handshake (or the TCP connect, in plaintext mode) and answered by the
// accepting side before Raft sees the connection:
//
//	dialer:   "SDR1" | len (1 byte) | cluster id
//	acceptor: len (1 byte) | cluster id
//
// Each side then compares the ids (checkClusterID): a mismatch closes the
// connection.
const raftMagic = "SDR1"

// writePreamble sends the dialer's half of the preamble.
func writePreamble(w io.Writer, id string) error {
	b := append([]byte(raftMagic), byte(len(id)))
	_, err := w.Write(append(b, id...))
	return err
}

// readID reads a length-prefixed cluster id.
func readID(r io.Reader) (string, error) {
	var l [1]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return "", err
	}
	if l[0] > 64 {
		return "", fmt.Errorf("cluster id of %d bytes, at most 64", l[0])
	}
	b := make([]byte, l[0])
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(b), nil
}

// writeID sends a length-prefixed cluster id.
func writeID(w io.Writer, id string) error {
	_, err := w.Write(append([]byte{byte(len(id))}, id...))
	return err
}
