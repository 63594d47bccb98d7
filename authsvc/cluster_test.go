package authsvc_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/keys"
	"github.com/sessiond/sessiond/authsvc/password"
	"github.com/sessiond/sessiond/authsvc/throttle"
	"github.com/sessiond/sessiond/authsvc/users"
	"github.com/sessiond/sessiond/authsvc/users/userstest"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/clustertest"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	"github.com/sessiond/sessiond/store"
)

// svcCluster is an in-process cluster of auth services: real Raft over
// TLS on loopback, a real bbolt store per node, one authsvc.Service per
// node sharing a KEK, as the agent wires them.
type svcCluster struct {
	t      *testing.T
	nodes  []*cluster.Node
	stores []*store.Store
	svcs   []*authsvc.Service
	// limiters are the nodes' throttles (logins and client secrets), over
	// the replicated store.
	limiters []*throttle.Limiter
	kek      keys.KEK
}

// dirKind selects the user directory of a svcCluster.
type dirKind int

const (
	builtinDir dirKind = iota
	postgresDir
)

// newSvcCluster starts n nodes with the given directory (the built-in one
// per node over its store, or one fresh Postgres database they share) and
// waits until every node holds the first signing key. adjust may change
// each node's service config and deps before it is built.
func newSvcCluster(t *testing.T, n int, dk dirKind, adjust func(i int, cfg *authsvc.Config, d *authsvc.Deps)) *svcCluster {
	t.Helper()
	sc := &svcCluster{t: t, stores: make([]*store.Store, n), svcs: make([]*authsvc.Service, n), limiters: make([]*throttle.Limiter, n)}
	sc.nodes = clustertest.StartCluster(t, n, func(i int) raft.FSM {
		st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{NoSync: true, InitialMmapSize: 1 << 20})
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		t.Cleanup(func() { _ = st.Close() })
		sc.stores[i] = st
		return st
	})
	var pgDir users.Directory
	if dk == postgresDir {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pool, err := pgxpool.New(ctx, userstest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		if err := users.Migrate(ctx, pool); err != nil {
			t.Fatal(err)
		}
		pgDir = users.NewPostgres(pool)
	}
	kek, err := keys.NewKEK(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	h, err := password.NewHasher(password.Config{Params: password.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if err != nil {
		t.Fatal(err)
	}
	sc.kek = kek
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for i, node := range sc.nodes {
		c := dirCluster{node}
		var dir users.Directory = pgDir
		if dk == builtinDir {
			dir = authsvc.NewBuiltinDirectory(sc.stores[i], c)
		}
		lim, err := throttle.New(throttle.DefaultConfig(), authsvc.NewThrottleStore(c, sc.stores[i]))
		if err != nil {
			t.Fatal(err)
		}
		sc.limiters[i] = lim
		cfg := authsvc.Config{
			Issuer: "https://auth.test", Audience: "test", AccessTTL: 5 * time.Minute, RefreshTTL: time.Hour,
			SessionIdle: time.Hour, SessionAbsolute: 24 * time.Hour, RefreshGrace: time.Second,
			KeyRotation: 24 * time.Hour, Region: "test", NodeID: node.ID(),
		}
		d := authsvc.Deps{Cluster: c, State: sc.stores[i], Directory: dir, Hasher: h, KEK: kek, Throttle: lim, Logger: clustertest.Logger()}
		if adjust != nil {
			adjust(i, &cfg, &d)
		}
		svc, err := authsvc.New(cfg, d)
		if err != nil {
			t.Fatalf("authsvc.New: %v", err)
		}
		sc.svcs[i] = svc
		go svc.RunKeyRotation(ctx)
	}
	clustertest.WaitFor(t, 20*time.Second, "every node to hold a signing key", func() bool {
		for _, s := range sc.svcs {
			if len(s.PublishedKeys()) == 0 {
				return false
			}
		}
		return true
	})
	return sc
}

// sync makes node i's state reflect every acknowledged write.
func (sc *svcCluster) sync(i int) {
	sc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := (dirCluster{sc.nodes[i]}).Sync(ctx); err != nil {
		sc.t.Fatalf("sync node %d: %v", i, err)
	}
}

// createUser creates a user with password pw through node 0.
func (sc *svcCluster) createUser(email, pw string) users.User {
	sc.t.Helper()
	u, err := sc.svcs[0].CreateUser(context.Background(), authsvc.NewUserInput{
		Email: email, Password: pw, DisplayName: "T", OrgName: "Org", Country: "TH", OrgType: users.OrgCustomer,
	})
	if err != nil {
		sc.t.Fatalf("create user %s: %v", email, err)
	}
	return u
}

// login logs in through node i.
func (sc *svcCluster) login(i int, email, pw string, p storev1.Platform) *authsvc.Tokens {
	sc.t.Helper()
	tok, err := sc.svcs[i].Login(context.Background(), authsvc.LoginInput{
		Email: email, Password: pw, Platform: p, DeviceID: "dev-" + p.String(), Client: authsvc.Client{IP: "192.0.2.1"},
	})
	if err != nil {
		sc.t.Fatalf("login %s on node %d: %v", email, i, err)
	}
	return tok
}

// checkEverywhere syncs every node and returns each node's check of tok.
func (sc *svcCluster) checkEverywhere(tok string) []authsvc.Check {
	sc.t.Helper()
	out := make([]authsvc.Check, len(sc.svcs))
	for i, s := range sc.svcs {
		sc.sync(i)
		out[i] = s.CheckToken(tok)
	}
	return out
}
