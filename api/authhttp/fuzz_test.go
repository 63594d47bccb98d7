package authhttp_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/api/authhttp"
	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/keys"
	"github.com/sessiond/sessiond/authsvc/password"
	"github.com/sessiond/sessiond/authsvc/throttle"
	"github.com/sessiond/sessiond/authsvc/users"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/clustertest"
	"github.com/sessiond/sessiond/store"
)

// authCluster adapts a real *cluster.Node to authsvc.Cluster.
type authCluster struct{ n *cluster.Node }

func (c authCluster) Propose(ctx context.Context, cmd []byte) (uint64, []byte, error) {
	a, err := c.n.Propose(ctx, cmd)
	return a.Index, a.Response, err
}

func (c authCluster) IsLeader() bool { return c.n.IsLeader() }

func (c authCluster) Sync(ctx context.Context) error {
	_, err := c.n.ReadBarrier(ctx, cluster.ReadOptions{Consistency: cluster.ConsistencyLinearizable})
	return err
}

const (
	authFuzzEmail = "fuzz@example.com"
	authFuzzPW    = "correct horse battery"
)

// authHandler serves the routes of a real service on a one-node cluster
// (real Raft on loopback, real bbolt, the built-in directory, cheap argon2
// parameters) with one user, authFuzzEmail.
func authHandler(t testing.TB) http.Handler { return authHandlerWith(t, authhttp.Options{}) }

// authHandlerWith is authHandler with opts.
func authHandlerWith(t testing.TB, opts authhttp.Options) http.Handler {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{NoSync: true, InitialMmapSize: 1 << 20})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	cfg := clustertest.NodeConfig(t, 0)
	cfg.Timeouts = cluster.LANTimeouts().Scale(0.1) // one voter: no follower to lose
	n, err := cluster.Open(cfg, st)
	if err != nil {
		_ = st.Close()
		t.Fatalf("open node: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
		_ = n.Shutdown()
		_ = st.Close()
	})
	if err := n.Bootstrap(); err != nil {
		close(done)
		t.Fatalf("bootstrap: %v", err)
	}
	var kb [32]byte
	if _, err := rand.Read(kb[:]); err != nil {
		close(done)
		t.Fatal(err)
	}
	kek, err := keys.NewKEK(kb[:])
	if err != nil {
		close(done)
		t.Fatal(err)
	}
	h, err := password.NewHasher(password.Config{Params: password.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if err != nil {
		close(done)
		t.Fatal(err)
	}
	c := authCluster{n}
	lim, err := throttle.New(throttle.DefaultConfig(), authsvc.NewThrottleStore(c, st))
	if err != nil {
		close(done)
		t.Fatal(err)
	}
	svc, err := authsvc.New(authsvc.Config{Issuer: "https://auth.test", Audience: "sessiond",
		AccessTTL: 15 * time.Minute, RefreshTTL: time.Hour, SessionIdle: time.Hour, SessionAbsolute: 2 * time.Hour,
		RefreshGrace: 10 * time.Second, KeyRotation: 24 * time.Hour, Region: "test", NodeID: "node-0",
	}, authsvc.Deps{Cluster: c, State: st, Directory: authsvc.NewBuiltinDirectory(st, c), Hasher: h, KEK: kek, Throttle: lim,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		close(done)
		t.Fatal(err)
	}
	go func() { defer close(done); svc.RunKeyRotation(ctx) }()
	clustertest.WaitFor(t, 10*time.Second, "a signing key", func() bool { return len(svc.PublishedKeys()) > 0 })
	if _, err := svc.CreateUser(context.Background(), authsvc.NewUserInput{Email: authFuzzEmail, Password: authFuzzPW,
		DisplayName: "Fuzz", OrgName: "Fuzz Org", Country: "TH", OrgType: users.OrgCustomer}); err != nil {
		t.Fatalf("create user: %v", err)
	}
	mux := http.NewServeMux()
	authhttp.Register(mux, svc, opts)
	return mux
}

// authSeeds are the seed bodies and content types (also in
// testdata/fuzz/FuzzLoginBody).
var authSeeds = []struct {
	body, contentType string
}{
	{`{"email":"fuzz@example.com","password":"correct horse battery","platform":"web","device_id":"laptop"}`, "application/json"},
	{`{"email":"fuzz@example.com","password":"correct horse battery","platform":"web","device_id":"laptop","force":true,"refresh_cookie":true}`, "application/json; charset=utf-8"},
	{`{"email":"fuzz@example.com","password":"wrong","platform":"ios","device_id":"phone"}`, "application/json"},
	{`{"email":`, "application/json"},
	{`{"email":"a","password":"b","platform":"web","device_id":"d"}{}`, "application/json"},
	{`{"email":"a","admin":true}`, "application/json"},
	{`{"email":1,"password":null,"platform":[],"device_id":{}}`, "application/json"},
	{`{"platform":"\u0000\ud800"}`, "application/json"},
	{"{\"email\":\"\xff\xfe@example.com\",\"password\":\"x\",\"platform\":\"web\",\"device_id\":\"\xc0\"}", "application/json"},
	{`{"email":"' OR 1=1 --@x.com","password":"x","platform":"PLAYSTATION","device_id":"d"}`, "application/json"},
	{`[]`, "application/json"},
	{`null`, "application/json"},
	{``, "application/json"},
	{`{"email":"a@b.c"}`, "text/plain"},
	{`{"email":"a@b.c"}`, ""},
	{`{"email":"a@b.c"}`, "application/json; charset"},
	{`{"refresh_token":"v4.public.AAAA.BBBB"}`, "application/json"},
}

// authCheck sends body to the login and token routes and fails on a 5xx,
// or on a 4xx that is not a JSON {"error","message"}.
func authCheck(t *testing.T, h http.Handler, body []byte, contentType string) {
	t.Helper()
	for _, path := range []string{"/auth/login", "/auth/signup", "/auth/token", "/auth/logout"} {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.RemoteAddr = "192.0.2.1:1234"
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch code := rec.Code; {
		case code >= 500:
			t.Fatalf("POST %s %q (%q): got %d %s, want no 5xx", path, body, contentType, code, rec.Body)
		case code >= 400:
			var e struct{ Error, Message string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" || e.Message == "" {
				t.Fatalf("POST %s %q (%q): got %d with body %q, want a JSON error and message", path, body, contentType, code, rec.Body)
			}
		case code == http.StatusOK && path != "/auth/logout":
			if !strings.Contains(rec.Body.String(), `"access_token":"v4.public.`) {
				t.Fatalf("POST %s: 200 without an access token: %s", path, rec.Body)
			}
		}
	}
}

// TestAuthHTTPDecoderSeeds runs the fuzz seeds as a plain test (the
// selection `-run Auth` does not include FuzzLoginBody).
func TestAuthHTTPDecoderSeeds(t *testing.T) {
	h := authHandler(t)
	for _, s := range authSeeds {
		authCheck(t, h, []byte(s.body), s.contentType)
	}
}

// FuzzLoginBody drives the real login, signup, token and logout handlers with
// arbitrary bodies and content types: never a 5xx, never a panic, every
// error a JSON body with error and message.
func FuzzLoginBody(f *testing.F) {
	for _, s := range authSeeds {
		f.Add([]byte(s.body), s.contentType)
	}
	h := authHandler(f)
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		authCheck(t, h, body, contentType)
	})
}
