package guard

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sessiond/sessiond/clients/go/token"
)

// Fuzz targets of the SDK's decoders of bytes from the network: the
// Authorization header and the token in it (PASETO parsing behind
// Guard.Check), and the key document of /.well-known/paserk. Seeds are
// real: tokens the fake node's key signs, the document it serves.

// FuzzMiddlewareAuthorization drives the middleware with arbitrary
// Authorization headers: never a panic, a 2xx only for a token that Check
// accepts, every refusal a 401/403/503 JSON error.
func FuzzMiddlewareAuthorization(f *testing.F) {
	g, _, k, _ := startedGuard(f, nil)
	valid := k.mint(f, nil)
	for _, s := range []string{"Bearer " + valid, "bearer " + valid, "Bearer  " + valid + " ", "Bearer " + valid[:len(valid)-3],
		"Bearer " + k.mint(f, func(c *token.AccessClaims) {
			c.IssuedAt, c.Expiration = c.IssuedAt.Add(-2*time.Hour), c.IssuedAt.Add(-time.Hour)
		}),
		"Basic dXNlcjpwYXNz", "Bearer", "Bearer v4.public.", "Bearer v4.public.AAAA.BBBB", "Bearer eyJhbGciOiJub25lIn0.e30.", ""} {
		f.Add(s)
	}
	h := g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := ClaimsFromContext(r.Context()); !ok {
			w.WriteHeader(http.StatusTeapot) // reached without claims
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	f.Fuzz(func(t *testing.T, authorization string) {
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		req.Header["Authorization"] = []string{authorization}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusNoContent:
			if _, err := g.Check(context.Background(), BearerToken(authorization)); err != nil {
				t.Fatalf("%q: let through, yet Check says %v", authorization, err)
			}
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusServiceUnavailable:
			var e struct{ Error, Message string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%q: %d with body %q, want a JSON error", authorization, rec.Code, rec.Body)
			}
		default:
			t.Fatalf("%q: status %d %s", authorization, rec.Code, rec.Body)
		}
	})
}

// FuzzParseKeys decodes arbitrary key documents: never a panic, and every
// key accepted has a kid that is its PASERK id.
func FuzzParseKeys(f *testing.F) {
	k := newSigner(f)
	real, err := json.Marshal(map[string]any{"keys": []map[string]any{{"kid": k.kid, "paserk": token.PublicKeyPASERK(k.pub),
		"not_after": time.Now().Add(time.Hour).UTC(), "not_before": time.Now().UTC()}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{"keys":[{"kid":"k4.pid.x","paserk":"k4.public.AAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kid":"` + k.kid + `","paserk":"k4.public.` + "\xff" + `"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := parseKeys(body)
		if err != nil {
			return
		}
		for kid, pk := range m {
			if token.PID(pk.pub) != kid {
				t.Fatalf("accepted key %q whose PASERK id is %q", kid, token.PID(pk.pub))
			}
		}
	})
}
