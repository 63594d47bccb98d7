package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Outcome is what one successful operation reports.
type Outcome struct {
	// Kind names the operation in a scenario of several (mixed); empty for
	// the scenario's one operation.
	Kind string
	// Latency, when Timed, replaces the time the runner measured around
	// the call (the watch scenario measures from a revoke's acknowledgement
	// to its arrival elsewhere).
	Latency time.Duration
	Timed   bool
	// Also are further measurements of the same operation, recorded by
	// kind only (the watch scenario's revoke call).
	Also []Sample
}

// Sample is one named latency.
type Sample struct {
	Kind    string
	Latency time.Duration
}

// Op is one client's operation. It must honour ctx (the runner cancels it
// at the end of the run and bounds each call with Options.Timeout).
type Op func(ctx context.Context) (Outcome, error)

// Scenario is a kind of load.
type Scenario interface {
	// Prepare runs before the clock starts and makes what the clients need
	// (users, sessions, tokens, streams) for this many clients.
	Prepare(ctx context.Context, clients int) error
	// Op returns client i's operation (0 <= i < clients). It is called once
	// per client, after Prepare.
	Op(i int) Op
	// Close releases what Prepare made.
	Close() error
}

// Options bound a run. Exactly one of Duration and Total is set.
type Options struct {
	// Clients is the number of concurrent clients (closed loop: each sends
	// its next operation when the last one ended).
	Clients int
	// Duration ends the run after this long; Total after this many
	// operations (successful or not).
	Duration time.Duration
	Total    int64
	// Rate, when positive, makes the run open-loop: operations are due at
	// a fixed total rate (per second), shared by the clients, and latency
	// counts from when each was due.
	Rate float64
	// Timeout bounds one operation (default 10 s).
	Timeout time.Duration
	// Progress, if set, receives a progress line every ProgressEvery
	// (default 1 s).
	Progress      io.Writer
	ProgressEvery time.Duration
	// OnStart, if set, is called when the clock starts, after Prepare
	// (to start profiling the nodes, say).
	OnStart func()
}

// Validate checks the options.
func (o Options) Validate() error {
	switch {
	case o.Clients < 1 || o.Clients > 100000:
		return fmt.Errorf("clients: want 1 to 100000, got %d", o.Clients)
	case (o.Duration > 0) == (o.Total > 0):
		return errors.New("set exactly one of duration and total")
	case o.Duration < 0 || o.Total < 0 || o.Rate < 0 || o.Timeout < 0:
		return errors.New("duration, total, rate and timeout must not be negative")
	}
	return nil
}

// recorder is one client's tally; only its client writes it while the run
// goes on.
type recorder struct {
	all    *hdrhistogram.Histogram
	kinds  map[string]*hdrhistogram.Histogram
	errs   map[string]int64
	sample map[string]string
}

func newRecorder() *recorder {
	return &recorder{all: newHistogram(), kinds: map[string]*hdrhistogram.Histogram{}, errs: map[string]int64{}, sample: map[string]string{}}
}

func (r *recorder) kind(k string, d time.Duration) {
	h := r.kinds[k]
	if h == nil {
		h = newHistogram()
		r.kinds[k] = h
	}
	record(h, d)
}

func (r *recorder) success(o Outcome, measured time.Duration) {
	d := measured
	if o.Timed {
		d = o.Latency
	}
	record(r.all, d)
	if o.Kind != "" {
		r.kind(o.Kind, d)
	}
	for _, s := range o.Also {
		r.kind(s.Kind, s.Latency)
	}
}

func (r *recorder) failure(err error) {
	c := ErrorCode(err)
	r.errs[c]++
	if _, ok := r.sample[c]; !ok {
		r.sample[c] = err.Error()
	}
}

