package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
