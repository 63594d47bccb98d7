package authrpc_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/api/authrpc"
)

// Fuzz targets of the AuthService door's header decoders: the bearer token
// of an Authorization header, and the refresh cookie with the Origin and
// Sec-Fetch-Site headers that decide whether it is accepted. Seeds are
// real requests' headers.

// FuzzBearer: never a panic; a token is returned only from a header that
// starts with "Bearer " (any case), trimmed, and is part of the header.
func FuzzBearer(f *testing.F) {
	for _, s := range []string{"Bearer v4.public.eyJpc3MiOiJodHRwczovL2F1dGgudGVzdCJ9.c2ln", "bearer abc", "Bearer   x  ", "Basic dTpw", "Bearer", "Bearer ", "BEARER \x00", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got := authrpc.Bearer(http.Header{"Authorization": {v}})
		if got == "" {
			return
		}
		if len(v) < 7 || !strings.EqualFold(v[:7], "Bearer ") || !strings.Contains(v, got) || strings.TrimSpace(got) != got {
			t.Fatalf("Bearer(%q) = %q", v, got)
		}
	})
}

// FuzzCookieCheckSite: never a panic; a request presenting the cookie
// from another origin (or a cross-site fetch without Origin) is refused
// whatever else it carries, and one without the cookie is not.
func FuzzCookieCheckSite(f *testing.F) {
	const tok = "eyJhbGciOiJFZERTQSJ9.eyJqdGkiOiJ4In0.c2ln"
	f.Add("__Host-sessiond_refresh="+tok, "https://evil.example", "cross-site", "auth.example.com", true, true)
	f.Add("sessiond_refresh="+tok, "http://127.0.0.1:8081", "same-origin", "127.0.0.1:8081", false, false)
	f.Add("sessiond_refresh="+tok+"; other=1", "", "none", "127.0.0.1:8081", false, false)
	f.Add("__Host-sessiond_refresh="+tok, "null", "", "auth.example.com", true, true)
	f.Add("__Host-sessiond_refresh="+tok, "https://app.example", "same-site", "auth.example.com", true, true)
	f.Add("sessiond_refresh=\"\x00\"", "https://AUTH.example.com", "", "auth.example.com", false, true)
	f.Fuzz(func(t *testing.T, cookie, origin, site, host string, prefix, withTLS bool) {
		c := authrpc.Cookie{HostPrefix: prefix, Origins: []string{"https://app.example"}}
		r := httptest.NewRequest(http.MethodPost, "/auth/token", nil)
		r.Host = host
		if withTLS {
			r.TLS = &tls.ConnectionState{}
		}
		r.Header = http.Header{"Cookie": {cookie}, "Origin": {origin}, "Sec-Fetch-Site": {site}}
		err := c.CheckSite(r)
		present := c.Value(r.Header) != ""
		switch {
		case !present && err != nil:
			t.Fatalf("no refresh cookie, yet refused: %v", err)
		case present && origin == "https://evil.example" && !strings.EqualFold(host, "evil.example") && err == nil:
			t.Fatalf("cookie from https://evil.example accepted (host %q)", host)
		case present && origin == "" && site == "cross-site" && err == nil:
			t.Fatal("cookie from a cross-site fetch accepted")
		case err != nil && len(err.Error()) > 400+len(host):
			t.Fatalf("refusal message of %d bytes", len(err.Error()))
		}
	})
}
