// Package telegrambot is the operators' Telegram door: it answers
// /authstatus, /sessions <email> and /revoke <session> in the chats the
// configuration allows, received through the Bot API's long polling
// (getUpdates, run by the Raft leader only: Telegram answers 409 to a
// second concurrent poller) or a webhook (every node can receive it; the
// X-Telegram-Bot-Api-Secret-Token header is verified). Anyone else gets
// no answer at all; the refusal is audited.
//
// An update is handled once for the cluster: its id is claimed through the
// replicated store before it is answered, so a leader change (the new
// poller gets the updates the old one had not confirmed) or Telegram
// redelivering a webhook does not answer twice. Without a quorum the claim
// fails and the bot answers anyway: /authstatus matters most then.
package telegrambot

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/notify"
	"github.com/sessiond/sessiond/authsvc/users"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// Cluster is what the bot needs of the cluster.
type Cluster interface {
	// IsLeader reports whether this node leads (the poller runs there).
	IsLeader() bool
	// Status is the cluster's state as the leader sees it.
	Status(ctx context.Context) (*clusterv1.StatusResponse, error)
}

// Sessions is what the bot needs of the auth service. *authsvc.Service
// implements it.
type Sessions interface {
	SessionsByEmail(ctx context.Context, email string) (users.User, []*storev1.Session, error)
	EndSessionAs(ctx context.Context, owner, sid string, reason storev1.EndReason) (uint64, error)
	ClaimAlert(ctx context.Context, key string, window time.Duration) (bool, error)
}

// Config configures a Bot.
type Config struct {
	// API reaches the Bot API with the bot's token.
	API *notify.BotAPI
	// Chats are the chat ids that get answers; required.
	Chats []int64
	// Users, when set, narrows the answers to messages from these user ids
	// (in the allowed chats).
	Users []int64
	// Operators, when set, are the user ids that may run /sessions and
	// /revoke; when empty, everyone who gets answers may.
	Operators []int64
	// WebhookURL and WebhookSecret select webhook mode: the leader
	// registers WebhookURL with setWebhook and secret_token WebhookSecret,
	// and Handler serves the updates. Empty WebhookURL: long polling.
	WebhookURL    string
	WebhookSecret string
	// PollTimeout is getUpdates' long-poll timeout (25s).
	PollTimeout time.Duration
	// MaxRetryAfter caps a wait Telegram asks for before a resend (2m).
	MaxRetryAfter time.Duration
	// Node names this node in answers.
	Node string
	// Rates, if set, renders this node's request rates for /authstatus.
	Rates func() string
	// Logger receives the audit events and delivery failures.
	Logger *slog.Logger
}

// Bot answers commands. It is safe for concurrent use.
type Bot struct {
	cfg       Config
	cluster   Cluster
	sessions  Sessions
	chats     map[int64]bool
	users     map[int64]bool
	operators map[int64]bool
	// sleep waits d or until ctx ends.
	sleep func(ctx context.Context, d time.Duration) error
}

// New returns a bot.
func New(cfg Config, c Cluster, s Sessions) (*Bot, error) {
	if cfg.API == nil || cfg.API.Token == "" {
		return nil, errors.New("telegrambot: a bot token is required")
	}
	if len(cfg.Chats) == 0 {
		return nil, errors.New("telegrambot: at least one allowed chat id is required")
	}
	if cfg.WebhookURL != "" && cfg.WebhookSecret == "" {
		return nil, errors.New("telegrambot: a webhook needs a secret token")
	}
	if cfg.PollTimeout <= 0 {
		cfg.PollTimeout = 25 * time.Second
	}
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = 2 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	set := func(ids []int64) map[int64]bool {
		m := map[int64]bool{}
		for _, id := range ids {
			m[id] = true
		}
		return m
	}
	return &Bot{cfg: cfg, cluster: c, sessions: s, chats: set(cfg.Chats), users: set(cfg.Users), operators: set(cfg.Operators), sleep: sleepCtx}, nil
}

