package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// Discovery (issue 9): the metadata at /.well-known/* lists exactly what
// the node serves, read back against the node's own answers. Every
// identifier starts with dc.

// dcDoc is the discovery document.
type dcDoc struct {
	Issuer           string   `json:"issuer"`
	TokenEndpoint    string   `json:"token_endpoint"`
	Introspection    string   `json:"introspection_endpoint"`
	Revocation       string   `json:"revocation_endpoint"`
	JWKS             string   `json:"jwks_uri"`
	PASERK           string   `json:"paserk_uri"`
	Grants           []string `json:"grant_types_supported"`
	ResponseTypes    []string `json:"response_types_supported"`
	Claims           []string `json:"claims_supported"`
	Format           string   `json:"access_token_format"`
	AccessAlgs       []string `json:"access_token_signing_alg_values_supported"`
	IDTokenAlgs      []string `json:"id_token_signing_alg_values_supported"`
	EndSession       string   `json:"end_session_endpoint"`
	TokenAuthMethods []string `json:"token_endpoint_auth_methods_supported"`
}

// dcClaims returns the claim names of an access token (PASETO v4.public or
// JWT), read from its payload.
func dcClaims(t *testing.T, tok string) (names []string, jwtAlg string) {
	t.Helper()
	var payload, header []byte
	var err error
	if rest, ok := strings.CutPrefix(tok, "v4.public."); ok {
		body, _, _ := strings.Cut(rest, ".")
		var raw []byte
		if raw, err = base64.RawURLEncoding.DecodeString(body); err != nil || len(raw) < 64 {
			t.Fatalf("PASETO body: %v", err)
		}
		payload = raw[:len(raw)-64]
	} else {
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("access token %q is neither v4.public nor a JWT", tok)
		}
		if header, err = base64.RawURLEncoding.DecodeString(parts[0]); err != nil {
			t.Fatal(err)
		}
		if payload, err = base64.RawURLEncoding.DecodeString(parts[1]); err != nil {
			t.Fatal(err)
		}
		var h struct{ Alg string }
		if err := json.Unmarshal(header, &h); err != nil {
			t.Fatal(err)
		}
		jwtAlg = h.Alg
	}
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatalf("claims %s: %v", payload, err)
	}
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names, jwtAlg
}

// dcPath is the path of an endpoint URL of the document (the issuer is not
// the node's address in tests).
func dcPath(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil || p.Path == "" {
		t.Fatalf("endpoint %q: not a URL", u)
	}
	return p.Path
}

func TestDiscoveryDescribesWhatIsServed(t *testing.T) {
	t.Run("defaults", func(t *testing.T) { dcTest(t, false, false) })
	t.Run("JWT access tokens and the password grant", func(t *testing.T) { dcTest(t, true, true) })
}

