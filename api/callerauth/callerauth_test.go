package callerauth_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/api/callerauth"
	"github.com/sessiond/sessiond/authsvc/callers"
)

const nodeSecret = "a-node-secret-of-at-least-32-bytes-long"

// TestMiddleware drives the middleware with a real authenticator (the
// node secret as the only credential) and checks who gets through, with
// which principal, and how refusals are answered per route kind.
func TestMiddleware(t *testing.T) {
	routes := callerauth.Routes{
		"/x.v1.Svc/Open":  {Scope: callers.ScopeCheck, Open: true},
		"/x.v1.Svc/Write": {Scope: callers.ScopeClusterWrite},
		"/x.v1.Svc/Admin": {Scope: callers.ScopeAdmin},
		"/x.v1.Svc/":      {Deny: true},
		"/metrics":        {Scope: callers.ScopeMetrics},
		"/oauth2/revoke":  {Scope: callers.ScopeRevoke, OAuthClient: true},
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := callers.FromContext(r.Context())
		_, _ = io.WriteString(w, "reached as "+p.ID())
	})
	srv := httptest.NewServer(callerauth.New(callers.NewAuthenticator(callers.Config{NodeSecret: nodeSecret}), routes, nil, next))
	defer srv.Close()

	for _, c := range []struct {
		path, auth, contentType string
		status                  int
		want                    string
	}{
		{"/x.v1.Svc/Open", "", "application/json", 200, "reached as anonymous"},
		{"/x.v1.Svc/Open", "Bearer v4.public.a-users-token", "application/json", 200, "reached as anonymous"},
		{"/x.v1.Svc/Open", "Bearer sdo_malformed", "application/json", 401, `"code":"unauthenticated"`},
		{"/x.v1.Svc/Write", "Bearer " + nodeSecret, "application/json", 200, "reached as node/cluster-secret"},
		{"/x.v1.Svc/Write", "", "application/json", 401, "needs a credential"},
		{"/x.v1.Svc/Admin", "Bearer " + nodeSecret, "application/json", 403, `"code":"permission_denied"`},
		{"/x.v1.Svc/Unlisted", "Bearer " + nodeSecret, "application/json", 403, "no caller may call"},
		{"/metrics", "", "", 401, `"error":"unauthenticated"`},
		{"/oauth2/revoke", "Basic bm9ib2R5Og==", "application/x-www-form-urlencoded", 401, `"error":"invalid_client"`},
		{"/auth/login", "Digest whatever", "application/json", 200, "reached as anonymous"},
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+c.path, strings.NewReader("{}"))
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		if c.contentType != "" {
			req.Header.Set("Content-Type", c.contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(string(body), c.want) {
			t.Errorf("POST %s with %q: got %d %s, want %d containing %s", c.path, c.auth, resp.StatusCode, body, c.status, c.want)
		}
		if resp.StatusCode == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("POST %s: 401 without WWW-Authenticate", c.path)
		}
		if resp.StatusCode >= 400 && !json.Valid(body) {
			t.Errorf("POST %s: error body %q is not JSON", c.path, body)
		}
	}
}
