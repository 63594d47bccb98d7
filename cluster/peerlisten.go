package cluster

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// peerListener is the node's one listener on its peer address. Each
// connection is set up off the accept loop (a slow or silent client cannot
// stall Accept), within a deadline and a bound on concurrent set-ups:
//
//   - with TLS, the handshake (mutual, node certificates of the cluster CA)
//     and ALPN pick the protocol: Raft, node-to-node RPC (HTTP/2) or a
//     join probe (closed at once);
//   - in plaintext mode the first bytes do: the Raft preamble or the
//     HTTP/2 client preface.
//
// A Raft connection then exchanges cluster ids (the preamble) and is wrapped
// so that every RPC's claimed sender is checked against the certificate,
// before the stream layer hands it to Raft. Refused connections are logged
// at most once a minute per remote host.
type peerListener struct {
	ln      net.Listener
	tls     *PeerTLS // nil: plaintext
	timeout time.Duration
	log     *slog.Logger
	// raftConn finishes a Raft connection (preamble, verifier) before Raft
	// sees it.
	raftConn func(c net.Conn, peerID string) (net.Conn, error)
	// clusterID is told to a join probe.
	clusterID func() string

	raft chan net.Conn
	rpc  chan net.Conn
	sem  chan struct{}

	refused refusalLog

	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup
}

// maxPendingSetups bounds connections being set up at once; beyond it new
// connections are closed at once.
const maxPendingSetups = 256

func newPeerListener(ln net.Listener, p *PeerTLS, timeout time.Duration, log *slog.Logger) *peerListener {
	l := &peerListener{
		ln: ln, tls: p, timeout: timeout, log: log,
		raft: make(chan net.Conn), rpc: make(chan net.Conn),
		sem: make(chan struct{}, maxPendingSetups), closed: make(chan struct{}),
		refused: refusalLog{seen: map[string]time.Time{}},
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

func (l *peerListener) acceptLoop() {
	defer l.wg.Done()
	var srvConfig *tls.Config
	if l.tls != nil {
		srvConfig = l.tls.serverConfig()
	}
	// Temporary accept failures (EMFILE...) back off like net/http's
	// accept loop: 5 ms doubling to 1 s, reset by a success.
	bo := &backoff.ExponentialBackOff{InitialInterval: 5 * time.Millisecond, Multiplier: 2, MaxInterval: time.Second}
	bo.Reset()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.closed:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			wait := bo.NextBackOff()
			l.log.Warn("peer listener: accept failed", "err", err, "retry_in", wait)
			select {
			case <-time.After(wait):
				continue
			case <-l.closed:
				return
			}
		}
		bo.Reset()
		select {
		case l.sem <- struct{}{}:
		default:
			l.refuse(c, errors.New("too many connections being set up"))
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer func() { <-l.sem }()
			l.setup(c, srvConfig)
		}()
	}
}

// setup runs one connection's handshake and dispatches it.
func (l *peerListener) setup(c net.Conn, cfg *tls.Config) {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	_ = c.SetDeadline(time.Now().Add(l.timeout))
	if cfg == nil {
		l.setupPlain(c)
		return
	}
	tc := tls.Server(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		var rh tls.RecordHeaderError
		if errors.As(err, &rh) && rh.Conn != nil && looksLikeHTTP(rh.RecordHeader[:]) {
			_, _ = rh.Conn.Write([]byte("HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\n\r\n" +
				"This is a sessiond peer port: it speaks mutual TLS with node certificates of the cluster CA, not plain HTTP.\n"))
			err = fmt.Errorf("a plaintext HTTP request on the TLS peer port: %w", err)
		}
		l.refuse(c, err)
		return
	}
	cs := tc.ConnectionState()
	switch cs.NegotiatedProtocol {
	case alpnRaft:
		l.dispatchRaft(tc, peerNodeID(cs))
	case alpnRPC:
		_ = tc.SetDeadline(time.Time{})
		l.hand(l.rpc, tc)
	case alpnProbe:
		// A leader checking a joining node: tell it our cluster id.
		_ = writeID(tc, l.clusterID())
		_ = tc.Close()
	default:
		l.refuse(tc, fmt.Errorf("no application protocol agreed (want %s or %s)", alpnRaft, alpnRPC))
	}
}

