package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// DispatcherConfig tunes a Dispatcher. Zero fields take the defaults shown.
type DispatcherConfig struct {
	// QueueSize is the number of events each notifier's queue holds (256).
	QueueSize int
	// MaxAttempts bounds the deliveries tried per event and notifier (5).
	MaxAttempts int
	// BaseBackoff is the wait before the first retry (500ms); it doubles
	// per retry, up to MaxBackoff (30s), with random jitter of up to half.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// MaxRetryAfter caps a server-requested wait (Telegram's retry_after):
	// an event whose server asks for longer is given up (2m).
	MaxRetryAfter time.Duration
	// AttemptTimeout bounds one delivery attempt (10s).
	AttemptTimeout time.Duration
	// Logger receives delivery failures (slog.Default()).
	Logger *slog.Logger
}

func (c *DispatcherConfig) defaults() {
	if c.QueueSize <= 0 {
		c.QueueSize = 256
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.BaseBackoff <= 0 {
		c.BaseBackoff = 500 * time.Millisecond
	}
	if c.MaxBackoff < c.BaseBackoff {
		c.MaxBackoff = max(30*time.Second, c.BaseBackoff)
	}
	if c.MaxRetryAfter <= 0 {
		c.MaxRetryAfter = 2 * time.Minute
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Stats counts what a Dispatcher did, summed over its notifiers.
type Stats struct {
	// Delivered counts events a notifier accepted.
	Delivered uint64
	// Failed counts events given up on after a permanent error, the last
	// attempt, or a too-long requested wait.
	Failed uint64
	// Dropped counts events not queued because a queue was full or the
	// dispatcher closed.
	Dropped uint64
	// Retries counts attempts beyond the first.
	Retries uint64
}

// Dispatcher fans events out to notifiers. Each notifier has its own
// bounded queue and worker goroutine, so a slow notifier delays neither
// the caller nor the other notifiers. Dispatch never blocks: when a queue
// is full the event is dropped for that notifier and counted. It is safe
// for concurrent use.
type Dispatcher struct {
	cfg     DispatcherConfig
	workers []*worker

	mu     sync.RWMutex // guards closed against sends on closed queues
	closed bool

	stop    context.CancelFunc // aborts in-flight deliveries and waits
	baseCtx context.Context
	wg      sync.WaitGroup

	delivered, failed, dropped, retries atomic.Uint64

	// sleep waits d or until ctx ends; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

type worker struct {
	n     Notifier
	name  string
	queue chan Event
}

// NewDispatcher starts one worker per notifier. Call Close to stop them.
func NewDispatcher(cfg DispatcherConfig, notifiers ...Notifier) *Dispatcher {
	cfg.defaults()
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dispatcher{cfg: cfg, stop: cancel, baseCtx: ctx, sleep: sleepCtx}
	for i, n := range notifiers {
		name := fmt.Sprintf("notifier-%d", i)
		if nn, ok := n.(interface{ Name() string }); ok {
			name = nn.Name()
		}
		w := &worker{n: n, name: name, queue: make(chan Event, cfg.QueueSize)}
		d.workers = append(d.workers, w)
	}
	for _, w := range d.workers {
		d.wg.Add(1)
		go d.run(w)
	}
	return d
}

// Dispatch queues ev for every notifier without blocking. It returns false
// when the event was dropped for at least one notifier (its queue full, or
// the dispatcher closed); drops are counted in Stats.Dropped.
func (d *Dispatcher) Dispatch(ev Event) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		d.dropped.Add(uint64(len(d.workers)))
		return false
	}
	ok := true
	for _, w := range d.workers {
		select {
		case w.queue <- ev:
		default:
			d.dropped.Add(1)
			ok = false
		}
	}
	return ok
}

// Stats returns the counters so far.
func (d *Dispatcher) Stats() Stats {
	return Stats{
		Delivered: d.delivered.Load(), Failed: d.failed.Load(),
		Dropped: d.dropped.Load(), Retries: d.retries.Load(),
	}
}

// Close stops accepting events and waits for the workers to deliver what
// is queued (retries included). If ctx ends first, in-flight deliveries
// and waits are aborted, the rest of the queue is discarded (counted as
// Failed), and Close returns ctx's error. Close is idempotent.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		for _, w := range d.workers {
			close(w.queue)
		}
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
		d.stop()
		return nil
	case <-ctx.Done():
		d.stop()
		<-done
		return ctx.Err()
	}
}

func (d *Dispatcher) run(w *worker) {
	defer d.wg.Done()
	for ev := range w.queue {
		d.deliver(w, ev)
	}
}

// deliver tries ev on w's notifier up to MaxAttempts times.
func (d *Dispatcher) deliver(w *worker, ev Event) {
	var err error
	for attempt := 1; ; attempt++ {
		if d.baseCtx.Err() != nil {
			d.failed.Add(1)
			return
		}
		actx, cancel := context.WithTimeout(d.baseCtx, d.cfg.AttemptTimeout)
		err = w.n.Notify(actx, ev)
		cancel()
		if err == nil {
			d.delivered.Add(1)
			return
		}
		var de *DeliveryError
		isDE := errors.As(err, &de)
		wait := d.backoff(attempt)
		switch {
		case isDE && de.Permanent:
			d.giveUp(w, ev, attempt, "permanent error", err)
			return
		case attempt >= d.cfg.MaxAttempts:
			d.giveUp(w, ev, attempt, "attempts exhausted", err)
			return
		case isDE && de.RetryAfter > d.cfg.MaxRetryAfter:
			d.giveUp(w, ev, attempt, "server asks to wait too long", err)
			return
		case isDE && de.RetryAfter > 0:
			wait = de.RetryAfter
		}
		if d.sleep(d.baseCtx, wait) != nil {
			d.failed.Add(1)
			return
		}
		d.retries.Add(1)
	}
}

func (d *Dispatcher) giveUp(w *worker, ev Event, attempts int, why string, err error) {
	d.failed.Add(1)
	// err never holds a secret: the notifiers of this package redact URLs.
	d.cfg.Logger.Warn("security event not delivered", "notifier", w.name, "event", ev.Kind,
		"user", ev.UserID, "attempts", attempts, "reason", why, "err", err)
}

// backoff is the wait after the attempt-th failure: BaseBackoff doubling,
// capped at MaxBackoff, minus up to half of it at random.
func (d *Dispatcher) backoff(attempt int) time.Duration {
	b := d.cfg.BaseBackoff
	for i := 1; i < attempt && b < d.cfg.MaxBackoff; i++ {
		b *= 2
	}
	b = min(b, d.cfg.MaxBackoff)
	return b - rand.N(b/2+1)
}

func sleepCtx(ctx context.Context, dur time.Duration) error {
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