// Run prepares sc, runs it as o says and returns the summary. Scenario
// failures of single operations are counted, not returned; Run fails only
// when the options are wrong or Prepare fails.
func Run(ctx context.Context, name string, sc Scenario, o Options) (*Summary, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.ProgressEvery == 0 {
		o.ProgressEvery = time.Second
	}
	if err := sc.Prepare(ctx, o.Clients); err != nil {
		return nil, fmt.Errorf("prepare %s: %w", name, err)
	}
	ops := make([]Op, o.Clients)
	for i := range ops {
		ops[i] = sc.Op(i)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.Duration > 0 {
		// The end of the run cancels the operations in flight; it is not
		// their deadline. A deadline travels to the server
		// (Connect-Timeout-Ms), and a server that answers as it runs out
		// (sessiond says why it could not serve in time: UNAVAILABLE, a
		// few ms before) would have its answer race this process's own
		// timer: on a loaded machine the answer often won, and every
		// operation still in flight at the end was counted as a failure.
		// A cancellation is this side's alone: what it cuts short is
		// never a server's answer.
		stop := time.AfterFunc(o.Duration, cancel)
		defer stop.Stop()
	}
	var (
		issued, done, failed atomic.Int64
		exhausted            atomic.Bool
		wg                   sync.WaitGroup
		recs                 = make([]*recorder, o.Clients)
		start                = time.Now()
		cpu0, cpuOK          = processCPU()
		interval             time.Duration
	)
	if o.Rate > 0 {
		interval = time.Duration(float64(time.Second) / o.Rate)
	}
	// take claims the next operation: its sequence number and, open loop,
	// when it is due. ok is false when the run is over.
	take := func() (due time.Time, ok bool) {
		k := issued.Add(1) - 1
		if o.Total > 0 && k >= o.Total {
			return time.Time{}, false
		}
		if interval == 0 {
			return time.Time{}, runCtx.Err() == nil
		}
		due = start.Add(time.Duration(k) * interval)
		if w := time.Until(due); w > 0 {
			t := time.NewTimer(w)
			select {
			case <-t.C:
			case <-runCtx.Done():
				t.Stop()
				return time.Time{}, false
			}
		}
		return due, runCtx.Err() == nil
	}
	if o.OnStart != nil {
		o.OnStart()
	}
	for i := range o.Clients {
		rec := newRecorder()
		recs[i] = rec
		wg.Go(func() {
			for {
				due, ok := take()
				if !ok {
					return
				}
				t0 := time.Now()
				if due.IsZero() {
					due = t0
				}
				octx, ocancel := context.WithTimeout(runCtx, o.Timeout)
				out, err := ops[i](octx)
				ocancel()
				end := time.Now()
				switch {
				case errors.Is(err, ErrExhausted):
					exhausted.Store(true)
					cancel()
					return
				case err != nil && runCtx.Err() != nil:
					return // cut short by the end of the run: not an error
				case err != nil:
					failed.Add(1)
					rec.failure(err)
				default:
					done.Add(1)
					rec.success(out, end.Sub(due))
				}
			}
		})
	}
	stopProgress := startProgress(o, name, start, &done, &failed)
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, _ := processCPU()
	stopProgress()

	s := summarize(name, o, elapsed, recs)
	s.StartedUnixNano = start.UnixNano()
	if cpuOK {
		s.LoadCPUSeconds = (cpu1 - cpu0).Seconds()
	}
	if exhausted.Load() {
		s.Notes = append(s.Notes, "the scenario's prepared material ran out: the run ended early")
	}
	return s, nil
}

// summarize merges the clients' tallies.
func summarize(name string, o Options, elapsed time.Duration, recs []*recorder) *Summary {
	all := newHistogram()
	kinds := map[string]*hdrhistogram.Histogram{}
	s := &Summary{Scenario: name, Clients: o.Clients, Rate: o.Rate, Elapsed: elapsed.Seconds()}
	for _, r := range recs {
		all.Merge(r.all)
		for k, h := range r.kinds {
			if kinds[k] == nil {
				kinds[k] = newHistogram()
			}
			kinds[k].Merge(h)
		}
		for c, n := range r.errs {
			if s.ErrorsByCode == nil {
				s.ErrorsByCode, s.ErrorSamples = map[string]int64{}, map[string]string{}
			}
			s.ErrorsByCode[c] += n
			s.Errors += n
			if _, ok := s.ErrorSamples[c]; !ok {
				s.ErrorSamples[c] = r.sample[c]
			}
		}
	}
	s.Ops = all.TotalCount()
	s.Throughput = perSecond(s.Ops, elapsed)
	s.Latency = statsOf(all)
	for k, h := range kinds {
		if s.ByKind == nil {
			s.ByKind = map[string]KindSummary{}
		}
		s.ByKind[k] = KindSummary{Ops: h.TotalCount(), Throughput: perSecond(h.TotalCount(), elapsed), Latency: statsOf(h)}
	}
	return s
}

// startProgress prints a progress line every o.ProgressEvery until the
// returned function is called.
func startProgress(o Options, name string, start time.Time, done, failed *atomic.Int64) func() {
	if o.Progress == nil {
		return func() {}
	}
	var last int64
	lastAt := start
	return every(o.ProgressEvery, func(now time.Time) {
		n := done.Load()
		fmt.Fprintln(o.Progress, progressLine(name, now.Sub(start), n, failed.Load(), perSecond(n-last, now.Sub(lastAt)), perSecond(n, now.Sub(start))))
		last, lastAt = n, now
	})
}

// every calls f every d, in one goroutine, until the returned function is
// called (which waits for a running f).
func every(d time.Duration, f func(now time.Time)) (stop func()) {
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				f(now)
			}
		}
	}()
	return func() { close(quit); <-finished }
}

// progressLine formats one progress line.
func progressLine(name string, at time.Duration, ops, errs int64, nowRate, avgRate float64) string {
	return fmt.Sprintf("[%6.1fs] %s: %d ops, %.0f/s now, %.0f/s average, %d errors", at.Seconds(), name, ops, nowRate, avgRate, errs)
}

// pick returns an index in [0, len(weights)) with probability proportional
// to its weight, using r (weights are positive).
func pick(r *rand.Rand, weights []int, total int) int {
	x := r.IntN(total)
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	return len(weights) - 1
}
