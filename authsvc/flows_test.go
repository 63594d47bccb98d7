package authsvc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/authsvctest"
	"github.com/sessiond/sessiond/authsvc/users"
	"github.com/sessiond/sessiond/clients/go/checkreason"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// The flows below run over authsvctest's in-memory cluster: a real store,
// no Raft, milliseconds per test. The same flows across three nodes and
// real processes are tested in cmd/sessiond (auth_test.go, e2e_test.go).

const pw = "correct horse battery staple"

var web = storev1.Platform_PLATFORM_WEB

func login(t *testing.T, e *authsvctest.Env, email, device string, force bool) (*authsvc.Tokens, error) {
	t.Helper()
	return e.Svc.Login(context.Background(), authsvc.LoginInput{
		Email: email, Password: pw, Platform: web, DeviceID: device, Force: force, Client: authsvc.Client{IP: "192.0.2.7"},
	})
}

func mustLogin(t *testing.T, e *authsvctest.Env, email, device string) *authsvc.Tokens {
	t.Helper()
	tok, err := login(t, e, email, device, false)
	if err != nil {
		t.Fatalf("login %s from %s: %v", email, device, err)
	}
	return tok
}

// wantCode fails unless err is an *authsvc.Error with the given code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var ae *authsvc.Error
	if !errors.As(err, &ae) || ae.Code != code {
		t.Fatalf("got error %v, want code %q", err, code)
	}
}

func wantCheck(t *testing.T, e *authsvctest.Env, access string, want checkreason.Reason) authsvc.Check {
	t.Helper()
	c := e.Svc.CheckToken(access)
	if c.Reason != want || c.Active != (want == checkreason.None) {
		t.Fatalf("check: got active=%v reason=%s, want reason=%q", c.Active, checkreason.String(c.Reason), checkreason.String(want))
	}
	return c
}

func TestFlowLoginCheckLogout(t *testing.T) {
	e := authsvctest.New(t, authsvctest.Options{})
	u := e.CreateUser(t, "ana@example.com", pw)

	tok := mustLogin(t, e, "ana@example.com", "laptop")
	c := wantCheck(t, e, tok.AccessToken, checkreason.None)
	if c.Claims.Subject != u.ID || c.Claims.SessionID != tok.SessionID {
		t.Fatalf("claims: got sub=%q sid=%q, want sub=%q sid=%q", c.Claims.Subject, c.Claims.SessionID, u.ID, tok.SessionID)
	}
	if c.Index < tok.Index {
		t.Fatalf("check index %d is behind the login's write %d", c.Index, tok.Index)
	}

	if _, err := e.Svc.Logout(context.Background(), tok.AccessToken, ""); err != nil {
		t.Fatalf("logout: %v", err)
	}
	c = wantCheck(t, e, tok.AccessToken, checkreason.SessionEnded)
	if c.EndReason != storev1.EndReason_END_REASON_LOGOUT {
		t.Fatalf("end reason: got %s, want LOGOUT", c.EndReason)
	}
	_, err := e.Svc.Refresh(context.Background(), tok.RefreshToken, authsvc.Client{})
	wantCode(t, err, "session_ended")
}

func TestFlowWrongPasswordAndUnknownUserAnswerAlike(t *testing.T) {
	e := authsvctest.New(t, authsvctest.Options{})
	e.CreateUser(t, "ana@example.com", pw)
	ctx := context.Background()
	for _, in := range []authsvc.LoginInput{
		{Email: "ana@example.com", Password: "not the password at all"},
		{Email: "nobody@example.com", Password: pw},
	} {
		in.Platform, in.DeviceID = web, "laptop"
		_, err := e.Svc.Login(ctx, in)
		wantCode(t, err, "invalid_credentials")
	}
	if n := len(mustSessions(t, e, "ana@example.com")); n != 0 {
		t.Fatalf("a failed login left %d sessions", n)
	}
}

