package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/api/telegrambot"
	"github.com/sessiond/sessiond/authsvc/alerting"
	"github.com/sessiond/sessiond/authsvc/notify"
	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
)

// BotConfig configures the operators' Telegram bot (docs/telegram.md).
// The token comes from TokenFile or SESSIOND_TELEGRAM_BOT_TOKEN, never from
// the YAML itself or a flag (argv is visible to every local user).
type BotConfig struct {
	// TokenFile holds the bot token from BotFather (mode 0600).
	TokenFile string `yaml:"token_file"`
	// APIURL is the Bot API's base URL (default https://api.telegram.org;
	// a local Bot API server or a test double otherwise).
	APIURL string `yaml:"api_url"`
	// ChatIDs are the chats the bot answers in; nobody else gets an answer.
	ChatIDs []int64 `yaml:"chat_ids"`
	// UserIDs, when set, narrows the answers to these Telegram users.
	UserIDs []int64 `yaml:"user_ids"`
	// OperatorUserIDs, when set, are the users who may run /sessions and
	// /revoke (else everyone the bot answers).
	OperatorUserIDs []int64 `yaml:"operator_user_ids"`
	// AlertChatID, when set, receives the security events and alerts
	// through this bot (besides auth.notify's notifiers).
	AlertChatID string `yaml:"alert_chat_id"`
	// WebhookURL selects webhook mode: the public HTTPS URL of a node's
	// POST /telegram/webhook (behind a load balancer: any node). Empty:
	// long polling by the leader.
	WebhookURL string `yaml:"webhook_url"`
	// WebhookSecretFile holds the webhook's secret token (1-256 of
	// A-Z a-z 0-9 _ -), or SESSIOND_TELEGRAM_WEBHOOK_SECRET.
	WebhookSecretFile string `yaml:"webhook_secret_file"`
	// PollTimeout is getUpdates' long-poll timeout (default 25s, at most 50s).
	PollTimeout time.Duration `yaml:"poll_timeout"`

	// token and webhookSecret are the values from the environment.
	token, webhookSecret string
}

// AlertsConfig tunes the alerts (authsvc/alerting): each is sent once per
// event for the cluster, rate-limited.
type AlertsConfig struct {
	// Cooldown is how long one event key stays claimed: one alert per key
	// per cooldown for the cluster (default 30m).
	Cooldown time.Duration `yaml:"cooldown"`
	// MaxPerMinute bounds the alerts one node sends (default 20).
	MaxPerMinute int `yaml:"max_per_minute"`
	// ContactLoss: a node the leader has not reached for this long is out
	// of the quorum; a node without a leader for this long reports it
	// (default 30s).
	ContactLoss time.Duration `yaml:"contact_loss"`
	// TokenErrors refused tokens from one address within TokenErrorWindow
	// raise an alert (default 20 in 5m).
	TokenErrors      int           `yaml:"token_errors"`
	TokenErrorWindow time.Duration `yaml:"token_error_window"`
	// SpikeWindow, SpikeMin and SpikeFactor: sessions ended by expiry (or
	// reuse) in a window raise an alert when at least SpikeMin and
	// SpikeFactor times the hour's average (default 5m, 50, 3).
	SpikeWindow time.Duration `yaml:"spike_window"`
	SpikeMin    int           `yaml:"spike_min"`
	SpikeFactor float64       `yaml:"spike_factor"`
	// KeyAhead: alert when no signing key can sign this far ahead
	// (default 30m).
	KeyAhead time.Duration `yaml:"key_ahead"`
	// Interval is how often the checks run (default 5s).
	Interval time.Duration `yaml:"interval"`
}

