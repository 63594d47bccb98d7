package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sessiond/sessiond/authsvc/callers"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/pki"
	"gopkg.in/yaml.v3"
)

// Config is the whole configuration of one node. Every field can come from
// the YAML file given with --config; the node's own settings can also come
// from flags and SESSIOND_* environment variables. Precedence: flag, then
// environment, then file, then default.
type Config struct {
	// NodeID names the node in the cluster; unique and stable. Defaults to
	// the identity stored in the data dir, else the host name.
	NodeID string `yaml:"node_id"`
	// Region is the node's region, lower-case letters, digits and dashes
	// (hk, seoul, ap-northeast-2).
	Region string `yaml:"region"`
	// DataDir holds the Raft log, snapshots, the state file and the node's
	// identity.
	DataDir string `yaml:"data_dir"`
	// HTTPAddr is the client API's listen address (Connect, gRPC, HTTP/JSON,
	// health and metrics).
	HTTPAddr string `yaml:"http_addr"`
	// RaftAddr is the listen address of the node's peer address: Raft and
	// node-to-node RPC, over mutual TLS.
	RaftAddr string `yaml:"raft_addr"`
	// GossipAddr is memberlist's listen address (TCP and UDP).
	GossipAddr string `yaml:"gossip_addr"`
	// AdvertiseHTTP, AdvertiseRaft and AdvertiseGossip are the addresses
	// other nodes use when the bind address is not reachable (0.0.0.0, NAT).
	AdvertiseHTTP   string `yaml:"advertise_http"`
	AdvertiseRaft   string `yaml:"advertise_raft"`
	AdvertiseGossip string `yaml:"advertise_gossip"`
	// Bootstrap starts a new cluster with this node as its only voter.
	// Ignored when the data dir already holds a cluster. Refused when one
	// of the RetryJoin peers already belongs to a cluster. Prefer
	// BootstrapExpect.
	Bootstrap bool `yaml:"bootstrap"`
	// BootstrapExpect, with RetryJoin, forms a new cluster of this many
	// voters: every server gets the same value and peer list, in any start
	// order; the lowest node id bootstraps once all are reachable, the
	// others join. A node whose peers already form a cluster joins it.
	BootstrapExpect int `yaml:"bootstrap_expect"`
	// RetryJoin lists the peer addresses (host:port, their raft_addr) of the
	// cluster's servers, for BootstrapExpect (and the peers Bootstrap
	// checks).
	RetryJoin []string `yaml:"retry_join"`
	// Join lists peer addresses (host:port, their raft_addr) of existing
	// members; the node asks them, any of them, to add it, with backoff,
	// until one succeeds or one refuses for good.
	Join []string `yaml:"join"`
	// Autopilot tunes the leader's promotion of joining nodes to voters.
	Autopilot AutopilotConfig `yaml:"autopilot"`
	// Voter is false for a non-voting read replica.
	Voter bool `yaml:"voter"`
	// WAN selects the WAN timeout profile for Raft and memberlist.
	WAN bool `yaml:"wan"`
	// PreferredRegion, when set, makes the leader hand leadership to a
	// voter in this region when it is not in it itself.
	PreferredRegion string `yaml:"preferred_region"`
	// GossipKeyFile holds the base64 AES key (16, 24 or 32 bytes) that
	// encrypts gossip; required unless InsecurePlaintext.
	GossipKeyFile string `yaml:"gossip_key_file"`
	// TLS is the peer TLS setting: the node's certificate and the cluster
	// CA, used on every node-to-node channel and, by default, on the client
	// API. Required unless InsecurePlaintext.
	TLS TLSConfig `yaml:"tls"`
	// APITLS overrides the client API's certificate and client CA.
	APITLS APITLSConfig `yaml:"api_tls"`
	// InsecurePlaintext runs without TLS and gossip encryption: every
	// channel in clear, anyone who reaches the peer port can act as a
	// node. For a laptop only; logged at WARN on every start.
	InsecurePlaintext bool `yaml:"insecure_plaintext"`
	// LogLevel is debug, info, warn or error; LogFormat is json or text.
	LogLevel  string `yaml:"log_level"`
	LogFormat string `yaml:"log_format"`
	// DatabaseURL is the Postgres DSN of the user directory. Empty selects
	// the built-in directory kept in the replicated store.
	DatabaseURL string `yaml:"database_url"`
	// Migrate applies the Postgres schema migrations at start.
	Migrate bool `yaml:"migrate"`
	// KEKFile holds the key-encryption key (base64, 32 bytes) that seals
	// signing keys at rest; SESSIOND_KEK may carry it instead. Required
	// outside dev mode.
	KEKFile string `yaml:"kek_file"`
	// SnapshotThreshold is how many log entries at least accumulate before
	// Raft snapshots the state (0: the default, 8192; a node also waits for
	// a log of a quarter of its newest snapshot's size, up to 512 MiB:
	// cluster.Node.SnapshotThreshold); SnapshotInterval how often
	// it checks (0: 120s); TrailingLogs how many entries it keeps after a
	// snapshot for slow followers (0: 10240).
	SnapshotThreshold uint64        `yaml:"snapshot_threshold"`
	SnapshotInterval  time.Duration `yaml:"snapshot_interval"`
	TrailingLogs      uint64        `yaml:"trailing_logs"`
	// RequestTimeout bounds every write and every DEFAULT or LINEARIZABLE
	// read on this node besides the caller's deadline (0: 5s): without a
	// leader or a quorum the caller gets UNAVAILABLE saying why within it.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// GCHeadroomMB is the least room, in MiB, the Go heap may grow
	// between two garbage collections (0: 128): a small heap is not
	// collected every few megabytes of allocation (see keepGCHeadroom).
	// GOGC in the environment turns it off.
	GCHeadroomMB int `yaml:"gc_headroom_mb"`
	// Auth configures the auth service.
	Auth AuthConfig `yaml:"auth"`
	// Limits bounds the client API's requests (sizes and timeouts).
	Limits LimitsConfig `yaml:"limits"`
	// Console configures the operator console (console.go).
	Console ConsoleConfig `yaml:"console"`
	// Bot configures the operators' Telegram bot, Alerts the alerts (bot.go).
	Bot    BotConfig    `yaml:"bot"`
	Alerts AlertsConfig `yaml:"alerts"`
	// IdentityProviders configures sign-in with upstream identity
	// providers (upstream.go).
	IdentityProviders IdentityProvidersConfig `yaml:"identity_providers"`

	// dev marks a node started by `sessiond dev`: a KEK may be generated.
	dev bool
	// plainAPI serves the client API as h2c even with peer TLS (dev mode
	// and the in-process tests, on loopback).
	plainAPI bool
	// kek is the key-encryption key's value, from SESSIOND_KEK.
	kek string
	// gossipKeyEnv is the gossip key's value (base64), from
	// SESSIOND_GOSSIP_KEY.
	gossipKeyEnv string
	// raftTimeouts overrides the LAN/WAN profile (dev mode and tests).
	raftTimeouts *cluster.Timeouts
	// peerDial replaces the dialer of peer connections (fault-injecting
	// tests).
	peerDial func(ctx context.Context, addr string) (net.Conn, error)
}