// Update is the part of a Bot API Update the bot reads.
type Update struct {
	UpdateID int64    `json:"update_id"`
	Message  *Message `json:"message"`
}

// Message is the part of a Bot API Message the bot reads.
type Message struct {
	MessageID int64 `json:"message_id"`
	From      *struct {
		ID int64 `json:"id"`
	} `json:"from"`
	Chat struct {
		ID int64 `json:"id"`
	} `json:"chat"`
	Text string `json:"text"`
}

// updateClaimWindow is how long an update id stays claimed (Telegram keeps
// unconfirmed updates for 24 hours).
const updateClaimWindow = 24 * time.Hour

// maxCommand bounds the text of a command the bot reads.
const maxCommand = 512

// HandleUpdate answers u if it comes from an allowed chat (and user), once
// for the cluster. Anything else is ignored; a message from elsewhere is
// audited as refused.
func (b *Bot) HandleUpdate(ctx context.Context, u Update) {
	m := u.Message
	if m == nil || m.Text == "" {
		return
	}
	var from int64
	if m.From != nil {
		from = m.From.ID
	}
	if !b.chats[m.Chat.ID] || (len(b.users) > 0 && !b.users[from]) {
		b.audit(ctx, "bot_refused", m, slog.String("why", "chat or user not allowed"))
		return
	}
	won, err := b.sessions.ClaimAlert(ctx, "telegram_update:"+strconv.FormatInt(u.UpdateID, 10), updateClaimWindow)
	switch {
	case err != nil:
		b.cfg.Logger.Warn("telegram update not claimed (no quorum?): answering anyway", "update", u.UpdateID, "err", err)
	case !won:
		return // another node answered it
	}
	text := b.run(ctx, m, from)
	if err := b.Send(ctx, m.Chat.ID, text); err != nil {
		b.cfg.Logger.Warn("telegram answer not delivered", "chat", m.Chat.ID, "err", err)
	}
}

// run executes the command of m and returns the answer.
func (b *Bot) run(ctx context.Context, m *Message, from int64) string {
	text := m.Text
	if len(text) > maxCommand {
		return "command too long (at most 512 bytes)"
	}
	fields := strings.Fields(text)
	cmd := strings.ToLower(fields[0])
	if i := strings.IndexByte(cmd, '@'); i > 0 {
		cmd = cmd[:i] // /authstatus@sessiond_bot
	}
	args := fields[1:]
	operator := len(b.operators) == 0 || b.operators[from]
	switch cmd {
	case "/authstatus", "/status":
		b.audit(ctx, "bot_command", m, slog.String("command", "authstatus"))
		return b.authStatus(ctx)
	case "/sessions", "/revoke":
		if !operator {
			b.audit(ctx, "bot_refused", m, slog.String("command", cmd), slog.String("why", "not an operator"))
			return cmd + " is for operators; your user id is not in bot.operator_user_ids"
		}
		if len(args) != 1 {
			return "usage: " + cmd + map[string]string{"/sessions": " <email>", "/revoke": " <session id>"}[cmd]
		}
		if cmd == "/sessions" {
			b.audit(ctx, "bot_command", m, slog.String("command", "sessions"))
			return b.listSessions(ctx, args[0])
		}
		return b.revoke(ctx, m, args[0])
	case "/start", "/help":
		return "sessiond bot. Commands:\n/authstatus - the auth service and replication between regions\n/sessions <email> - a user's live sessions (operators)\n/revoke <session id> - end a session everywhere (operators)"
	}
	return "unknown command " + strings.ToValidUTF8(cmd, "?") + "; try /help"
}

func (b *Bot) audit(ctx context.Context, event string, m *Message, attrs ...slog.Attr) {
	var from int64
	if m.From != nil {
		from = m.From.ID
	}
	attrs = append(attrs, slog.String("event", event), slog.Int64("chat", m.Chat.ID), slog.Int64("user", from),
		slog.String("principal", fmt.Sprintf("telegram/%d/%d", m.Chat.ID, from)), slog.String("node", b.cfg.Node))
	b.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
}

