package authsvc_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/authsvctest"
	"github.com/sessiond/sessiond/authsvc/users"
	"github.com/sessiond/sessiond/cluster/clustertest"
	"github.com/sessiond/sessiond/store"
)

// opEnv is one provider over authsvctest's in-memory cluster, with a
// settable clock.
func opEnv(t *testing.T, bcURL string) (*authsvctest.Env, *authsvc.Provider) {
	t.Helper()
	env := authsvctest.New(t, authsvctest.Options{})
	hash, err := authsvctest.FastHasher(t).Hash(confSecret)
	if err != nil {
		t.Fatal(err)
	}
	p, err := authsvc.NewProvider(env.Svc, authsvc.ProviderConfig{
		Clients: []authsvc.OIDCClient{{ID: opPublic, AuthMethod: authsvc.AuthNone, RedirectURIs: []string{opRedirect},
			FirstParty: true, BackchannelLogoutURI: bcURL},
			{ID: "conf", AuthMethod: authsvc.AuthClientSecretBasic, SecretHash: hash, GrantTypes: []string{authsvc.GrantClientCredentials}}},
		BackchannelMaxElapsed: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { p.RunKeyRotation(ctx); done <- struct{}{} }()
	go func() { p.RunBackchannel(ctx, 2); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	clustertest.WaitFor(t, 30*time.Second, "ID-token keys", func() bool { return len(p.JWKS()) == 2 })
	return env, p
}

const confSecret = "conf-secret-0123456789abcdef"

// TestOIDCClientSecretThrottled: wrong client secrets are throttled per
// client and address, cluster-wide; the real client from elsewhere still
// authenticates.
func TestOIDCClientSecretThrottled(t *testing.T) {
	_, p := opEnv(t, "")
	ctx := context.Background()
	try := func(secret, ip string) error {
		_, err := p.Token(ctx, authsvc.TokenRequest{Form: tokenForm("grant_type", "client_credentials"), HasBasic: true,
			BasicUser: "conf", BasicPass: secret, HTTPClient: authsvc.Client{IP: ip}})
		return err
	}
	var err error
	for i := 0; i < 10 && oauthCode(err) != "too_many_attempts"; i++ {
		err = try("wrong", "198.51.100.1")
		if c := oauthCode(err); c != authsvc.ErrCodeInvalidClient && c != "too_many_attempts" {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if oauthCode(err) != "too_many_attempts" || authsvc.ErrorKind(err) != authsvc.KindThrottled {
		t.Fatalf("ten wrong secrets from one address: %v, want too_many_attempts", err)
	}
	if err := try(confSecret, "198.51.100.2"); err != nil {
		t.Errorf("the right secret from another address: %v", err)
	}
}

// redeem runs a code flow for the browser session cookie and returns the
// token response.
func redeem(t *testing.T, p *authsvc.Provider, cookie string) *authsvc.TokenResponse {
	t.Helper()
	ctx := context.Background()
	verifier, challenge := pkce(t)
	ar, aerr := p.ParseAuthorize(authzQuery(opPublic, challenge))
	if aerr != nil {
		t.Fatal(aerr)
	}
	sso, ok := p.BrowserSession(ctx, cookie)
	if !ok {
		t.Fatal("no browser session")
	}
	loc, err := p.IssueCode(ctx, ar, sso)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(loc)
	res, err := p.Token(ctx, authsvc.TokenRequest{Form: tokenForm("grant_type", "authorization_code", "code", u.Query().Get("code"),
		"redirect_uri", opRedirect, "code_verifier", verifier, "client_id", opPublic)})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestOIDCCodeExpires: a code past its life is refused (invalid_grant).
func TestOIDCCodeExpires(t *testing.T) {
	env, p := opEnv(t, "")
	env.CreateUser(t, "dan@example.com", "correct horse battery")
	ctx := context.Background()
	cookie, err := p.PasswordLogin(ctx, "dan@example.com", "correct horse battery", authsvc.Client{})
	if err != nil {
		t.Fatal(err)
	}
	verifier, challenge := pkce(t)
	ar, _ := p.ParseAuthorize(authzQuery(opPublic, challenge))
	sso, _ := p.BrowserSession(ctx, cookie)
	loc, err := p.IssueCode(ctx, ar, sso)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(loc)
	env.Clock.Advance(61 * time.Second)
	_, err = p.Token(ctx, authsvc.TokenRequest{Form: tokenForm("grant_type", "authorization_code", "code", u.Query().Get("code"),
		"redirect_uri", opRedirect, "code_verifier", verifier, "client_id", opPublic)})
	if oauthCode(err) != authsvc.ErrCodeInvalidGrant {
		t.Errorf("a code 61 s old: %v, want invalid_grant", err)
	}
}

// TestOIDCUpstreamHandoff: OpenBrowserSession (the relying-party side's
// entry) opens an SSO session a code flow can use; a suspended user gets
// none.
func TestOIDCUpstreamHandoff(t *testing.T) {
	env, p := opEnv(t, "")
	u := env.CreateUser(t, "erin@example.com", "correct horse battery")
	ctx := context.Background()
	cookie, err := p.OpenBrowserSession(ctx, u.ID, authsvc.Client{IP: "192.0.2.9"}, "google")
	if err != nil {
		t.Fatal(err)
	}
	if res := redeem(t, p, cookie); res.IDToken == "" {
		t.Errorf("no ID token after an upstream sign-in")
	}
	if _, ok := p.BrowserSession(ctx, cookie+"x"); ok {
		t.Errorf("a cookie with a wrong secret names a session")
	}
	if err := env.Svc.SetUserStatus(ctx, "erin@example.com", users.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	if _, err := p.OpenBrowserSession(ctx, u.ID, authsvc.Client{}, "google"); err == nil {
		t.Errorf("a suspended user got a browser session")
	}
	if _, ok := p.BrowserSession(ctx, cookie); ok {
		t.Errorf("the browser session outlived the suspension")
	}
}

// TestOIDCBackchannelRetriesOnSuspension: suspending the user ends its
// client sessions; the client's back-channel endpoint answers 503 once and
// then gets the logout token.
func TestOIDCBackchannelRetriesOnSuspension(t *testing.T) {
	var mu sync.Mutex
	calls, tokens := 0, []string{}
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_ = r.ParseForm()
		tokens = append(tokens, r.PostForm.Get("logout_token"))
	}))
	defer rp.Close()
	env, p := opEnv(t, rp.URL)
	env.CreateUser(t, "fay@example.com", "correct horse battery")
	ctx := context.Background()
	cookie, err := p.PasswordLogin(ctx, "fay@example.com", "correct horse battery", authsvc.Client{})
	if err != nil {
		t.Fatal(err)
	}
	res := redeem(t, p, cookie)
	before := env.Svc.CheckToken(res.AccessToken)
	if !before.Active {
		t.Fatalf("fresh access token inactive: %+v", before)
	}
	if err := env.Svc.SetUserStatus(ctx, "fay@example.com", users.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	if c := env.Svc.CheckToken(res.AccessToken); c.Active {
		t.Fatalf("the client's access token is active after the suspension")
	}
	// authsvctest has no apply hook: feed the ended client session as the
	// store's OnChanges does in the daemon.
	p.SessionsEnded([]store.Change{{Kind: store.ChangeSessionEnded, ID: before.Claims.SessionID, ClientID: opPublic}})
	clustertest.WaitFor(t, 20*time.Second, "the logout token after one 503", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(tokens) == 1 && calls == 2
	})
}

// TestOIDCBackchannelNotCrowdedOut: while a client's back-channel endpoint
// hangs and holds the delivery workers, ten thousand ordinary logouts (the
// service's own sessions, no client) end: they take no place in the
// delivery queue, so the logout token of a client session ended after
// them is still delivered once the endpoint answers.
func TestOIDCBackchannelNotCrowdedOut(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var tokens []string
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		_ = r.ParseForm()
		mu.Lock()
		defer mu.Unlock()
		tokens = append(tokens, r.PostForm.Get("logout_token"))
	}))
	defer rp.Close()
	env, p := opEnv(t, rp.URL)
	env.CreateUser(t, "gus@example.com", "correct horse battery")
	ctx := context.Background()
	var clientSessions []string
	for range 3 {
		cookie, err := p.PasswordLogin(ctx, "gus@example.com", "correct horse battery", authsvc.Client{})
		if err != nil {
			t.Fatal(err)
		}
		res := redeem(t, p, cookie)
		clientSessions = append(clientSessions, env.Svc.CheckToken(res.AccessToken).Claims.SessionID)
	}
	end := func(sid, client string) store.Change {
		return store.Change{Kind: store.ChangeSessionEnded, ID: sid, ClientID: client}
	}
	// Two client sessions end: the two workers wait on the endpoint.
	p.SessionsEnded([]store.Change{end(clientSessions[0], opPublic), end(clientSessions[1], opPublic)})
	ordinary := make([]store.Change, 10_000)
	for i := range ordinary {
		ordinary[i] = end(fmt.Sprintf("ordinary-%d", i), "")
	}
	p.SessionsEnded(ordinary)
	p.SessionsEnded([]store.Change{end(clientSessions[2], opPublic)})
	close(release)
	clustertest.WaitFor(t, 20*time.Second, "three logout tokens", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(tokens) == 3
	})
}
