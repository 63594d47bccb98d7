package authsvc_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/authsvc"
)

// TestOIDCAuthorizeBadInput: every authorization parameter missing,
// repeated, too long or of the wrong value is refused with a message naming
// it; a bad client or redirect URI is never redirected to.
func TestOIDCAuthorizeBadInput(t *testing.T) {
	oc := newOPCluster(t, 1)
	_, challenge := pkce(t)
	long := strings.Repeat("x", 5000)
	cases := []struct {
		name     string
		change   func(q url.Values)
		code     string
		redirect bool
		mention  string
	}{
		{"client_id missing", func(q url.Values) { q.Del("client_id") }, "invalid_request", false, "client_id"},
		{"client_id twice", func(q url.Values) { q.Add("client_id", opPublic) }, "invalid_request", false, "client_id"},
		{"client_id unknown", func(q url.Values) { q.Set("client_id", "nope") }, "invalid_client", false, "client_id"},
		{"client_id too long", func(q url.Values) { q.Set("client_id", long) }, "invalid_request", false, "client_id"},
		{"redirect_uri missing", func(q url.Values) { q.Del("redirect_uri") }, "invalid_request", false, "redirect_uri"},
		{"redirect_uri twice", func(q url.Values) { q.Add("redirect_uri", opRedirect) }, "invalid_request", false, "redirect_uri"},
		{"redirect_uri unregistered", func(q url.Values) { q.Set("redirect_uri", "https://evil.test/cb") }, "invalid_request", false, "redirect_uri"},
		{"redirect_uri prefix", func(q url.Values) { q.Set("redirect_uri", opRedirect+"/more") }, "invalid_request", false, "redirect_uri"},
		{"redirect_uri with query", func(q url.Values) { q.Set("redirect_uri", opRedirect+"?x=1") }, "invalid_request", false, "redirect_uri"},
		{"redirect_uri too long", func(q url.Values) { q.Set("redirect_uri", long) }, "invalid_request", false, "redirect_uri"},
		{"response_type missing", func(q url.Values) { q.Del("response_type") }, "invalid_request", true, "response_type"},
		{"response_type twice", func(q url.Values) { q.Add("response_type", "code") }, "invalid_request", true, "response_type"},
		{"response_type token", func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type", true, "response_type"},
		{"scope without openid", func(q url.Values) { q.Set("scope", "profile") }, "invalid_scope", true, "openid"},
		{"scope unknown", func(q url.Values) { q.Set("scope", "openid admin") }, "invalid_scope", true, "admin"},
		{"scope twice", func(q url.Values) { q.Add("scope", "openid") }, "invalid_request", true, "scope"},
		{"scope too long", func(q url.Values) { q.Set("scope", "openid "+strings.Repeat("a", 1100)) }, "invalid_request", true, "scope"},
		{"state twice", func(q url.Values) { q.Add("state", "x") }, "invalid_request", true, "state"},
		{"state too long", func(q url.Values) { q.Set("state", strings.Repeat("s", 600)) }, "invalid_request", true, "state"},
		{"nonce twice", func(q url.Values) { q.Add("nonce", "x") }, "invalid_request", true, "nonce"},
		{"nonce too long", func(q url.Values) { q.Set("nonce", strings.Repeat("n", 600)) }, "invalid_request", true, "nonce"},
		{"code_challenge missing", func(q url.Values) { q.Del("code_challenge") }, "invalid_request", true, "code_challenge"},
		{"code_challenge short", func(q url.Values) { q.Set("code_challenge", "abc") }, "invalid_request", true, "code_challenge"},
		{"code_challenge twice", func(q url.Values) { q.Add("code_challenge", challenge) }, "invalid_request", true, "code_challenge"},
		{"code_challenge_method plain", func(q url.Values) { q.Set("code_challenge_method", "plain") }, "invalid_request", true, "S256"},
		{"code_challenge_method missing", func(q url.Values) { q.Del("code_challenge_method") }, "invalid_request", true, "S256"},
		{"prompt unknown", func(q url.Values) { q.Set("prompt", "maybe") }, "invalid_request", true, "prompt"},
		{"prompt none and login", func(q url.Values) { q.Set("prompt", "none login") }, "invalid_request", true, "prompt"},
		{"max_age not a number", func(q url.Values) { q.Set("max_age", "soon") }, "invalid_request", true, "max_age"},
		{"max_age negative", func(q url.Values) { q.Set("max_age", "-1") }, "invalid_request", true, "max_age"},
		{"response_mode fragment", func(q url.Values) { q.Set("response_mode", "fragment") }, "invalid_request", true, "response_mode"},
		{"request object", func(q url.Values) { q.Set("request", "eyJ") }, "request_not_supported", true, "request"},
		{"control character", func(q url.Values) { q.Set("state", "a\x00b") }, "invalid_request", true, "state"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := authzQuery(opPublic, challenge)
			tc.change(q)
			_, aerr := oc.ops[0].ParseAuthorize(q)
			if aerr == nil {
				t.Fatalf("accepted")
			}
			if aerr.Code != tc.code || !strings.Contains(aerr.Description, tc.mention) {
				t.Errorf("error %q %q, want %s naming %q", aerr.Code, aerr.Description, tc.code, tc.mention)
			}
			loc := aerr.Location("https://auth.test")
			if tc.redirect != (loc != "") {
				t.Errorf("redirect %q, want redirect=%v", loc, tc.redirect)
			}
			if loc != "" && !strings.HasPrefix(loc, opRedirect+"?") {
				t.Errorf("redirected to %q, not the registered URI", loc)
			}
		})
	}
}