func dcTest(t *testing.T, jwt, passwordGrant bool) {
	tc := startTestCluster(t, 1, func(_ int, c *Config) {
		c.Auth.JWTAccessTokens = jwt
		c.Auth.PasswordGrant = passwordGrant
	})
	nd := tc.nodes[0]
	base := ptURL(nd)
	get := func(path string) []byte {
		r := authDo(t, http.MethodGet, base+path, "", nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, r.status, r.body)
		}
		return r.body
	}
	raw := get("/.well-known/openid-configuration")
	if rfc8414 := get("/.well-known/oauth-authorization-server"); string(rfc8414) != string(raw) {
		t.Errorf("the two discovery documents differ:\n%s\n%s", raw, rfc8414)
	}
	var doc dcDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Issuer != tc.issuer {
		t.Errorf("issuer %q, want %q", doc.Issuer, tc.issuer)
	}
	if len(doc.IDTokenAlgs) != 0 || doc.EndSession != "" || len(doc.ResponseTypes) != 0 {
		t.Errorf("document lists ID-token algorithms %v, end_session_endpoint %q or response types %v; the node issues no ID token and has no authorization endpoint",
			doc.IDTokenAlgs, doc.EndSession, doc.ResponseTypes)
	}

	// The claims listed are exactly those an access token carries.
	email := lmUser(t, tc)
	tc.createUser("roles-"+email, ptPassword, "customs-agent")
	pair := authLogin(t, base, "roles-"+email, ptPassword, "web", "laptop")
	names, alg := dcClaims(t, pair.AccessToken)
	want := slices.Sorted(slices.Values(doc.Claims))
	if !reflect.DeepEqual(names, want) {
		t.Errorf("access token carries claims %v; discovery lists %v", names, want)
	}
	switch {
	case jwt && (doc.Format != "jwt" || !slices.Contains(doc.AccessAlgs, alg) || len(doc.AccessAlgs) != 1):
		t.Errorf("JWT access token signed with %q; document says format %q, algorithms %v", alg, doc.Format, doc.AccessAlgs)
	case !jwt && (doc.Format != "v4.public" || len(doc.AccessAlgs) != 0):
		t.Errorf("PASETO access token; document says format %q, algorithms %v", doc.Format, doc.AccessAlgs)
	}

	// Every grant listed works as a form at the token endpoint (RFC 6749);
	// the others are unsupported_grant_type.
	token := base + dcPath(t, doc.TokenEndpoint)
	form := func(v url.Values) authResp {
		return authDo(t, http.MethodPost, token, "application/x-www-form-urlencoded", []byte(v.Encode()))
	}
	for _, g := range []string{"refresh_token", "password", "client_credentials", "authorization_code"} {
		var r authResp
		switch g {
		case "refresh_token":
			r = form(url.Values{"grant_type": {g}, "refresh_token": {pair.RefreshToken}})
		case "password":
			r = form(url.Values{"grant_type": {g}, "username": {email}, "password": {ptPassword}})
		default:
			r = form(url.Values{"grant_type": {g}, "code": {"x"}})
		}
		if slices.Contains(doc.Grants, g) {
			p := authPairOf(t, "form grant "+g, r)
			if g == "refresh_token" {
				pair.RefreshToken = p.RefreshToken
			}
		} else {
			authWantErr(t, "unlisted grant "+g, r, http.StatusBadRequest, "unsupported_grant_type")
		}
	}
	if slices.Contains(doc.Grants, "password") != passwordGrant {
		t.Errorf("grant_types_supported %v with password_grant %t", doc.Grants, passwordGrant)
	}
	// RFC 6749 §5.2 errors on the form.
	authWantErr(t, "form refresh with a bad token", form(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"v4.public.x"}}),
		http.StatusBadRequest, "invalid_grant")
	authWantErr(t, "form without grant_type", form(url.Values{"refresh_token": {pair.RefreshToken}}), http.StatusBadRequest, "invalid_request")
	authWantErr(t, "form with a repeated parameter", form(url.Values{"grant_type": {"refresh_token", "password"}}), http.StatusBadRequest, "invalid_request")
	// The app's JSON token route stays.
	authPairOf(t, "JSON refresh", authRefresh(t, base, pair.RefreshToken))

	// The other endpoints answer where the document says.
	for _, u := range []string{doc.JWKS, doc.PASERK} {
		var keys struct{ Keys []json.RawMessage }
		if err := json.Unmarshal(get(dcPath(t, u)), &keys); err != nil || len(keys.Keys) == 0 {
			t.Errorf("GET %s: %v, %d keys; want the published keys", u, err, len(keys.Keys))
		}
	}
	in := authForm(t, base+dcPath(t, doc.Introspection), tcServiceID, tcServiceSecret, url.Values{"token": {pair.AccessToken}})
	var intro map[string]any
	if err := json.Unmarshal(in.body, &intro); err != nil || intro["active"] != true {
		t.Errorf("introspection at %s: %d %s; want active", doc.Introspection, in.status, in.body)
	}
	for k := range intro {
		if !slices.Contains(doc.Claims, k) && !slices.Contains([]string{"active", "token_type", "client_id"}, k) {
			t.Errorf("introspection answers %q, a claim discovery does not list", k)
		}
	}
	if r := authForm(t, base+dcPath(t, doc.Revocation), tcServiceID, tcServiceSecret, url.Values{"token": {pair.AccessToken}}); r.status != http.StatusOK {
		t.Errorf("revocation at %s: %d %s; want 200", doc.Revocation, r.status, r.body)
	}
}
