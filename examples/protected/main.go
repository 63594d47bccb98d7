// Command protected is a tiny HTTP service protected by the guard SDK:
//
//	go run ./examples/protected --nodes http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083 \
//	    --issuer http://127.0.0.1:8081 --audience sessiond --listen 127.0.0.1:9090
//
// GET /hello accepts any valid access token; GET /th-customs also needs the
// role customs-agent and the country TH. GET /healthz reports the
// revocation watch status.
package main

import (
	"context"
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

	"github.com/sessiond/sessiond/clients/go/guard"
	"github.com/sessiond/sessiond/clients/go/policy"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "protected:", err)
		os.Exit(1)
	}
}

func run() error {
	nodes := flag.String("nodes", "http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083", "comma-separated sessiond node URLs, in preference order")
	issuer := flag.String("issuer", "http://127.0.0.1:8081", "expected token issuer (iss)")
	audience := flag.String("audience", "sessiond", "expected token audience (aud)")
	listen := flag.String("listen", "127.0.0.1:9090", "listen address")
	stale := flag.String("on-stale", "fail-closed", "fail-closed or fallback-remote")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg := guard.Config{
		Issuer: *issuer, Audience: *audience, Logger: log,
		Rules: []policy.Rule{{
			Resource: "th-customs", Actions: []string{"read"},
			AnyRole: []string{"customs-agent"}, Require: map[string]string{"country": "TH"},
		}},
	}
	for u := range strings.SplitSeq(*nodes, ",") {
		if u = strings.TrimSpace(u); u != "" {
			cfg.Nodes = append(cfg.Nodes, guard.Node{URL: u})
		}
	}
	switch *stale {
	case "fail-closed":
		cfg.OnStale = guard.FailClosed
	case "fallback-remote":
		cfg.OnStale = guard.FallbackRemote
	default:
		return fmt.Errorf("--on-stale %q: want fail-closed or fallback-remote", *stale)
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

	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := guard.ClaimsFromContext(r.Context())
		writeJSON(w, map[string]any{"hello": c.Subject, "session": c.SessionID, "roles": c.Roles, "country": c.Country})
	})
	customs := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := guard.ClaimsFromContext(r.Context())
		writeJSON(w, map[string]any{"welcome": c.Subject, "desk": "Thai customs"})
	})
	mux := http.NewServeMux()
	mux.Handle("GET /hello", g.Middleware(hello))
	mux.Handle("GET /th-customs", g.Middleware(customs, guard.RequireAction("read", "th-customs")))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, g.Status()) })

	// Bounded like the daemon's own API: no slow client holds a connection.
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("protected service listening", "addr", *listen)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
