package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1/clusterv1connect"
)

// Propose applies cmd on the leader: locally (Apply) when this node leads,
// otherwise by forwarding it to the leader over the peer channel (mutual
// TLS, the leader's certificate must name the leader Raft reports). Writes
// forwarded concurrently share PeerService.ApplyBatch calls (see
// forwarder); a leader that predates ApplyBatch gets one Apply per write.
//
// It is bounded by ctx's deadline and Config.RequestTimeout, whichever
// comes first. Within that bound it waits for a leader while none is known,
// and tries again when the leader turns out not to be one, cannot be
// reached, is replaced while the call is forwarded to it (the call is then
// abandoned and sent to the new leader), or loses its leadership while
// committing. Repeating a command is safe only because callers embed a
// request id the FSM deduplicates: every command given to Propose must.
// When the bound ends first it returns an *UnavailableError (errors.Is
// ErrUnavailable) saying why: no leader since when, or the leader that did
// not answer, and how many voters this node reaches. Other failures (an
// FSM error, the node shut down) are returned at once.
func (n *Node) Propose(ctx context.Context, cmd []byte) (Applied, error) {
	var out Applied
	err := n.bounded(ctx, "write", true, func(ctx context.Context) error {
		var err error
		if n.IsLeader() {
			out, err = n.Apply(ctx, cmd)
			return err
		}
		out, err = n.forwardApply(ctx, cmd)
		return err
	})
	return out, err
}

// toLeader calls the leader this node knows through call. The call is
// abandoned when the known leader changes meanwhile. A not-leader answer
// is a *NotLeaderError; no answer (refused or lost connection, the leader
// replaced) wraps errLeaderUnreachable, and also errSent once the request
// may have reached the leader.
func (n *Node) toLeader(ctx context.Context, what string, call func(ctx context.Context, c clusterv1connect.PeerServiceClient) error) error {
	changed := n.leaders.changed()
	c, leaderID, err := n.leaderClient()
	if err != nil {
		return err
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-changed:
			cancel()
		case <-actx.Done():
		}
	}()
	err = call(actx, c)
	var fe *FSMError
	if err == nil || errors.As(err, &fe) {
		return err
	}
	err = fromConnectError(err)
	switch {
	case errors.Is(err, ErrNotLeader):
		return fmt.Errorf("cluster: %s: leader %s: %w", what, leaderID, err)
	case ctx.Err() != nil:
		return fmt.Errorf("cluster: %s: leader %s: %w", what, leaderID, err)
	case actx.Err() != nil:
		return fmt.Errorf("cluster: %s: %w: leader %s replaced while the call waited: %w", what, errLeaderUnreachable, leaderID, errSent)
	case notSent(err):
		return fmt.Errorf("cluster: %s: %w: %s: %w", what, errLeaderUnreachable, leaderID, err)
	case lostAnswer(err):
		return fmt.Errorf("cluster: %s: %w: %s: %w (%w)", what, errLeaderUnreachable, leaderID, err, errSent)
	}
	return fmt.Errorf("cluster: %s: leader %s: %w", what, leaderID, err)
}

// lostAnswer reports whether a failed peer call got no real answer (the
// connection failed or broke, the call was cut short) or an answer that
// the outcome is unknown: worth sending again, to the leader known then.
func lostAnswer(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeCanceled, connect.CodeDeadlineExceeded, connect.CodeUnknown, connect.CodeAborted:
		return true
	}
	return false
}

// notSent reports whether a failed peer call never reached the leader:
// the connection to it could not be set up.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Forwarding bounds: at most maxForwardInflight ApplyBatch calls to the
// leader in flight at once per node, each of at most maxForwardBatch
// commands and maxForwardBatchBytes bytes of commands (a larger command
// goes alone).
const (
	maxForwardInflight   = 4
	maxForwardBatch      = 256
	maxForwardBatchBytes = 4 << 20
)

