package authsvc_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/authsvctest"
)

// A refused refresh token is reported with the client's address and the
// refusal's code; a good one is not.
func TestOnTokenErrorReportsRefusedRefreshTokens(t *testing.T) {
	var mu sync.Mutex
	var got []string
	e := authsvctest.New(t, authsvctest.Options{Deps: func(d *authsvc.Deps) {
		d.OnTokenError = func(ip, code string) { mu.Lock(); got = append(got, ip+" "+code); mu.Unlock() }
	}})
	e.CreateUser(t, "a@example.com", pw)
	tok, err := login(t, e, "a@example.com", "d1", false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := e.Svc.Refresh(ctx, "not-a-token", authsvc.Client{IP: "203.0.113.9"}); err == nil {
		t.Fatal("a bogus refresh token was accepted")
	}
	_, err = e.Svc.Refresh(ctx, tok.RefreshToken, authsvc.Client{IP: "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(time.Minute) // past the grace window: the spent token is theft
	if _, err := e.Svc.Refresh(ctx, tok.RefreshToken, authsvc.Client{IP: "203.0.113.9"}); err == nil {
		t.Fatal("a reused refresh token was accepted")
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"203.0.113.9 invalid_refresh_token", "203.0.113.9 refresh_token_reused"}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("reported: %q, want %q", got, want)
	}
}

// The first claim of a key wins, the next within the window loses, for
// any node; SessionsByEmail finds a user's live sessions.
func TestClaimAlertAndSessionsByEmail(t *testing.T) {
	e := authsvctest.New(t, authsvctest.Options{})
	ctx := context.Background()
	if won, err := e.Svc.ClaimAlert(ctx, "node_unreachable:seoul-1", time.Minute); err != nil || !won {
		t.Fatalf("first claim: %v %v, want won", won, err)
	}
	if won, err := e.Svc.ClaimAlert(ctx, "node_unreachable:seoul-1", time.Minute); err != nil || won {
		t.Fatalf("second claim: %v %v, want lost", won, err)
	}
	e.Cluster.SetDown(true)
	if _, err := e.Svc.ClaimAlert(ctx, "other", time.Minute); err == nil {
		t.Error("a claim without a quorum: want an error")
	}
	e.Cluster.SetDown(false)

	e.CreateUser(t, "b@example.com", pw)
	tok, err := login(t, e, "b@example.com", "d1", false)
	if err != nil {
		t.Fatal(err)
	}
	u, list, err := e.Svc.SessionsByEmail(ctx, "B@example.com")
	if err != nil || u.Email != "b@example.com" || len(list) != 1 || list[0].GetId() != tok.SessionID {
		t.Errorf("SessionsByEmail: %v %v %v, want the one session %s", u.Email, list, err, tok.SessionID)
	}
	var ae *authsvc.Error
	if _, _, err := e.Svc.SessionsByEmail(ctx, "nobody@example.com"); !errors.As(err, &ae) || ae.Kind != authsvc.KindNotFound {
		t.Errorf("unknown e-mail: %v, want KindNotFound", err)
	}
}
