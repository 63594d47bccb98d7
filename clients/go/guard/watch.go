package guard

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"

	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
)

// nodeCooldown is how long a node that failed is passed over (in favour of
// the next one in preference order) when choosing where to connect.
const nodeCooldown = 10 * time.Second

// pickNode returns the index of the first node in preference order that has
// not failed within nodeCooldown, or else the one whose failure is oldest.
func (g *Guard) pickNode(now time.Time) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	oldest := 0
	for i, f := range g.failedAt {
		if f.IsZero() || now.Sub(f) >= nodeCooldown {
			return i
		}
		if f.Before(g.failedAt[oldest]) {
			oldest = i
		}
	}
	return oldest
}

// nodeOrder returns every node index, those not failed recently first,
// each group in preference order.
func (g *Guard) nodeOrder(now time.Time) []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	var ok, bad []int
	for i, f := range g.failedAt {
		if f.IsZero() || now.Sub(f) >= nodeCooldown {
			ok = append(ok, i)
		} else {
			bad = append(bad, i)
		}
	}
	return append(ok, bad...)
}

func (g *Guard) markFailed(i int, now time.Time) {
	g.mu.Lock()
	g.failedAt[i] = now
	g.mu.Unlock()
}

// watchLoop keeps a WatchRevocations stream open until ctx ends. After a
// stream fails or ends it waits (exponential backoff with jitter, reset by
// any message received) and reconnects from the last applied index,
// passing over the failed node for nodeCooldown; a stream ended with
// ResourceExhausted (this receiver was too slow) does not count against its
// node.
func (g *Guard) watchLoop(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		i := g.pickNode(g.now())
		from := g.revs.resumeIndex()
		got, err := g.watchOnce(ctx, i, from)
		if ctx.Err() != nil {
			return
		}
		exhausted := connect.CodeOf(err) == connect.CodeResourceExhausted
		if !exhausted {
			g.markFailed(i, g.now())
		}
		if got > 0 {
			failures = 0
		}
		d := backoff(failures)
		failures++
		g.log.Warn("guard: revocation watch ended; reconnecting", "node", g.cfg.Nodes[i].URL,
			"from_index", g.revs.resumeIndex(), "messages", got, "error", err, "retry_in", d)
		if !sleep(ctx, d) {
			return
		}
	}
}

// errWatchIdle ends a stream that delivered nothing for WatchIdleTimeout.
var errWatchIdle = errors.New("guard: watch stream idle")

// errWatchEnded: the server closed the stream without an error.
var errWatchEnded = errors.New("guard: watch stream ended by the server")

// watchOnce runs one stream to node i from index from and returns how many
// messages it delivered and why it ended.
func (g *Guard) watchOnce(ctx context.Context, i int, from uint64) (int, error) {
	node := g.cfg.Nodes[i].URL
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := time.AfterFunc(g.cfg.WatchIdleTimeout, func() { cancel(errWatchIdle) })
	defer idle.Stop()
	g.mu.Lock()
	g.node, g.connected = node, false
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.connected = false
		g.mu.Unlock()
		g.revs.streamEnded()
	}()
	g.log.Debug("guard: watching revocations", "node", node, "from_index", from)
	stream, err := g.clients[i].WatchRevocations(sctx, connect.NewRequest(&sessionv1.WatchRevocationsRequest{FromIndex: from}))
	if err != nil {
		return 0, causeOr(sctx, err)
	}
	defer stream.Close()
	n := 0
	for stream.Receive() {
		idle.Reset(g.cfg.WatchIdleTimeout)
		msg := stream.Msg()
		loaded := g.revs.apply(msg)
		g.lastMsg.Store(g.now().UnixNano())
		if msg.GetSnapshot() || len(msg.GetEvents()) > 0 {
			g.watches.notify(g.revs)
		}
		if n == 0 {
			g.mu.Lock()
			g.connected = true
			g.mu.Unlock()
		}
		n++
		if loaded {
			g.snapOnce.Do(func() {
				g.log.Info("guard: revocation set loaded", "node", node, "index", g.revs.resumeIndex(), "entries", g.revs.size())
				close(g.snapReady)
			})
		}
	}
	if err := stream.Err(); err != nil {
		return n, causeOr(sctx, err)
	}
	return n, errWatchEnded
}

// causeOr returns the cancellation cause of ctx when it is errWatchIdle,
// else err.
func causeOr(ctx context.Context, err error) error {
	if c := context.Cause(ctx); errors.Is(c, errWatchIdle) {
		return c
	}
	return err
}