// AutopilotConfig tunes how the leader promotes a joining node (which
// always joins as a non-voter) to voter.
type AutopilotConfig struct {
	// Stabilization is how long the node must stay reachable and caught
	// up before it is promoted (default 10s).
	Stabilization time.Duration `yaml:"stabilization"`
	// MaxLagEntries is how far behind the commit index it may be and still
	// count as caught up (default 256).
	MaxLagEntries uint64 `yaml:"max_lag_entries"`
}

// TLSConfig names the peer TLS files (PEM).
type TLSConfig struct {
	// CAFile is the cluster CA bundle (old and new CA during a rotation).
	CAFile string `yaml:"ca_file"`
	// CertFile is this node's certificate (`sessiond tls cert create
	// --node-id`); it must name this node.
	CertFile string `yaml:"cert_file"`
	// KeyFile is its private key.
	KeyFile string `yaml:"key_file"`
	// TrustDomain is the identities' SPIFFE trust domain (default
	// "sessiond").
	TrustDomain string `yaml:"trust_domain"`
}

// APITLSConfig overrides the client API's TLS.
type APITLSConfig struct {
	// CertFile and KeyFile: the API's certificate (default: the node's).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile verifies client certificates when clients offer one
	// (default: the cluster CA).
	ClientCAFile string `yaml:"client_ca_file"`
	// MinVersion is "1.3" (default) or "1.2".
	MinVersion string `yaml:"min_version"`
}

