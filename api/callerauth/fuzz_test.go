package callerauth_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/api/callerauth"
	"github.com/sessiond/sessiond/authsvc/callers"
)

// FuzzAuthorization drives the middleware, with a real authenticator, with
// arbitrary Authorization headers (Bearer operator tokens, Basic service
// credentials, anything) on every kind of route: never a panic, a refused
// caller never reaches the route, every refusal is a JSON error or an RPC
// error, and only the one real token reaches a route needing its scope.
// Seeds are the headers real clients send.
func FuzzAuthorization(f *testing.F) {
	tok, id, hash := callers.NewOperatorToken()
	store := tokens{id: {Id: id, Name: "ci", Scopes: []string{callers.ScopeClusterWrite}, SecretSha256: hash[:],
		ExpiresUnixNano: time.Now().Add(time.Hour).UnixNano()}}
	routes := callerauth.Routes{
		"/x.v1.Svc/Open":  {Scope: callers.ScopeCheck, Open: true},
		"/x.v1.Svc/Write": {Scope: callers.ScopeClusterWrite},
		"/x.v1.Svc/":      {Deny: true},
		"/metrics":        {Scope: callers.ScopeMetrics},
		"/oauth2/revoke":  {Scope: callers.ScopeRevoke, OAuthClient: true},
	}
	h := callerauth.New(callers.NewAuthenticator(callers.Config{Tokens: store}), routes, nil,
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := callers.FromContext(r.Context())
			w.Header().Set("X-Principal", p.ID())
			w.WriteHeader(http.StatusNoContent)
		}))
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, a := range []string{"Bearer " + tok, "bearer " + tok, "Bearer " + tok[:len(tok)-1], "Bearer sdo_" + strings.Repeat("0", 24) + ".x",
		basic("billing:secret"), basic("billing"), basic(":"), "Basic !!!", "Bearer v4.public.AAAA", "Negotiate x", ""} {
		for _, p := range []string{"/x.v1.Svc/Write", "/x.v1.Svc/Open", "/x.v1.Svc/Other", "/oauth2/revoke", "/metrics", "/auth/login"} {
			f.Add(a, p)
		}
	}
	f.Fuzz(func(t *testing.T, authorization, path string) {
		u, err := url.Parse("http://node" + path)
		if err != nil || !strings.HasPrefix(path, "/") || u.Path != path || u.RawQuery != "" {
			return // not a request path
		}
		req, err := http.NewRequest(http.MethodPost, u.String(), http.NoBody)
		if err != nil {
			return
		}
		req.RemoteAddr = "192.0.2.1:1234"
		req.Header["Authorization"] = []string{authorization}
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		rule, known := routes.Lookup(req.URL.Path)
		if rec.Code == http.StatusNoContent {
			if known && !rule.Open && (rule.Deny || rec.Header().Get("X-Principal") == "anonymous") {
				t.Fatalf("%q on %s: reached as %q", authorization, path, rec.Header().Get("X-Principal"))
			}
			if known && rule.Scope == callers.ScopeClusterWrite && authorization != "Bearer "+tok && !strings.EqualFold(authorization, "bearer "+tok) {
				t.Fatalf("%q reached %s, which only the real token may", authorization, path)
			}
			return
		}
		var e map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || (e["error"] == nil && e["code"] == nil) {
			t.Fatalf("%q on %s: %d with body %q, want a JSON or Connect error", authorization, path, rec.Code, rec.Body)
		}
	})
}
