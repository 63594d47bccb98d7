package callers

import (
	"fmt"
	"sync"
)

// StreamCaps bounds long-lived streams (revocation watches): at most Total
// open on the node and PerClient per client (a principal, or a source
// address for anonymous callers). It is safe for concurrent use.
type StreamCaps struct {
	total, perClient int

	mu       sync.Mutex
	open     int
	byClient map[string]int
}

// NewStreamCaps returns caps; a value <= 0 means no cap of that kind.
func NewStreamCaps(total, perClient int) *StreamCaps {
	return &StreamCaps{total: total, perClient: perClient, byClient: map[string]int{}}
}

// ClientKey is the key streams of p are counted under: its ID, or "ip:"
// and the source address for anonymous callers.
func ClientKey(p Principal, ip string) string {
	if p.Kind == KindAnonymous || p.Kind == "" {
		return "ip:" + ip
	}
	return p.ID()
}

// Acquire opens one stream for client, or returns an *Error with
// CodeThrottled naming the cap that is full. Call release exactly once
// when the stream ends.
func (c *StreamCaps) Acquire(client string) (release func(), err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.total > 0 && c.open >= c.total {
		return nil, &Error{Code: CodeThrottled, Message: fmt.Sprintf("this node already serves %d revocation watch streams, its cap (auth.callers.max_watch_streams); connect to another node", c.open)}
	}
	if n := c.byClient[client]; c.perClient > 0 && n >= c.perClient {
		return nil, &Error{Code: CodeThrottled, Message: fmt.Sprintf("%s already has %d revocation watch streams open on this node, the per-client cap (auth.callers.max_watch_streams_per_client)", client, n)}
	}
	c.open++
	c.byClient[client]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.open--
			if c.byClient[client]--; c.byClient[client] <= 0 {
				delete(c.byClient, client)
			}
		})
	}, nil
}

// Open returns the number of open streams.
func (c *StreamCaps) Open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open
}