func TestFlowRefreshRotatesAndDetectsReuse(t *testing.T) {
	e := authsvctest.New(t, authsvctest.Options{})
	e.CreateUser(t, "ana@example.com", pw)
	ctx := context.Background()
	first := mustLogin(t, e, "ana@example.com", "laptop")

	e.Clock.Advance(time.Minute)
	second, err := e.Svc.Refresh(ctx, first.RefreshToken, authsvc.Client{})
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if second.RefreshToken == first.RefreshToken || second.SessionID != first.SessionID {
		t.Fatalf("refresh did not rotate within the session: same token=%v, session %q -> %q",
			second.RefreshToken == first.RefreshToken, first.SessionID, second.SessionID)
	}
	// Within the grace window the spent token gets the same pair again
	// (a client whose answer was lost retries).
	retry, err := e.Svc.Refresh(ctx, first.RefreshToken, authsvc.Client{})
	if err != nil {
		t.Fatalf("grace retry: %v", err)
	}
	if retry.RefreshToken != second.RefreshToken || retry.AccessToken != second.AccessToken {
		t.Fatal("grace retry returned a different pair")
	}
	// Introspection (RFC 7662) sees the spent token inactive and its
	// successor active.
	if _, ok := e.Svc.CheckRefresh(first.RefreshToken); ok {
		t.Error("CheckRefresh: the spent refresh token is active")
	}
	if _, ok := e.Svc.CheckRefresh(second.RefreshToken); !ok {
		t.Error("CheckRefresh: the current refresh token is inactive")
	}

	// After the grace window, presenting the spent token is theft: the
	// session ends, including for the thief's successor tokens.
	e.Clock.Advance(e.Config.RefreshGrace + time.Second)
	_, err = e.Svc.Refresh(ctx, first.RefreshToken, authsvc.Client{})
	wantCode(t, err, "refresh_token_reused")
	c := wantCheck(t, e, second.AccessToken, checkreason.SessionEnded)
	if c.EndReason != storev1.EndReason_END_REASON_REFRESH_REUSE {
		t.Fatalf("end reason: got %s, want REFRESH_REUSE", c.EndReason)
	}
	if _, err := e.Svc.Refresh(ctx, second.RefreshToken, authsvc.Client{}); err == nil {
		t.Fatal("the successor of a reused token still refreshes")
	}
}

func TestFlowOneDevicePerPlatformAndForceLogin(t *testing.T) {
	e := authsvctest.New(t, authsvctest.Options{})
	e.CreateUser(t, "ana@example.com", pw)
	laptop := mustLogin(t, e, "ana@example.com", "laptop")

	_, err := login(t, e, "ana@example.com", "desktop", false)
	wantCode(t, err, "session_exists")
	var ae *authsvc.Error
	if errors.As(err, &ae); ae.Conflict.GetId() != laptop.SessionID {
		t.Fatalf("conflict names session %q, want the laptop's %q", ae.Conflict.GetId(), laptop.SessionID)
	}
	wantCheck(t, e, laptop.AccessToken, checkreason.None)

	desktop, err := login(t, e, "ana@example.com", "desktop", true)
	if err != nil {
		t.Fatalf("force login: %v", err)
	}
	c := wantCheck(t, e, laptop.AccessToken, checkreason.SessionEnded)
	if c.EndReason != storev1.EndReason_END_REASON_FORCED_OUT {
		t.Fatalf("end reason: got %s, want FORCED_OUT", c.EndReason)
	}
	wantCheck(t, e, desktop.AccessToken, checkreason.None)

	// Another platform is another slot.
	phone, err := e.Svc.Login(context.Background(), authsvc.LoginInput{
		Email: "ana@example.com", Password: pw, Platform: storev1.Platform_PLATFORM_IOS, DeviceID: "phone",
	})
	if err != nil {
		t.Fatalf("login on ios: %v", err)
	}
	wantCheck(t, e, phone.AccessToken, checkreason.None)
	wantCheck(t, e, desktop.AccessToken, checkreason.None)
}

func TestFlowExpiry(t *testing.T) {
	e := authsvctest.New(t, authsvctest.Options{})
	e.CreateUser(t, "ana@example.com", pw)
	tok := mustLogin(t, e, "ana@example.com", "laptop")

	e.Clock.Advance(e.Config.AccessTTL + time.Second)
	wantCheck(t, e, tok.AccessToken, checkreason.Expired)
	next, err := e.Svc.Refresh(context.Background(), tok.RefreshToken, authsvc.Client{})
	if err != nil {
		t.Fatalf("refresh after the access token expired: %v", err)
	}
	wantCheck(t, e, next.AccessToken, checkreason.None)

	// Idle past the session's idle lifetime: the refresh token no longer
	// works, whatever its own expiry.
	e.Clock.Advance(e.Config.SessionIdle + time.Second)
	if _, err := e.Svc.Refresh(context.Background(), next.RefreshToken, authsvc.Client{}); err == nil {
		t.Fatal("a session idle past its lifetime still refreshes")
	}
}