// AuthConfig configures login, tokens and sessions.
type AuthConfig struct {
	// Issuer is the tokens' iss claim and the OIDC issuer URL.
	Issuer string `yaml:"issuer"`
	// Audience is the access tokens' aud claim.
	Audience string `yaml:"audience"`
	// AccessTTL is the access-token lifetime: default 15m, at most 30m.
	AccessTTL time.Duration `yaml:"access_ttl"`
	// MaxAccessLifetime bounds exp - iat of the access tokens a node
	// accepts (CheckToken answers lifetime_too_long beyond it): default
	// 30m; access_ttl must not exceed it.
	MaxAccessLifetime time.Duration `yaml:"max_access_lifetime"`
	// RefreshTTL is the refresh-token lifetime (never beyond the session).
	RefreshTTL time.Duration `yaml:"refresh_ttl"`
	// SessionIdle ends a session not refreshed for this long.
	SessionIdle time.Duration `yaml:"session_idle"`
	// SessionAbsolute ends a session this long after login, whatever happens.
	SessionAbsolute time.Duration `yaml:"session_absolute"`
	// RefreshGrace is how long the immediate predecessor of a rotated
	// refresh token may be presented again and get the same successor.
	RefreshGrace time.Duration `yaml:"refresh_grace"`
	// Signup enables POST /auth/signup.
	Signup bool `yaml:"signup"`
	// RefreshCookie returns refresh tokens as an HttpOnly cookie scoped to
	// /auth instead of in the body, for every client. Over TLS the cookie
	// is __Host-sessiond_refresh (Path=/).
	RefreshCookie bool `yaml:"refresh_cookie"`
	// CookieOrigins are the origins (https://app.example.com) besides the
	// API's own whose pages may send requests the refresh cookie
	// authenticates (/auth/token, /auth/logout, AuthService Refresh and
	// Logout); any other Origin, or a cross-site Sec-Fetch-Site, is
	// refused 403.
	CookieOrigins []string `yaml:"cookie_origins"`
	// PasswordGrant lets POST /auth/token take grant_type=password (RFC
	// 6749 §4.3, which RFC 9700 §2.4 says must not be used): off by
	// default; the app's JSON POST /auth/login is always there.
	PasswordGrant bool `yaml:"password_grant"`
	// JWTAccessTokens issues EdDSA JWT access tokens instead of PASETO.
	JWTAccessTokens bool `yaml:"jwt_access_tokens"`
	// KeyRotation is how long one signing key signs before the next.
	KeyRotation time.Duration `yaml:"key_rotation"`
	// Password configures argon2id.
	Password PasswordConfig `yaml:"password"`
	// ServiceClients may call introspection, revocation and admin RPCs.
	ServiceClients []ServiceClient `yaml:"service_clients"`
	// Policy holds the RBAC+ABAC rules of the Authorize RPC.
	Policy []PolicyRule `yaml:"policy"`
	// Notify configures where security events go.
	Notify NotifyConfig `yaml:"notify"`
	// Callers says who may call what (callers.go).
	Callers CallersConfig `yaml:"callers"`
	// Gateway configures the gateway checks (GET /gateway/check).
	Gateway GatewayConfig `yaml:"gateway"`
	// OIDC configures the OpenID Provider (oidc.go, docs/sso.md).
	OIDC OIDCConfig `yaml:"oidc"`
}

// GatewayConfig configures the answers of the gateway checks.
type GatewayConfig struct {
	// MaxAge lets a gateway cache an allow (Cache-Control: max-age, never
	// beyond the token's expiry) for at most this long, at most 1m; a
	// cached allow outlives a revocation by up to that long. 0 (default)
	// answers no-store: revocations take effect on the next request.
	MaxAge time.Duration `yaml:"max_age"`
}

// PasswordConfig holds argon2id parameters (OWASP minimum by default).
type PasswordConfig struct {
	MemoryKiB uint32 `yaml:"memory_kib"`
	Time      uint32 `yaml:"time"`
	Threads   uint8  `yaml:"threads"`
}