// validWebhookSecret reports whether s is a secret_token Telegram accepts:
// 1-256 of A-Z a-z 0-9 _ -.
func validWebhookSecret(s string) bool {
	if len(s) == 0 || len(s) > 256 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// enabled reports whether the bot is configured.
func (b *BotConfig) enabled() bool { return b.TokenFile != "" || b.token != "" }

// loadSecrets reads the token and the webhook secret from their files
// unless the environment gave them. Errors name the file, never a value.
func (b *BotConfig) loadSecrets() error {
	read := func(path, what string) (string, error) {
		raw, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("bot.%s: %w", what, err)
		}
		return strings.TrimSpace(string(raw)), nil
	}
	var err error
	if b.token == "" && b.TokenFile != "" {
		if b.token, err = read(b.TokenFile, "token_file"); err != nil {
			return err
		}
	}
	if b.webhookSecret == "" && b.WebhookSecretFile != "" {
		if b.webhookSecret, err = read(b.WebhookSecretFile, "webhook_secret_file"); err != nil {
			return err
		}
	}
	if b.token == "" || strings.ContainsAny(b.token, "/?# \t\r\n") {
		return errors.New("bot: the token (bot.token_file or SESSIOND_TELEGRAM_BOT_TOKEN) is empty or has characters a Bot API token never has")
	}
	if b.WebhookURL != "" && !validWebhookSecret(b.webhookSecret) {
		return errors.New("bot.webhook_url needs a secret token (bot.webhook_secret_file or SESSIOND_TELEGRAM_WEBHOOK_SECRET): 1-256 of A-Z a-z 0-9 _ -")
	}
	return nil
}

// validateBot checks the bot's and the alerts' settings, each error naming
// the setting (and never the token).
func (c *Config) validateBot() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	b := c.Bot
	if !b.enabled() {
		if len(b.ChatIDs) > 0 || b.WebhookURL != "" || b.AlertChatID != "" {
			bad("bot: chat_ids, alert_chat_id or webhook_url without a token: set bot.token_file or SESSIOND_TELEGRAM_BOT_TOKEN")
		}
	} else {
		if len(b.ChatIDs) == 0 {
			bad("bot.chat_ids: at least one chat the bot answers in (the chat id, e.g. -1001234567890)")
		}
		if b.PollTimeout < 0 || b.PollTimeout > 50*time.Second {
			bad("bot.poll_timeout %s: between 0 (25s) and 50s", b.PollTimeout)
		}
		if b.WebhookURL != "" {
			if u, err := url.Parse(b.WebhookURL); err != nil || u.Scheme != "https" || u.Host == "" {
				bad("bot.webhook_url: want the public https:// URL of POST %s (Telegram calls only HTTPS webhooks)", telegramWebhookPath)
			}
		}
		if b.APIURL != "" {
			if u, err := url.Parse(b.APIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				bad("bot.api_url %q: want an http(s) base URL", b.APIURL)
			}
		}
	}
	a := c.Alerts
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"cooldown", a.Cooldown}, {"contact_loss", a.ContactLoss}, {"token_error_window", a.TokenErrorWindow},
		{"spike_window", a.SpikeWindow}, {"key_ahead", a.KeyAhead}, {"interval", a.Interval}} {
		if d.v < 0 {
			bad("alerts.%s %s: must not be negative (0: the default)", d.name, d.v)
		}
	}
	if a.Cooldown > 7*24*time.Hour {
		bad("alerts.cooldown %s: at most 7 days", a.Cooldown)
	}
	if a.MaxPerMinute < 0 || a.TokenErrors < 0 || a.SpikeMin < 0 || a.SpikeFactor < 0 {
		bad("alerts: max_per_minute, token_errors, spike_min and spike_factor must not be negative (0: the default)")
	}
	return errs
}

// telegramWebhookPath is where Telegram posts updates in webhook mode.
const telegramWebhookPath = "/telegram/webhook"