func (b *Bot) authStatus(ctx context.Context) string {
	st, err := b.cluster.Status(ctx)
	if err != nil {
		return "cluster status unavailable from " + b.cfg.Node + ": " + err.Error()
	}
	s := FormatStatus(st)
	if b.cfg.Rates != nil {
		if r := b.cfg.Rates(); r != "" {
			s += "\n" + r
		}
	}
	return s
}

func (b *Bot) listSessions(ctx context.Context, email string) string {
	u, list, err := b.sessions.SessionsByEmail(ctx, email)
	if err != nil {
		return "sessions of " + email + ": " + errText(err)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s (user %s): %d live session(s)\n", u.Email, u.ID, len(list))
	for _, s := range list {
		fmt.Fprintf(&sb, "- %s %s device %s, region %s, ip %s, created %s, refreshed %s\n", s.GetId(),
			strings.ToLower(strings.TrimPrefix(s.GetPlatform().String(), "PLATFORM_")), s.GetDeviceId(), s.GetRegion(), s.GetClientIp(),
			stamp(s.GetCreatedUnixNano()), stamp(s.GetLastRefreshedUnixNano()))
	}
	return strings.TrimSuffix(sb.String(), "\n")
}

func (b *Bot) revoke(ctx context.Context, m *Message, sid string) string {
	_, err := b.sessions.EndSessionAs(ctx, "", sid, storev1.EndReason_END_REASON_ADMIN_REVOKED)
	if err != nil {
		b.audit(ctx, "bot_revoke_failed", m, slog.String("session", sid), slog.String("err", errText(err)))
		return "session " + sid + " not revoked: " + errText(err)
	}
	b.audit(ctx, "bot_revoke", m, slog.String("session", sid))
	return "session " + sid + " revoked on every node"
}

// errText is what a chat is told of err: the service's code and message,
// never the cause (that is for the logs).
func errText(err error) string {
	var e *authsvc.Error
	if errors.As(err, &e) {
		return e.Code + ": " + e.Message
	}
	return err.Error()
}

func stamp(ns int64) string {
	if ns == 0 {
		return "-"
	}
	return time.Unix(0, ns).UTC().Format("2006-01-02 15:04Z")
}

// FormatStatus renders the cluster's state for a chat: the leader, then the
// nodes by region with their role, health, lag and last contact.
func FormatStatus(st *clusterv1.StatusResponse) string {
	var sb strings.Builder
	leader := st.GetLeaderId()
	if leader == "" {
		leader = "NONE (no quorum?)"
	}
	fmt.Fprintf(&sb, "sessiond %s: leader %s", st.GetClusterId(), leader)
	if st.GetLeaderRegion() != "" {
		fmt.Fprintf(&sb, " (%s)", st.GetLeaderRegion())
	}
	fmt.Fprintf(&sb, ", term %d, commit %d, answered by %s\n", st.GetTerm(), st.GetCommitIndex(), st.GetAnsweredBy())
	byRegion := map[string][]*clusterv1.Member{}
	var regions []string
	voters, reachable := 0, 0
	for _, m := range st.GetMembers() {
		r := m.GetRegion()
		if r == "" {
			r = "?"
		}
		if _, ok := byRegion[r]; !ok {
			regions = append(regions, r)
		}
		byRegion[r] = append(byRegion[r], m)
		if m.GetSuffrage() == clusterv1.Suffrage_SUFFRAGE_VOTER {
			voters++
			if m.GetLastContact() == nil || m.GetLeader() || m.GetNodeId() == st.GetAnsweredBy() {
				reachable++
			}
		}
	}
	for _, r := range regions {
		fmt.Fprintf(&sb, "region %s:\n", r)
		for _, m := range byRegion[r] {
			role := strings.ToLower(strings.TrimPrefix(m.GetSuffrage().String(), "SUFFRAGE_"))
			if m.GetLeader() {
				role = "leader"
			}
			health := strings.ToLower(strings.TrimPrefix(m.GetHealth().String(), "GOSSIP_HEALTH_"))
			fmt.Fprintf(&sb, "  %s %s, %s, applied %d", m.GetNodeId(), role, health, m.GetAppliedIndex())
			if c := st.GetCommitIndex(); c >= m.GetAppliedIndex() && m.GetAppliedIndex() > 0 {
				fmt.Fprintf(&sb, " (lag %d)", c-m.GetAppliedIndex())
			}
			if lc := m.GetLastContact(); lc != nil && m.GetNodeId() != st.GetAnsweredBy() {
				fmt.Fprintf(&sb, ", UNREACHABLE for %s", lc.AsDuration().Round(time.Second))
			} else if lc != nil {
				fmt.Fprintf(&sb, ", last contact %s ago", lc.AsDuration().Round(time.Millisecond))
			}
			sb.WriteString("\n")
		}
	}
	quorum := "ok"
	if voters > 0 && reachable <= voters/2 {
		quorum = "LOST"
	}
	fmt.Fprintf(&sb, "voters reachable: %d of %d, quorum %s", reachable, voters, quorum)
	return sb.String()
}

// Send sends text to chat, retrying what can succeed later: a 429 after
// the retry_after Telegram names (up to MaxRetryAfter), a 5xx or a
// transport error with exponential backoff (500ms doubling, jittered), at
// most 5 attempts. Other refusals (400, 401, 403) are not retried.
func (b *Bot) Send(ctx context.Context, chat int64, text string) error {
	if utf8.RuneCountInString(text) > 4096 {
		text = string([]rune(text)[:4095]) + "…"
	}
	wait := 500 * time.Millisecond
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err = notify.SendMessage(actx, b.cfg.API, strconv.FormatInt(chat, 10), text)
		cancel()
		if err == nil {
			return nil
		}
		var de *notify.DeliveryError
		isDE := errors.As(err, &de)
		d := wait - rand.N(wait/2+1)
		switch {
		case isDE && de.Permanent:
			return err
		case isDE && de.RetryAfter > b.cfg.MaxRetryAfter:
			return err
		case isDE && de.RetryAfter > 0:
			d = de.RetryAfter
		}
		if attempt == 5 || b.sleep(ctx, d) != nil {
			break
		}
		wait = min(wait*2, 30*time.Second)
	}
	return err
}