// ServiceClient is a service's credential: HTTP Basic with its id and a
// secret stored as an argon2id PHC string (`sessiond hash-secret`), or a
// client certificate naming service/<id>. Scopes: check, watch,
// watch:details, introspect, revoke, admin, metrics, reflection.
type ServiceClient struct {
	ID         string   `yaml:"id"`
	SecretHash string   `yaml:"secret_hash"`
	Scopes     []string `yaml:"scopes"`
}

// PolicyRule is one authorization rule: on Resource, the Actions are
// allowed to subjects with one of AnyRole whose attributes match Require.
type PolicyRule struct {
	Resource string            `yaml:"resource"`
	Actions  []string          `yaml:"actions"`
	AnyRole  []string          `yaml:"any_role"`
	Require  map[string]string `yaml:"require"`
}

// NotifyConfig selects the security-event notifiers.
type NotifyConfig struct {
	TelegramBotToken string `yaml:"telegram_bot_token"`
	TelegramChatID   string `yaml:"telegram_chat_id"`
	TelegramBaseURL  string `yaml:"telegram_base_url"`
	WebhookURL       string `yaml:"webhook_url"`
	WebhookSecret    string `yaml:"webhook_secret"`
}

// defaultConfig returns the defaults: a single local node.
func defaultConfig() Config {
	return Config{
		Region:     "local",
		DataDir:    "data",
		HTTPAddr:   "127.0.0.1:8080",
		RaftAddr:   "127.0.0.1:7000",
		GossipAddr: "127.0.0.1:7946",
		Voter:      true,
		LogLevel:   "info",
		LogFormat:  "text",
		TLS:        TLSConfig{TrustDomain: pki.DefaultTrustDomain},
		APITLS:     APITLSConfig{MinVersion: "1.3"},
		Limits:     defaultLimits(),
		Auth: AuthConfig{
			Issuer:            "http://127.0.0.1:8080",
			Audience:          "sessiond",
			AccessTTL:         15 * time.Minute,
			MaxAccessLifetime: 30 * time.Minute,
			RefreshTTL:        14 * 24 * time.Hour,
			SessionIdle:       14 * 24 * time.Hour,
			SessionAbsolute:   30 * 24 * time.Hour,
			RefreshGrace:      10 * time.Second,
			KeyRotation:       24 * time.Hour,
			Password:          PasswordConfig{MemoryKiB: 19 * 1024, Time: 2, Threads: 1},
			Callers:           defaultCallers(),
		},
	}
}

