package authhttp

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/sessiond/sessiond/authsvc/password"
)

// ClientAuth checks HTTP Basic credentials of service clients, and
// optionally the cluster secret as a bearer token (operators). A verified
// secret is remembered as its SHA-256, so only the first request of a
// client pays for argon2id.
type ClientAuth struct {
	hasher  *password.Hasher
	clients map[string]ServiceClient
	secret  string

	mu       sync.Mutex
	verified map[string][32]byte
}

// NewClientAuth returns the checker of service-client credentials. With a
// non-empty clusterSecret, a bearer token equal to it is allowed every scope.
func NewClientAuth(list []ServiceClient, h *password.Hasher, clusterSecret string) *ClientAuth {
	m := make(map[string]ServiceClient, len(list))
	for _, c := range list {
		m[c.ID] = c
	}
	return &ClientAuth{hasher: h, clients: m, secret: clusterSecret, verified: map[string][32]byte{}}
}

// Allow reports whether the request headers carry the credentials of a
// service client with scope, or the cluster secret.
func (a *ClientAuth) Allow(h http.Header, scope string) bool {
	if a.secret != "" {
		if v := h.Get("Authorization"); len(v) > 7 && strings.EqualFold(v[:7], "Bearer ") &&
			subtle.ConstantTimeCompare([]byte(strings.TrimSpace(v[7:])), []byte(a.secret)) == 1 {
			return true
		}
	}
	_, ok := a.check(&http.Request{Header: h}, scope)
	return ok
}

// check returns the client when r carries its valid credentials and it has
// the scope.
func (a *ClientAuth) check(r *http.Request, scope string) (ServiceClient, bool) {
	id, secret, ok := r.BasicAuth()
	if !ok {
		return ServiceClient{}, false
	}
	c, known := a.clients[id]
	if !known || a.hasher == nil {
		return ServiceClient{}, false
	}
	sum := sha256.Sum256([]byte(secret))
	a.mu.Lock()
	prev, seen := a.verified[id]
	a.mu.Unlock()
	if !seen || subtle.ConstantTimeCompare(prev[:], sum[:]) != 1 {
		if ok, _, err := a.hasher.Verify(secret, c.SecretHash); err != nil || !ok {
			return ServiceClient{}, false
		}
		a.mu.Lock()
		a.verified[id] = sum
		a.mu.Unlock()
	}
	return c, slices.Contains(c.Scopes, scope)
}

// requireClient answers 401 unless r carries a service client with scope.
func (rt *routes) requireClient(w http.ResponseWriter, r *http.Request, scope string) (ServiceClient, bool) {
	c, ok := rt.clients.check(r, scope)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="sessiond"`)
		writeJSON(w, http.StatusUnauthorized, apiError{Error: "invalid_client", Message: "service client authentication failed or lacks the " + scope + " scope"})
	}
	return c, ok
}

// parseForm reads an application/x-www-form-urlencoded body (RFC 7662/7009).
func parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		badRequest(w, "send the token as application/x-www-form-urlencoded")
		return false
	}
	if r.PostForm.Get("token") == "" {
		badRequest(w, "token: required")
		return false
	}
	return true
}

// introspect is RFC 7662: an inactive or unknown token is {"active":false}.
func (rt *routes) introspect(w http.ResponseWriter, r *http.Request) {
	c, ok := rt.requireClient(w, r, "introspect")
	if !ok || !parseForm(w, r) {
		return
	}
	tok := r.PostForm.Get("token")
	if r.PostForm.Get("token_type_hint") != "refresh_token" {
		if chk := rt.svc.CheckToken(tok); chk.Active {
			cl := chk.Claims
			writeJSON(w, http.StatusOK, map[string]any{
				"active": true, "token_type": "access_token", "client_id": c.ID,
				"sub": cl.Subject, "iss": cl.Issuer, "aud": cl.Audience, "jti": cl.TokenID, "sid": cl.SessionID,
				"exp": cl.Expiration.Unix(), "iat": cl.IssuedAt.Unix(), "nbf": cl.NotBefore.Unix(),
				"org": cl.OrgID, "org_type": cl.OrgType, "country": cl.Country, "roles": cl.Roles, "platform": cl.Platform,
			})
			return
		}
	}
	if rc, active := rt.svc.CheckRefresh(tok); active {
		writeJSON(w, http.StatusOK, map[string]any{
			"active": true, "token_type": "refresh_token", "client_id": c.ID,
			"sub": rc.Subject, "iss": rc.Issuer, "jti": rc.TokenID, "sid": rc.SessionID,
			"exp": rc.Expiration.Unix(), "iat": rc.IssuedAt.Unix(),
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"active": false})
}

// revoke is RFC 7009: the answer is 200 whether or not the token was valid.
func (rt *routes) revoke(w http.ResponseWriter, r *http.Request) {
	if _, ok := rt.requireClient(w, r, "revoke"); !ok || !parseForm(w, r) {
		return
	}
	if err := rt.svc.RevokeToken(r.Context(), r.PostForm.Get("token")); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}
