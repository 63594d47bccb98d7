package authsvc_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sessiond/sessiond/clients/go/checkreason"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/keys"
	"github.com/sessiond/sessiond/clients/go/token"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// Finding (issue 9): token lifetimes were unbounded on the verify side — a
// 10-year token signed by a known key was active. Here one is signed with
// the cluster's own current key (as whoever stole it or misconfigured an
// issuer would) for a live session: every node refuses it with
// lifetime_too_long, while the session's real token stays active.
func TestLongLivedTokenRefused(t *testing.T) {
	sc := newSvcCluster(t, 3, builtinDir, nil)
	sc.createUser("ten@example.com", "correct horse battery")
	tok := sc.login(0, "ten@example.com", "correct horse battery", storev1.Platform_PLATFORM_WEB)
	real := sc.checkEverywhere(tok.AccessToken)[0]
	if !real.Active {
		t.Fatalf("the real token: %q", real.Reason)
	}
	recs, err := sc.stores[0].SigningKeys(time.Now())
	if err != nil || len(recs) == 0 {
		t.Fatalf("signing keys: %v, %d", err, len(recs))
	}
	r := recs[0]
	priv, err := keys.Open(sc.kek, r.GetEncryptedPrivateKey(), []byte(r.GetKid()))
	if err != nil {
		t.Fatal(err)
	}
	c := *real.Claims
	c.IssuedAt = time.Now().Add(-time.Minute).Truncate(time.Second)
	c.NotBefore = c.IssuedAt
	c.Expiration = c.IssuedAt.Add(10 * 365 * 24 * time.Hour)
	c.TokenID = "forged-ten-years"
	forged, err := token.SignAccess(c, r.GetKid(), priv)
	if err != nil {
		t.Fatal(err)
	}
	for i, chk := range sc.checkEverywhere(forged) {
		if chk.Active || chk.Reason != checkreason.LifetimeTooLong {
			t.Errorf("node %d: a 10-year token is active=%v reason=%q, want %q", i, chk.Active, chk.Reason, checkreason.LifetimeTooLong)
		}
	}
	// Just under the bound is accepted (the bound is exp - iat, not age).
	c.Expiration = c.IssuedAt.Add(authsvc.DefaultMaxAccessLifetime)
	c.TokenID = "thirty-minutes"
	ok, err := token.SignAccess(c, r.GetKid(), priv)
	if err != nil {
		t.Fatal(err)
	}
	if chk := sc.svcs[1].CheckToken(ok); !chk.Active {
		t.Errorf("a token of exactly the max lifetime: %q, want active", chk.Reason)
	}
}

// The server never issues a token its verifiers would refuse: a
// configuration whose access TTL exceeds the max access lifetime is
// refused with ErrLifetimeTooLong.
func TestNewRefusesAccessTTLAboveMax(t *testing.T) {
	_, err := authsvc.New(authsvc.Config{
		Issuer: "https://auth.test", Audience: "test", AccessTTL: 20 * time.Minute, MaxAccessLifetime: 10 * time.Minute,
		RefreshTTL: time.Hour, SessionIdle: time.Hour, SessionAbsolute: 2 * time.Hour,
	}, authsvc.Deps{})
	if !errors.Is(err, authsvc.ErrLifetimeTooLong) {
		t.Fatalf("New with access TTL 20m, max 10m: %v, want ErrLifetimeTooLong", err)
	}
}