// bindFlags registers the node's flags onto cfg's fields.
func bindFlags(fs *pflag.FlagSet, cfg *Config) {
	fs.String("config", "", "YAML config file (flags and SESSIOND_* variables override it)")
	fs.StringVar(&cfg.NodeID, "node-id", cfg.NodeID, "node id, unique and stable (default: stored identity, else host name)")
	fs.StringVar(&cfg.Region, "region", cfg.Region, "region of this node (hk, seoul, tokyo, ...)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data directory")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "client API listen address (Connect, gRPC, HTTP/JSON, /metrics)")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", cfg.RaftAddr, "peer address: Raft and node-to-node RPC (mutual TLS)")
	fs.StringVar(&cfg.GossipAddr, "gossip-addr", cfg.GossipAddr, "gossip (memberlist) listen address")
	fs.StringVar(&cfg.AdvertiseHTTP, "advertise-http", cfg.AdvertiseHTTP, "client API address other nodes use (default: --http-addr)")
	fs.StringVar(&cfg.AdvertiseRaft, "advertise-raft", cfg.AdvertiseRaft, "peer address other nodes use (default: --raft-addr)")
	fs.StringVar(&cfg.AdvertiseGossip, "advertise-gossip", cfg.AdvertiseGossip, "gossip address other nodes use (default: --gossip-addr)")
	fs.BoolVar(&cfg.Bootstrap, "bootstrap", cfg.Bootstrap, "start a new cluster with this node")
	fs.StringSliceVar(&cfg.Join, "join", cfg.Join, "peer addresses (host:port) of members to join through (comma-separated)")
	fs.IntVar(&cfg.BootstrapExpect, "bootstrap-expect", cfg.BootstrapExpect, "form a new cluster of this many voters with the --retry-join peers (the lowest node id bootstraps)")
	fs.StringSliceVar(&cfg.RetryJoin, "retry-join", cfg.RetryJoin, "peer addresses (host:port) of the cluster's servers, for --bootstrap-expect (comma-separated)")
	fs.DurationVar(&cfg.Autopilot.Stabilization, "autopilot-stabilization", cfg.Autopilot.Stabilization, "how long a joining node must be healthy before it is promoted to voter")
	fs.Uint64Var(&cfg.Autopilot.MaxLagEntries, "autopilot-max-lag-entries", cfg.Autopilot.MaxLagEntries, "entries behind the commit index a joining node may be and count as caught up")
	fs.BoolVar(&cfg.Voter, "voter", cfg.Voter, "join as a voter (false: non-voting read replica)")
	fs.BoolVar(&cfg.WAN, "wan", cfg.WAN, "use the WAN timeout profile (regions far apart)")
	fs.StringVar(&cfg.PreferredRegion, "preferred-region", cfg.PreferredRegion, "region the leader should be in, when it has a voter")
	fs.StringVar(&cfg.GossipKeyFile, "gossip-key-file", cfg.GossipKeyFile, "file holding the base64 gossip encryption key")
	fs.StringVar(&cfg.TLS.CAFile, "tls-ca-file", cfg.TLS.CAFile, "cluster CA bundle (PEM)")
	fs.StringVar(&cfg.TLS.CertFile, "tls-cert-file", cfg.TLS.CertFile, "this node's certificate (PEM), naming its node id")
	fs.StringVar(&cfg.TLS.KeyFile, "tls-key-file", cfg.TLS.KeyFile, "this node's private key (PEM)")
	fs.StringVar(&cfg.TLS.TrustDomain, "tls-trust-domain", cfg.TLS.TrustDomain, "SPIFFE trust domain of the cluster's identities")
	fs.StringVar(&cfg.APITLS.CertFile, "api-tls-cert-file", cfg.APITLS.CertFile, "client API certificate (default: the node's)")
	fs.StringVar(&cfg.APITLS.KeyFile, "api-tls-key-file", cfg.APITLS.KeyFile, "client API private key (default: the node's)")
	fs.StringVar(&cfg.APITLS.ClientCAFile, "api-tls-client-ca-file", cfg.APITLS.ClientCAFile, "CA verifying client certificates on the API (default: the cluster CA)")
	fs.StringVar(&cfg.APITLS.MinVersion, "api-tls-min-version", cfg.APITLS.MinVersion, "lowest TLS version of the client API: 1.3 or 1.2")
	fs.BoolVar(&cfg.InsecurePlaintext, "insecure-plaintext", cfg.InsecurePlaintext, "run without TLS and gossip encryption (a laptop only: every channel in clear)")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "json or text")
	fs.StringVar(&cfg.DatabaseURL, "database-url", cfg.DatabaseURL, "Postgres DSN of the user directory (empty: built-in directory)")
	fs.BoolVar(&cfg.Migrate, "migrate", cfg.Migrate, "apply Postgres migrations at start")
	fs.StringVar(&cfg.KEKFile, "kek-file", cfg.KEKFile, "file holding the key-encryption key (or SESSIOND_KEK)")
	fs.Uint64Var(&cfg.SnapshotThreshold, "snapshot-threshold", cfg.SnapshotThreshold, "least log entries between Raft snapshots (0: 8192; more while the log since the last snapshot is under a quarter of its size)")
	fs.DurationVar(&cfg.SnapshotInterval, "snapshot-interval", cfg.SnapshotInterval, "how often Raft considers a snapshot (0: 2m)")
	fs.Uint64Var(&cfg.TrailingLogs, "trailing-logs", cfg.TrailingLogs, "log entries kept after a snapshot for slow followers (0: 10240)")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", cfg.RequestTimeout, "bound of every write and consistent read on this node, besides the caller's deadline (0: 5s)")
	fs.IntVar(&cfg.GCHeadroomMB, "gc-headroom-mb", cfg.GCHeadroomMB, "least growth of the Go heap between garbage collections, in MiB (0: 128; GOGC in the environment turns this off)")
}

