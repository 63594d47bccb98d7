package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/internal/bench"
)

// benchFlags are the flags of `sessiond bench`.
type benchFlags struct {
	targets               []string
	conn                  bench.Conn
	clients               int
	duration              time.Duration
	total                 int64
	rate                  float64
	timeout               time.Duration
	consistency           string
	pool                  int64
	watchTarget           string
	mix                   string
	preload               int64
	preloadUsers          bool
	preloadConcurrency    int
	tokenFile, clientFile string
	oidc                  bench.OIDCParams
	oidcSecretFile        string
	profileDir, profPath  string
	output                string
	quiet                 bool
}

func newBenchCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench SCENARIO",
		Short: "Load a running cluster as its users would and report throughput, latency and errors",
		Long: `Load a running cluster through its public API, from this process, and report
throughput, latency percentiles (p50/p90/p99/max, HDR histogram) and errors
by code. Scenarios:

  login          Login of one user per client (argon2id on the server)
  refresh        Refresh of each client's own refresh-token chain
  revoke         RevokeSession of prepared sessions (a replicated write)
  check          CheckToken of each client's access token (--consistency)
  check-session  CheckSession of prepared or preloaded sessions (--consistency)
  watch          revocation latency: RevokeSession acknowledged on the
                 clients' nodes until it arrives on a WatchRevocations
                 stream on --watch-target (default: the last target)
  mixed          a weighted mix (--mix, default ` + bench.DefaultMix + `)
  healthz        GET /healthz (the HTTP floor)
  code-flow      OpenID Connect code flows: GET /oidc/authorize with the
                 browser's SSO cookie (PKCE S256, state, nonce) on the
                 client's node, then POST /oidc/token and GET
                 /oidc/userinfo on the next node (the app's backend);
                 every client's browser signs in once, before the clock
  backchannel    back-channel logout latency: a client session opened by a
                 code flow is ended (RevokeSession) on the app's node;
                 measured from the acknowledgement until its logout token
                 (verified with the JWKS) reaches this process's receiver
                 at --oidc-backchannel-uri
  preload        only the --preload bulk load, and its speed

Clients spread over --targets (client i uses target i mod the count).
Preparing (users, logins, sessions to revoke) uses the operator bulk-load
API and is not measured. The operator token (scopes admin, and check and
watch for SessionService calls made without --client-id) is read from
--token-file or SESSIOND_TOKEN; a service client's secret from
--client-secret-file or SESSIOND_BENCH_CLIENT_SECRET.

code-flow and backchannel play the OpenID Connect client --oidc-client (a
public client, or a confidential one whose secret is read from
--oidc-secret-file or SESSIOND_BENCH_OIDC_SECRET; a client that is not
first-party has its consent page allowed at every flow). Their users are
created with the operator token too. The defaults match the demo cluster of

  sessiond dev --oidc-redirect-uri ` + bench.DefaultOIDCRedirectURI + ` \
    --oidc-backchannel-uri ` + bench.DefaultOIDCBackchannelURI + `

backchannel needs the client registered with --oidc-backchannel-uri as its
backchannel_logout_uri, reachable from the cluster's leader.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runBench(cmd, args[0], &f) },
	}
	fs := cmd.Flags()
	fs.StringSliceVar(&f.targets, "targets", []string{"http://127.0.0.1:8080"}, "API URLs of the nodes to load, comma-separated")
	fs.IntVar(&f.clients, "clients", 64, "concurrent clients")
	fs.IntVar(&f.conn.Conns, "conns", 0, "HTTP clients the load clients share (client i uses i mod conns), each with at most one connection per target; 0: one per client")
	fs.DurationVar(&f.duration, "duration", 0, "how long to run (default 10s unless --total)")
	fs.Int64Var(&f.total, "total", 0, "run this many operations instead of a duration")
	fs.Float64Var(&f.rate, "rate", 0, "open loop: start operations at this total rate per second (latency counts from when each was due); 0: closed loop")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "deadline of one operation")
	fs.StringVar(&f.conn.HTTP, "http", "1.1", "HTTP version: 1.1 (keep-alive) or 2 (h2 over TLS, h2c over plain http)")
	fs.StringVar(&f.conn.Protocol, "protocol", "connect", "RPC protocol: connect or grpc (grpc needs --http 2)")
	fs.StringVar(&f.conn.Codec, "codec", "proto", "message encoding: proto or json")
	// The credential flags are those of the other operator commands
	// (clientflags.go), for many targets at once.
	fs.StringVar(&f.conn.CACert, "ca-file", os.Getenv("SESSIOND_CA_FILE"), "CA bundle (PEM; or SESSIOND_CA_FILE) that signed the nodes' API certificates")
	fs.StringVar(&f.conn.Cert, "cert", os.Getenv("SESSIOND_CERT_FILE"), "operator client certificate (PEM; or SESSIOND_CERT_FILE), with --key")
	fs.StringVar(&f.conn.Key, "key", os.Getenv("SESSIOND_KEY_FILE"), "private key of --cert (PEM; or SESSIOND_KEY_FILE)")
	fs.StringVar(&f.tokenFile, "token-file", os.Getenv("SESSIOND_TOKEN_FILE"), "file holding an operator token (sessiond operator token create; or the token itself in SESSIOND_TOKEN)")
	fs.StringVar(&f.conn.ClientID, "client-id", "", "service client id for SessionService calls (HTTP Basic)")
	fs.StringVar(&f.clientFile, "client-secret-file", "", "file holding the service client's secret; default SESSIOND_BENCH_CLIENT_SECRET")
	fs.StringVar(&f.consistency, "consistency", "default", "read level of check and check-session: stale, default or linearizable")
	fs.Int64Var(&f.pool, "pool", 0, "sessions revoke and watch prepare (0: enough for --total, or 5000 per second of --duration)")
	fs.StringVar(&f.watchTarget, "watch-target", "", "node whose WatchRevocations stream the watch scenario listens on (default: the last target)")
	fs.StringVar(&f.mix, "mix", bench.DefaultMix, "weights of the mixed scenario: kind=weight,...")
	fs.Int64Var(&f.preload, "preload", 0, "first open this many sessions through the bulk-load API (256 per replicated command); check-session then picks from them")
	fs.BoolVar(&f.preloadUsers, "preload-users", false, "with --preload, also create one built-in-directory user per session")
	fs.IntVar(&f.preloadConcurrency, "preload-concurrency", 0, "bulk-load calls in flight (0: 2 per target)")
	fs.StringVar(&f.oidc.ClientID, "oidc-client", bench.DefaultOIDCClient, "code-flow, backchannel: the OpenID Connect client_id")
	fs.StringVar(&f.oidcSecretFile, "oidc-secret-file", "", "code-flow, backchannel: file holding a confidential client's secret (client_secret_basic); default SESSIOND_BENCH_OIDC_SECRET, none: a public client")
	fs.StringVar(&f.oidc.RedirectURI, "oidc-redirect-uri", bench.DefaultOIDCRedirectURI, "code-flow, backchannel: a redirect URI registered for the client (nothing needs to listen there)")
	fs.StringVar(&f.oidc.Scope, "oidc-scope", bench.DefaultOIDCScope, "code-flow, backchannel: the scope asked")
	fs.StringVar(&f.oidc.BackchannelURI, "oidc-backchannel-uri", bench.DefaultOIDCBackchannelURI, "backchannel: the client's registered backchannel_logout_uri; this process receives the logout tokens there")
	fs.StringVar(&f.oidc.BackchannelListen, "oidc-backchannel-listen", "", "backchannel: address the receiver listens on (default: the host and port of --oidc-backchannel-uri)")
	fs.StringVar(&f.profileDir, "profile-dir", "", "take a CPU profile of every target during the run into this directory (needs the node's operator pprof route)")
	fs.StringVar(&f.profPath, "profile-path", bench.DefaultProfilePath, "the nodes' CPU profile route")
	fs.StringVarP(&f.output, "output", "o", "text", "text or json")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "no progress lines on stderr")
	return cmd
}

// resolve checks the flags and reads the credentials.
func (f *benchFlags) resolve(scenario string) error {
	if scenario != "preload" && !slices.Contains(bench.Scenarios, scenario) {
		return fmt.Errorf("unknown scenario %q (want one of %s, preload)", scenario, strings.Join(bench.Scenarios, ", "))
	}
	if f.output != "text" && f.output != "json" {
		return fmt.Errorf("-o %q: want text or json", f.output)
	}
	if f.total > 0 && f.duration > 0 {
		return errors.New("set --duration or --total, not both")
	}
	if f.total == 0 && f.duration == 0 {
		f.duration = 10 * time.Second
	}
	if scenario == "preload" && f.preload <= 0 {
		return errors.New("the preload scenario needs --preload N")
	}
	f.conn.Targets = f.targets
	tok, err := operatorToken(f.tokenFile)
	if err != nil {
		return err
	}
	f.conn.OperatorToken = tok
	if f.conn.ClientID != "" {
		f.conn.ClientSecret = os.Getenv("SESSIOND_BENCH_CLIENT_SECRET")
		if f.clientFile != "" {
			s, err := readSecretFile(f.clientFile)
			if err != nil {
				return fmt.Errorf("client-secret-file: %w", err)
			}
			f.conn.ClientSecret = s
		}
	}
	if scenario == "code-flow" || scenario == "backchannel" {
		f.oidc.ClientSecret = os.Getenv("SESSIOND_BENCH_OIDC_SECRET")
		if f.oidcSecretFile != "" {
			s, err := readSecretFile(f.oidcSecretFile)
			if err != nil {
				return fmt.Errorf("oidc-secret-file: %w", err)
			}
			f.oidc.ClientSecret = s
		}
	}
	if f.preloadConcurrency == 0 {
		f.preloadConcurrency = 2 * len(f.targets)
	}
	if f.pool == 0 {
		f.pool = defaultPool(scenario, f)
	}
	return f.conn.Validate()
}

// defaultPool sizes the sessions revoke and watch prepare: the expected
// revocations (all operations of --total, or 5000 per second of
// --duration, times the share of revokes in a mix), plus one per client.
func defaultPool(scenario string, f *benchFlags) int64 {
	share := 0.0
	switch scenario {
	case "revoke", "watch":
		share = 1
	case "mixed":
		kinds, weights, err := bench.ParseMix(f.mix)
		if err != nil {
			return 0
		}
		total := 0
		for i, w := range weights {
			total += w
			if kinds[i] == "revoke" {
				share = float64(w)
			}
		}
		share /= float64(total)
	}
	if share == 0 {
		return 0
	}
	ops := float64(f.total)
	if ops == 0 {
		rate := f.rate
		if rate == 0 {
			rate = 5000
		}
		ops = rate * f.duration.Seconds()
	}
	return min(int64(ops*share)+int64(f.clients), 5_000_000)
}

func runBench(cmd *cobra.Command, scenario string, f *benchFlags) error {
	if err := f.resolve(scenario); err != nil {
		return usageError{err}
	}
	ctx := cmd.Context()
	var progress io.Writer = cmd.ErrOrStderr()
	if f.quiet {
		progress = nil
	}
	var pre *bench.PreloadResult
	if f.preload > 0 {
		var err error
		if pre, err = bench.Preload(ctx, f.conn, f.preload, f.preloadUsers, f.preloadConcurrency, progress); err != nil {
			return err
		}
	}
	var sum *bench.Summary
	if scenario == "preload" {
		sum = &bench.Summary{Scenario: "preload"}
	} else {
		params := bench.Params{Conn: f.conn, Consistency: f.consistency, Pool: f.pool, WatchTarget: f.watchTarget, Mix: f.mix, OIDC: f.oidc, Log: progress}
		if pre != nil {
			params.Sessions, params.SessionsIndex = pre.IDs, pre.Index
		}
		sc, err := bench.NewScenario(scenario, params)
		if err != nil {
			return usageError{err}
		}
		defer sc.Close()
		opts := bench.Options{Clients: f.clients, Duration: f.duration, Total: f.total, Rate: f.rate, Timeout: f.timeout, Progress: progress}
		var stopProfiles func() (notes, files []string)
		probe := &bench.StoreProbe{Conn: f.conn}
		opts.OnStart = func() {
			probe.Start(ctx)
			if f.profileDir != "" {
				stopProfiles = bench.Profiler{Conn: f.conn, Dir: f.profileDir, Path: f.profPath}.Start(ctx, f.duration)
			}
		}
		if sum, err = bench.Run(ctx, scenario, sc, opts); err != nil {
			return err
		}
		var note string
		if sum.Store, note = probe.Finish(ctx, sum.Ops); note != "" {
			sum.Notes = append(sum.Notes, note)
		}
		if stopProfiles != nil {
			notes, files := stopProfiles()
			sum.Notes = append(sum.Notes, notes...)
			for _, p := range files {
				sum.Notes = append(sum.Notes, "CPU profile: "+p)
			}
		}
	}
	if pre != nil {
		sum.Preload = &pre.Summary
	}
	sum.Params = map[string]string{
		"targets": strings.Join(f.conn.Targets, ","), "conns": strconv.Itoa(f.conn.Conns), "http": f.conn.HTTP,
		"protocol": f.conn.Protocol, "codec": f.conn.Codec,
	}
	if scenario == "check" || scenario == "check-session" || scenario == "mixed" {
		sum.Params["consistency"] = f.consistency
	}
	if scenario == "code-flow" || scenario == "backchannel" {
		sum.Params["oidc_client"], sum.Params["oidc_scope"] = f.oidc.ClientID, f.oidc.Scope
		if scenario == "backchannel" {
			sum.Params["oidc_backchannel_uri"] = f.oidc.BackchannelURI
		}
	}
	if f.output == "json" {
		return sum.WriteJSON(cmd.OutOrStdout())
	}
	return sum.WriteText(cmd.OutOrStdout())
}
