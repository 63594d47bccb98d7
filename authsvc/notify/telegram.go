package notify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultTelegramBaseURL is the Bot API endpoint.
const DefaultTelegramBaseURL = "https://api.telegram.org"

// maxTelegramText is the Bot API's limit on a message's text, in characters.
const maxTelegramText = 4096

// maxResponse bounds how much of a response body is read.
const maxResponse = 1 << 20

// Telegram sends events as plain-text messages to a chat through the Bot
// API: POST {BaseURL}/bot{BotToken}/sendMessage with {"chat_id","text"},
// succeeding when the answer is {"ok":true,...}.
type Telegram struct {
	// BaseURL defaults to DefaultTelegramBaseURL.
	BaseURL  string
	BotToken string
	// ChatID is a numeric chat ID (sent as a JSON number) or a
	// "@channelusername" (sent as a string).
	ChatID string
	// Client defaults to http.DefaultClient; the Dispatcher bounds each
	// attempt with a timeout through ctx.
	Client *http.Client
}

// Name returns "telegram".
func (t *Telegram) Name() string { return "telegram" }

// telegramResponse is the Bot API's answer envelope.
type telegramResponse struct {
	OK          bool   `json:"ok"`
	ErrorCode   int    `json:"error_code"`
	Description string `json:"description"`
	Parameters  *struct {
		RetryAfter int `json:"retry_after"`
	} `json:"parameters"`
}

// Notify sends ev. Errors are *DeliveryError, with RetryAfter set from the
// Bot API's parameters.retry_after on a 429, and never contain the token.
func (t *Telegram) Notify(ctx context.Context, ev Event) error {
	return SendMessage(ctx, &BotAPI{BaseURL: t.BaseURL, Token: t.BotToken, Client: t.Client}, t.ChatID, FormatText(ev))
}

// SendMessage sends text as a plain-text message to chat (a numeric chat ID,
// sent as a JSON number, or a "@channelusername") through api.
func SendMessage(ctx context.Context, api *BotAPI, chat, text string) error {
	if chat == "" {
		return &DeliveryError{Notifier: "telegram", URL: "<redacted>", Permanent: true, Description: "bot token and chat ID are required"}
	}
	var id any = chat
	if n, err := strconv.ParseInt(chat, 10, 64); err == nil {
		id = n
	}
	return api.Call(ctx, "sendMessage", map[string]any{"chat_id": id, "text": text}, nil)
}

// FormatText renders ev as the plain text of a chat message, at most 4096
// characters.
func FormatText(ev Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "sessiond security event: %s\n", ev.Kind)
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	line("user", ev.UserID)
	line("email", ev.Email)
	line("ip", ev.IP)
	line("session", ev.SessionID)
	line("region", ev.Region)
	line("node", ev.Node)
	if !ev.At.IsZero() {
		line("at", ev.At.UTC().Format(time.RFC3339))
	}
	line("detail", ev.Detail)
	s := strings.TrimSuffix(b.String(), "\n")
	if utf8.RuneCountInString(s) > maxTelegramText {
		r := []rune(s)
		s = string(r[:maxTelegramText-1]) + "…"
	}
	return s
}

func client(c *http.Client) *http.Client {
	if c == nil {
		return http.DefaultClient
	}
	return c
}

// transportError strips the URL (which may hold a secret) from an
// *url.Error, keeping the cause.
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// sanitize removes secret from s.
func sanitize(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "<redacted>")
}