// envName maps a flag name to its environment variable.
func envName(flag string) string {
	return "SESSIOND_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// loadConfig resolves cfg from defaults, the YAML file, the environment and
// the flags already parsed into fs (whose values are bound to cfg).
func loadConfig(fs *pflag.FlagSet, cfg *Config, getenv func(string) string) error {
	// Remember what the command line said before the file overwrites cfg.
	type setting struct {
		flag *pflag.Flag
		val  []string
	}
	var explicit []setting
	fs.Visit(func(f *pflag.Flag) {
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			explicit = append(explicit, setting{f, sv.GetSlice()})
		} else {
			explicit = append(explicit, setting{f, []string{f.Value.String()}})
		}
	})
	path, _ := fs.GetString("config")
	if path == "" {
		path = getenv("SESSIOND_CONFIG")
	}
	*cfg = defaultConfig()
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if err := removedKeys(raw); err != nil {
			return fmt.Errorf("config %s: %w", path, err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("config %s: %w", path, err)
		}
	}
	set := func(f *pflag.Flag, vals []string) error {
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			return sv.Replace(vals)
		}
		return f.Value.Set(vals[0])
	}
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "config" || f.Changed {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			vals := []string{v}
			if _, ok := f.Value.(pflag.SliceValue); ok {
				vals = strings.Split(v, ",")
			}
			if err := set(f, vals); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
		}
	})
	for _, s := range explicit {
		if err := set(s.flag, s.val); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", s.flag.Name, err))
		}
	}
	for _, r := range removedSettings {
		if getenv(r.env) != "" {
			errs = append(errs, fmt.Errorf("%s: %s", r.env, r.why))
		}
	}
	cfg.kek = getenv("SESSIOND_KEK")
	cfg.gossipKeyEnv = getenv("SESSIOND_GOSSIP_KEY")
	cfg.Bot.token, cfg.Bot.webhookSecret = getenv("SESSIOND_TELEGRAM_BOT_TOKEN"), getenv("SESSIOND_TELEGRAM_WEBHOOK_SECRET")
	return errors.Join(errs...)
}

// removedSetting is a setting earlier versions read and this one does not:
// a config that still sets it is refused with what replaces it, rather than
// with a bare "unknown field" or silently.
type removedSetting struct {
	key, env, flag string // YAML key, environment variable, flag
	why            string
}

// removedSettings are the settings that no longer exist.
var removedSettings = []removedSetting{
	{"cluster_secret", "SESSIOND_CLUSTER_SECRET", "", clusterSecretRemoved},
	{"cluster_secret_file", "SESSIOND_CLUSTER_SECRET_FILE", "cluster-secret-file", clusterSecretRemoved},
}

const clusterSecretRemoved = "the shared cluster secret was removed: nodes authenticate each other with their " +
	"certificates (tls:), operators with a client certificate, an operator token (sessiond operator token create) " +
	"or the node's local operator socket (<data-dir>/operator.sock); delete this setting"

// removedKeys reports the removed settings a YAML config sets at its top
// level.
func removedKeys(raw []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil // the strict decode reports what is wrong
	}
	var errs []error
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		for _, r := range removedSettings {
			if m.Content[i].Value == r.key {
				errs = append(errs, fmt.Errorf("line %d: %s: %s", m.Content[i].Line, r.key, r.why))
			}
		}
	}
	return errors.Join(errs...)
}

