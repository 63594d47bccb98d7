package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"

	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1/sessionv1connect"
)

// watcher holds one WatchRevocations stream on one node and tells waiting
// operations when their session's end arrives on it. It reconnects from
// the last index it saw when the stream breaks.
type watcher struct {
	target string
	cl     sessionv1connect.SessionServiceClient
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	waiting map[string]chan time.Time
	index   uint64
	err     error // the last stream failure, for messages
}

// startWatcher opens the stream from index and waits for its first
// message (so that no revocation after Prepare can be missed).
func startWatcher(ctx context.Context, s *setup, target string, index uint64) (*watcher, error) {
	hc, _ := s.pool.http(0)
	w := &watcher{
		target: target, cl: sessionv1connect.NewSessionServiceClient(hc, target, s.pool.service()...),
		waiting: map[string]chan time.Time{}, index: index, done: make(chan struct{}),
	}
	sctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	first := make(chan error, 1)
	go w.run(sctx, first)
	select {
	case err := <-first:
		if err != nil {
			w.close()
			return nil, fmt.Errorf("watch %s: %w", target, err)
		}
		return w, nil
	case <-ctx.Done():
		w.close()
		return nil, ctx.Err()
	}
}

// run receives until ctx ends; first gets the outcome of the first
// connection (nil once a message arrived).
func (w *watcher) run(ctx context.Context, first chan<- error) {
	defer close(w.done)
	for ctx.Err() == nil {
		w.mu.Lock()
		from := w.index
		w.mu.Unlock()
		stream, err := w.cl.WatchRevocations(ctx, connect.NewRequest(&sessionv1.WatchRevocationsRequest{FromIndex: from}))
		if err == nil {
			for stream.Receive() {
				if first != nil {
					first <- nil
					first = nil
				}
				w.deliver(stream.Msg(), time.Now())
			}
			err = stream.Err()
			_ = stream.Close()
		}
		if first != nil {
			if err == nil {
				err = fmt.Errorf("the stream ended before its first message")
			}
			first <- err
			return
		}
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// deliver stamps the arrival of every awaited session end in m.
func (w *watcher) deliver(m *sessionv1.WatchRevocationsResponse, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.index = max(w.index, m.GetIndex())
	for _, e := range m.GetEvents() {
		if ch, ok := w.waiting[e.GetSessionId()]; ok {
			ch <- at
			delete(w.waiting, e.GetSessionId())
		}
	}
}

// expect registers a session whose end the caller is about to cause.
func (w *watcher) expect(id string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	w.mu.Lock()
	w.waiting[id] = ch
	w.mu.Unlock()
	return ch
}

func (w *watcher) forget(id string) {
	w.mu.Lock()
	delete(w.waiting, id)
	w.mu.Unlock()
}

func (w *watcher) lastErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *watcher) close() {
	w.cancel()
	<-w.done
}

// doWatch revokes one prepared session through client c's node and waits
// for its end on the watcher's stream. The latency is from the revoke's
// acknowledgement to the arrival (0 when the stream was faster than the
// acknowledgement); the revoke call itself is recorded as kind "revoke".
func (s *sessiond) doWatch(ctx context.Context, c *client) (Outcome, error) {
	id, err := s.nextToRevoke()
	if err != nil {
		return Outcome{}, err
	}
	arrived := s.watch.expect(id)
	t0 := time.Now()
	if _, err := c.sess.RevokeSession(ctx, connect.NewRequest(&sessionv1.RevokeSessionRequest{SessionId: id})); err != nil {
		s.watch.forget(id)
		return Outcome{}, err
	}
	ack := time.Now()
	select {
	case at := <-arrived:
		return Outcome{Timed: true, Latency: max(at.Sub(ack), 0), Also: []Sample{{Kind: "revoke", Latency: ack.Sub(t0)}}}, nil
	case <-ctx.Done():
		s.watch.forget(id)
		msg := "no event on " + s.watch.target + " before the operation's deadline"
		if err := s.watch.lastErr(); err != nil {
			msg += " (last stream error: " + err.Error() + ")"
		}
		return Outcome{}, Failf("watch_timeout", "%s", msg)
	}
}
