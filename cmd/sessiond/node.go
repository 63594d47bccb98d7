package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessiond/sessiond/api/telegrambot"
	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/alerting"
	"github.com/sessiond/sessiond/authsvc/auditlog"
	"github.com/sessiond/sessiond/authsvc/keys"
	"github.com/sessiond/sessiond/authsvc/notify"
	"github.com/sessiond/sessiond/authsvc/password"
	"github.com/sessiond/sessiond/authsvc/throttle"
	"github.com/sessiond/sessiond/authsvc/users"
	"github.com/sessiond/sessiond/clients/go/policy"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/store"
)

// node is one running sessiond node: store, Raft, gossip, auth service and
// the HTTP server, with the background loops that keep them healthy.
type node struct {
	cfg Config
	log *slog.Logger

	st     *store.Store
	raft   *cluster.Node
	gossip *cluster.Gossip
	auth   *authsvc.Service
	pool   *pgxpool.Pool
	alerts *notify.Dispatcher
	// notifiers are the alerts' destinations (auth.notify and bot).
	notifiers []notify.Notifier
	hasher    *password.Hasher
	limiter   *throttle.Limiter
	events    *authsvc.Revocations
	oidc      oidcState
	reg       *prometheus.Registry
	metrics   *nodeMetrics
	tls       *nodeTLS

	ln      net.Listener
	srv     *http.Server
	opsrv   *http.Server // the local operator socket's server, if any
	apiAddr string       // host:port other nodes reach the API at
	apiURL  string

	cancel context.CancelFunc
	wg     sync.WaitGroup
	// stopping is closed when close starts: open watch streams end so
	// their receivers fail over (a draining server waits for them).
	stopping chan struct{}
	stopOnce sync.Once
	closed   bool // set by tests that stop nodes
	// restores counts snapshots installed into the store.
	restores atomic.Uint64
	// auditRing keeps the latest audit events (console.go); api is the
	// handler behind caller authentication the console calls through.
	auditRing *auditlog.Ring
	api       http.Handler
	// sampler keeps the console charts' samples; httpCount counts the
	// plain HTTP auth routes (consolemetrics.go).
	sampler   *nodeSampler
	httpCount func(pattern string, h http.HandlerFunc) http.HandlerFunc
	// alerter raises the cluster's alerts and bot is the Telegram bot
	// (bot.go); nil when not configured.
	alerter atomic.Pointer[alerting.Alerter]
	bot     atomic.Pointer[telegrambot.Bot]
	// rateMu guards the request counts /authstatus compares with.
	rateMu   sync.Mutex
	rateLast authsvc.Counts
	rateAt   time.Time
}

