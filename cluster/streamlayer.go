package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is the raft.StreamLayer of the peer address: Raft accepts the
// connections the peer listener set up for it, and dials other nodes over
// mutual TLS with the Raft ALPN protocol and the cluster-id preamble.
type streamLayer struct {
	n   *Node
	pl  *peerListener
	adv net.Addr
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.pl.raft:
		return c, nil
	case <-s.pl.closed:
		return nil, net.ErrClosed
	}
}

// Close closes the whole peer listener (Raft closes its stream layer when
// it shuts down; so does the node).
func (s *streamLayer) Close() error { return s.pl.Close() }

// Addr is the advertised peer address: Raft tells other nodes to reach
// this one there.
func (s *streamLayer) Addr() net.Addr { return s.adv }

// Dial connects to another node's peer address for Raft. The server must
// present a node certificate of the cluster CA, naming the node the Raft
// configuration lists at that address when it lists one; the cluster ids
// are then exchanged.
func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := s.n.dialPeer(ctx, string(addr), alpnRaft, s.n.serverIDAt(string(addr)))
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	if err := writePreamble(c, s.n.ClusterID()); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("cluster: raft preamble to %s: %w", addr, err)
	}
	theirs, err := readID(c)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("cluster: raft preamble from %s (a node of another cluster closes here): %w", addr, err)
	}
	if err := s.n.checkClusterID(theirs, "peer "+string(addr)); err != nil {
		_ = c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// acceptRaft finishes an inbound Raft connection: it reads the dialer's
// preamble, answers with this node's cluster id, refuses another cluster's
// node, and wraps the connection in an rpcVerifier bound to the node id of
// the certificate (not in plaintext mode, where there is none).
func (n *Node) acceptRaft(c net.Conn, peerID string) (net.Conn, error) {
	var magic [len(raftMagic)]byte
	if _, err := io.ReadFull(c, magic[:]); err != nil || string(magic[:]) != raftMagic {
		return nil, fmt.Errorf("raft preamble: got %q, want %q (not a sessiond node of this version)", magic, raftMagic)
	}
	theirs, err := readID(c)
	if err != nil {
		return nil, fmt.Errorf("raft preamble: %w", err)
	}
	from := "node " + peerID
	if peerID == "" {
		from = "peer " + c.RemoteAddr().String()
	}
	cerr := n.checkClusterID(theirs, from)
	// Answer either way, so the dialer can say what is wrong.
	if err := writeID(c, n.ClusterID()); err != nil {
		return nil, fmt.Errorf("raft preamble: %w", err)
	}
	if cerr != nil {
		return nil, cerr
	}
	var rc net.Conn = c
	if _, ok := c.(*tls.Conn); ok && peerID != "" {
		rc = newRPCVerifier(c, peerID, func(err error) {
			if n.peers.refused.first(c.RemoteAddr().String(), time.Now()) {
				n.logger.Warn("peer connection refused", "remote", c.RemoteAddr().String(), "node", peerID, "err", err)
			}
		})
	}
	if tc := n.inbound.track(rc); tc != nil {
		return tc, nil
	}
	return nil, errInboundClosed
}

// serverIDAt returns the id of the server the latest Raft configuration
// lists at addr, or "".
func (n *Node) serverIDAt(addr string) string {
	r := n.raft
	if r == nil {
		return ""
	}
	for _, s := range r.GetConfiguration().Configuration().Servers {
		if string(s.Address) == addr {
			return string(s.ID)
		}
	}
	return ""
}

// dialPeer connects to a peer address for protocol alpn. With TLS the
// server's certificate must chain to the cluster CA and name a node, node
// wantID when not empty. In plaintext mode it is a TCP connection.
func (n *Node) dialPeer(ctx context.Context, addr, alpn, wantID string) (net.Conn, error) {
	dial := n.cfg.DialPeer
	if dial == nil {
		d := &net.Dialer{KeepAlive: 30 * time.Second}
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	c, err := dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("cluster: dial peer %s: %w", addr, err)
	}
	if n.cfg.TLS == nil {
		return c, nil
	}
	tc := tls.Client(c, n.cfg.TLS.clientConfig(alpn, wantID))
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("cluster: dial peer %s: %w", addr, err)
	}
	return tc, nil
}