func TestFlowSuspensionEndsSessions(t *testing.T) {
	e := authsvctest.New(t, authsvctest.Options{})
	e.CreateUser(t, "ana@example.com", pw)
	tok := mustLogin(t, e, "ana@example.com", "laptop")
	ctx := context.Background()

	if err := e.Svc.SetUserStatus(ctx, "ana@example.com", users.StatusSuspended); err != nil {
		t.Fatalf("suspend: %v", err)
	}
	wantCheck(t, e, tok.AccessToken, checkreason.AccountSuspended)
	_, err := e.Svc.Refresh(ctx, tok.RefreshToken, authsvc.Client{})
	if err == nil {
		t.Fatal("a suspended user's refresh token still works")
	}
	_, err = login(t, e, "ana@example.com", "laptop", false)
	wantCode(t, err, "account_suspended")

	if err := e.Svc.SetUserStatus(ctx, "ana@example.com", users.StatusActive); err != nil {
		t.Fatalf("reactivate: %v", err)
	}
	again := mustLogin(t, e, "ana@example.com", "laptop")
	wantCheck(t, e, again.AccessToken, checkreason.None)
	// Reactivation does not bring the old session back.
	wantCheck(t, e, tok.AccessToken, checkreason.AccountSuspended)
}

func TestFlowWithoutQuorumChangesNothing(t *testing.T) {
	e := authsvctest.New(t, authsvctest.Options{})
	e.CreateUser(t, "ana@example.com", pw)
	tok := mustLogin(t, e, "ana@example.com", "laptop")
	before := e.Store.AppliedIndex()

	e.Cluster.SetDown(true)
	if _, err := login(t, e, "ana@example.com", "desktop", true); err == nil {
		t.Fatal("a forced login succeeded without a quorum")
	}
	if _, err := e.Svc.Logout(context.Background(), tok.AccessToken, ""); err == nil {
		t.Fatal("a logout succeeded without a quorum")
	}
	e.Cluster.SetDown(false)

	if got := e.Store.AppliedIndex(); got != before {
		t.Fatalf("applied index moved from %d to %d without a quorum", before, got)
	}
	wantCheck(t, e, tok.AccessToken, checkreason.None)
}

// A login the cluster retried reaches the log twice. It opens one session
// and reports the index of the entry that opened it, so a check answering
// from the state just before the repeat shows the session with an index at
// or after the login's, never before it.
func TestFlowRetriedLoginReportsTheIndexThatOpenedTheSession(t *testing.T) {
	e := authsvctest.New(t, authsvctest.Options{})
	e.CreateUser(t, "ana@example.com", pw)
	e.Cluster.SetRepeat(true)
	tok := mustLogin(t, e, "ana@example.com", "laptop")
	e.Cluster.SetRepeat(false)

	if got, want := tok.Index, e.Store.AppliedIndex()-1; got != want {
		t.Fatalf("login reported index %d; the session was opened at %d (the repeat is at %d)", got, want, want+1)
	}
	if ss := mustSessions(t, e, "ana@example.com"); len(ss) != 1 {
		t.Fatalf("%d sessions after a repeated login, want 1", len(ss))
	}
	if c := wantCheck(t, e, tok.AccessToken, checkreason.None); c.Index < tok.Index {
		t.Fatalf("check index %d is behind the login's write %d", c.Index, tok.Index)
	}
}

func mustSessions(t *testing.T, e *authsvctest.Env, email string) []*storev1.Session {
	t.Helper()
	u, err := e.Dir.ByEmail(context.Background(), email)
	if err != nil {
		t.Fatalf("user %s: %v", email, err)
	}
	ss, err := e.Svc.UserSessions(u.ID)
	if err != nil {
		t.Fatalf("sessions of %s: %v", email, err)
	}
	return ss
}