// startNode opens everything and starts serving. On error, whatever was
// opened is closed again.
func startNode(ctx context.Context, cfg Config, log *slog.Logger) (n *node, err error) {
	n = &node{cfg: cfg, log: log, stopping: make(chan struct{}),
		auditRing: auditlog.New(cfg.NodeID, cfg.Region, auditRingEvents, auditRingBytes), sampler: newSampler()}
	defer func() {
		if err != nil {
			n.close(context.Background())
			n = nil
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return n, fmt.Errorf("data-dir: %w", err)
	}
	kek, err := cfg.loadKEK()
	if err != nil {
		return n, err
	}
	gossipKey, err := cfg.gossipKey()
	if err != nil {
		return n, err
	}
	if n.tls, err = cfg.loadTLS(); err != nil {
		return n, err
	}
	if cfg.InsecurePlaintext {
		log.Warn("INSECURE: running without TLS and gossip encryption (insecure_plaintext): Raft, node-to-node calls, gossip and the client API " +
			"(passwords, tokens, operator tokens) travel in clear, and anyone who reaches the peer port can act as a node")
	}
	// Bind the API first: a port in use is the most common start failure.
	if n.ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return n, fmt.Errorf("http-addr %s: %w", cfg.HTTPAddr, err)
	}
	n.apiAddr = firstNonEmpty(cfg.AdvertiseHTTP, n.ln.Addr().String())
	n.apiURL = "https://" + n.apiAddr
	if n.apiTLS() == nil {
		n.apiURL = "http://" + n.apiAddr
	}

	// Revocations fan out to watchers (services' SDKs) from the apply path.
	n.events = authsvc.NewRevocations(1<<16, 1024, func() ([]authsvc.RevocationEvent, uint64, error) {
		return authsvc.StoreSnapshot(n.st)()
	})
	if n.st, err = store.Open(filepath.Join(cfg.DataDir, "state.db"), store.Options{
		Logger:    log.With("component", "store"),
		DeferSync: true,
		OnChanges: func(idx uint64, ch []store.Change) {
			n.events.Publish(idx, authsvc.EventsFromChanges(ch))
			n.oidcSessionsEnded(ch)
			n.sampler.observe(ch, time.Now())
			if a := n.alerter.Load(); a != nil {
				a.ObserveChanges(ch)
			}
		},
		OnRestore: func(idx uint64) { n.restores.Add(1); n.events.Reset(idx) },
	}); err != nil {
		return n, err
	}
	// Events before this index were applied in an earlier run: a watcher
	// resuming from before it gets a snapshot.
	n.events.Reset(n.st.AppliedIndex())
	timeouts := cluster.LANTimeouts()
	if cfg.WAN {
		timeouts = cluster.WANTimeouts()
	}
	if cfg.raftTimeouts != nil {
		timeouts = *cfg.raftTimeouts
	}
	if n.raft, err = cluster.Open(cluster.Config{
		NodeID: cfg.NodeID, Region: cfg.Region, DataDir: cfg.DataDir,
		RaftBind: cfg.RaftAddr, RaftAdvertise: cfg.AdvertiseRaft, Timeouts: timeouts,
		TLS: n.tls.peerTLS(), InsecurePlaintext: cfg.InsecurePlaintext, DialPeer: cfg.peerDial,
		SnapshotThreshold: cfg.SnapshotThreshold, SnapshotInterval: cfg.SnapshotInterval, TrailingLogs: cfg.TrailingLogs,
		RequestTimeout: cfg.RequestTimeout,
		Logger:         log, NonVoter: !cfg.Voter, BootstrapExpect: cfg.BootstrapExpect, OnRemoved: n.onRemoved,
		Autopilot: cluster.Autopilot{Stabilization: cfg.Autopilot.Stabilization, MaxLagEntries: cfg.Autopilot.MaxLagEntries},
	}, n.st); err != nil {
		return n, fmt.Errorf("raft-addr %s: %w", cfg.RaftAddr, err)
	}
	n.raft.SetReporter(n.report)
	if n.gossip, err = cluster.NewGossip(cluster.GossipConfig{
		NodeID: n.raft.ID(), Region: n.raft.Region(), Bind: cfg.GossipAddr, Advertise: cfg.AdvertiseGossip,
		APIAddr: n.apiAddr, RaftAddr: n.raft.RaftAddr(),
		AppliedIndex: n.raft.AppliedIndex, Voter: cfg.Voter, Version: version,
		SecretKey: gossipKey, InsecurePlaintext: cfg.InsecurePlaintext, ClusterID: n.raft.ClusterID,
		WAN: cfg.WAN, Logger: log,
	}); err != nil {
		return n, fmt.Errorf("gossip-addr %s: %w", cfg.GossipAddr, err)
	}
	n.raft.AttachGossip(n.gossip)
	switch {
	case cfg.Bootstrap && cfg.dev: // a throwaway cluster on loopback
		err = n.raft.Bootstrap()
	case cfg.Bootstrap:
		err = n.raft.BootstrapChecked(ctx, cfg.RetryJoin)
	}
	if err != nil {
		return n, err
	}

	n.reg = newMetrics(n)
	n.httpCount = httpCounter(n.reg)
	dir, err := n.directory(ctx)
	if err != nil {
		return n, err
	}
	if err := n.startAuth(dir, kek); err != nil {
		return n, err
	}
	if err := n.startOIDC(); err != nil {
		return n, err
	}
	handler := n.routes()
	lim := cfg.Limits
	n.srv = &http.Server{Handler: handler, ReadHeaderTimeout: lim.ReadHeaderTimeout, IdleTimeout: lim.IdleTimeout,
		MaxHeaderBytes: lim.MaxHeaderBytes}
	if err := n.serveOperatorSocket(handler); err != nil {
		return n, err
	}
	if tc := n.apiTLS(); tc != nil {
		n.srv.TLSConfig = tc
		n.go_(func(context.Context) {
			if err := n.srv.ServeTLS(n.ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("https server stopped", "err", err)
			}
		})
	} else {
		// Plaintext: HTTP/1.1 and HTTP/2 with prior knowledge (h2c), so
		// native gRPC clients (grpcurl -plaintext) work too.
		protos := new(http.Protocols)
		protos.SetHTTP1(true)
		protos.SetUnencryptedHTTP2(true)
		n.srv.Protocols = protos
		n.go_(func(context.Context) {
			if err := n.srv.Serve(n.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server stopped", "err", err)
			}
		})
	}

	bg, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	if err := n.startAlerts(bg, n.notifiers); err != nil {
		return n, err
	}
	n.go_(func(context.Context) { n.st.RunPurger(bg, purgeProposer{n.proposer()}, time.Second, 512, time.Now) })
	n.go_(func(context.Context) { n.auth.RunKeyRotation(bg) })
	n.runOIDC(bg)
	n.go_(func(context.Context) { n.sampler.run(bg, n.counterTotals) })
	n.go_(func(context.Context) { n.runUpstreamRevalidation(bg) })
	n.go_(func(context.Context) { n.gossip.KeepPeers(bg, cfg.DataDir) })
	if len(cfg.Join) > 0 {
		n.go_(func(context.Context) { _ = n.raft.JoinCluster(bg, cfg.Join, cfg.Voter) })
	}
	if cfg.BootstrapExpect > 0 {
		n.go_(func(context.Context) { _ = n.raft.BootstrapExpect(bg, cfg.RetryJoin, cfg.BootstrapExpect) })
	}
	if n.tls.peer != nil {
		n.tls.watch(bg, 5*time.Second, log, n.go_)
		n.go_(func(context.Context) { n.tls.warnExpiry(bg, log, n.raiseAlert, n.raft.ID(), n.raft.Region()) })
	}
	if cfg.PreferredRegion != "" {
		n.go_(func(context.Context) { n.preferRegion(bg) })
	}
	log.Info("node started", "node", n.raft.ID(), "region", n.raft.Region(), "api", n.apiURL,
		"peer", n.raft.RaftAddr(), "gossip", n.gossip.Addr(), "cluster_id", n.raft.ClusterID(), "peer_tls", n.tls.peer != nil)
	return n, nil
}

