package gateway

import (
	"encoding/json"
	"net/http"

	"github.com/sessiond/sessiond/authsvc"
)

// forwardAuth serves CheckPath.
type forwardAuth struct {
	c    Checker
	opts Options
}

// ServeHTTP answers 200 with the identity headers when the request's
// bearer token is active, else 401 with WWW-Authenticate, X-Sessiond-Reason
// and a JSON body {"error","reason","end_reason","message"}. More than one
// Authorization header is refused as malformed.
func (f *forwardAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	var v verdict
	switch vals := r.Header.Values("Authorization"); len(vals) {
	case 0:
	case 1:
		v = check(r.Context(), f.c, vals[0])
	default:
		v = verdict{reason: authsvc.ReasonMalformed}
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
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	if r.Method != http.MethodHead {
		_ = json.NewEncoder(w).Encode(body)
	}
}