// removedFlagError rewrites the error of an unknown flag that a removed
// setting used to be, naming what replaces it.
func removedFlagError(_ *cobra.Command, err error) error {
	for _, r := range removedSettings {
		if r.flag != "" && strings.Contains(err.Error(), "--"+r.flag) {
			return usageError{fmt.Errorf("--%s: %s", r.flag, r.why)}
		}
	}
	return err
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

var (
	regionRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	nodeIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// Validate checks the configuration as a whole and reports every problem
// it finds, each naming the setting.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.NodeID != "" && !nodeIDRE.MatchString(c.NodeID) {
		bad("node-id %q: use 1-64 letters, digits, '.', '_' or '-'", c.NodeID)
	}
	if !regionRE.MatchString(c.Region) {
		bad("region %q: use a lower-case name of letters, digits and '-' starting with a letter (hk, seoul, ap-northeast-2)", c.Region)
	}
	if c.PreferredRegion != "" && !regionRE.MatchString(c.PreferredRegion) {
		bad("preferred-region %q: not a region name", c.PreferredRegion)
	}
	if c.DataDir == "" {
		bad("data-dir: required")
	}
	for _, a := range []struct{ name, val string }{
		{"http-addr", c.HTTPAddr}, {"raft-addr", c.RaftAddr}, {"gossip-addr", c.GossipAddr},
	} {
		if err := checkHostPort(a.val, true); err != nil {
			bad("%s %q: %v", a.name, a.val, err)
		}
	}
	for _, a := range []struct{ name, val string }{
		{"advertise-http", c.AdvertiseHTTP}, {"advertise-raft", c.AdvertiseRaft}, {"advertise-gossip", c.AdvertiseGossip},
	} {
		if a.val == "" {
			continue
		}
		if err := checkHostPort(a.val, false); err != nil {
			bad("%s %q: %v", a.name, a.val, err)
		}
	}
	if distinct := map[string]bool{}; !portZero(c.HTTPAddr) || !portZero(c.RaftAddr) || !portZero(c.GossipAddr) {
		for _, a := range []string{c.HTTPAddr, c.RaftAddr, c.GossipAddr} {
			if distinct[a] && !portZero(a) {
				bad("http-addr, raft-addr and gossip-addr must differ")
				break
			}
			distinct[a] = true
		}
	}
	if c.Bootstrap && len(c.Join) > 0 {
		bad("bootstrap and join together: bootstrap starts a new cluster, join enters an existing one; choose one")
	}
	if c.Bootstrap && !c.Voter {
		bad("bootstrap with voter=false: the first node of a cluster must be a voter")
	}
	switch {
	case c.BootstrapExpect < 0:
		bad("bootstrap_expect %d: must be 0 (off) or the number of voters to start with", c.BootstrapExpect)
	case c.BootstrapExpect > 0 && c.Bootstrap:
		bad("bootstrap_expect and bootstrap together: choose one (bootstrap_expect with retry_join is the safe form)")
	case c.BootstrapExpect > 0 && len(c.Join) > 0:
		bad("bootstrap_expect and join together: list the servers' peer addresses in retry_join instead")
	case c.BootstrapExpect > 1 && len(c.RetryJoin) == 0:
		bad("bootstrap_expect %d without retry_join: list the peer addresses of the cluster's servers", c.BootstrapExpect)
	case c.BootstrapExpect > 0 && !c.Voter:
		bad("bootstrap_expect with voter=false: the servers that form a cluster are voters (a read replica uses join)")
	case len(c.RetryJoin) > 0 && c.BootstrapExpect == 0 && !c.Bootstrap:
		bad("retry_join without bootstrap_expect: set bootstrap_expect (the number of servers), or use join to enter an existing cluster")
	}
	if c.Autopilot.Stabilization < 0 {
		bad("autopilot.stabilization %s: must not be negative", c.Autopilot.Stabilization)
	}
	if c.RequestTimeout != 0 && (c.RequestTimeout < 100*time.Millisecond || c.RequestTimeout > 10*time.Minute) {
		bad("request_timeout %s: want 100ms to 10m (0: 5s)", c.RequestTimeout)
	}
	if c.GCHeadroomMB < 0 || c.GCHeadroomMB > maxGCHeadroomMB {
		bad("gc_headroom_mb %d: want 0 to %d (0: %d)", c.GCHeadroomMB, maxGCHeadroomMB, defaultGCHeadroomMB)
	}
	for _, l := range []struct {
		name  string
		addrs []string
	}{{"join", c.Join}, {"retry_join", c.RetryJoin}} {
		for _, j := range l.addrs {
			if strings.Contains(j, "://") {
				bad("%s %q: want a member's peer address (its raft_addr, host:port such as 10.0.1.10:7000), not a URL", l.name, j)
			} else if err := checkHostPort(j, false); err != nil {
				bad("%s %q: %v (want a member's peer address, host:port)", l.name, j, err)
			}
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		bad("log-format %q: want json or text", c.LogFormat)
	}
	t := c.TLS
	switch {
	case c.InsecurePlaintext:
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" {
			bad("insecure-plaintext with tls files: choose one")
		}
	case t.CAFile == "" || t.CertFile == "" || t.KeyFile == "":
		bad("tls: ca_file, cert_file and key_file are required (create them with `sessiond tls`), or insecure_plaintext: true for a laptop")
	}
	if t.TrustDomain == "" {
		bad("tls.trust_domain: required (default sessiond)")
	}
	if (c.APITLS.CertFile == "") != (c.APITLS.KeyFile == "") {
		bad("api_tls: cert_file and key_file go together")
	}
	switch c.APITLS.MinVersion {
	case "1.2", "1.3":
	default:
		bad("api_tls.min_version %q: want 1.3 or 1.2", c.APITLS.MinVersion)
	}
	if c.GossipKeyFile == "" && c.gossipKeyEnv == "" && !c.InsecurePlaintext {
		bad("gossip key: set gossip-key-file or SESSIOND_GOSSIP_KEY (gossip is always encrypted; openssl rand -base64 32), or insecure_plaintext: true for a laptop")
	}
	if c.KEKFile == "" && c.kek == "" && !c.dev {
		bad("key-encryption key: set kek-file or SESSIOND_KEK (signing keys are sealed with it at rest)")
	}
	if c.Migrate && c.DatabaseURL == "" {
		bad("migrate without database-url: nothing to migrate")
	}
	a := c.Auth
	if a.AccessTTL <= 0 || a.AccessTTL > 30*time.Minute {
		bad("auth.access_ttl %s: must be > 0 and at most 30m", a.AccessTTL)
	}
	if a.MaxAccessLifetime <= 0 {
		bad("auth.max_access_lifetime %s: must be > 0", a.MaxAccessLifetime)
	} else if a.AccessTTL > a.MaxAccessLifetime {
		bad("auth.access_ttl %s exceeds auth.max_access_lifetime %s: the cluster would issue tokens it refuses", a.AccessTTL, a.MaxAccessLifetime)
	}
	if a.SessionAbsolute <= 0 || a.SessionIdle <= 0 || a.SessionIdle > a.SessionAbsolute {
		bad("auth.session_idle %s, auth.session_absolute %s: both > 0 and idle <= absolute", a.SessionIdle, a.SessionAbsolute)
	}
	if a.RefreshTTL <= 0 {
		bad("auth.refresh_ttl %s: must be > 0", a.RefreshTTL)
	}
	if a.RefreshGrace < 0 || a.RefreshGrace > time.Minute {
		bad("auth.refresh_grace %s: between 0 and 1m", a.RefreshGrace)
	}
	if a.KeyRotation < time.Hour {
		bad("auth.key_rotation %s: at least 1h", a.KeyRotation)
	}
	if a.Issuer == "" || a.Audience == "" {
		bad("auth.issuer and auth.audience: required")
	}
	if a.Gateway.MaxAge < 0 || a.Gateway.MaxAge > time.Minute {
		bad("auth.gateway.max_age %s: between 0 (no-store) and 1m", a.Gateway.MaxAge)
	}
	errs = append(errs, a.Callers.validate()...)
	errs = append(errs, a.OIDC.validate(a.Issuer)...)
	errs = append(errs, c.Limits.validate()...)
	errs = append(errs, c.Console.validate()...)
	errs = append(errs, c.validateBot()...)
	errs = append(errs, c.IdentityProviders.validate()...)
	for _, o := range a.CookieOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" {
			bad("auth.cookie_origins %q: want an origin, scheme://host[:port] (https://app.example.com)", o)
		}
	}
	for i, sc := range a.ServiceClients {
		if err := callers.CheckGrantable(callers.Principal{Scopes: []string{callers.ScopeAll}}, sc.Scopes); err != nil {
			bad("auth.service_clients[%d] (%s): %v", i, sc.ID, err)
		}
	}
	return errors.Join(errs...)
}

// portZero reports whether addr asks for any free port.
func portZero(addr string) bool { return strings.HasSuffix(addr, ":0") }

// checkHostPort checks host:port; listen addresses may leave the host empty.
func checkHostPort(addr string, listen bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port")
	}
	if port == "" {
		return errors.New("missing port")
	}
	if host == "" && !listen {
		return errors.New("an advertised address needs a host")
	}
	if !listen && (host == "0.0.0.0" || host == "::") {
		return errors.New("an advertised address cannot be a wildcard")
	}
	return nil
}