// apiTLS is the client API's TLS configuration, nil when it is plaintext
// (insecure mode, dev mode on loopback).
func (n *node) apiTLS() *tls.Config {
	if n.cfg.plainAPI {
		return nil
	}
	return n.tls.apiConfig()
}

// go_ runs f in a goroutine that close waits for.
func (n *node) go_(f func(context.Context)) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f(context.Background())
	}()
}

// directory opens the user directory: Postgres when configured, else the
// built-in directory kept in the replicated store.
func (n *node) directory(ctx context.Context) (users.Directory, error) {
	if n.cfg.DatabaseURL == "" {
		return authsvc.NewBuiltinDirectory(n.st, n.proposer()), nil
	}
	pool, err := pgxpool.New(ctx, n.cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("database-url: %w", err)
	}
	n.pool = pool
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		return nil, fmt.Errorf("database-url: cannot reach Postgres: %w", err)
	}
	if n.cfg.Migrate {
		if err := users.Migrate(pctx, pool); err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
	}
	return users.NewPostgres(pool), nil
}

// startAuth builds the auth service and its collaborators.
func (n *node) startAuth(dir users.Directory, kek keys.KEK) error {
	a := n.cfg.Auth
	hasher, err := password.NewHasher(password.Config{Params: password.Params{
		Memory: a.Password.MemoryKiB, Time: a.Password.Time, Threads: a.Password.Threads,
		SaltLen: 16, KeyLen: 32,
	}})
	if err != nil {
		return fmt.Errorf("auth.password: %w", err)
	}
	rules := make([]policy.Rule, 0, len(a.Policy))
	for _, r := range a.Policy {
		rules = append(rules, policy.Rule{Resource: r.Resource, Actions: r.Actions, AnyRole: r.AnyRole, Require: r.Require})
	}
	pol, err := policy.New(rules)
	if err != nil {
		return fmt.Errorf("auth.policy: %w", err)
	}
	// One limiter for logins and service-client secrets, its counts in the
	// replicated store: every node imposes the same delays.
	limiter, err := throttle.New(throttle.DefaultConfig(), authsvc.NewThrottleStore(n.proposer(), n.st))
	if err != nil {
		return err
	}
	n.hasher, n.limiter = hasher, limiter
	upstream, err := n.cfg.IdentityProviders.upstream()
	if err != nil {
		return err
	}
	if n.cfg.Bot.enabled() {
		if err := n.cfg.Bot.loadSecrets(); err != nil {
			return err
		}
	}
	n.notifiers = append(notifiers(a.Notify), n.cfg.Bot.notifiers()...)
	n.alerts = notify.NewDispatcher(notify.DispatcherConfig{Logger: n.log.With("component", "notify")}, n.notifiers...)
	n.auth, err = authsvc.New(authsvc.Config{
		Issuer: a.Issuer, Audience: a.Audience, AccessTTL: a.AccessTTL, MaxAccessLifetime: a.MaxAccessLifetime, RefreshTTL: a.RefreshTTL,
		SessionIdle: a.SessionIdle, SessionAbsolute: a.SessionAbsolute, RefreshGrace: a.RefreshGrace,
		KeyRotation: a.KeyRotation, Signup: a.Signup, JWTAccessTokens: a.JWTAccessTokens,
		Region: n.raft.Region(), NodeID: n.raft.ID(),
	}, authsvc.Deps{
		Cluster: n.proposer(), State: n.st, Directory: dir, Hasher: hasher, KEK: kek,
		Policy: pol, Throttle: limiter, Notifier: n.alerts,
		Upstream: upstream,
		OnTokenError: func(ip, code string) {
			if a := n.alerter.Load(); a != nil {
				a.ObserveTokenError(ip, code)
			}
		},
		Logger: n.auditLog(),
	})
	return err
}

