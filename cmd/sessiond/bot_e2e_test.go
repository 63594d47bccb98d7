package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/api/telegrambot/telegramtest"
	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
)

const (
	e2eBotToken  = "7654321:AAE-e2e-bot-token_never-logged"
	e2eBotChat   = int64(-1001)
	e2eAlertChat = int64(-1009)
	e2eOperator  = int64(42)
)

// e2eBotConfig writes deploy/config/<region>.yaml with a bot: section
// talking to api (token in a file) and fast alerts: checks every 300ms, a
// node unreachable after 3s.
func e2eBotConfig(t *testing.T, api *telegramtest.Server, region string) string {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "telegram-token")
	if err := os.WriteFile(tokenFile, []byte(e2eBotToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(filepath.Join("..", "..", "deploy", "config", region+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(base) + fmt.Sprintf(`
bot:
  token_file: %s
  api_url: %s
  chat_ids: [%d]
  operator_user_ids: [%d]
  alert_chat_id: "%d"
  poll_timeout: 2s
alerts:
  contact_loss: 3s
  interval: 300ms
`, tokenFile, api.URL, e2eBotChat, e2eOperator, e2eAlertChat)
	path := filepath.Join(dir, region+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// e2eSentTo returns the texts the fake Bot API accepted for chat.
func e2eSentTo(api *telegramtest.Server, chat int64, contains string) []string {
	var out []string
	for _, m := range api.Sent() {
		if m.ChatID == chat && strings.Contains(m.Text, contains) {
			out = append(out, m.Text)
		}
	}
	return out
}

// The bot on three real sessiond processes: exactly one node (the leader)
// long-polls the Bot API; /authstatus, /sessions and /revoke are answered
// in the allowed chat only, and a revoked session's token is refused by
// another node; a stopped node raises exactly one node_unreachable and
// one region_unreachable alert for the cluster, even after leadership
// moves to a node that sees the same outage.
func TestBotE2E(t *testing.T) {
	e2eSkipShort(t)
	api := telegramtest.New(t, e2eBotToken)
	c := newE2ECluster(t, true)
	start := func(region string, join ...string) *e2eNode {
		return c.startNode(e2eNodeOpts{Region: region, Join: join, Extra: []string{"--config", e2eBotConfig(t, api, region), "--preferred-region="}})
	}
	hk := start("hk")
	hk.waitReady(e2eStartLimit)
	seoul := start("seoul", hk.raftAddr)
	tokyo := start("tokyo", hk.raftAddr, seoul.raftAddr)
	hk.waitMembers(e2eStartLimit, hk.id, seoul.id, tokyo.id)
	seoul.waitReady(e2eStartLimit)
	tokyo.waitReady(e2eStartLimit)

	// One poller: the leader (hk bootstrapped and keeps leading).
	ask := func(chat int64, text string) { api.AddMessage(chat, e2eOperator, text) }
	ask(e2eBotChat, "/authstatus")
	e2eWaitFor(t, 30*time.Second, "the /authstatus answer", func() bool { return len(e2eSentTo(api, e2eBotChat, "")) == 1 })
	status := e2eSentTo(api, e2eBotChat, "")[0]
	for _, want := range []string{"leader hk-1 (hk)", "region seoul:", "seoul-1 voter", "region tokyo:", "tokyo-1 voter", "voters reachable: 3 of 3, quorum ok", "on hk-1 since start:", "logins"} {
		if !strings.Contains(status, want) {
			t.Errorf("/authstatus answer:\n%s\nwant it to say %q", status, want)
		}
	}
	e2eWaitFor(t, 30*time.Second, "three long polls", func() bool { return len(api.Calls("getUpdates")) >= 3 })

	// /sessions and /revoke; the token is refused on another node.
	c.createUser("bot-e2e@example.com", e2ePassword)
	lr := e2eLogin(t, seoul.url(), "bot-e2e@example.com", e2ePassword, "web", "laptop-1")
	ask(e2eBotChat, "/sessions bot-e2e@example.com")
	e2eWaitFor(t, 30*time.Second, "the /sessions answer", func() bool { return len(e2eSentTo(api, e2eBotChat, "live session")) == 1 })
	if s := e2eSentTo(api, e2eBotChat, "live session")[0]; !strings.Contains(s, lr.SessionID) || !strings.Contains(s, "laptop-1") {
		t.Errorf("/sessions answer %q: want session %s on laptop-1", s, lr.SessionID)
	}
	ask(e2eBotChat-1, "/revoke "+lr.SessionID) // another chat: ignored
	ask(e2eBotChat, "/revoke "+lr.SessionID)
	e2eWaitFor(t, 30*time.Second, "the /revoke answer", func() bool { return len(e2eSentTo(api, e2eBotChat, "revoked")) == 1 })
	if r := e2eCheckToken(t, tokyo.url(), lr.AccessToken, e2eLinear); r.GetActive() {
		t.Errorf("tokyo checks the revoked session's token: active; want refused")
	}
	for _, m := range api.Sent() {
		if m.ChatID != e2eBotChat && m.ChatID != e2eAlertChat {
			t.Errorf("sendMessage to chat %d: %q; want nothing outside the allowed chats", m.ChatID, m.Text)
		}
	}
	pollers := map[string]bool{}
	for _, r := range api.Calls("getUpdates") {
		pollers[r.UserAgent] = true
		if r.Status == 409 {
			t.Errorf("a getUpdates was answered 409 (two pollers at once): %+v", r)
		}
	}
	if len(pollers) != 1 || !strings.Contains(strings.Join(botKeys(pollers), ""), "(node hk-1)") {
		t.Errorf("getUpdates callers: %v, want exactly one, the leader hk-1", botKeys(pollers))
	}

	// seoul stops: one node_unreachable and one region_unreachable alert.
	seoul.stop(10 * time.Second)
	e2eWaitFor(t, 60*time.Second, "the node_unreachable and region_unreachable alerts", func() bool {
		return len(e2eSentTo(api, e2eAlertChat, "node_unreachable")) >= 1 && len(e2eSentTo(api, e2eAlertChat, "region_unreachable")) >= 1
	})
	// Leadership moves to tokyo, which sees seoul unreachable too: its
	// claims are refused and it stays quiet.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	target := tokyo.id
	_, err := hk.client().TransferLeadership(ctx, connect.NewRequest(&clusterv1.TransferLeadershipRequest{TargetNodeId: &target}))
	cancel()
	if err != nil {
		t.Fatalf("transfer leadership to tokyo: %v", err)
	}
	e2eWaitFor(t, 60*time.Second, "tokyo's refused claims in its log", func() bool {
		return strings.Count(tokyo.stderr(), "alert already sent by another node") >= 2
	})
	if n := len(e2eSentTo(api, e2eAlertChat, "node_unreachable")); n != 1 {
		t.Errorf("node_unreachable alerts: %d, want 1 for the cluster:\n%s", n, strings.Join(e2eSentTo(api, e2eAlertChat, "node_unreachable"), "\n---\n"))
	}
	if n := len(e2eSentTo(api, e2eAlertChat, "region_unreachable")); n != 1 {
		t.Errorf("region_unreachable alerts: %d, want 1", n)
	}
	if a := e2eSentTo(api, e2eAlertChat, "node_unreachable"); len(a) > 0 && !strings.Contains(a[0], "seoul-1") {
		t.Errorf("alert %q: want it to name seoul-1", a[0])
	}
	// The new leader polls now, and answers.
	ask(e2eBotChat, "/authstatus")
	e2eWaitFor(t, 30*time.Second, "/authstatus from the new leader", func() bool { return len(e2eSentTo(api, e2eBotChat, "leader tokyo-1")) == 1 })
	for _, p := range []*e2eNode{hk, tokyo} {
		if strings.Contains(p.stderr(), e2eBotToken) || strings.Contains(p.stderr(), "AAE-e2e-bot") {
			t.Errorf("%s's log reveals the bot token", p.id)
		}
	}
}

func botKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