// maxWebhookBody bounds an update posted to the webhook.
const maxWebhookBody = 1 << 20

// SecretHeader is the header Telegram sends the webhook's secret_token in.
const SecretHeader = "X-Telegram-Bot-Api-Secret-Token"

// Handler serves the webhook: POST with the secret token header and one
// Update as JSON. A wrong or missing secret gets 401 and is audited; the
// update is answered before the 200 (bounded by 30s).
func (b *Bot) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed: POST an update", http.StatusMethodNotAllowed)
			return
		}
		got := r.Header.Get(SecretHeader)
		if b.cfg.WebhookSecret == "" || subtle.ConstantTimeCompare([]byte(got), []byte(b.cfg.WebhookSecret)) != 1 {
			b.cfg.Logger.LogAttrs(r.Context(), slog.LevelInfo, "audit", slog.String("event", "bot_webhook_refused"),
				slog.String("ip", r.RemoteAddr), slog.Bool("secret_present", got != ""), slog.String("node", b.cfg.Node))
			http.Error(w, "wrong or missing "+SecretHeader, http.StatusUnauthorized)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
		if err != nil {
			http.Error(w, "update too large (at most 1 MiB)", http.StatusRequestEntityTooLarge)
			return
		}
		var u Update
		if err := json.Unmarshal(body, &u); err != nil {
			http.Error(w, "body is not a Telegram Update: "+err.Error(), http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Second)
		defer cancel()
		b.HandleUpdate(ctx, u)
		w.WriteHeader(http.StatusOK)
	})
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
