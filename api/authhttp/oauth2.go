package authhttp

import (
	"net/http"

	"github.com/sessiond/sessiond/authsvc/callers"
)

// requireClient answers 401 unless the request's principal (resolved by
// the caller-authentication middleware in front of these routes) holds
// scope; it returns the principal's name, the client id.
func (rt *routes) requireClient(w http.ResponseWriter, r *http.Request, scope string) (string, bool) {
	if err := callers.Require(r.Context(), scope); err != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="sessiond"`)
		writeJSON(w, http.StatusUnauthorized, apiError{Error: "invalid_client", Message: "service client authentication failed or lacks the " + scope + " scope"})
		return "", false
	}
	p, _ := callers.FromContext(r.Context())
	return p.Name, true
}

// parseForm reads an application/x-www-form-urlencoded body (RFC 7662/7009).
func (rt *routes) parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, rt.opts.MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		if !rt.bodyError(w, err) {
			badRequest(w, "send the token as application/x-www-form-urlencoded")
		}
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
	clientID, ok := rt.requireClient(w, r, callers.ScopeIntrospect)
	if !ok || !rt.parseForm(w, r) {
		return
	}
	tok := r.PostForm.Get("token")
	if r.PostForm.Get("token_type_hint") != "refresh_token" {
		// Authenticate, not CheckToken: a session opened a moment ago
		// through another node costs one read-index instead of reading
		// as inactive.
		if cl, err := rt.svc.Authenticate(r.Context(), tok); err == nil {
			writeJSON(w, http.StatusOK, map[string]any{
				"active": true, "token_type": "access_token", "client_id": clientID,
				"sub": cl.Subject, "iss": cl.Issuer, "aud": cl.Audience, "jti": cl.TokenID, "sid": cl.SessionID,
				"exp": cl.Expiration.Unix(), "iat": cl.IssuedAt.Unix(), "nbf": cl.NotBefore.Unix(),
				"org_id": cl.OrgID, "org_type": cl.OrgType, "country": cl.Country, "roles": cl.Roles, "platform": cl.Platform,
			})
			return
		}
	}
	if rc, active := rt.svc.IntrospectRefresh(r.Context(), tok); active {
		writeJSON(w, http.StatusOK, map[string]any{
			"active": true, "token_type": "refresh_token", "client_id": clientID,
			"sub": rc.Subject, "iss": rc.Issuer, "jti": rc.TokenID, "sid": rc.SessionID,
			"exp": rc.Expiration.Unix(), "iat": rc.IssuedAt.Unix(),
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"active": false})
}

// revoke is RFC 7009: the answer is 200 whether or not the token was valid.
func (rt *routes) revoke(w http.ResponseWriter, r *http.Request) {
	if _, ok := rt.requireClient(w, r, callers.ScopeRevoke); !ok || !rt.parseForm(w, r) {
		return
	}
	if err := rt.svc.RevokeToken(r.Context(), r.PostForm.Get("token")); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}
