package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
)

// near reports whether got is within rel (relative) of want.
func near(got, want, rel float64) bool { return math.Abs(got-want) <= rel*want }

func TestStatsPercentiles(t *testing.T) {
	h := newHistogram()
	for ms := 1; ms <= 1000; ms++ {
		record(h, time.Duration(ms)*time.Millisecond)
	}
	st := statsOf(h)
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"p50", st.P50, 500}, {"p90", st.P90, 900}, {"p99", st.P99, 990}, {"p99.9", st.P999, 999}, {"max", st.Max, 1000}, {"mean", st.Mean, 500.5}} {
		if !near(c.got, c.want, 0.002) {
			t.Errorf("%s of 1..1000 ms: got %.3f ms, want %.0f ms within 0.2 %%", c.name, c.got, c.want)
		}
	}
	if st.Count != 1000 {
		t.Errorf("count: got %d, want 1000", st.Count)
	}
}

func TestRecordClampsToTheHistogramRange(t *testing.T) {
	h := newHistogram()
	record(h, 0)
	record(h, 2*time.Hour)
	if got := h.TotalCount(); got != 2 {
		t.Fatalf("recorded: got %d, want 2 (out-of-range values clamp, not drop)", got)
	}
	if st := statsOf(h); !near(st.Max, float64(time.Hour/time.Millisecond), 0.001) {
		t.Errorf("max of a 2 h latency: got %.0f ms, want one hour", st.Max)
	}
}

func TestSummarizeMergesClients(t *testing.T) {
	a, b := newRecorder(), newRecorder()
	for range 30 {
		a.success(Outcome{Kind: "check"}, 2*time.Millisecond)
	}
	for range 10 {
		b.success(Outcome{Kind: "revoke"}, 8*time.Millisecond)
	}
	b.failure(connect.NewError(connect.CodeUnavailable, errors.New("no leader")))
	b.failure(connect.NewError(connect.CodeUnavailable, errors.New("no leader again")))
	b.failure(Failf("inactive", "session_ended"))
	s := summarize("mixed", Options{Clients: 2}, 2*time.Second, []*recorder{a, b})
	if s.Ops != 40 || s.Errors != 3 {
		t.Fatalf("ops, errors: got %d, %d, want 40, 3", s.Ops, s.Errors)
	}
	if s.Throughput != 20 {
		t.Errorf("throughput: got %v, want 40 ops / 2 s = 20", s.Throughput)
	}
	if got := s.ErrorsByCode; got["unavailable"] != 2 || got["inactive"] != 1 || len(got) != 2 {
		t.Errorf("errors by code: got %v, want unavailable=2 inactive=1", got)
	}
	if got := s.ErrorSamples["unavailable"]; !strings.Contains(got, "no leader") {
		t.Errorf("sample of unavailable: got %q, want the first message", got)
	}
	if k := s.ByKind["revoke"]; k.Ops != 10 || k.Throughput != 5 || !near(k.Latency.P50, 8, 0.002) {
		t.Errorf("revoke kind: got %+v, want 10 ops, 5/s, p50 8 ms", k)
	}
	if !near(s.Latency.P50, 2, 0.002) || !near(s.Latency.Max, 8, 0.002) {
		t.Errorf("merged latency: got p50 %.3f max %.3f, want 2 and 8 ms", s.Latency.P50, s.Latency.Max)
	}
}

func TestEmptySummaryEncodes(t *testing.T) {
	s := summarize("revoke", Options{Clients: 1}, 0, []*recorder{newRecorder()})
	if s.Throughput != 0 || s.Latency != (Stats{}) {
		t.Fatalf("empty run: got throughput %v, latency %+v, want zeros", s.Throughput, s.Latency)
	}
	var buf bytes.Buffer
	if err := s.WriteJSON(&buf); err != nil {
		t.Fatalf("WriteJSON of an empty run: %v", err)
	}
	var back Summary
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || back.Scenario != "revoke" {
		t.Fatalf("JSON round trip: got %+v, %v", back, err)
	}
	buf.Reset()
	if err := s.WriteText(&buf); err != nil || !strings.Contains(buf.String(), "no samples") {
		t.Errorf("text of an empty run: got %q, %v", buf.String(), err)
	}
}

// fakeScenario runs op for every client.
type fakeScenario struct{ op Op }

func (f fakeScenario) Prepare(context.Context, int) error { return nil }
func (f fakeScenario) Op(int) Op                          { return f.op }
func (f fakeScenario) Close() error                       { return nil }

