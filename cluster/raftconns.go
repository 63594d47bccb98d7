package cluster

import (
	"errors"
	"net"
	"sync"
	"time"
)

// inboundRaft tracks the inbound Raft connections handed to the transport,
// so that Shutdown can stop them before it closes the log store.
// hashicorp/raft answers heartbeats on the connection's own goroutine
// (even just after Raft shut down) and panics when the store refuses to
// record a new term; closing the transport does not close the connections
// it already accepted. Each connection is busy from a Read that returned
// data until its next Read: the request is being handled.
type inboundRaft struct {
	mu     sync.Mutex
	closed bool
	conns  map[*trackedConn]struct{}
	busy   sync.WaitGroup
}

var errInboundClosed = errors.New("cluster: node shutting down")

// track wraps c (nil when shutting down: the caller closes c).
func (t *inboundRaft) track(c net.Conn) net.Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	if t.conns == nil {
		t.conns = map[*trackedConn]struct{}{}
	}
	tc := &trackedConn{Conn: c, t: t}
	t.conns[tc] = struct{}{}
	return tc
}

// closeAndWait closes every tracked connection and waits up to timeout
// for the requests being handled to finish.
func (t *inboundRaft) closeAndWait(timeout time.Duration) {
	t.mu.Lock()
	t.closed = true
	for c := range t.conns {
		_ = c.Conn.Close()
	}
	t.mu.Unlock()
	done := make(chan struct{})
	go func() { t.busy.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

type trackedConn struct {
	net.Conn
	t    *inboundRaft
	busy bool // only touched by the connection's reading goroutine
}

func (c *trackedConn) Read(p []byte) (int, error) {
	if c.busy {
		c.busy = false
		c.t.busy.Done()
	}
	c.t.mu.Lock()
	closed := c.t.closed
	c.t.mu.Unlock()
	if closed {
		return 0, errInboundClosed
	}
	n, err := c.Conn.Read(p)
	if n > 0 && err == nil {
		c.t.mu.Lock()
		if !c.t.closed {
			c.busy = true
			c.t.busy.Add(1)
		}
		c.t.mu.Unlock()
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.t.mu.Lock()
	delete(c.t.conns, c)
	c.t.mu.Unlock()
	if c.busy {
		c.busy = false
		c.t.busy.Done()
	}
	return c.Conn.Close()
}
