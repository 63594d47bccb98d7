package gateway

import (
	"strings"
	"testing"
)

// FuzzGatewayHeaders fuzzes what the gateway door decodes from a
// gateway's request before any check: the forwarded Authorization header
// (bearer) and the action and resource it asks about (parsePermission).
// Seeds are the headers nginx and Envoy send.
func FuzzGatewayHeaders(f *testing.F) {
	f.Add("Bearer v4.public.eyJzdWIiOiJ1In0.c2ln", "read", "th-customs")
	f.Add("bearer   v4.public.x  ", "", "")
	f.Add("Basic dXNlcjpwYXNz", "write", "")
	f.Add("Bearer \x00", strings.Repeat("a", maxPermissionLen+1), "r")
	f.Fuzz(func(t *testing.T, authorization, action, resource string) {
		if tok, ok := bearer(authorization); ok {
			if tok == "" || !strings.Contains(authorization, tok) || strings.TrimSpace(tok) != tok {
				t.Fatalf("bearer(%q) = %q", authorization, tok)
			}
		}
		p, err := parsePermission(action, resource)
		switch {
		case err == nil && (p.action != action || p.resource != resource):
			t.Fatalf("parsePermission(%q, %q) = %+v", action, resource, p)
		case err == nil && (len(action) > maxPermissionLen || len(resource) > maxPermissionLen || (action == "") != (resource == "")):
			t.Fatalf("parsePermission(%q, %q) accepted", action, resource)
		case err != nil && len(err.Error()) > 300:
			t.Fatalf("error of %d bytes: echoes its input", len(err.Error()))
		}
	})
}