// forwarder batches the writes a follower forwards to the leader, as etcd
// batches proposals: a write is queued; while fewer than
// maxForwardInflight calls are in flight a call starts at once with
// everything queued, otherwise the queue waits for the first call to
// finish and goes as the next batch. So a lone write is sent at once (no
// timer) and batches grow with the load. Each batch goes through toLeader
// (abandoned when the leader changes, its errors classified there), and
// its error is every write's error in it: Propose retries each as before.
type forwarder struct {
	mu       sync.Mutex
	queue    []*forwardCall
	inflight int
	// singleUntil, when set, is the leaders.changed() channel of the
	// time a leader answered Unimplemented to ApplyBatch: until it
	// closes (the leader changes) writes go as single Apply calls.
	singleUntil <-chan struct{}

	batches, batched, singles atomic.Uint64
}

// forwardCall is one write waiting in (or taken from) forwarder.queue.
type forwardCall struct {
	ctx context.Context
	cmd []byte
	// sent (taken into a batch) and gone (the caller stopped waiting)
	// are guarded by forwarder.mu.
	sent, gone bool
	// out and err are set before done is closed.
	done chan struct{}
	out  Applied
	err  error
}

// errNoApplyBatch: the leader answered Unimplemented to ApplyBatch (an
// older binary); nothing was applied.
var errNoApplyBatch = errors.New("cluster: the leader does not implement ApplyBatch")

// ForwardStats counts the writes a node forwarded to the leader since it
// started.
type ForwardStats struct {
	// Batches is the number of PeerService.ApplyBatch calls sent.
	Batches uint64
	// Batched is the number of writes those calls carried.
	Batched uint64
	// Single is the number of writes sent as single PeerService.Apply
	// calls (to a leader that predates ApplyBatch).
	Single uint64
}

// ForwardStats returns how many writes this node forwarded and in how
// many calls: Batched/Batches is the mean batch size.
func (n *Node) ForwardStats() ForwardStats {
	return ForwardStats{Batches: n.fwd.batches.Load(), Batched: n.fwd.batched.Load(), Single: n.fwd.singles.Load()}
}

// forwardApply applies cmd on the leader. A not-leader answer is a
// *NotLeaderError (nothing applied); an FSM error comes back as *FSMError.
func (n *Node) forwardApply(ctx context.Context, cmd []byte) (Applied, error) {
	if !n.fwd.singleCalls() {
		a, err := n.forwardBatched(ctx, cmd)
		if !errors.Is(err, errNoApplyBatch) {
			return a, err
		}
	}
	n.fwd.singles.Add(1)
	return n.forwardApplyOne(ctx, cmd)
}

// singleCalls reports whether the known leader answered Unimplemented to
// ApplyBatch (and has not changed since).
func (f *forwarder) singleCalls() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.singleUntil == nil {
		return false
	}
	select {
	case <-f.singleUntil:
		f.singleUntil = nil
		return false
	default:
		return true
	}
}

// forwardBatched queues cmd for the next ApplyBatch call and waits for its
// result or ctx.
func (n *Node) forwardBatched(ctx context.Context, cmd []byte) (Applied, error) {
	f := &n.fwd
	c := &forwardCall{ctx: ctx, cmd: cmd, done: make(chan struct{})}
	f.mu.Lock()
	f.queue = append(f.queue, c)
	start := f.inflight < maxForwardInflight
	if start {
		f.inflight++
	}
	f.mu.Unlock()
	if start {
		go n.sendForwardBatches()
	}
	select {
	case <-c.done:
		return c.out, c.err
	case <-ctx.Done():
	}
	f.mu.Lock()
	c.gone = true
	sent := c.sent
	f.mu.Unlock()
	select {
	case <-c.done:
		return c.out, c.err
	default:
	}
	if sent {
		return Applied{}, fmt.Errorf("cluster: forward write: %w: %w", ErrOutcomeUnknown, ctx.Err())
	}
	return Applied{}, fmt.Errorf("cluster: forward write: not sent: %w", ctx.Err())
}

