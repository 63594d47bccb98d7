package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const token = "123456:AAH-secret-bot-token_xyz"

var at = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testEvent() Event {
	return Event{Kind: KindLockout, UserID: "42", Email: "victim@example.com", IP: "203.0.113.7",
		Region: "ap-southeast", Node: "n1", At: at, Detail: "10 failures"}
}

// botAPI is a fake Telegram Bot API. Each request pops the next canned
// answer; when none are left it answers ok.
type botAPI struct {
	mu       sync.Mutex
	answers  []answer
	requests []botRequest
	got      chan botRequest
}

type answer struct {
	status int
	body   string
}

type botRequest struct {
	Method, Path, ContentType string
	ChatID                    any    `json:"chat_id"`
	Text                      string `json:"text"`
}

func newBotAPI(t *testing.T, answers ...answer) (*botAPI, *httptest.Server) {
	b := &botAPI{answers: answers, got: make(chan botRequest, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var br botRequest
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &br); err != nil {
			t.Errorf("bot API: body %q is not JSON: %v", body, err)
		}
		br.Method, br.Path, br.ContentType = r.Method, r.URL.Path, r.Header.Get("Content-Type")
		b.mu.Lock()
		b.requests = append(b.requests, br)
		a := answer{200, `{"ok":true,"result":{"message_id":1}}`}
		if len(b.answers) > 0 {
			a, b.answers = b.answers[0], b.answers[1:]
		}
		b.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
		b.got <- br
	}))
	t.Cleanup(srv.Close)
	return b, srv
}

func (b *botAPI) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.requests)
}

// newTestDispatcher returns a dispatcher whose backoff waits are recorded
// instead of slept, and a log buffer.
func newTestDispatcher(t *testing.T, cfg DispatcherConfig, ns ...Notifier) (*Dispatcher, *[]time.Duration, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	d := NewDispatcher(cfg, ns...)
	var mu sync.Mutex
	var waits []time.Duration
	d.sleep = func(ctx context.Context, dur time.Duration) error {
		mu.Lock()
		waits = append(waits, dur)
		mu.Unlock()
		return ctx.Err()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Close(ctx)
	})
	return d, &waits, logs
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func closeNow(t *testing.T, d *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestTelegramSendsBotAPIRequest(t *testing.T) {
	api, srv := newBotAPI(t)
	tg := &Telegram{BaseURL: srv.URL + "/", BotToken: token, ChatID: "-1001234567890", Client: srv.Client()}
	if err := tg.Notify(context.Background(), testEvent()); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	r := <-api.got
	if r.Method != http.MethodPost || r.Path != "/bot"+token+"/sendMessage" || r.ContentType != "application/json" {
		t.Errorf("request: got %s %s (%s), want POST /bot<token>/sendMessage (application/json)", r.Method, r.Path, r.ContentType)
	}
	if id, ok := r.ChatID.(float64); !ok || id != -1001234567890 {
		t.Errorf("chat_id: got %#v, want the number -1001234567890", r.ChatID)
	}
	for _, want := range []string{"lockout", "victim@example.com", "203.0.113.7", "2026-03-01T12:00:00Z", "10 failures"} {
		if !strings.Contains(r.Text, want) {
			t.Errorf("text %q: want it to mention %q", r.Text, want)
		}
	}
	// A channel username is sent as a string.
	tg.ChatID = "@security_alerts"
	if err := tg.Notify(context.Background(), testEvent()); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if r := <-api.got; r.ChatID != "@security_alerts" {
		t.Errorf("chat_id: got %#v, want \"@security_alerts\"", r.ChatID)
	}
}

func TestTelegramErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ans       answer
		status    int
		permanent bool
		retry     time.Duration
	}{
		{"429 with retry_after", answer{429, `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}`}, 429, false, 7 * time.Second},
		{"400 chat not found", answer{400, `{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}`}, 400, true, 0},
		{"401 bad token", answer{401, `{"ok":false,"error_code":401,"description":"Unauthorized"}`}, 401, true, 0},
		{"502 from a proxy, not JSON", answer{502, `<html>bad gateway</html>`}, 502, false, 0},
		{"200 but ok false", answer{200, `{"ok":false,"error_code":400,"description":"Bad Request: message text is empty"}`}, 400, true, 0},
		{"description echoing the token", answer{404, `{"ok":false,"error_code":404,"description":"Not Found: /bot` + token + `"}`}, 404, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := newBotAPI(t, tc.ans)
			tg := &Telegram{BaseURL: srv.URL, BotToken: token, ChatID: "1", Client: srv.Client()}
			err := tg.Notify(context.Background(), testEvent())
			var de *DeliveryError
			if !errors.As(err, &de) {
				t.Fatalf("Notify: got %v, want a *DeliveryError", err)
			}
			if de.StatusCode != tc.status || de.Permanent != tc.permanent || de.RetryAfter != tc.retry {
				t.Errorf("got status %d permanent %v retry %s, want %d %v %s", de.StatusCode, de.Permanent, de.RetryAfter, tc.status, tc.permanent, tc.retry)
			}
			if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "AAH-secret") {
				t.Errorf("error %q reveals the bot token", err)
			}
		})
	}
}