func TestRunCountsTotalAndErrors(t *testing.T) {
	var n atomic.Int64
	sc := fakeScenario{op: func(context.Context) (Outcome, error) {
		if n.Add(1)%4 == 0 {
			return Outcome{}, Failf("broken", "every fourth")
		}
		return Outcome{}, nil
	}}
	s, err := Run(context.Background(), "fake", sc, Options{Clients: 3, Total: 100})
	if err != nil {
		t.Fatal(err)
	}
	if s.Ops+s.Errors != 100 || s.Errors != 25 || s.ErrorsByCode["broken"] != 25 {
		t.Errorf("got %d ops, %d errors (%v), want 75 and 25 broken", s.Ops, s.Errors, s.ErrorsByCode)
	}
	if s.Throughput <= 0 || s.Elapsed <= 0 {
		t.Errorf("throughput %v over %v s: want positive", s.Throughput, s.Elapsed)
	}
}

func TestRunMeasuresTheGeneratorsCPU(t *testing.T) {
	// Operations that spin for 2 ms each: the summary's CPU is about the
	// operations' time, and its window starts before the first one.
	sc := fakeScenario{op: func(context.Context) (Outcome, error) {
		for t0 := time.Now(); time.Since(t0) < 2*time.Millisecond; {
		}
		return Outcome{}, nil
	}}
	before := time.Now()
	s, err := Run(context.Background(), "spin", sc, Options{Clients: 1, Total: 100})
	if err != nil {
		t.Fatal(err)
	}
	if s.LoadCPUSeconds < 0.1 || s.LoadCPUSeconds > s.Elapsed*float64(runtime.NumCPU())+0.05 {
		t.Errorf("load CPU %.3f s for 100 operations spinning 2 ms over %.3f s", s.LoadCPUSeconds, s.Elapsed)
	}
	if started := time.Unix(0, s.StartedUnixNano); started.Before(before) || time.Since(started) < time.Duration(s.Elapsed*float64(time.Second)) {
		t.Errorf("window start %v: want after %v and at least the elapsed %.3f s ago", started, before, s.Elapsed)
	}
}

func TestRunOpenLoopCountsFromTheDueTime(t *testing.T) {
	// One client, operations due every 10 ms, each taking 20 ms: the
	// 30th is due at 290 ms and starts at about 580 ms. Closed-loop timing
	// would report 20 ms; the schedule's lateness must show.
	sc := fakeScenario{op: func(ctx context.Context) (Outcome, error) {
		time.Sleep(20 * time.Millisecond)
		return Outcome{}, nil
	}}
	s, err := Run(context.Background(), "open", sc, Options{Clients: 1, Total: 30, Rate: 100})
	if err != nil {
		t.Fatal(err)
	}
	if s.Latency.Max < 200 {
		t.Errorf("max latency of a falling-behind open-loop run: got %.1f ms, want >= 200 ms (about 310)", s.Latency.Max)
	}
	if s.Latency.P50 < 20 {
		t.Errorf("p50: got %.1f ms, want >= the 20 ms an operation takes", s.Latency.P50)
	}
}

func TestRunEndsWhenTheScenarioIsExhausted(t *testing.T) {
	var n atomic.Int64
	sc := fakeScenario{op: func(context.Context) (Outcome, error) {
		if n.Add(1) > 10 {
			return Outcome{}, ErrExhausted
		}
		return Outcome{}, nil
	}}
	s, err := Run(context.Background(), "pool", sc, Options{Clients: 1, Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if s.Ops != 10 || len(s.Notes) == 0 || s.Elapsed > 30 {
		t.Errorf("got %d ops in %.1f s, notes %q; want 10 ops, an early end and a note", s.Ops, s.Elapsed, s.Notes)
	}
}

func TestRunTimedOutcomeReplacesTheMeasuredLatency(t *testing.T) {
	sc := fakeScenario{op: func(context.Context) (Outcome, error) {
		return Outcome{Timed: true, Latency: 42 * time.Millisecond, Also: []Sample{{Kind: "revoke", Latency: 3 * time.Millisecond}}}, nil
	}}
	s, err := Run(context.Background(), "watch", sc, Options{Clients: 2, Total: 20})
	if err != nil {
		t.Fatal(err)
	}
	if !near(s.Latency.P50, 42, 0.002) || !near(s.ByKind["revoke"].Latency.P50, 3, 0.002) {
		t.Errorf("got p50 %.3f and revoke p50 %.3f, want 42 and 3 ms", s.Latency.P50, s.ByKind["revoke"].Latency.P50)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{{Clients: 0, Total: 1}, {Clients: 1}, {Clients: 1, Total: 5, Duration: time.Second}, {Clients: 1, Total: 1, Rate: -1}} {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%+v): got nil, want an error", o)
		}
	}
}

func TestErrorCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{connect.NewError(connect.CodeResourceExhausted, errors.New("busy")), "resource_exhausted"},
		{Failf("http_503", "GET /healthz"), "http_503"},
		{context.DeadlineExceeded, "deadline_exceeded"},
		{dialClosedPort(t), "transport"},
		{fmt.Errorf("read answer: %w", io.ErrUnexpectedEOF), "transport"},
		{errors.New("something else"), "other"},
	} {
		if got := ErrorCode(c.err); got != c.want {
			t.Errorf("ErrorCode(%v): got %q, want %q", c.err, got, c.want)
		}
	}
}