// notifiers builds the configured security-event notifiers.
func notifiers(c NotifyConfig) []notify.Notifier {
	var out []notify.Notifier
	if c.TelegramBotToken != "" && c.TelegramChatID != "" {
		out = append(out, &notify.Telegram{BaseURL: c.TelegramBaseURL, BotToken: c.TelegramBotToken, ChatID: c.TelegramChatID})
	}
	if c.WebhookURL != "" {
		out = append(out, &notify.Webhook{URL: c.WebhookURL, Secret: c.WebhookSecret})
	}
	return out
}

// close drains the node: stop taking requests, hand leadership over if it
// leads, leave gossip, stop Raft and close the store.
func (n *node) close(ctx context.Context) {
	n.stopOnce.Do(func() { close(n.stopping) })
	if n.opsrv != nil {
		_ = n.opsrv.Close()
	}
	if n.srv != nil {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = n.srv.Shutdown(sctx)
		cancel()
	} else if n.ln != nil {
		_ = n.ln.Close()
	}
	if n.cancel != nil {
		n.cancel()
	}
	if n.raft != nil && n.raft.IsLeader() {
		tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if err := n.raft.TransferLeadership(tctx, ""); err != nil {
			n.log.Info("no leadership transfer on shutdown", "err", err)
		}
		cancel()
	}
	if n.gossip != nil {
		_ = n.gossip.Leave(time.Second)
		_ = n.gossip.Shutdown()
	}
	n.wg.Wait()
	if n.raft != nil {
		if err := n.raft.Shutdown(); err != nil {
			n.log.Warn("raft shutdown", "err", err)
		}
	}
	if n.alerts != nil {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_ = n.alerts.Close(dctx)
		cancel()
	}
	if n.st != nil {
		if err := n.st.Close(); err != nil {
			n.log.Warn("store close", "err", err)
		}
	}
	if n.pool != nil {
		n.pool.Close()
	}
}

// proposer adapts *cluster.Node to the small interfaces the store and the
// auth service declare, timing every write.
type proposer struct {
	n    *cluster.Node
	time prometheus.Observer
}

func (n *node) proposer() proposer { return proposer{n: n.raft, time: n.metrics.applyTime} }

func (p proposer) IsLeader() bool { return p.n.IsLeader() }

func (p proposer) Sync(ctx context.Context) error {
	_, err := p.n.ReadBarrier(ctx, cluster.ReadOptions{Consistency: cluster.ConsistencyLinearizable})
	return err
}

func (p proposer) Propose(ctx context.Context, cmd []byte) (uint64, []byte, error) {
	start := time.Now()
	a, err := p.n.Propose(ctx, cmd)
	p.time.Observe(time.Since(start).Seconds())
	return a.Index, a.Response, err
}

// purgeProposer adapts proposer to store.Proposer.
type purgeProposer struct{ proposer }

func (p purgeProposer) Propose(ctx context.Context, cmd []byte) ([]byte, error) {
	_, out, err := p.proposer.Propose(ctx, cmd)
	return out, err
}
