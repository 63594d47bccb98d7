// Package guard is the Go SDK services use to accept sessiond access tokens
// without a network round trip per request.
//
// A Guard verifies PASETO v4.public access tokens against the keys the
// nodes publish at /.well-known/paserk, and checks them against a local
// revocation set (ended sessions, revoked token ids, per-user logout-all
// cut-offs) that a SessionService.WatchRevocations stream keeps current.
// The stream connects to the preferred node (Config.Region first), resumes
// from the last applied index after any break, fails over to the next node
// in preference order, and applies snapshots (which replace the set) and
// events. The server sends a heartbeat about every second; when nothing has
// arrived for Config.MaxStaleness the set is stale and Check either refuses
// with ErrStale (FailClosed) or asks a node (FallbackRemote).
//
// Verified claims are cached by SHA-256 of the token until the token
// expires, so a repeated token costs a hash and a few map lookups.
//
// What a local check cannot see: a token whose session was never known to
// the cluster (sessiond answers session_not_found) is accepted locally if
// its signature verifies; a session's own not-before cut-off is only
// visible when it arrives as a user or session event.
//
// Usage:
//
//	g, err := guard.New(guard.Config{
//		Nodes:    []guard.Node{{URL: "http://10.0.0.1:8081", Region: "eu"}, {URL: "http://10.1.0.1:8081", Region: "ap"}},
//		Region:   "eu",
//		Issuer:   "http://10.0.0.1:8081",
//		Audience: "sessiond",
//		Rules: []policy.Rule{{Resource: "invoices", Actions: []string{"read"}, AnyRole: []string{"accountant"}}},
//	})
//	if err != nil { ... }
//	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
//	defer cancel()
//	if err := g.Start(ctx); err != nil { ... }
//	defer g.Close()
//
//	mux := http.NewServeMux()
//	mux.Handle("GET /me", g.Middleware(me))
//	mux.Handle("GET /invoices", g.Middleware(invoices, guard.RequireAction("read", "invoices")))
//
//	func me(w http.ResponseWriter, r *http.Request) {
//		claims, _ := guard.ClaimsFromContext(r.Context())
//		fmt.Fprintln(w, "hello", claims.Subject)
//	}
//
// Connect services use g.Interceptor() with connect.WithInterceptors.
package guard