// startAlerts builds the alerter and, when configured, the bot, and runs
// them until bg ends. The alerter runs when some notifier is configured.
func (n *node) startAlerts(bg context.Context, notifiers []notify.Notifier) error {
	b := n.cfg.Bot
	var api *notify.BotAPI
	if b.enabled() {
		if err := b.loadSecrets(); err != nil {
			return err
		}
		api = &notify.BotAPI{BaseURL: b.APIURL, Token: b.token, UserAgent: "sessiond/" + version + " (node " + n.raft.ID() + ")",
			Client: &http.Client{Timeout: time.Minute + b.PollTimeout}}
	}
	if len(notifiers) > 0 {
		a := n.cfg.Alerts
		n.alerter.Store(alerting.New(alerting.Config{
			Node: n.raft.ID(), Region: n.raft.Region(), Cooldown: a.Cooldown, MaxPerMinute: a.MaxPerMinute, Interval: a.Interval,
			ContactLoss: a.ContactLoss, TokenErrors: a.TokenErrors, TokenErrorWindow: a.TokenErrorWindow,
			SpikeWindow: a.SpikeWindow, SpikeMin: a.SpikeMin, SpikeFactor: a.SpikeFactor, KeyAhead: a.KeyAhead,
			Logger: n.log.With("component", "alerts"),
		}, n.auth, alertCluster{n}, n.auth, n.alerts))
		n.go_(func(context.Context) { n.alerter.Load().Run(bg) })
	}
	if api == nil {
		return nil
	}
	bot, err := telegrambot.New(telegrambot.Config{
		API: api, Chats: b.ChatIDs, Users: b.UserIDs, Operators: b.OperatorUserIDs,
		WebhookURL: b.WebhookURL, WebhookSecret: b.webhookSecret, PollTimeout: b.PollTimeout,
		Node: n.raft.ID(), Rates: n.rates, Logger: n.auditLog(),
	}, botCluster{n}, n.auth)
	if err != nil {
		return err
	}
	n.bot.Store(bot)
	n.go_(func(context.Context) { bot.Run(bg) })
	return nil
}

// botNotifiers are the notifiers the bot adds: its alert chat.
func (b *BotConfig) notifiers() []notify.Notifier {
	if !b.enabled() || b.AlertChatID == "" {
		return nil
	}
	return []notify.Notifier{&notify.Telegram{BaseURL: b.APIURL, BotToken: b.token, ChatID: b.AlertChatID}}
}

// telegramWebhook serves POST /telegram/webhook: the bot's handler when
// it runs in webhook mode, else 404.
func (n *node) telegramWebhook(w http.ResponseWriter, r *http.Request) {
	bot := n.bot.Load()
	if bot == nil || n.cfg.Bot.WebhookURL == "" {
		http.Error(w, "the Telegram webhook is not configured on this node (bot.webhook_url)", http.StatusNotFound)
		return
	}
	bot.Handler().ServeHTTP(w, r)
}

// alertCluster adapts the node to alerting.Cluster.
type alertCluster struct{ n *node }

func (c alertCluster) IsLeader() bool { return c.n.raft.IsLeader() }
func (c alertCluster) LeaderID() string {
	id, _ := c.n.raft.Leader()
	return id
}
func (c alertCluster) LocalStatus() (*clusterv1.StatusResponse, error) { return c.n.raft.LocalStatus() }

// botCluster adapts the node to telegrambot.Cluster.
type botCluster struct{ n *node }

func (c botCluster) IsLeader() bool { return c.n.raft.IsLeader() }
func (c botCluster) Status(ctx context.Context) (*clusterv1.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return c.n.raft.Status(ctx)
}

// rates renders this node's logins, refreshes and token checks per minute
// since the previous call (for /authstatus).
func (n *node) rates() string {
	c := n.auth.Counts()
	now := time.Now()
	n.rateMu.Lock()
	prev, prevAt := n.rateLast, n.rateAt
	n.rateLast, n.rateAt = c, now
	n.rateMu.Unlock()
	if prevAt.IsZero() {
		return fmt.Sprintf("on %s since start: %d logins, %d refreshes, %d token checks", n.raft.ID(), c.Logins, c.Refreshes, c.Checks)
	}
	mins := max(now.Sub(prevAt).Minutes(), 1.0/60)
	per := func(cur, old uint64) string { return strconv.FormatFloat(float64(cur-old)/mins, 'f', 1, 64) }
	return fmt.Sprintf("on %s per minute over the last %s: %s logins, %s refreshes, %s token checks", n.raft.ID(),
		now.Sub(prevAt).Round(time.Second), per(c.Logins, prev.Logins), per(c.Refreshes, prev.Refreshes), per(c.Checks, prev.Checks))
}

// raiseAlert sends ev once for the cluster under key (through the alerter
// when it runs, else straight to the notifiers).
func (n *node) raiseAlert(key string, ev notify.Event) {
	if a := n.alerter.Load(); a != nil {
		a.Raise(key, ev)
		return
	}
	if n.alerts != nil {
		n.alerts.Dispatch(ev)
	}
}