// setupPlain sniffs a plaintext connection: the Raft preamble or the
// HTTP/2 prior-knowledge preface.
func (l *peerListener) setupPlain(c net.Conn) {
	br := bufio.NewReaderSize(c, 64)
	head, err := br.Peek(4)
	if err != nil {
		l.refuse(c, fmt.Errorf("reading the first bytes: %w", err))
		return
	}
	bc := &bufferedConn{Conn: c, r: br}
	switch string(head) {
	case raftMagic:
		l.dispatchRaft(bc, "")
	case "PRI ":
		_ = c.SetDeadline(time.Time{})
		l.hand(l.rpc, bc)
	default:
		l.refuse(c, fmt.Errorf("unknown protocol (first bytes %q)", head))
	}
}

func (l *peerListener) dispatchRaft(c net.Conn, peerID string) {
	rc, err := l.raftConn(c, peerID)
	if err != nil {
		l.refuse(c, err)
		return
	}
	_ = c.SetDeadline(time.Time{})
	l.hand(l.raft, rc)
}

// hand passes c to the consumer of ch, or closes it if the listener closes
// first.
func (l *peerListener) hand(ch chan net.Conn, c net.Conn) {
	select {
	case ch <- c:
	case <-l.closed:
		_ = c.Close()
	}
}

// refuse closes c and logs why (rate-limited per remote host).
func (l *peerListener) refuse(c net.Conn, err error) {
	remote := c.RemoteAddr().String()
	_ = c.Close()
	if l.refused.first(remote, time.Now()) {
		l.log.Warn("peer connection refused", "remote", remote, "err", err)
	}
}

// Close stops accepting and closes the connections not yet handed over.
func (l *peerListener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.closed)
		err = l.ln.Close()
		l.wg.Wait()
	})
	return err
}

func (l *peerListener) Addr() net.Addr { return l.ln.Addr() }

// chanListener is a net.Listener of the connections sent on ch (the RPC
// server's view of the peer listener).
type chanListener struct {
	ch     chan net.Conn
	closed chan struct{}
	addr   net.Addr
}

func (c chanListener) Accept() (net.Conn, error) {
	select {
	case conn := <-c.ch:
		return conn, nil
	case <-c.closed:
		return nil, net.ErrClosed
	}
}
func (c chanListener) Close() error   { return nil }
func (c chanListener) Addr() net.Addr { return c.addr }

// bufferedConn is a connection whose first bytes were peeked.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func looksLikeHTTP(hdr []byte) bool {
	for _, m := range []string{"GET ", "POST", "PUT ", "HEAD", "PRI ", "DELE", "OPTI", "PATC"} {
		if string(hdr[:4]) == m {
			return true
		}
	}
	return false
}

// refusalLog remembers when it last reported each remote host, so that a
// client retrying in a loop is logged once a minute, not once a connection.
// It holds at most refusalLogSize hosts.
type refusalLog struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

const (
	refusalLogEvery = time.Minute
	refusalLogSize  = 4096
)

// first reports whether a refusal from addr should be logged now.
func (r *refusalLog) first(addr string, now time.Time) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.seen[host]; ok && now.Sub(t) < refusalLogEvery {
		return false
	}
	if len(r.seen) >= refusalLogSize {
		for h, t := range r.seen {
			if now.Sub(t) >= refusalLogEvery {
				delete(r.seen, h)
			}
		}
		if len(r.seen) >= refusalLogSize {
			return false
		}
	}
	r.seen[host] = now
	return true
}
