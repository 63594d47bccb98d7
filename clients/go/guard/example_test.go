package guard_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/sessiond/sessiond/clients/go/guard"
	"github.com/sessiond/sessiond/clients/go/policy"
)

// This example protects two HTTP routes; it needs running sessiond nodes,
// so it has no output to check.
func Example() {
	g, err := guard.New(guard.Config{
		Nodes: []guard.Node{
			{URL: "http://127.0.0.1:8081", Region: "eu"},
			{URL: "http://127.0.0.1:8082", Region: "eu"},
			{URL: "http://127.0.0.1:8083", Region: "ap"},
		},
		Region:   "eu",
		Issuer:   "http://127.0.0.1:8081",
		Audience: "sessiond",
		Rules: []policy.Rule{{
			Resource: "th-customs", Actions: []string{"read"},
			AnyRole: []string{"customs-agent"}, Require: map[string]string{"country": "TH"},
		}},
		OnStale: guard.FallbackRemote,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer g.Close()

	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := guard.ClaimsFromContext(r.Context())
		fmt.Fprintf(w, "hello %s\n", claims.Subject)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /hello", g.Middleware(hello))
	mux.Handle("GET /th-customs", g.Middleware(hello, guard.RequireAction("read", "th-customs")))
	log.Fatal(http.ListenAndServe("127.0.0.1:9090", mux))
}

// Check can be used directly, for example on a WebSocket upgrade.
func ExampleGuard_Check() {
	var g *guard.Guard // from guard.New, started
	handle := func(r *http.Request) error {
		claims, err := g.Check(r.Context(), guard.BearerToken(r.Header.Get("Authorization")))
		if err != nil {
			return err // errors.Is(err, guard.ErrUnauthenticated) / guard.ErrStale
		}
		log.Printf("user %s, session %s", claims.Subject, claims.SessionID)
		return nil
	}
	_ = handle
}
