package gateway

import (
	"strings"
	"testing"
	"time"
)

func TestBearer(t *testing.T) {
	for _, c := range []struct {
		in, tok string
		ok      bool
	}{
		{"Bearer v4.public.x", "v4.public.x", true},
		{"bearer   v4.public.x  ", "v4.public.x", true},
		{"BEARER v4.public.x", "v4.public.x", true},
		{"Bearer ", "", false},
		{"Bearer", "", false},
		{"Basic dXNlcjpwYXNz", "", false},
		{"v4.public.x", "", false},
		{"", "", false},
	} {
		tok, ok := bearer(c.in)
		if tok != c.tok || ok != c.ok {
			t.Errorf("bearer(%q): got %q, %t; want %q, %t", c.in, tok, ok, c.tok, c.ok)
		}
	}
}

func TestParsePermission(t *testing.T) {
	long := strings.Repeat("x", maxPermissionLen+1)
	for _, c := range []struct {
		action, resource string
		ok               bool
	}{
		{"", "", true},
		{"read", "th-customs", true},
		{"read", "", false},
		{"", "th-customs", false},
		{long, "th-customs", false},
		{"read", long, false},
	} {
		p, err := parsePermission(c.action, c.resource)
		if (err == nil) != c.ok {
			t.Errorf("parsePermission(%.10q, %.10q): got %v; want ok %t", c.action, c.resource, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "action and resource") {
			t.Errorf("parsePermission error %q: want it to name action and resource", err)
		}
		if err == nil && (p.action != c.action || p.resource != c.resource) {
			t.Errorf("parsePermission(%q, %q): got %+v", c.action, c.resource, p)
		}
	}
}

// TestCacheControl: no-store by default; with MaxAge, the smaller of it
// and the token's remaining lifetime, and no-store under a second left.
func TestCacheControl(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	for _, c := range []struct {
		maxAge time.Duration
		left   time.Duration
		want   string
	}{
		{0, time.Hour, "no-store"},
		{30 * time.Second, time.Hour, "max-age=30"},
		{30 * time.Second, 12*time.Second + 900*time.Millisecond, "max-age=12"},
		{30 * time.Second, 900 * time.Millisecond, "no-store"},
		{30 * time.Second, -time.Second, "no-store"},
	} {
		if got := (Options{MaxAge: c.maxAge, Now: clock}).cacheControl(now.Add(c.left)); got != c.want {
			t.Errorf("MaxAge %s, token expiring in %s: got %q, want %q", c.maxAge, c.left, got, c.want)
		}
	}
}

func TestChallenge(t *testing.T) {
	if got := (verdict{}).challenge(); got != `Bearer realm="sessiond"` {
		t.Errorf("no token: got %q; want a challenge without an error attribute (RFC 6750 §3.1)", got)
	}
	got := (verdict{reason: "expired"}).challenge()
	if !strings.Contains(got, `error="invalid_token"`) || !strings.Contains(got, "expired") {
		t.Errorf("expired token: got %q; want invalid_token naming expired", got)
	}
}
