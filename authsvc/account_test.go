package authsvc_test

import (
	"context"
	"testing"

	"github.com/sessiond/sessiond/clients/go/checkreason"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/users"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// Finding (issue 9): account changes left sessions alive — after an admin
// password reset the old refresh token still refreshed, and a suspended
// user's access token stayed active on every node until it expired.
// Suspension, a password reset, a role change and a deletion made on one
// node must end the user's sessions and make its live access tokens
// inactive on every node, with a reason that tells suspension from other
// changes, in both directories.
func TestAccountChangesEndSessionsEverywhere(t *testing.T) {
	for _, dk := range []struct {
		name string
		kind dirKind
	}{{"builtin", builtinDir}, {"postgres", postgresDir}} {
		t.Run(dk.name, func(t *testing.T) {
			sc := newSvcCluster(t, 3, dk.kind, nil)
			ctx := context.Background()
			const pw = "correct horse battery"
			for _, tc := range []struct {
				email  string
				change func(email string) error
				reason checkreason.Reason
				end    storev1.EndReason
			}{
				{"suspended@example.com", func(e string) error { return sc.svcs[1].SetUserStatus(ctx, e, users.StatusSuspended) },
					checkreason.AccountSuspended, storev1.EndReason_END_REASON_ACCOUNT_SUSPENDED},
				{"reset@example.com", func(e string) error { return sc.svcs[2].SetUserPassword(ctx, e, "another long passphrase") },
					checkreason.AccountChanged, storev1.EndReason_END_REASON_ACCOUNT_CHANGED},
				{"roles@example.com", func(e string) error { return sc.svcs[0].SetUserRoles(ctx, e, []string{"viewer"}) },
					checkreason.AccountChanged, storev1.EndReason_END_REASON_ACCOUNT_CHANGED},
				{"moved@example.com", func(e string) error {
					return sc.svcs[2].SetUserOrg(ctx, e, users.NewOrg{Name: "Other Org", Country: "JP", Type: users.OrgSupplier})
				}, checkreason.AccountChanged, storev1.EndReason_END_REASON_ACCOUNT_CHANGED},
				{"deleted@example.com", func(e string) error { return sc.svcs[1].DeleteUser(ctx, e) },
					checkreason.AccountChanged, storev1.EndReason_END_REASON_ACCOUNT_CHANGED},
			} {
				sc.createUser(tc.email, pw)
				web := sc.login(0, tc.email, pw, storev1.Platform_PLATFORM_WEB)
				ios := sc.login(2, tc.email, pw, storev1.Platform_PLATFORM_IOS)
				for i, c := range sc.checkEverywhere(web.AccessToken) {
					if !c.Active {
						t.Fatalf("%s: before the change node %d says %q, want active", tc.email, i, c.Reason)
					}
				}
				if err := tc.change(tc.email); err != nil {
					t.Fatalf("%s: change: %v", tc.email, err)
				}
				for _, tok := range []*authsvc.Tokens{web, ios} {
					for i, c := range sc.checkEverywhere(tok.AccessToken) {
						if c.Active || c.Reason != tc.reason || c.EndReason != tc.end {
							t.Errorf("%s: node %d after the change: active=%v reason=%q end=%v, want inactive %q %v",
								tc.email, i, c.Active, c.Reason, c.EndReason, tc.reason, tc.end)
						}
					}
					for i, s := range sc.svcs {
						if _, err := s.Refresh(ctx, tok.RefreshToken, authsvc.Client{IP: "192.0.2.1"}); err == nil {
							t.Errorf("%s: node %d refreshed a token of a session the change ended", tc.email, i)
						}
						if ok, why := s.CheckSession(tok.SessionID); ok || why != endName(tc.end) {
							t.Errorf("%s: node %d CheckSession = %v %q, want ended %q", tc.email, i, ok, why, endName(tc.end))
						}
					}
				}
			}
			// A role change shows in the next login's token.
			roles := sc.login(2, "roles@example.com", pw, storev1.Platform_PLATFORM_WEB)
			if c := sc.checkEverywhere(roles.AccessToken)[0]; !c.Active || len(c.Claims.Roles) != 1 || c.Claims.Roles[0] != "viewer" {
				t.Errorf("login after the role change: active=%v roles=%v, want [viewer]", c.Active, c.Claims.Roles)
			}
			// A reset password works at once, and its new session is live.
			fresh := sc.login(1, "reset@example.com", "another long passphrase", storev1.Platform_PLATFORM_WEB)
			for i, c := range sc.checkEverywhere(fresh.AccessToken) {
				if !c.Active {
					t.Errorf("node %d: a session opened after the reset is %q, want active", i, c.Reason)
				}
			}
		})
	}
}

func endName(r storev1.EndReason) string {
	switch r {
	case storev1.EndReason_END_REASON_ACCOUNT_SUSPENDED:
		return "account_suspended"
	case storev1.EndReason_END_REASON_ACCOUNT_CHANGED:
		return "account_changed"
	}
	return r.String()
}