// TestOIDCTokenBadInput: every token parameter missing, repeated, too long
// or wrong is refused with the RFC 6749 §5.2 code and a message naming it,
// and nothing is issued.
func TestOIDCTokenBadInput(t *testing.T) {
	oc := newOPCluster(t, 1)
	ctx := context.Background()
	oc.createUser("carol@example.com", "correct horse battery")
	cookie, err := oc.ops[0].PasswordLogin(ctx, "carol@example.com", "correct horse battery", authsvc.Client{})
	if err != nil {
		t.Fatal(err)
	}
	verifier, challenge := pkce(t)
	code := oc.code(t, 0, cookie, authzQuery(opPublic, challenge))
	good := func() url.Values {
		return tokenForm("grant_type", "authorization_code", "code", code, "redirect_uri", opRedirect, "code_verifier", verifier, "client_id", opPublic)
	}
	long := strings.Repeat("y", 9000)
	cases := []struct {
		name    string
		change  func(f url.Values)
		code    string
		mention string
	}{
		{"grant_type missing", func(f url.Values) { f.Del("grant_type") }, "invalid_request", "grant_type"},
		{"grant_type twice", func(f url.Values) { f.Add("grant_type", "authorization_code") }, "invalid_request", "grant_type"},
		{"grant_type password", func(f url.Values) { f.Set("grant_type", "password") }, "unsupported_grant_type", "grant_type"},
		{"grant not allowed", func(f url.Values) { f.Set("grant_type", "client_credentials") }, "unauthorized_client", "client_credentials"},
		{"client_id missing", func(f url.Values) { f.Del("client_id") }, "invalid_client", "client_id"},
		{"client_id unknown", func(f url.Values) { f.Set("client_id", "nope") }, "invalid_client", "client"},
		{"client_id twice", func(f url.Values) { f.Add("client_id", opPublic) }, "invalid_request", "client_id"},
		{"client_secret in body", func(f url.Values) { f.Set("client_secret", "s") }, "invalid_client", "client_secret"},
		{"code missing", func(f url.Values) { f.Del("code") }, "invalid_request", "code"},
		{"code twice", func(f url.Values) { f.Add("code", code) }, "invalid_request", "code"},
		{"code wrong", func(f url.Values) { f.Set("code", "not-a-code") }, "invalid_grant", "code"},
		{"code too long", func(f url.Values) { f.Set("code", long) }, "invalid_request", "code"},
		{"redirect_uri missing", func(f url.Values) { f.Del("redirect_uri") }, "invalid_request", "redirect_uri"},
		{"redirect_uri different", func(f url.Values) { f.Set("redirect_uri", "https://app.test/other") }, "invalid_grant", "redirect_uri"},
		{"code_verifier missing", func(f url.Values) { f.Del("code_verifier") }, "invalid_request", "code_verifier"},
		{"code_verifier short", func(f url.Values) { f.Set("code_verifier", "abc") }, "invalid_request", "code_verifier"},
		{"code_verifier bad characters", func(f url.Values) { f.Set("code_verifier", strings.Repeat("!", 50)) }, "invalid_request", "code_verifier"},
		{"code_verifier mismatch", func(f url.Values) { f.Set("code_verifier", strings.Repeat("B", 43)) }, "invalid_grant", "code_verifier"},
		{"client_assertion_type wrong", func(f url.Values) { f.Set("client_assertion_type", "x"); f.Set("client_assertion", "y") }, "invalid_request", "client_assertion_type"},
		{"client_assertion garbage", func(f url.Values) {
			f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
			f.Set("client_assertion", "garbage")
		}, "invalid_client", "assertion"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := good()
			tc.change(f)
			res, err := oc.ops[0].Token(ctx, authsvc.TokenRequest{Form: f})
			if err == nil {
				t.Fatalf("issued %+v", res)
			}
			if oauthCode(err) != tc.code || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %v, want %s naming %q", err, tc.code, tc.mention)
			}
		})
	}
	// Nothing was spent: the good request still redeems the code.
	if _, err := oc.ops[0].Token(ctx, authsvc.TokenRequest{Form: good()}); err != nil {
		t.Errorf("the code after the refused requests: %v", err)
	}
	// refresh_token grant parameters.
	for name, f := range map[string]url.Values{
		"refresh_token missing":  tokenForm("grant_type", "refresh_token", "client_id", opPublic),
		"refresh_token garbage":  tokenForm("grant_type", "refresh_token", "refresh_token", "garbage", "client_id", opPublic),
		"refresh_token too long": tokenForm("grant_type", "refresh_token", "refresh_token", long[:5000], "client_id", opPublic),
	} {
		if _, err := oc.ops[0].Token(ctx, authsvc.TokenRequest{Form: f}); err == nil || !strings.Contains(err.Error(), "refresh_token") {
			t.Errorf("%s: %v, want a refusal naming refresh_token", name, err)
		}
	}
}
