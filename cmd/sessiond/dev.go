package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/callers"
	"github.com/sessiond/sessiond/authsvc/users"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/pki"
)

// devRegions name the dev cluster's nodes' regions in order.
var devRegions = []string{"hk", "seoul", "tokyo", "singapore", "sydney", "frankfurt", "virginia", "oregon", "saopaulo"}

// devCluster is N nodes in one process on loopback.
type devCluster struct {
	nodes    []*node
	dir      string
	password string
	// token is the dev operator token the tour prints.
	token string
}

type devOptions struct {
	nodes     int
	basePort  int
	dataDir   string
	logLevel  string
	password  string
	keepData  bool
	logFormat string
	// oidcRedirects, when set, enables the OpenID Provider with a public,
	// first-party client "dev-app" redirecting to them.
	oidcRedirects []string
	// oidcBackchannel, when set, is dev-app's backchannel_logout_uri.
	oidcBackchannel string
}

func newDevCmd() *cobra.Command {
	o := devOptions{}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a demo cluster of N nodes in one process on loopback",
		Long: `Run N sessiond nodes in one process on 127.0.0.1, in regions hk, seoul,
tokyo, ..., with temporary data dirs, the built-in user directory and a demo
user. It prints every node's addresses and a short tour of curl commands.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.nodes < 1 || o.nodes > len(devRegions) {
				return usageError{fmt.Errorf("--nodes %d: want 1 to %d", o.nodes, len(devRegions))}
			}
			if o.oidcBackchannel != "" && len(o.oidcRedirects) == 0 {
				return usageError{errors.New("--oidc-backchannel-uri needs --oidc-redirect-uri (which enables the provider)")}
			}
			log := newLogger(cmd.ErrOrStderr(), o.logLevel, o.logFormat)
			dc, err := startDev(cmd.Context(), o, log)
			if err != nil {
				return err
			}
			defer dc.close(o.keepData || o.dataDir != "") // a --data-dir the operator gave is kept
			if err := dc.waitReady(cmd.Context(), 60*time.Second); err != nil {
				return err
			}
			user, err := dc.demoUser(cmd.Context(), dc.password)
			if err != nil {
				return err
			}
			if dc.token, err = dc.operatorToken(cmd.Context()); err != nil {
				return err
			}
			dc.tour(cmd.OutOrStdout(), user, dc.password)
			<-cmd.Context().Done()
			fmt.Fprintln(cmd.ErrOrStderr(), "sessiond dev: stopping")
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.nodes, "nodes", 3, "number of nodes")
	f.IntVar(&o.basePort, "base-port", 8081, "API port of the first node; node i uses base+i-1 (Raft base-1080+i, gossip base-134+i)")
	f.StringVar(&o.dataDir, "data-dir", "", "parent of the nodes' data dirs (default: a new temporary dir, removed on exit)")
	f.StringVar(&o.logLevel, "log-level", "error", "debug, info, warn or error (Raft warns of normal events while nodes join)")
	f.StringVar(&o.logFormat, "log-format", "text", "json or text")
	f.StringVar(&o.password, "demo-password", "", "the demo user's password (default: random, printed)")
	f.BoolVar(&o.keepData, "keep-data", false, "keep the temporary data dir on exit")
	f.StringSliceVar(&o.oidcRedirects, "oidc-redirect-uri", nil, "enable the OpenID Provider with a public first-party client dev-app redirecting (and logging out) to these URIs")
	f.StringVar(&o.oidcBackchannel, "oidc-backchannel-uri", "", "with --oidc-redirect-uri: dev-app's backchannel_logout_uri (OIDC back-channel logout tokens are POSTed there)")
	return cmd
}

// startDev starts the nodes: the first bootstraps, the others join it.
func startDev(ctx context.Context, o devOptions, log *slog.Logger) (dc *devCluster, err error) {
	dc = &devCluster{dir: o.dataDir}
	// One key-encryption key for the whole dev cluster: every node must open
	// the signing keys the leader sealed.
	var kek [32]byte
	if _, err := rand.Read(kek[:]); err != nil {
		return nil, err
	}
	if dc.dir == "" {
		if dc.dir, err = os.MkdirTemp("", "sessiond-dev-"); err != nil {
			return nil, err
		}
	}
	dc.password = o.password
	if dc.password == "" {
		dc.password = randomSecret()[:16]
	}
	defer func() {
		if err != nil {
			dc.close(o.keepData || o.dataDir != "")
		}
	}()
	// Peers talk mutual TLS with certificates of a throwaway CA kept in the
	// data dir; gossip is encrypted with a generated key.
	ca, err := devCA(filepath.Join(dc.dir, "tls"))
	if err != nil {
		return dc, fmt.Errorf("dev CA: %w", err)
	}
	var gossipKey [32]byte
	if _, err := rand.Read(gossipKey[:]); err != nil {
		return nil, err
	}
	for i := 1; i <= o.nodes; i++ {
		cfg := defaultConfig()
		cfg.dev = true
		cfg.NodeID = fmt.Sprintf("%s-1", devRegions[i-1])
		cfg.Region = devRegions[i-1]
		cfg.DataDir = filepath.Join(dc.dir, cfg.NodeID)
		cfg.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", o.basePort+i-1)
		cfg.RaftAddr = fmt.Sprintf("127.0.0.1:%d", o.basePort-1080+i-1)
		cfg.GossipAddr = fmt.Sprintf("127.0.0.1:%d", o.basePort-134+i-1)
		cfg.kek = base64.StdEncoding.EncodeToString(kek[:])
		cfg.gossipKeyEnv = base64.StdEncoding.EncodeToString(gossipKey[:])
		if cfg.TLS, err = ca.node(cfg.NodeID); err != nil {
			return dc, fmt.Errorf("dev certificate for %s: %w", cfg.NodeID, err)
		}
		cfg.plainAPI = true                       // loopback only: the tour's curl commands stay plain
		cfg.Autopilot.Stabilization = time.Second // joining nodes become voters quickly
		cfg.LogLevel, cfg.LogFormat = o.logLevel, o.logFormat
		cfg.Auth.Issuer = fmt.Sprintf("http://127.0.0.1:%d", o.basePort) // one issuer for the cluster
		// A dev cluster stays easy: services may check, watch, scrape and
		// reflect without a credential. Operator calls still need one.
		cfg.Auth.Callers.Check, cfg.Auth.Callers.Watch = callerOpen, callerOpen
		cfg.Auth.Callers.Metrics, cfg.Auth.Callers.Reflection = callerOpen, callerOpen
		if len(o.oidcRedirects) > 0 {
			cfg.Auth.OIDC = devOIDC(o.oidcRedirects, o.oidcBackchannel)
		}
		if i == 1 {
			cfg.Bootstrap = true
		} else {
			cfg.Join = []string{dc.nodes[0].raft.RaftAddr()}
		}
		if err := cfg.Validate(); err != nil {
			return dc, err
		}
		n, err := startNode(ctx, cfg, log.With("node", cfg.NodeID))
		if err != nil {
			return dc, fmt.Errorf("node %s: %w", cfg.NodeID, err)
		}
		dc.nodes = append(dc.nodes, n)
	}
	return dc, nil
}

func randomSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// waitReady waits until every node is a voter that has caught up and can
// sign tokens, so the tour works as printed.
func (dc *devCluster) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if dc.ready() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the dev cluster did not become ready: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (dc *devCluster) ready() bool {
	var leader *node
	for _, n := range dc.nodes {
		if n.raft.IsLeader() {
			leader = n
		}
	}
	if leader == nil {
		return false
	}
	servers, err := leader.raft.Servers()
	if err != nil || len(servers) != len(dc.nodes) || slices.ContainsFunc(servers, func(s cluster.Server) bool { return !s.Voter }) {
		return false // joining nodes are promoted to voters after a second
	}
	for _, n := range dc.nodes {
		if n.raft.AppliedIndex() < leader.raft.CommitIndex() || len(n.auth.PublishedKeys()) == 0 {
			return false
		}
		alive := 0
		for _, m := range n.gossip.Members() {
			if m.Health == cluster.HealthAlive {
				alive++
			}
		}
		if alive < len(dc.nodes) {
			return false
		}
	}
	return true
}

// demoUser creates the demo user (once the cluster can write).
func (dc *devCluster) demoUser(ctx context.Context, pw string) (string, error) {
	const email = "demo@example.com"
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Retry every 100 ms while the cluster cannot write yet; any other
	// refusal is final (backoff.Permanent).
	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		_, err := dc.nodes[0].auth.CreateUser(ctx, authsvc.NewUserInput{
			Email: email, Password: pw, DisplayName: "Demo User", OrgName: "Demo Org",
			Country: "KR", OrgType: users.OrgCustomer, Roles: []string{"user"},
		})
		switch {
		case err == nil || authsvc.ErrorKind(err) == authsvc.KindConflict:
			return struct{}{}, nil
		case authsvc.ErrorKind(err) != authsvc.KindUnavailable:
			return struct{}{}, backoff.Permanent(fmt.Errorf("demo user: %w", err))
		}
		last = err
		return struct{}{}, err
	}, backoff.WithBackOff(backoff.NewConstantBackOff(100*time.Millisecond)), backoff.WithMaxElapsedTime(0))
	if err != nil {
		if ctx.Err() != nil && last != nil {
			return "", fmt.Errorf("demo user: the cluster did not accept writes in time: %w", last)
		}
		return "", err
	}
	return email, nil
}

// operatorToken creates the dev operator token through the first node's
// local authority (as the operator socket would), valid for a day.
func (dc *devCluster) operatorToken(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tok, _, err := dc.nodes[0].auth.CreateOperatorToken(ctx, localOperator, "dev",
		[]string{callers.ScopeClusterWrite, callers.ScopeAdmin, callers.ScopeTokens}, 24*time.Hour)
	if err != nil {
		return "", fmt.Errorf("dev operator token: %w", err)
	}
	return tok, nil
}

func (dc *devCluster) close(keep bool) {
	for i := len(dc.nodes) - 1; i >= 0; i-- {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		dc.nodes[i].close(ctx)
		cancel()
	}
	if !keep && dc.dir != "" {
		_ = os.RemoveAll(dc.dir)
	}
}

// tour prints the nodes and curl commands that work against them.
func (dc *devCluster) tour(w io.Writer, email, pw string) {
	var b strings.Builder
	fmt.Fprintf(&b, "sessiond dev: %d nodes on loopback (data in %s)\n\n", len(dc.nodes), dc.dir)
	for _, n := range dc.nodes {
		fmt.Fprintf(&b, "  %-12s region %-10s api %s  raft %s  gossip %s\n", n.raft.ID(), n.raft.Region(), n.apiURL, n.raft.RaftAddr(), n.gossip.Addr())
	}
	a, z := dc.nodes[0].apiURL, dc.nodes[len(dc.nodes)-1].apiURL
	mid := dc.nodes[len(dc.nodes)/2].apiURL
	fmt.Fprintf(&b, "\nPeers (Raft, node-to-node calls) use mutual TLS with a throwaway CA in %s; the API is plain HTTP on loopback.\n",
		filepath.Join(dc.dir, "tls"))
	fmt.Fprintf(&b, "\nOperator token (cluster:write, admin, tokens; 24h): %s\nDemo user: %s  password: %s\n", dc.token, email, pw)
	fmt.Fprintf(&b, `
A short tour (bash; every node answers every call):

  export SESSIOND_TOKEN=%[1]s
  # cluster health and membership (the CLI reads the token from SESSIOND_TOKEN)
  curl -s %[2]s/readyz
  ./bin/sessiond cluster status --addr %[3]s
  ./bin/sessiond operator whoami --addr %[3]s
  # log in through the first node
  RESP=$(curl -s -X POST %[2]s/auth/login -H 'Content-Type: application/json' \
    -d '{"email":"%[4]s","password":"%[5]s","platform":"web","device_id":"laptop"}'); echo "$RESP"
  ACCESS=$(echo "$RESP" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  REFRESH=$(echo "$RESP" | sed -E 's/.*"refresh_token":"([^"]+)".*/\1/')
  # any node checks the token (services call this)
  curl -s -X POST %[3]s/sessiond.session.v1.SessionService/CheckToken -H 'Content-Type: application/json' \
    -d "{\"token\":\"$ACCESS\",\"read\":{\"consistency\":\"READ_CONSISTENCY_LINEARIZABLE\"}}"
  # what a gateway in front of services asks (nginx auth_request, Traefik, Caddy, Envoy: deploy/gateway/)
  curl -si %[6]s/gateway/check -H "Authorization: Bearer $ACCESS"
  # list this user's devices through another node
  curl -s %[6]s/auth/sessions -H "Authorization: Bearer $ACCESS"
  # public keys any API server verifies with
  curl -s %[3]s/.well-known/paserk
  # refresh through the last node, then log out through the middle one
  curl -s -X POST %[3]s/auth/token -H 'Content-Type: application/json' -d "{\"refresh_token\":\"$REFRESH\"}"
  curl -s -i -X POST %[6]s/auth/logout -H "Authorization: Bearer $ACCESS"
  # every node now says the token is inactive
  curl -s -X POST %[2]s/sessiond.session.v1.SessionService/CheckToken -H 'Content-Type: application/json' -d "{\"token\":\"$ACCESS\"}"
  # the operator console (docs/console.md): make a user with the operator role, then open %[2]s/console/
  echo '%[5]s' | ./bin/sessiond user create --addr %[2]s --password-stdin --email ops@example.com \
    --display-name Ops --org-name Ops --country KR --org-type OPERATOR --role operator

Ctrl-C stops the cluster.
`, dc.token, a, z, email, pw, mid)
	fmt.Fprint(w, b.String())
}

// devAuthority is the dev cluster's throwaway CA.
type devAuthority struct {
	ca  *pki.CA
	dir string
}

// devCA creates a CA in dir (ca.pem, ca-key.pem), or loads the one a kept
// data dir already holds.
func devCA(dir string) (*devAuthority, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if _, err := os.Stat(certPath); err == nil {
		ca, err := pki.LoadCA(certPath, keyPath)
		if err != nil {
			return nil, err
		}
		return &devAuthority{ca: ca, dir: dir}, nil
	}
	ca, err := pki.NewCA(pki.CAOptions{CommonName: "sessiond dev CA"})
	if err != nil {
		return nil, err
	}
	if err := pki.WriteFiles(certPath, keyPath, ca.Cert, ca.Key); err != nil {
		return nil, err
	}
	return &devAuthority{ca: ca, dir: dir}, nil
}

// node returns the TLS setting of a dev node, issuing its certificate
// (for 127.0.0.1 and localhost) unless the dir already holds one.
func (a *devAuthority) node(id string) (TLSConfig, error) {
	t := TLSConfig{CAFile: filepath.Join(a.dir, "ca.pem"), CertFile: filepath.Join(a.dir, id+".pem"),
		KeyFile: filepath.Join(a.dir, id+"-key.pem"), TrustDomain: pki.DefaultTrustDomain}
	if _, err := os.Stat(t.CertFile); err == nil {
		return t, nil
	}
	c, k, err := a.ca.Issue(pki.LeafOptions{Identity: pki.Identity{TrustDomain: pki.DefaultTrustDomain, Kind: pki.KindNode, Name: id},
		IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}})
	if err != nil {
		return t, err
	}
	return t, pki.WriteFiles(t.CertFile, t.KeyFile, c, k)
}