func TestTelegramTransportErrorHidesToken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	tg := &Telegram{BaseURL: "http://" + addr, BotToken: token, ChatID: "1"}
	err = tg.Notify(context.Background(), testEvent())
	var de *DeliveryError
	if !errors.As(err, &de) || de.Permanent || de.StatusCode != 0 {
		t.Fatalf("Notify to a closed port: got %v, want a retryable *DeliveryError", err)
	}
	for e := error(err); e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), token) {
			t.Errorf("error chain reveals the bot token: %q", e)
		}
	}
	if !strings.Contains(err.Error(), "/bot<redacted>/sendMessage") {
		t.Errorf("error %q: want the redacted URL", err)
	}
	// A token with characters that break the URL does not leak either.
	tg.BotToken = "bad token\x7f" + token
	if err := tg.Notify(context.Background(), testEvent()); err == nil || strings.Contains(err.Error(), token) {
		t.Errorf("malformed token: got %v, want an error without the token", err)
	}
}

func TestDispatcherRetries429ThenSucceeds(t *testing.T) {
	api, srv := newBotAPI(t,
		answer{429, `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}`})
	tg := &Telegram{BaseURL: srv.URL, BotToken: token, ChatID: "1", Client: srv.Client()}
	d, waits, logs := newTestDispatcher(t, DispatcherConfig{}, tg)
	if !d.Dispatch(testEvent()) {
		t.Fatal("Dispatch dropped the event")
	}
	closeNow(t, d)
	if got := api.count(); got != 2 {
		t.Errorf("requests: got %d, want 2 (429 then success)", got)
	}
	if len(*waits) != 1 || (*waits)[0] != 3*time.Second {
		t.Errorf("waits: got %v, want [3s] from retry_after", *waits)
	}
	if s := d.Stats(); s.Delivered != 1 || s.Failed != 0 || s.Retries != 1 {
		t.Errorf("stats: got %+v, want 1 delivered, 1 retry, none failed", s)
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("logs reveal the token: %s", logs)
	}
}

func TestDispatcherDoesNotRetry400(t *testing.T) {
	api, srv := newBotAPI(t, answer{400, `{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}`})
	tg := &Telegram{BaseURL: srv.URL, BotToken: token, ChatID: "1", Client: srv.Client()}
	d, waits, logs := newTestDispatcher(t, DispatcherConfig{}, tg)
	d.Dispatch(testEvent())
	closeNow(t, d)
	if got := api.count(); got != 1 {
		t.Errorf("requests: got %d, want 1 (a 400 is not retried)", got)
	}
	if len(*waits) != 0 {
		t.Errorf("waits: got %v, want none", *waits)
	}
	if s := d.Stats(); s.Delivered != 0 || s.Failed != 1 {
		t.Errorf("stats: got %+v, want 1 failed", s)
	}
	l := logs.String()
	if !strings.Contains(l, "chat not found") || strings.Contains(l, token) {
		t.Errorf("log %q: want the failure logged without the token", l)
	}
}

