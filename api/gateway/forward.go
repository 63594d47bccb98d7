package gateway

import (
	"encoding/json"
	"net/http"

	"github.com/sessiond/sessiond/clients/go/checkreason"
)

// forwardAuth serves CheckPath.
type forwardAuth struct{ *door }

// ServeHTTP answers 200 with the identity headers when the request's
// bearer token is active, else 401 with WWW-Authenticate, X-Sessiond-Reason
// and a JSON body {"error","reason","end_reason","message"}. More than one
// Authorization header is refused as malformed. With the query parameters
// action and resource (both or neither), an active token also needs the
// policy to allow that action on that resource: 403 when it does not. A
// node that cannot vouch for its state (cut off from the leader) answers
// 503 with Retry-After: a gateway fails closed or asks another node.
func (f *forwardAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	q := r.URL.Query()
	perm, err := parsePermission(q.Get("action"), q.Get("resource"))
	if err != nil {
		writeJSON(w, r, http.StatusBadRequest, map[string]string{"error": "invalid_argument", "message": err.Error()})
		return
	}
	var v verdict
	switch vals := r.Header.Values("Authorization"); len(vals) {
	case 0:
	case 1:
		if v, err = f.check(r.Context(), vals[0], perm); err != nil {
			h.Set("Retry-After", "1")
			writeJSON(w, r, http.StatusServiceUnavailable, map[string]string{"error": "unavailable", "message": err.Error()})
			return
		}
	default:
		v = verdict{reason: checkreason.String(checkreason.Malformed)}
	}
	if v.denied != "" {
		writeJSON(w, r, http.StatusForbidden, map[string]string{"error": "permission_denied", "message": v.denied})
		return
	}
	if v.claims != nil {
		for i, val := range identity(v.claims) {
			h[IdentityHeaders[i]] = []string{val}
		}
		cc := f.opts.cacheControl(v.claims.Expiration)
		h.Set("Cache-Control", cc)
		if cc != "no-store" {
			h.Set("Vary", "Authorization")
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	h.Set("Cache-Control", "no-store")
	h.Set("WWW-Authenticate", v.challenge())
	body := map[string]string{"error": "unauthenticated", "message": v.message()}
	if v.reason != "" {
		h.Set(HeaderReason, v.reason)
		body["error"], body["reason"] = "invalid_token", v.reason
	}
	if v.endReason != "" {
		h.Set(HeaderEnd, v.endReason)
		body["end_reason"] = v.endReason
	}
	writeJSON(w, r, http.StatusUnauthorized, body)
}

// writeJSON answers status with a JSON body (none to HEAD), never cacheable.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, body map[string]string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_ = json.NewEncoder(w).Encode(body)
	}
}
