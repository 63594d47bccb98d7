package callerauth_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/api/callerauth"
	"github.com/sessiond/sessiond/authsvc/callers"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// tokens is an in-memory operator token store.
type tokens map[string]*storev1.OperatorToken

func (m tokens) OperatorToken(id string, _ time.Time) (*storev1.OperatorToken, error) {
	if o, ok := m[id]; ok {
		return o, nil
	}
	return nil, errors.New("not found")
}

// TestMiddleware drives the middleware with a real authenticator (one
// operator token with the cluster:write scope as the only credential) and
// checks who gets through, with which principal, and how refusals are
// answered per route kind.
func TestMiddleware(t *testing.T) {
	tok, id, hash := callers.NewOperatorToken()
	store := tokens{id: {Id: id, Name: "ci", Scopes: []string{callers.ScopeClusterWrite}, SecretSha256: hash[:],
		ExpiresUnixNano: time.Now().Add(time.Hour).UnixNano()}}
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
	srv := httptest.NewServer(callerauth.New(callers.NewAuthenticator(callers.Config{Tokens: store}), routes, nil, next))
	defer srv.Close()

	for _, c := range []struct {
		path, auth, contentType string
		status                  int
		want                    string
	}{
		{"/x.v1.Svc/Open", "", "application/json", 200, "reached as anonymous"},
		{"/x.v1.Svc/Open", "Bearer v4.public.a-users-token", "application/json", 200, "reached as anonymous"},
		{"/x.v1.Svc/Open", "Bearer sdo_malformed", "application/json", 401, `"code":"unauthenticated"`},
		{"/x.v1.Svc/Write", "Bearer " + tok, "application/json", 200, "reached as operator/ci"},
		{"/x.v1.Svc/Write", "Bearer a-shared-secret-of-at-least-32-bytes-long", "application/json", 401, `"code":"unauthenticated"`},
		{"/x.v1.Svc/Write", "", "application/json", 401, "needs a credential"},
		{"/x.v1.Svc/Admin", "Bearer " + tok, "application/json", 403, `"code":"permission_denied"`},
		{"/x.v1.Svc/Unlisted", "Bearer " + tok, "application/json", 403, "no caller may call"},
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

// TestMiddlewareCredentialHeader: on a route whose Authorization carries
// a user's token (a gateway check), the caller's credential is read from
// the rule's header only, and a refused caller is 500 (never a 401 or 403
// a gateway would relay to the user) naming that header.
func TestMiddlewareCredentialHeader(t *testing.T) {
	gw, gwID, gwHash := callers.NewOperatorToken()
	ci, ciID, ciHash := callers.NewOperatorToken()
	exp := time.Now().Add(time.Hour).UnixNano()
	store := tokens{
		gwID: {Id: gwID, Name: "gw", Scopes: []string{callers.ScopeCheck}, SecretSha256: gwHash[:], ExpiresUnixNano: exp},
		ciID: {Id: ciID, Name: "ci", Scopes: []string{callers.ScopeClusterRead}, SecretSha256: ciHash[:], ExpiresUnixNano: exp},
	}
	routes := callerauth.Routes{
		"/gw/check": {Scope: callers.ScopeCheck, CredentialHeader: "X-Cred"},
		"/gw/open":  {Scope: callers.ScopeCheck, Open: true, CredentialHeader: "X-Cred"},
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := callers.FromContext(r.Context())
		_, _ = io.WriteString(w, "reached as "+p.ID()+" with "+r.Header.Get("Authorization"))
	})
	srv := httptest.NewServer(callerauth.New(callers.NewAuthenticator(callers.Config{Tokens: store}), routes, nil, next))
	defer srv.Close()

	const user = "Bearer v4.public.a-users-token"
	for _, c := range []struct {
		name, path, cred, auth string
		status                 int
		want                   string
	}{
		{"gateway credential in its header", "/gw/check", "Bearer " + gw, user, 200, "reached as operator/gw with " + user},
		{"gateway credential in Authorization", "/gw/check", "", "Bearer " + gw, 500, "in the X-Cred header"},
		{"no credential", "/gw/check", "", user, 500, "X-Cred"},
		{"credential without the scope", "/gw/check", "Bearer " + ci, user, 500, "lacks the check scope"},
		{"malformed credential", "/gw/check", "Bearer sdo_malformed", user, 500, "X-Cred"},
		{"open, no credential", "/gw/open", "", user, 200, "reached as anonymous with " + user},
		{"open, malformed credential", "/gw/open", "Bearer sdo_malformed", user, 500, "X-Cred"},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+c.path, nil)
		req.Header.Set("Authorization", c.auth)
		if c.cred != "" {
			req.Header.Set("X-Cred", c.cred)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(string(body), c.want) {
			t.Errorf("%s: got %d %s, want %d containing %q", c.name, resp.StatusCode, body, c.status, c.want)
		}
		if resp.StatusCode != 200 && resp.Header.Get("WWW-Authenticate") != "" {
			t.Errorf("%s: WWW-Authenticate %q on a gateway's refusal; want none (the user's client would see it)", c.name, resp.Header.Get("WWW-Authenticate"))
		}
	}
}