func TestDispatcherBoundedAttemptsWithBackoff(t *testing.T) {
	var answers []answer
	for range 10 {
		answers = append(answers, answer{500, `{"ok":false,"error_code":500,"description":"Internal Server Error"}`})
	}
	api, srv := newBotAPI(t, answers...)
	tg := &Telegram{BaseURL: srv.URL, BotToken: token, ChatID: "1", Client: srv.Client()}
	d, waits, _ := newTestDispatcher(t, DispatcherConfig{MaxAttempts: 4, BaseBackoff: 100 * time.Millisecond, MaxBackoff: 250 * time.Millisecond}, tg)
	d.Dispatch(testEvent())
	closeNow(t, d)
	if got := api.count(); got != 4 {
		t.Errorf("requests: got %d, want MaxAttempts 4", got)
	}
	// Backoff before retries 1..3: nominal 100ms, 200ms, 250ms (capped),
	// each reduced by at most half for jitter.
	nominal := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond}
	if len(*waits) != len(nominal) {
		t.Fatalf("waits: got %v, want %d", *waits, len(nominal))
	}
	for i, w := range *waits {
		if w < nominal[i]/2 || w > nominal[i] {
			t.Errorf("wait %d: got %s, want within [%s, %s]", i, w, nominal[i]/2, nominal[i])
		}
	}
	if s := d.Stats(); s.Failed != 1 || s.Retries != 3 {
		t.Errorf("stats: got %+v, want 1 failed after 3 retries", s)
	}
}

func TestDispatcherGivesUpOnLongRetryAfter(t *testing.T) {
	api, srv := newBotAPI(t, answer{429, `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3600","parameters":{"retry_after":3600}}`})
	tg := &Telegram{BaseURL: srv.URL, BotToken: token, ChatID: "1", Client: srv.Client()}
	d, waits, _ := newTestDispatcher(t, DispatcherConfig{MaxRetryAfter: time.Minute}, tg)
	d.Dispatch(testEvent())
	closeNow(t, d)
	if api.count() != 1 || len(*waits) != 0 || d.Stats().Failed != 1 {
		t.Errorf("got %d requests, waits %v, stats %+v; want 1 request, no wait, 1 failed", api.count(), *waits, d.Stats())
	}
}

func TestWebhook(t *testing.T) {
	const secret = "webhook-signing-secret"
	got := make(chan *http.Request, 1)
	bodies := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- b
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	wh := &Webhook{URL: srv.URL + "/hooks/T0KEN-IN-PATH", Client: srv.Client(), Secret: secret}
	if err := wh.Notify(context.Background(), testEvent()); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	r, body := <-got, <-bodies
	if r.Method != http.MethodPost || r.URL.Path != "/hooks/T0KEN-IN-PATH" || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("request: got %s %s %s", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
	}
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil || ev != testEvent() {
		t.Errorf("body %s: decoded %+v (%v), want %+v", body, ev, err, testEvent())
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); r.Header.Get(SignatureHeader) != want {
		t.Errorf("signature: got %q, want %q", r.Header.Get(SignatureHeader), want)
	}
	if strings.Contains(string(body), "password") || strings.Contains(string(body), "token") {
		t.Errorf("body %s mentions a secret field", body)
	}
}

func TestWebhookErrors(t *testing.T) {
	for _, tc := range []struct {
		status    int
		header    string
		permanent bool
		retry     time.Duration
	}{
		{400, "", true, 0},
		{404, "", true, 0},
		{429, "12", false, 12 * time.Second},
		{503, "", false, 0},
		{408, "", false, 0},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tc.header != "" {
				w.Header().Set("Retry-After", tc.header)
			}
			w.WriteHeader(tc.status)
		}))
		wh := &Webhook{URL: srv.URL + "/hooks/T0KEN-IN-PATH", Client: srv.Client()}
		err := wh.Notify(context.Background(), testEvent())
		srv.Close()
		var de *DeliveryError
		if !errors.As(err, &de) || de.StatusCode != tc.status || de.Permanent != tc.permanent || de.RetryAfter != tc.retry {
			t.Errorf("status %d: got %v (%+v), want permanent %v retry %s", tc.status, err, de, tc.permanent, tc.retry)
			continue
		}
		if strings.Contains(err.Error(), "T0KEN") {
			t.Errorf("error %q reveals the webhook path", err)
		}
	}
}

func TestWebhookUnsigned(t *testing.T) {
	sig := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sig <- r.Header.Get(SignatureHeader)
	}))
	defer srv.Close()
	if err := (&Webhook{URL: srv.URL, Client: srv.Client()}).Notify(context.Background(), testEvent()); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if s := <-sig; s != "" {
		t.Errorf("signature without a secret: got %q, want none", s)
	}
}

