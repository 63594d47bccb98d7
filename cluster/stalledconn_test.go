package cluster_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/clustertest"
)

// stallDialer opens real TCP connections and can stall the ones it
// opened so far: from then on they carry nothing either way (writes are
// swallowed, reads wait) but stay open, as a connection whose peer or path
// stopped moving bytes without a reset (a black-holed route, a wedged
// middlebox, a peer that stopped reading).
type stallDialer struct {
	mu    sync.Mutex
	conns []*stallConn
}

func (d *stallDialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	sc := &stallConn{Conn: c, stalled: make(chan struct{}), closed: make(chan struct{})}
	d.mu.Lock()
	d.conns = append(d.conns, sc)
	d.mu.Unlock()
	return sc, nil
}

// stallAll stalls every connection opened so far and reports how many.
func (d *stallDialer) stallAll() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		c.stallOnce.Do(func() { close(c.stalled) })
	}
	n := len(d.conns)
	d.conns = nil
	return n
}

type stallConn struct {
	net.Conn
	stallOnce, closeOnce sync.Once
	stalled, closed      chan struct{}
}

func (c *stallConn) isStalled() bool {
	select {
	case <-c.stalled:
		return true
	default:
		return false
	}
}

func (c *stallConn) Read(p []byte) (int, error) {
	if c.isStalled() {
		<-c.closed
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Read(p)
	if c.isStalled() { // bytes that arrive after the stall are lost too
		<-c.closed
		return 0, net.ErrClosed
	}
	return n, err
}

func (c *stallConn) Write(p []byte) (int, error) {
	if c.isStalled() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *stallConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// TestForwardedWritesSurviveAStalledPeerConnection forwards writes from a
// follower whose connection to the leader stops carrying bytes without
// being closed: the HTTP/2 client would keep sending requests on it and
// wait for answers that never come, until the request timeout ends each
// write as unavailable. Every write must be answered, over a new
// connection.
func TestForwardedWritesSurviveAStalledPeerConnection(t *testing.T) {
	dialers := make([]*stallDialer, 3)
	nodes, fsms := startCounters(t, 3, func(i int, c *cluster.Config) {
		dialers[i] = &stallDialer{}
		c.DialPeer = dialers[i].dial
		// Room for detecting the stall on a loaded machine; the writes
		// below must be answered within it, not merely end.
		c.RequestTimeout = 20 * time.Second
	})
	leader := clustertest.Leader(t, nodes, 10*time.Second)
	li := indexOf(nodes, leader)
	fi := (li + 1) % 3
	follower := nodes[fi]
	ctx := ctxT(t, 2*time.Minute)
	if _, err := follower.Propose(ctx, []byte("inc")); err != nil {
		t.Fatalf("first forwarded write: %v", err)
	}
	if n := dialers[fi].stallAll(); n == 0 {
		t.Fatal("the follower opened no peer connection to stall")
	}

	const writes = 64
	errs := make(chan error, writes)
	var wg sync.WaitGroup
	for range writes {
		wg.Go(func() {
			_, err := follower.Propose(ctx, []byte("inc"))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
			if failed <= 3 {
				t.Errorf("forwarded write over a stalled connection: %v", err)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d forwarded writes got no answer", failed, writes)
	}
	clustertest.WaitFor(t, 20*time.Second, "the leader to count every write", func() bool {
		return fsms[li].Count() >= writes+1
	})
}