// dialClosedPort returns the error of dialling a port nothing listens on.
func dialClosedPort(t *testing.T) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
		t.Skip("something listens on the closed port again")
	}
	return err
}

func TestParseMix(t *testing.T) {
	kinds, weights, err := ParseMix("check=90, refresh=5,revoke=0,login=5")
	if err != nil || strings.Join(kinds, ",") != "check,refresh,login" || weights[0] != 90 {
		t.Fatalf("got %v %v %v, want check,refresh,login with 90,5,5 (zero weights dropped)", kinds, weights, err)
	}
	for _, bad := range []string{"", "check", "check=x", "nope=1", "check=1,check=2", "check=0"} {
		if _, _, err := ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q): got nil, want an error", bad)
		}
	}
}

func TestPickFollowsTheWeights(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	counts := make([]int, 3)
	for range 100000 {
		counts[pick(r, []int{90, 5, 5}, 100)]++
	}
	if !near(float64(counts[0]), 90000, 0.02) || !near(float64(counts[1]), 5000, 0.1) {
		t.Errorf("picks of 90/5/5 over 100000: got %v", counts)
	}
}

func TestLoadedKeepsABoundedUniformSample(t *testing.T) {
	l := &loaded{keep: 100, rng: rand.New(rand.NewPCG(3, 4))}
	for b := range 100 {
		ids := make([]string, 100)
		for i := range ids {
			ids[i] = string(rune('a'+b%26)) + string(rune(b)) + string(rune(i))
		}
		l.add(ids, uint64(b))
	}
	if len(l.ids) != 100 || l.seen != 10000 || l.index != 99 {
		t.Fatalf("got %d ids kept of %d seen, index %d; want 100 of 10000, index 99", len(l.ids), l.seen, l.index)
	}
	late := 0
	for _, id := range l.ids {
		if []rune(id)[1] >= 50 {
			late++
		}
	}
	if late < 30 || late > 70 {
		t.Errorf("ids from the second half of the stream: got %d of 100, want about 50 (a uniform sample)", late)
	}
}

func TestProgressLine(t *testing.T) {
	got := progressLine("revoke", 3*time.Second, 2345, 2, 781.4, 760.2)
	want := "[   3.0s] revoke: 2345 ops, 781/s now, 760/s average, 2 errors"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestRunEndIsNotTheOperationsDeadline runs a server-like operation that
// answers with an error of its own as its deadline comes (what sessiond
// does with the deadline a Connect client sends: UNAVAILABLE, saying why,
// just before it). The end of a timed run must not be that deadline:
// otherwise every operation in flight at the end comes back as a failure
// that raced the run's timer. Cut short by the end of the run, they are
// not counted.
func TestRunEndIsNotTheOperationsDeadline(t *testing.T) {
	const timeout = time.Minute
	var ran, early atomic.Int64
	sc := fakeScenario{op: func(ctx context.Context) (Outcome, error) {
		ran.Add(1)
		dl, ok := ctx.Deadline()
		if !ok || time.Until(dl) > timeout/2 {
			// No deadline near: the run's end cancels us.
			<-ctx.Done()
			return Outcome{}, ctx.Err()
		}
		early.Add(1)
		return Outcome{}, connect.NewError(connect.CodeUnavailable, errors.New("did not answer in time"))
	}}
	s, err := Run(context.Background(), "cut", sc, Options{Clients: 4, Duration: 50 * time.Millisecond, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	if ran.Load() == 0 {
		t.Fatal("no operation ran")
	}
	if early.Load() != 0 || s.Errors != 0 || len(s.ErrorsByCode) != 0 {
		t.Errorf("%d operations were given the run's end as their deadline; %d errors %v; want none (cut short by the end of the run)", early.Load(), s.Errors, s.ErrorsByCode)
	}
}