// TestFullQueueDoesNotBlockDispatch blocks the webhook server and fills the
// queue: Dispatch must keep returning (dropping and counting) while the
// server is still blocked.
func TestFullQueueDoesNotBlockDispatch(t *testing.T) {
	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev Event
		_ = json.NewDecoder(r.Body).Decode(&ev)
		mu.Lock()
		seen = append(seen, ev.Detail)
		mu.Unlock()
		entered <- struct{}{}
		<-release
	}))
	defer srv.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	// A second, healthy notifier must not be held up by the blocked one.
	healthy := &recorder{got: make(chan Event, 10)}
	d, _, _ := newTestDispatcher(t, DispatcherConfig{QueueSize: 2}, &Webhook{URL: srv.URL, Client: srv.Client()}, healthy)

	ev := func(s string) Event { e := testEvent(); e.Detail = s; return e }
	d.Dispatch(ev("first"))
	<-entered // the worker is now stuck in the server
	if got := (<-healthy.got).Detail; got != "first" {
		t.Errorf("healthy notifier: got %q, want first", got)
	}

	results := make(chan []bool, 1)
	go func() {
		var r []bool
		for _, s := range []string{"second", "third", "fourth", "fifth"} {
			r = append(r, d.Dispatch(ev(s)))
			<-healthy.got // keep the healthy queue from filling
		}
		results <- r
	}()
	var r []bool
	select {
	case r = <-results:
	case <-entered:
		t.Fatal("the server was released before Dispatch returned")
	case <-time.After(30 * time.Second): // a guard against a hang, not a speed assertion
		t.Fatal("Dispatch blocked while the notifier's server was stuck")
	}
	// The blocked notifier's queue (2) took second and third; fourth and
	// fifth were dropped for it (but reached the healthy notifier).
	if want := []bool{true, true, false, false}; !equalBools(r, want) {
		t.Errorf("Dispatch results: got %v, want %v", r, want)
	}
	if got := d.Stats().Dropped; got != 2 {
		t.Errorf("dropped: got %d, want 2", got)
	}
	close(release)
	closeNow(t, d)
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"first", "second", "third"}; strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("webhook received %v, want %v", seen, want)
	}
	if s := d.Stats(); s.Delivered != 3+5 {
		t.Errorf("delivered: got %d, want 8 (3 webhook + 5 healthy)", s.Delivered)
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type recorder struct{ got chan Event }

func (r *recorder) Notify(_ context.Context, ev Event) error { r.got <- ev; return nil }

func TestCloseDrainsAndStopsAccepting(t *testing.T) {
	rec := &recorder{got: make(chan Event, 100)}
	d, _, _ := newTestDispatcher(t, DispatcherConfig{QueueSize: 100}, rec)
	for range 50 {
		d.Dispatch(testEvent())
	}
	closeNow(t, d)
	if got := len(rec.got); got != 50 {
		t.Errorf("delivered before Close returned: got %d, want 50", got)
	}
	if d.Dispatch(testEvent()) {
		t.Errorf("Dispatch after Close: got true, want false")
	}
	if got := d.Stats().Dropped; got != 1 {
		t.Errorf("dropped after Close: got %d, want 1", got)
	}
	closeNow(t, d) // idempotent
}

// stuck blocks until its context ends.
type stuck struct{ entered chan struct{} }

func (s *stuck) Notify(ctx context.Context, _ Event) error {
	s.entered <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

func TestCloseHonoursContext(t *testing.T) {
	s := &stuck{entered: make(chan struct{}, 10)}
	d, _, _ := newTestDispatcher(t, DispatcherConfig{QueueSize: 10, AttemptTimeout: time.Hour}, s)
	d.Dispatch(testEvent())
	d.Dispatch(testEvent())
	<-s.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Close with a cancelled context: got %v, want context.Canceled", err)
	}
	if st := d.Stats(); st.Failed != 2 || st.Delivered != 0 {
		t.Errorf("stats after aborted Close: got %+v, want 2 failed", st)
	}
}

func TestFormatTextBounded(t *testing.T) {
	ev := testEvent()
	ev.Detail = strings.Repeat("ก", 10000)
	if n := len([]rune(FormatText(ev))); n > 4096 {
		t.Errorf("text length %d characters, want at most 4096", n)
	}
}
