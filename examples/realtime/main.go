// Command realtime is seed 002's pair of servers on one login: a REST API and
// a WebSocket server that accept the same sessiond tokens, with one device
// per platform. Log in on a second device of the same platform with
// "force": true and the first device's socket is closed at once with close
// code 4002 (forced_out), and its REST calls answer 401.
//
//	go run ./examples/realtime --nodes http://127.0.0.1:8081,http://127.0.0.1:8082 \
//	    --issuer http://127.0.0.1:8081 --audience sessiond --listen 127.0.0.1:9091
//
// Routes:
//
//	GET /api/me   REST: the caller's user and session (Authorization: Bearer <access token>)
//	GET /ws       WebSocket: offer subprotocols "sessiond.v1" and "sessiond.token.<access token>"
//	              (or send the Authorization header); the server greets with
//	              {"type":"hello","user":…,"session":…} and echoes text messages
//	GET /healthz  the revocation watch status; 503 until it is current
//
// Against nodes that authenticate callers, give it a credential with the
// check, watch and watch:details scopes (--token-file, an operator token;
// watch:details tells the close codes of forced_out, refresh_reuse, ... apart
// from 4001) and, for https nodes, --ca-file.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/sessiond/sessiond/clients/go/guard"
	"github.com/sessiond/sessiond/clients/go/wsguard"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "realtime:", err)
		os.Exit(1)
	}
}

func run() error {
	nodes := flag.String("nodes", "http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083", "comma-separated sessiond node URLs, in preference order")
	issuer := flag.String("issuer", "http://127.0.0.1:8081", "expected token issuer (iss)")
	audience := flag.String("audience", "sessiond", "expected token audience (aud)")
	listen := flag.String("listen", "127.0.0.1:9091", "listen address")
	caFile := flag.String("ca-file", "", "CA bundle verifying https nodes")
	tokenFile := flag.String("token-file", os.Getenv("SESSIOND_TOKEN_FILE"), "file holding a credential with the check, watch and watch:details scopes (env SESSIOND_TOKEN_FILE)")
	origins := flag.String("origin-patterns", "", "comma-separated origins allowed to open sockets from another origin (coder/websocket OriginPatterns)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	hc, err := nodeClient(*caFile, *tokenFile)
	if err != nil {
		return err
	}
	cfg := guard.Config{Issuer: *issuer, Audience: *audience, Logger: log, HTTPClient: hc}
	for u := range strings.SplitSeq(*nodes, ",") {
		if u = strings.TrimSpace(u); u != "" {
			cfg.Nodes = append(cfg.Nodes, guard.Node{URL: u})
		}
	}
	g, err := guard.New(cfg)
	if err != nil {
		return err
	}
	defer g.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = g.Start(startCtx)
	cancel()
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("GET /api/me", g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := guard.ClaimsFromContext(r.Context())
		writeJSON(w, http.StatusOK, map[string]any{"user": c.Subject, "session": c.SessionID, "platform": c.Platform})
	})))
	opts := &wsguard.Options{}
	if *origins != "" {
		opts.Accept.OriginPatterns = strings.Split(*origins, ",")
	}
	mux.Handle("GET /ws", wsguard.Handler(g, opts, func(ctx context.Context, c *wsguard.Conn) {
		serveSocket(ctx, log, c)
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		st := g.Status()
		code := http.StatusOK
		if !st.Connected {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, st)
	})

	// Headers and idle keep-alives are bounded; no read or write deadline,
	// which would cut the WebSockets this server keeps open.
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("realtime service listening", "addr", *listen)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	g.Close() // closes every socket with 1001
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// serveSocket greets the client and echoes its text messages until the
// session ends (wsguard closes the socket) or the client leaves.
func serveSocket(ctx context.Context, log *slog.Logger, c *wsguard.Conn) {
	hello, _ := json.Marshal(map[string]string{"type": "hello", "user": c.Session.UserID, "session": c.Session.SessionID})
	if err := c.Write(ctx, websocket.MessageText, hello); err != nil {
		return
	}
	c.SetReadLimit(64 << 10)
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			log.Info("socket closed", "session", c.Session.SessionID, "status", int(websocket.CloseStatus(err)), "cause", context.Cause(ctx))
			return
		}
		if typ != websocket.MessageText {
			continue
		}
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			return
		}
	}
}

// nodeClient is the HTTP client the guard reaches the nodes with: the CA
// bundle for https nodes and the credential as a bearer token.
func nodeClient(caFile, tokenFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		tr.ForceAttemptHTTP2 = true
	}
	var rt http.RoundTripper = tr
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return nil, fmt.Errorf("--token-file %s: empty", tokenFile)
		}
		rt = bearer{next: tr, token: tok}
	}
	return &http.Client{Transport: rt}, nil
}

// bearer adds the service credential to every request to a node.
type bearer struct {
	next  http.RoundTripper
	token string
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
