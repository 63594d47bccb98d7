package guard

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sessiond/sessiond/clients/go/coalesce"
	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/clients/go/policy"
)

// Node is one sessiond node the Guard may talk to.
type Node struct {
	// URL is the node's API base URL (scheme http or https, no path), for
	// example "http://127.0.0.1:8081". The node must serve
	// /.well-known/paserk and sessiond.session.v1.SessionService there.
	URL string
	// Region is the node's region; see Config.Region.
	Region string
}

// StalePolicy says what Check does when the revocation watch is stale.
type StalePolicy int

const (
	// FailClosed refuses every token with ErrStale while the watch is
	// stale. It is the default.
	FailClosed StalePolicy = iota
	// FallbackRemote asks a node (CheckToken, with failover in preference
	// order) about every token not already known revoked locally while the
	// watch is stale. When no node answers, Check returns ErrStale.
	FallbackRemote
)

// String names the policy.
func (p StalePolicy) String() string {
	switch p {
	case FailClosed:
		return "fail-closed"
	case FallbackRemote:
		return "fallback-remote"
	default:
		return fmt.Sprintf("StalePolicy(%d)", int(p))
	}
}

// Defaults for the zero values of Config.
const (
	DefaultMaxStaleness       = 5 * time.Second
	DefaultKeyRefreshInterval = time.Second
	DefaultWatchIdleTimeout   = 3 * time.Second
	DefaultRemoteTimeout      = 2 * time.Second
	// DefaultMaxAccessLifetime is Config.MaxAccessLifetime when zero.
	DefaultMaxAccessLifetime = 30 * time.Minute
	DefaultCacheSize         = 10000
)

// Config configures a Guard. Issuer, Audience and at least one node are
// required; every other zero value takes the documented default.
type Config struct {
	// Nodes are the sessiond nodes, in preference order within a region.
	Nodes []Node
	// Region, when set, puts the nodes of this region first (keeping their
	// relative order), then the others in their given order.
	Region string
	// Issuer and Audience must equal the tokens' iss and aud exactly.
	Issuer, Audience string
	// HTTPClient talks to the nodes (default: http.DefaultTransport behind
	// coalesce.Transport, which sends each check in one write). It must
	// not set a Timeout: the revocation watch is a long-lived stream.
	HTTPClient *http.Client
	// Rules are the authorization rules of Authorize, RequireAction and
	// CheckAction (package policy semantics: deny by default).
	Rules []policy.Rule
	// MaxStaleness is how long the revocation watch may go without
	// delivering any message before the local revocation set is considered
	// stale (default 5s; the server sends a heartbeat every ~1s).
	MaxStaleness time.Duration
	// OnStale says what Check does while the watch is stale (default
	// FailClosed).
	OnStale StalePolicy
	// KeyRefreshInterval is the minimum time between two key fetches
	// triggered by a token naming an unknown key id (default 1s).
	KeyRefreshInterval time.Duration
	// WatchIdleTimeout: a watch stream that delivers no message for this
	// long is dropped and reconnected, moving to the next node (default
	// 3s, three missed heartbeats).
	WatchIdleTimeout time.Duration
	// RemoteTimeout bounds one CheckToken call to one node under
	// FallbackRemote (default 2s).
	RemoteTimeout time.Duration
	// RemoteRead is the read consistency of the CheckToken calls made
	// under FallbackRemote (default: READ_CONSISTENCY_DEFAULT).
	RemoteRead *clusterv1.ReadOptions
	// Leeway tolerates clock skew with the issuer for exp, nbf and iat
	// (default 0, as the nodes themselves check).
	Leeway time.Duration
	// MaxAccessLifetime refuses tokens whose exp - iat exceeds it
	// (ReasonLifetimeTooLong), whatever their signature; default 30m,
	// sessiond's own default auth.max_access_lifetime. Set it to the
	// cluster's auth.max_access_lifetime.
	MaxAccessLifetime time.Duration
	// CacheSize bounds the number of verified tokens whose claims are
	// cached (default 10000); a negative value disables the cache. A full
	// cache evicts the least recently used token; an entry lives until its
	// token (or signing key) expires, at most 30 minutes.
	CacheSize int
	// Logger receives connection and key events (default: discard). Tokens
	// are never logged.
	Logger *slog.Logger
}

// normalized checks c and returns it with defaults applied and nodes in
// preference order.
func (c Config) normalized() (Config, error) {
	if c.Issuer == "" || c.Audience == "" {
		return c, errors.New("guard: Config.Issuer and Config.Audience are required")
	}
	if len(c.Nodes) == 0 {
		return c, errors.New("guard: Config.Nodes: at least one node is required")
	}
	var local, other []Node
	seen := map[string]bool{}
	for i, n := range c.Nodes {
		u, err := url.Parse(n.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
			return c, fmt.Errorf("guard: Config.Nodes[%d].URL %q: want http(s)://host[:port]", i, n.URL)
		}
		n.URL = u.Scheme + "://" + u.Host
		if seen[n.URL] {
			return c, fmt.Errorf("guard: Config.Nodes[%d].URL %q: duplicate", i, n.URL)
		}
		seen[n.URL] = true
		if c.Region != "" && n.Region == c.Region {
			local = append(local, n)
		} else {
			other = append(other, n)
		}
	}
	c.Nodes = append(local, other...)
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Transport: coalesce.Transport(http.DefaultTransport)}
	}
	if c.OnStale != FailClosed && c.OnStale != FallbackRemote {
		return c, fmt.Errorf("guard: Config.OnStale: unknown %v", c.OnStale)
	}
	pos := func(name string, d *time.Duration, def time.Duration) error {
		switch {
		case *d < 0:
			return fmt.Errorf("guard: Config.%s: negative", name)
		case *d == 0:
			*d = def
		}
		return nil
	}
	for _, f := range []struct {
		name string
		d    *time.Duration
		def  time.Duration
	}{
		{"MaxStaleness", &c.MaxStaleness, DefaultMaxStaleness},
		{"KeyRefreshInterval", &c.KeyRefreshInterval, DefaultKeyRefreshInterval},
		{"WatchIdleTimeout", &c.WatchIdleTimeout, DefaultWatchIdleTimeout},
		{"RemoteTimeout", &c.RemoteTimeout, DefaultRemoteTimeout},
		{"MaxAccessLifetime", &c.MaxAccessLifetime, DefaultMaxAccessLifetime},
	} {
		if err := pos(f.name, f.d, f.def); err != nil {
			return c, err
		}
	}
	if c.Leeway < 0 {
		return c, errors.New("guard: Config.Leeway: negative")
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.RemoteRead == nil {
		c.RemoteRead = &clusterv1.ReadOptions{Consistency: clusterv1.ReadConsistency_READ_CONSISTENCY_DEFAULT}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}