// sendForwardBatches sends the queue's batches one after the other until
// the queue is empty, then frees its in-flight slot.
func (n *Node) sendForwardBatches() {
	f := &n.fwd
	for {
		f.mu.Lock()
		batch := f.take()
		if len(batch) == 0 {
			f.inflight--
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		n.sendForwardBatch(batch)
	}
}

// take removes the next batch from the queue (f.mu held): the writes whose
// callers still wait, in order, within the batch bounds.
func (f *forwarder) take() []*forwardCall {
	var batch []*forwardCall
	size, i := 0, 0
	for ; i < len(f.queue); i++ {
		c := f.queue[i]
		if c.gone || c.ctx.Err() != nil {
			continue
		}
		if len(batch) == maxForwardBatch || len(batch) > 0 && size+len(c.cmd) > maxForwardBatchBytes {
			break
		}
		c.sent = true
		batch = append(batch, c)
		size += len(c.cmd)
	}
	rest := copy(f.queue, f.queue[i:])
	clear(f.queue[rest:])
	f.queue = f.queue[:rest]
	return batch
}

// sendForwardBatch sends batch to the leader in one ApplyBatch call and
// hands every caller its result, or the call's error.
func (n *Node) sendForwardBatch(batch []*forwardCall) {
	ctx, cancel := batchContext(batch)
	defer cancel()
	changed := n.leaders.changed()
	cmds := make([][]byte, len(batch))
	for i, c := range batch {
		cmds[i] = c.cmd
	}
	n.fwd.batches.Add(1)
	n.fwd.batched.Add(uint64(len(batch)))
	var results []*clusterv1.ApplyResponse
	err := n.toLeader(ctx, "forward write", func(ctx context.Context, c clusterv1connect.PeerServiceClient) error {
		resp, err := c.ApplyBatch(ctx, connect.NewRequest(&clusterv1.ApplyBatchRequest{Commands: cmds}))
		if err != nil {
			return err
		}
		if got := len(resp.Msg.GetResults()); got != len(cmds) {
			return fmt.Errorf("cluster: leader answered %d results for %d commands", got, len(cmds))
		}
		results = resp.Msg.GetResults()
		return nil
	})
	if err != nil && connect.CodeOf(err) == connect.CodeUnimplemented {
		n.logger.Info("the leader predates ApplyBatch: forwarding writes one per call until the leader changes", "err", err)
		n.fwd.mu.Lock()
		n.fwd.singleUntil = changed
		n.fwd.mu.Unlock()
		err = errNoApplyBatch
	}
	for i, c := range batch {
		if err != nil {
			c.err = err
		} else {
			r := results[i]
			c.out = Applied{Index: r.GetIndex(), Response: r.GetResponse()}
			if msg := r.GetFsmError(); msg != "" {
				c.err = &FSMError{Index: c.out.Index, Err: errors.New(msg)}
			}
		}
		close(c.done)
	}
}

// batchContext returns the context of a batch's call: it ends at the
// latest of its callers' deadlines, or once every caller stopped waiting.
func batchContext(batch []*forwardCall) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, c := range batch {
		d, ok := c.ctx.Deadline()
		if !ok {
			latest = time.Time{}
			break
		}
		if d.After(latest) {
			latest = d
		}
	}
	var ctx context.Context
	var cancel context.CancelFunc
	if latest.IsZero() {
		ctx, cancel = context.WithCancel(context.Background())
	} else {
		ctx, cancel = context.WithDeadline(context.Background(), latest)
	}
	var left atomic.Int64
	left.Store(int64(len(batch)))
	stops := make([]func() bool, len(batch))
	for i, c := range batch {
		stops[i] = context.AfterFunc(c.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// forwardApplyOne applies cmd on the leader in one PeerService.Apply call.
func (n *Node) forwardApplyOne(ctx context.Context, cmd []byte) (Applied, error) {
	var out Applied
	err := n.toLeader(ctx, "forward write", func(ctx context.Context, c clusterv1connect.PeerServiceClient) error {
		resp, err := c.Apply(ctx, connect.NewRequest(&clusterv1.ApplyRequest{Command: cmd}))
		if err != nil {
			return err
		}
		out = Applied{Index: resp.Msg.GetIndex(), Response: resp.Msg.GetResponse()}
		if msg := resp.Msg.GetFsmError(); msg != "" {
			return &FSMError{Index: out.Index, Err: errors.New(msg)}
		}
		return nil
	})
	return out, err
}

// forwardReadIndex asks the leader for its read index.
func (n *Node) forwardReadIndex(ctx context.Context) (uint64, error) {
	var index uint64
	err := n.toLeader(ctx, "read index", func(ctx context.Context, c clusterv1connect.PeerServiceClient) error {
		resp, err := c.ReadIndex(ctx, connect.NewRequest(&clusterv1.ReadIndexRequest{}))
		if err != nil {
			return err
		}
		index = resp.Msg.GetIndex()
		return nil
	})
	return index, err
}
