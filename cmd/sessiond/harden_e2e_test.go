package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/clients/go/checkreason"

	"github.com/sessiond/sessiond/authsvc/password"
)

// Issue 9 on real processes (three agents, users in Postgres, changes
// through the CLI against one node's admin API):
//   - weak passwords are refused by `sessiond user create` both against
//     Postgres directly and through a node, with a message naming the rule;
//   - a suspension made through seoul makes the user's access tokens
//     inactive on hk and tokyo at once (account_suspended), and a password
//     reset, a role or organization change and a deletion through one
//     node end the
//     sessions everywhere (account_changed): the old refresh token no
//     longer refreshes on any node.
func TestAccountChangesAndPasswordPolicyE2E(t *testing.T) {
	e2eSkipShort(t)
	c := newE2ECluster(t, true)
	hk, seoul, tokyo := e2eThreeNodes(t, c)
	nodes := []*e2eNode{hk, seoul, tokyo}

	for pw, rule := range map[string]string{"short": password.RuleMinLength, "password": password.RuleCommon, "12345678": password.RuleCommon} {
		r := e2eCLI(t, pw+"\n", "user", "create", "--database-url", c.dbURL, "--password-stdin",
			"--email", "weak@example.com", "--display-name", "W", "--org-name", "Org", "--country", "TH", "--org-type", "SUPPLIER")
		if r.code == 0 || !strings.Contains(r.stderr, rule) {
			t.Errorf("user create --database-url with %q: exit %d, stderr %q; want a refusal naming %s", pw, r.code, r.stderr, rule)
		}
		r = e2eCLI(t, pw+"\n", "user", "create", "--addr", seoul.url(), "--token-file", c.opToken(seoul), "--password-stdin",
			"--email", "weak@example.com", "--display-name", "W", "--org-name", "Org", "--country", "TH", "--org-type", "SUPPLIER")
		if r.code == 0 || !strings.Contains(r.stderr, rule) {
			t.Errorf("user create --addr with %q: exit %d, stderr %q; want a refusal naming %s", pw, r.code, r.stderr, rule)
		}
	}

	const lin = "READ_CONSISTENCY_LINEARIZABLE"
	admin := func(via *e2eNode, stdin string, args ...string) {
		t.Helper()
		args = append(args, "--addr", via.url(), "--token-file", c.opToken(via))
		if r := e2eCLI(t, stdin, args...); r.code != 0 {
			t.Fatalf("sessiond %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	for _, tc := range []struct {
		email, reason string
		change        func(email string)
	}{
		{"suspend@example.com", checkreason.String(checkreason.AccountSuspended), func(e string) {
			admin(seoul, "", "user", "set-status", "--email", e, "--status", "SUSPENDED")
		}},
		{"reset@example.com", checkreason.String(checkreason.AccountChanged), func(e string) {
			admin(tokyo, "a brand new passphrase\n", "user", "set-password", "--email", e)
		}},
		{"roles@example.com", checkreason.String(checkreason.AccountChanged), func(e string) {
			admin(hk, "", "user", "set-roles", "--email", e, "--role", "viewer")
		}},
		{"moved@example.com", checkreason.String(checkreason.AccountChanged), func(e string) {
			admin(tokyo, "", "user", "set-org", "--email", e, "--org-name", "Other Org", "--country", "JP", "--org-type", "CUSTOMER")
		}},
		{"gone@example.com", checkreason.String(checkreason.AccountChanged), func(e string) {
			admin(seoul, "", "user", "delete", "--email", e)
		}},
	} {
		c.createUser(tc.email, e2ePassword)
		web := e2eLogin(t, hk.url(), tc.email, e2ePassword, "web", "laptop")
		ios := e2eLogin(t, tokyo.url(), tc.email, e2ePassword, "ios", "phone")
		for _, n := range nodes {
			if res := e2eCheckToken(t, n.url(), web.AccessToken, lin); !res.GetActive() {
				t.Fatalf("%s: before the change %s says %q", tc.email, n.id, res.GetReason())
			}
		}
		tc.change(tc.email)
		for _, n := range nodes {
			for _, tok := range []string{web.AccessToken, ios.AccessToken} {
				if res := e2eCheckToken(t, n.url(), tok, lin); res.GetActive() || res.GetReason() != tc.reason {
					t.Errorf("%s: after the change %s says active=%v reason=%q, want %q", tc.email, n.id, res.GetActive(), res.GetReason(), tc.reason)
				}
			}
			code, body, err := e2ePost(n.url()+"/auth/token", map[string]string{"refresh_token": ios.RefreshToken})
			if err != nil || code == http.StatusOK {
				t.Errorf("%s: refresh on %s after the change: %d %s %v, want a refusal", tc.email, n.id, code, body, err)
			}
		}
	}
	// The reset password logs in at once, anywhere.
	e2eLogin(t, hk.url(), "reset@example.com", "a brand new passphrase", "web", "laptop")
}
