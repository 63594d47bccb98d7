package telegrambot

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/api/telegrambot/telegramtest"
	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/authsvctest"
	"github.com/sessiond/sessiond/authsvc/notify"
	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

const (
	token   = "123456:AAH-secret-bot-token_xyz"
	allowed = int64(-1001)
	other   = int64(-2002)
	opUser  = int64(42)
)

// staticCluster answers a fixed status; leader is switchable.
type staticCluster struct{ leader atomic.Bool }

func (c *staticCluster) IsLeader() bool { return c.leader.Load() }
func (c *staticCluster) Status(context.Context) (*clusterv1.StatusResponse, error) {
	return &clusterv1.StatusResponse{ClusterId: "c1", LeaderId: "hk-1", LeaderRegion: "hk", Term: 3, CommitIndex: 100, AnsweredBy: "hk-1",
		Members: []*clusterv1.Member{
			{NodeId: "hk-1", Region: "hk", Leader: true, Suffrage: clusterv1.Suffrage_SUFFRAGE_VOTER, AppliedIndex: 100, Health: clusterv1.GossipHealth_GOSSIP_HEALTH_ALIVE},
			{NodeId: "seoul-1", Region: "seoul", Suffrage: clusterv1.Suffrage_SUFFRAGE_VOTER, AppliedIndex: 97, Health: clusterv1.GossipHealth_GOSSIP_HEALTH_ALIVE},
		}}, nil
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

// newBot returns a bot on a real auth service (authsvctest: the real store
// and rules, no Raft; the 3-node version is TestBotE2E in cmd/sessiond).
func newBot(t *testing.T, api *telegramtest.Server, mutate func(*Config)) (*Bot, *staticCluster, *authsvctest.Env, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg := Config{API: &notify.BotAPI{BaseURL: api.URL, Token: token, Client: api.Client()}, Chats: []int64{allowed},
		Operators: []int64{opUser}, PollTimeout: time.Second, Node: "hk-1", Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if mutate != nil {
		mutate(&cfg)
	}
	c := &staticCluster{}
	env := authsvctest.New(t, authsvctest.Options{})
	b, err := New(cfg, c, env.Svc)
	if err != nil {
		t.Fatal(err)
	}
	return b, c, env, logs
}

// secondNode is another auth service over env's state (another node of
// the same cluster): it shares the claims.
func secondNode(t *testing.T, env *authsvctest.Env) *authsvc.Service {
	t.Helper()
	cfg := env.Config
	cfg.NodeID = "node-2"
	svc, err := authsvc.New(cfg, authsvc.Deps{Cluster: env.Cluster, State: env.Store, Directory: env.Dir, Hasher: authsvctest.FastHasher(t), KEK: env.KEK})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func run(t *testing.T, b *Bot) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// The leader polls: a command from the allowed chat is answered in that
// chat; the same command from another chat gets nothing (no sendMessage)
// and its refusal is audited; operator commands need an operator.
func TestCommandsOnlyForAllowedChats(t *testing.T) {
	api := telegramtest.New(t, token)
	b, c, env, logs := newBot(t, api, nil)
	env.CreateUser(t, "ops@example.com", "correct horse battery staple")
	tok, err := env.Svc.Login(context.Background(), authsvc.LoginInput{Email: "ops@example.com", Password: "correct horse battery staple",
		Platform: storev1.Platform_PLATFORM_WEB, DeviceID: "laptop-1"})
	if err != nil {
		t.Fatal(err)
	}
	sid := tok.SessionID
	c.leader.Store(true)
	run(t, b)

	api.AddMessage(other, opUser, "/authstatus")
	api.AddMessage(other, opUser, "/revoke "+sid)
	api.AddMessage(allowed, opUser, "/authstatus")
	waitFor(t, 10*time.Second, "the answer to /authstatus", func() bool { return len(api.Sent()) >= 1 })
	if chk := env.Svc.CheckToken(tok.AccessToken); !chk.Active {
		t.Fatalf("the other chat's /revoke ended the session (%v)", chk.Reason)
	}
	api.AddMessage(allowed, 7, "/revoke "+sid) // not an operator
	api.AddMessage(allowed, opUser, "/sessions ops@example.com")
	waitFor(t, 10*time.Second, "three answers", func() bool { return len(api.Sent()) >= 3 })
	api.AddMessage(allowed, opUser, "/revoke "+sid)
	waitFor(t, 10*time.Second, "four answers", func() bool { return len(api.Sent()) >= 4 })
	waitFor(t, 10*time.Second, "the updates confirmed", func() bool { return len(api.Pending()) == 0 })

	sent := api.Sent()
	for _, m := range sent {
		if m.ChatID != allowed {
			t.Errorf("sendMessage to chat %d (%q): want answers only in the allowed chat %d", m.ChatID, m.Text, allowed)
		}
	}
	if len(sent) != 4 {
		t.Fatalf("answers: got %d, want 4 (authstatus, refused revoke, sessions, revoke)", len(sent))
	}
	for _, want := range []string{"leader hk-1 (hk)", "region seoul", "seoul-1 voter, alive, applied 97 (lag 3)", "voters reachable: 2 of 2, quorum ok"} {
		if !strings.Contains(sent[0].Text, want) {
			t.Errorf("/authstatus answer %q: want it to say %q", sent[0].Text, want)
		}
	}
	if !strings.Contains(sent[1].Text, "for operators") {
		t.Errorf("answer %q: want the non-operator refused", sent[1].Text)
	}
	if !strings.Contains(sent[2].Text, "1 live session") || !strings.Contains(sent[2].Text, sid) || !strings.Contains(sent[2].Text, "laptop-1") {
		t.Errorf("/sessions answer %q: want the session %s on laptop-1", sent[2].Text, sid)
	}
	if !strings.Contains(sent[3].Text, sid+" revoked") {
		t.Errorf("/revoke answer %q: want %s revoked", sent[3].Text, sid)
	}
	if chk := env.Svc.CheckToken(tok.AccessToken); chk.Active {
		t.Errorf("the revoked session's token is still active")
	}
	l := logs.String()
	if strings.Count(l, "event=bot_refused") != 3 || !strings.Contains(l, "chat=-2002") || !strings.Contains(l, "event=bot_revoke") {
		t.Errorf("audit log: want 3 refusals (2 from chat -2002, 1 non-operator) and the revoke; got\n%s", l)
	}
	if strings.Contains(l, token) || strings.Contains(l, "AAH-secret") {
		t.Errorf("logs reveal the bot token:\n%s", l)
	}
}

// A 429 with retry_after: the resend does not reach the server before the
// wait it named, measured on the server's clock.
func TestSendHonoursRetryAfter(t *testing.T) {
	api := telegramtest.New(t, token)
	api.Fail("sendMessage", telegramtest.RetryAfter(2))
	b, _, _, _ := newBot(t, api, nil)
	if err := b.Send(context.Background(), allowed, "hello"); err != nil {
		t.Fatalf("Send: %v", err)
	}
	calls := api.Calls("sendMessage")
	if len(calls) != 2 || calls[0].Status != 429 || calls[1].Status != 200 {
		t.Fatalf("sendMessage calls: %+v, want a 429 then a 200", calls)
	}
	if gap := calls[1].At.Sub(calls[0].At); gap < 2*time.Second {
		t.Errorf("resent %s after the 429, want at least retry_after 2s", gap)
	}
}

// 5xx answers are retried with growing waits; a 400 or 401 is not retried.
func TestSendRetries5xxWithBackoff(t *testing.T) {
	api := telegramtest.New(t, token)
	api.Fail("sendMessage", telegramtest.ServerError(502), telegramtest.ServerError(500), telegramtest.ServerError(503))
	b, _, _, _ := newBot(t, api, nil)
	if err := b.Send(context.Background(), allowed, "hello"); err != nil {
		t.Fatalf("Send: %v", err)
	}
	calls := api.Calls("sendMessage")
	if len(calls) != 4 || calls[3].Status != 200 {
		t.Fatalf("sendMessage calls: %d, want 3 failures then success", len(calls))
	}
	// Waits: 500ms, 1s, 2s nominal, each jittered down by at most half.
	for i, min := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second} {
		if gap := calls[i+1].At.Sub(calls[i].At); gap < min {
			t.Errorf("retry %d came %s after the failure, want at least %s", i+1, gap, min)
		}
	}

	api.Fail("sendMessage", telegramtest.Answer{Status: 400, Body: `{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}`})
	before := len(api.Calls("sendMessage"))
	err := b.Send(context.Background(), allowed, "hello")
	if err == nil || !strings.Contains(err.Error(), "chat not found") || len(api.Calls("sendMessage")) != before+1 {
		t.Errorf("a 400: got %v after %d calls, want the refusal after one call", err, len(api.Calls("sendMessage"))-before)
	}
	if strings.Contains(err.Error(), token) {
		t.Errorf("error %q reveals the token", err)
	}
}

// A wrong token: Telegram's 401 is reported without the token, and the
// poller backs off instead of spinning.
func TestPollWithRevokedToken(t *testing.T) {
	api := telegramtest.New(t, "999:other-token")
	b, c, _, logs := newBot(t, api, nil)
	var long atomic.Int32
	b.sleep = func(ctx context.Context, d time.Duration) error {
		if d >= time.Minute {
			long.Add(1)
			<-ctx.Done()
			return ctx.Err()
		}
		return sleepCtx(ctx, d)
	}
	c.leader.Store(true)
	run(t, b)
	waitFor(t, 10*time.Second, "the poller waiting a minute after the 401", func() bool { return long.Load() == 1 })
	if n := len(api.Requests()); n != 1 {
		t.Errorf("%d calls with a refused token before the minute's wait, want 1", n)
	}
	if !strings.Contains(logs.String(), "status 401") {
		t.Errorf("the 401 is not logged:\n%s", logs)
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("logs reveal the token:\n%s", logs)
	}
}

// Only the leader polls, and stops when it is no longer leader; the
// next poller starts where Telegram still holds updates, and an update
// already answered (claimed) is not answered again.
func TestPollingFollowsLeadership(t *testing.T) {
	api := telegramtest.New(t, token)
	b, c, env, _ := newBot(t, api, nil)
	var checks atomic.Int32 // the Run loop's leadership checks
	b.sleep = func(ctx context.Context, d time.Duration) error {
		if d == leaderCheck {
			checks.Add(1)
		}
		return sleepCtx(ctx, d)
	}
	run(t, b)
	api.AddMessage(allowed, opUser, "/help")
	waitFor(t, 10*time.Second, "three leadership checks", func() bool { return checks.Load() >= 3 })
	if n := len(api.Calls("getUpdates")); n != 0 {
		t.Fatalf("a follower called getUpdates %d times, want 0", n)
	}
	c.leader.Store(true)
	waitFor(t, 10*time.Second, "the answer", func() bool { return len(api.Sent()) == 1 })
	c.leader.Store(false)
	waitFor(t, 10*time.Second, "the poll to stop", func() bool {
		cs := api.Calls("getUpdates")
		return len(cs) > 0 && cs[len(cs)-1].Status == 499
	})
	n := len(api.Calls("getUpdates"))
	from := checks.Load()
	waitFor(t, 10*time.Second, "three more leadership checks", func() bool { return checks.Load() >= from+3 })
	if got := len(api.Calls("getUpdates")); got != n {
		t.Errorf("getUpdates after losing leadership: %d more calls", got-n)
	}
	// A second node (another Bot sharing the claims) takes over: the
	// update is answered once in all.
	b2, c2, _, _ := newBot(t, api, nil)
	b2.sessions = secondNode(t, env)
	c2.leader.Store(true)
	id := api.AddMessage(allowed, opUser, "/help")
	run(t, b2)
	waitFor(t, 10*time.Second, "the second answer", func() bool { return len(api.Sent()) == 2 })
	waitFor(t, 10*time.Second, "the update confirmed", func() bool { return len(api.Pending()) == 0 })
	if len(api.Sent()) != 2 {
		t.Errorf("answers: %d, want 2 (each update once; update %d)", len(api.Sent()), id)
	}
}

// Webhook mode: the leader registers the webhook with its secret; a post
// without the secret is refused 401 and audited, with it the update is
// answered.
func TestWebhook(t *testing.T) {
	api := telegramtest.New(t, token)
	const secret = "s3cret_webhook-token"
	b, c, _, logs := newBot(t, api, func(cfg *Config) {
		cfg.WebhookURL = "https://example.invalid/telegram/webhook"
		cfg.WebhookSecret = secret
	})
	c.leader.Store(true)
	run(t, b)
	waitFor(t, 10*time.Second, "setWebhook", func() bool { u, _ := api.Webhook(); return u != "" })
	if u, s := api.Webhook(); u != "https://example.invalid/telegram/webhook" || s != secret {
		t.Fatalf("webhook registered: %q %q", u, s)
	}
	post := func(secretHdr, body string) int {
		r, _ := http.NewRequest(http.MethodPost, "/telegram/webhook", strings.NewReader(body))
		if secretHdr != "" {
			r.Header.Set(SecretHeader, secretHdr)
		}
		w := &recorder{h: http.Header{}}
		b.Handler().ServeHTTP(w, r)
		return w.code
	}
	upd := `{"update_id":7,"message":{"message_id":1,"chat":{"id":-1001},"from":{"id":42},"text":"/help"}}`
	if code := post("", upd); code != 401 {
		t.Errorf("no secret: %d, want 401", code)
	}
	if code := post("wrong", upd); code != 401 {
		t.Errorf("wrong secret: %d, want 401", code)
	}
	if n := len(api.Sent()); n != 0 {
		t.Fatalf("%d answers to unauthenticated webhook posts, want 0", n)
	}
	if code := post(secret, upd); code != 200 {
		t.Errorf("with the secret: %d, want 200", code)
	}
	if code := post(secret, upd); code != 200 { // Telegram redelivering
		t.Errorf("redelivery: %d, want 200", code)
	}
	if code := post(secret, "{not json"); code != 400 {
		t.Errorf("bad body: %d, want 400", code)
	}
	if n := len(api.Sent()); n != 1 {
		t.Errorf("answers: %d, want 1 (a redelivered update is answered once)", n)
	}
	if !strings.Contains(logs.String(), "event=bot_webhook_refused") {
		t.Errorf("refused webhook posts not audited:\n%s", logs)
	}
}

type recorder struct {
	h    http.Header
	code int
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return len(p), nil
}
func (r *recorder) WriteHeader(c int) { r.code = c }

// A 409 (another poller, or a webhook set behind our back) and a 5xx on
// getUpdates: the poller waits before it polls again, growing the wait,
// and then receives the updates.
func TestPollBacksOffOnConflict(t *testing.T) {
	api := telegramtest.New(t, token)
	api.Fail("getUpdates",
		telegramtest.Answer{Status: 409, Body: `{"ok":false,"error_code":409,"description":"Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"}`},
		telegramtest.ServerError(502))
	b, c, _, _ := newBot(t, api, nil)
	c.leader.Store(true)
	run(t, b)
	api.AddMessage(allowed, opUser, "/help")
	waitFor(t, 10*time.Second, "the answer", func() bool { return len(api.Sent()) == 1 })
	calls := api.Calls("getUpdates")
	if len(calls) < 3 || calls[0].Status != 409 || calls[1].Status != 502 {
		t.Fatalf("getUpdates answers: %+v, want 409, 502, then polls", calls)
	}
	if gap := calls[1].At.Sub(calls[0].At); gap < 500*time.Millisecond {
		t.Errorf("polled again %s after a 409, want at least 500ms", gap)
	}
	if gap := calls[2].At.Sub(calls[1].At); gap < time.Second {
		t.Errorf("polled again %s after the next failure, want the doubled wait (1s)", gap)
	}
}
