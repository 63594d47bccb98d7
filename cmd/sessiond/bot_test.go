package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/api/telegrambot"
	"github.com/sessiond/sessiond/api/telegrambot/telegramtest"
	"github.com/sessiond/sessiond/cluster/clustertest"
)

// Bad bot settings are refused naming the setting, and never echo the
// token.
func TestBotConfigValidation(t *testing.T) {
	const tok = "123:AAH-very-secret"
	for _, tc := range []struct {
		name string
		set  func(c *Config)
		want string
	}{
		{"chats without a token", func(c *Config) { c.Bot.ChatIDs = []int64{-1} }, "without a token"},
		{"token without chats", func(c *Config) { c.Bot.token = tok }, "bot.chat_ids"},
		{"plain-http webhook", func(c *Config) {
			c.Bot.token, c.Bot.ChatIDs, c.Bot.WebhookURL = tok, []int64{-1}, "http://auth.example.com/telegram/webhook"
		}, "bot.webhook_url"},
		{"poll timeout too long", func(c *Config) { c.Bot.token, c.Bot.ChatIDs, c.Bot.PollTimeout = tok, []int64{-1}, 600e9 }, "bot.poll_timeout"},
		{"negative cooldown", func(c *Config) { c.Alerts.Cooldown = -1 }, "alerts.cooldown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultConfig()
			tc.set(&c)
			errs := c.validateBot()
			msg := ""
			for _, e := range errs {
				msg += e.Error() + "\n"
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("errors %q: want one naming %q", msg, tc.want)
			}
			if strings.Contains(msg, tok) {
				t.Errorf("errors %q reveal the token", msg)
			}
		})
	}
	// Secrets: from the file, a webhook without a secret is refused, and
	// a token that would break the URL is refused without being shown.
	dir := t.TempDir()
	f := filepath.Join(dir, "tok")
	if err := os.WriteFile(f, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := BotConfig{TokenFile: f, WebhookURL: "https://a.example/telegram/webhook"}
	if err := b.loadSecrets(); err == nil || !strings.Contains(err.Error(), "secret token") || strings.Contains(err.Error(), tok) {
		t.Errorf("webhook without secret: %v, want a refusal naming the secret token, without the token", err)
	}
	if b.token != tok {
		t.Errorf("token from the file: got %d bytes, want the file's token", len(b.token))
	}
	b = BotConfig{token: "12:abc/../x"}
	if err := b.loadSecrets(); err == nil || strings.Contains(err.Error(), "abc") {
		t.Errorf("malformed token: %v, want a refusal that does not show it", err)
	}
}

// Webhook mode through a node's whole handler (limits, caller
// authentication, routes): the leader registers the webhook with its
// secret; a post without the secret is 401, an oversized one 413, one
// with it is answered in the chat once even when Telegram redelivers it;
// a node without the webhook answers 404.
func TestBotWebhookThroughTheNode(t *testing.T) {
	const tok = "555:AAF-webhook-test-token"
	const secret = "webhook_secret-123"
	api := telegramtest.New(t, tok)
	tc := startTestCluster(t, 1, func(_ int, c *Config) {
		c.Bot = BotConfig{APIURL: api.URL, ChatIDs: []int64{-1001}, WebhookURL: "https://auth.example.com/telegram/webhook",
			token: tok, webhookSecret: secret}
	})
	nd := tc.nodes[0]
	clustertest.WaitFor(t, 20*time.Second, "setWebhook from the leader", func() bool { u, _ := api.Webhook(); return u != "" })
	if u, s := api.Webhook(); u != "https://auth.example.com/telegram/webhook" || s != secret {
		t.Fatalf("registered webhook %q with secret %q", u, s)
	}
	post := func(secretHdr, body string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, nd.apiURL+telegramWebhookPath, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if secretHdr != "" {
			req.Header.Set(telegrambot.SecretHeader, secretHdr)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	upd := `{"update_id":900,"message":{"message_id":1,"chat":{"id":-1001},"from":{"id":42},"text":"/authstatus"}}`
	if code := post("", upd); code != http.StatusUnauthorized {
		t.Errorf("without the secret: %d, want 401", code)
	}
	if code := post("wrong-secret", upd); code != http.StatusUnauthorized {
		t.Errorf("a wrong secret: %d, want 401", code)
	}
	if code := post(secret, `{"update_id":1,"message":{"text":"`+strings.Repeat("x", 2<<20)+`"}}`); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a 2 MiB update: %d, want 413", code)
	}
	if n := len(api.Sent()); n != 0 {
		t.Fatalf("%d messages sent for refused posts, want 0", n)
	}
	for range 2 { // Telegram redelivers
		if code := post(secret, upd); code != http.StatusOK {
			t.Errorf("with the secret: %d, want 200", code)
		}
	}
	sent := api.Sent()
	if len(sent) != 1 || sent[0].ChatID != -1001 || !strings.Contains(sent[0].Text, "leader "+nd.raft.ID()) {
		t.Errorf("answers %+v: want one /authstatus answer in chat -1001", sent)
	}
	// Telegram's own delivery, with the secret it was given.
	api.DeliverTo(nd.apiURL + telegramWebhookPath)
	api.AddMessage(-1001, 42, "/help")
	api.AddMessage(-2002, 42, "/help") // not an allowed chat
	clustertest.WaitFor(t, 20*time.Second, "two deliveries", func() bool { return len(api.WebhookStatuses()) == 2 })
	if st := api.WebhookStatuses(); st[0] != http.StatusOK || st[1] != http.StatusOK {
		t.Errorf("webhook answered deliveries %v, want 200s", st)
	}
	if sent := api.Sent(); len(sent) != 2 || sent[1].ChatID != -1001 || !strings.Contains(sent[1].Text, "/authstatus") {
		t.Errorf("answers %+v: want the /help answer in chat -1001 and nothing for chat -2002", sent)
	}

	// Without bot.webhook_url the route is not there.
	plain := startTestCluster(t, 1, nil)
	req, _ := http.NewRequest(http.MethodPost, plain.nodes[0].apiURL+telegramWebhookPath, strings.NewReader(upd))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("webhook on a node without a bot: %d, want 404", resp.StatusCode)
	}
}
