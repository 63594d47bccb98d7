package authsvc_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/callers"
)

var opAdmin = callers.Principal{Kind: callers.KindService, Name: "console", Scopes: []string{callers.ScopeAdmin}}

const shopRedirect = "https://shop.example/cb"

func shopQuery(challenge string) url.Values {
	q := authzQuery("shop", challenge)
	q.Set("redirect_uri", shopRedirect)
	return q
}

// TestOIDCRegisteredClient: a confidential client registered through the
// admin path completes a code flow with its generated secret; its listing
// holds no secret hash; once deleted it is refused at the authorization
// step and its outstanding code at the token endpoint.
func TestOIDCRegisteredClient(t *testing.T) {
	env, p := opEnv(t, "")
	env.CreateUser(t, "fay@example.com", "correct horse battery")
	ctx := context.Background()
	secret, c, err := p.CreateClient(ctx, opAdmin, authsvc.NewOIDCClient{ID: "shop", Name: "Shop", Confidential: true,
		RedirectURIs: []string{shopRedirect}, Scopes: []string{"openid", "email"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) < 40 || c.SecretHash != "" || c.AuthMethod != authsvc.AuthClientSecretBasic {
		t.Fatalf("CreateClient: secret %d bytes, client %+v; want a secret and no hash", len(secret), c)
	}
	if _, _, err := p.CreateClient(ctx, opAdmin, authsvc.NewOIDCClient{ID: "shop", RedirectURIs: []string{shopRedirect}}); authsvc.ErrorKind(err) != authsvc.KindConflict {
		t.Errorf("second CreateClient of shop: %v, want conflict", err)
	}
	list, err := p.ListClients(ctx)
	if err != nil || len(list) != 1 || list[0].ID != "shop" || list[0].SecretHash != "" {
		t.Fatalf("ListClients: %+v, %v; want shop without its hash", list, err)
	}

	cookie, err := p.PasswordLogin(ctx, "fay@example.com", "correct horse battery", authsvc.Client{})
	if err != nil {
		t.Fatal(err)
	}
	sso, _ := p.BrowserSession(ctx, cookie)
	code := func(scope string) (string, string) {
		t.Helper()
		verifier, challenge := pkce(t)
		q := shopQuery(challenge)
		q.Set("scope", scope)
		ar, aerr := p.ParseAuthorize(q)
		if aerr != nil {
			t.Fatalf("ParseAuthorize: %+v", aerr)
		}
		loc, err := p.IssueCode(ctx, ar, sso)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(loc)
		return u.Query().Get("code"), verifier
	}
	redeem := func(code, verifier, secret string) (*authsvc.TokenResponse, error) {
		return p.Token(ctx, authsvc.TokenRequest{Form: tokenForm("grant_type", "authorization_code", "code", code,
			"redirect_uri", shopRedirect, "code_verifier", verifier), HasBasic: true, BasicUser: "shop", BasicPass: secret})
	}
	// A scope outside the client's list is refused.
	_, challenge := pkce(t)
	if _, aerr := p.ParseAuthorize(shopQuery(challenge)); aerr == nil {
		t.Error("ParseAuthorize with scopes the client may not ask for: accepted")
	}
	c1, v1 := code("openid email")
	if _, err := redeem(c1, v1, secret+"x"); oauthCode(err) != authsvc.ErrCodeInvalidClient {
		t.Errorf("redeem with a wrong secret: %v, want invalid_client", err)
	}
	res, err := redeem(c1, v1, secret)
	if err != nil || res.IDToken == "" || res.AccessToken == "" {
		t.Fatalf("redeem with the generated secret: %+v, %v", res, err)
	}

	c2, v2 := code("openid")
	if err := p.DeleteClient(ctx, opAdmin, "shop"); err != nil {
		t.Fatal(err)
	}
	if _, aerr := p.ParseAuthorize(shopQuery(challenge)); aerr == nil {
		t.Error("ParseAuthorize of a deleted client: accepted")
	}
	if _, err := redeem(c2, v2, secret); oauthCode(err) != authsvc.ErrCodeInvalidClient {
		t.Errorf("redeem of a deleted client's code: %v, want invalid_client", err)
	}
	if err := p.DeleteClient(ctx, opAdmin, "shop"); authsvc.ErrorKind(err) != authsvc.KindNotFound {
		t.Errorf("second DeleteClient: %v, want not found", err)
	}
	if err := p.DeleteClient(ctx, opAdmin, opPublic); authsvc.ErrorKind(err) != authsvc.KindForbidden {
		t.Errorf("DeleteClient of a configured client: %v, want forbidden", err)
	}
}

// TestOIDCRegisteredClientBadInput: bad registrations are refused
// INVALID_ARGUMENT naming the field, and register nothing.
func TestOIDCRegisteredClientBadInput(t *testing.T) {
	_, p := opEnv(t, "")
	ctx := context.Background()
	many := make([]string, 17)
	for i := range many {
		many[i] = shopRedirect
	}
	for _, c := range []struct {
		name  string
		in    authsvc.NewOIDCClient
		field string
	}{
		{"bad id", authsvc.NewOIDCClient{ID: "a b", RedirectURIs: []string{shopRedirect}}, "client_id"},
		{"http redirect", authsvc.NewOIDCClient{ID: "x", RedirectURIs: []string{"http://shop.example/cb"}}, "redirect_uris[0]"},
		{"relative redirect", authsvc.NewOIDCClient{ID: "x", RedirectURIs: []string{"/cb"}}, "redirect_uris[0]"},
		{"fragment", authsvc.NewOIDCClient{ID: "x", RedirectURIs: []string{shopRedirect, "https://shop.example/cb#x"}}, "redirect_uris[1]"},
		{"too many URIs", authsvc.NewOIDCClient{ID: "x", RedirectURIs: many}, "redirect_uris"},
		{"too long", authsvc.NewOIDCClient{ID: "x", RedirectURIs: []string{"https://shop.example/" + strings.Repeat("a", 2100)}}, "redirect_uris[0]"},
		{"unknown grant", authsvc.NewOIDCClient{ID: "x", RedirectURIs: []string{shopRedirect}, GrantTypes: []string{"password"}}, "grant_types"},
		{"public client_credentials", authsvc.NewOIDCClient{ID: "x", GrantTypes: []string{authsvc.GrantClientCredentials}}, "grant_types"},
		{"unknown scope", authsvc.NewOIDCClient{ID: "x", RedirectURIs: []string{shopRedirect}, Scopes: []string{"admin"}}, "scopes"},
		{"no redirect", authsvc.NewOIDCClient{ID: "x"}, "redirect_uris"},
	} {
		_, _, err := p.CreateClient(ctx, opAdmin, c.in)
		var e *authsvc.Error
		if authsvc.ErrorKind(err) != authsvc.KindInvalid || !errors.As(err, &e) || !strings.HasPrefix(e.Message, c.field+":") {
			t.Errorf("%s: %v, want invalid naming %s", c.name, err, c.field)
		}
	}
	if _, _, err := p.CreateClient(ctx, opAdmin, authsvc.NewOIDCClient{ID: opPublic, RedirectURIs: []string{shopRedirect}}); authsvc.ErrorKind(err) != authsvc.KindConflict {
		t.Errorf("a configured client's id: %v, want conflict", err)
	}
	if list, err := p.ListClients(ctx); err != nil || len(list) != 0 {
		t.Errorf("ListClients after refusals: %d clients, %v; want none", len(list), err)
	}
	// Loopback http is accepted for development.
	if _, _, err := p.CreateClient(ctx, opAdmin, authsvc.NewOIDCClient{ID: "dev", RedirectURIs: []string{"http://127.0.0.1:8080/cb", "http://localhost/cb"}}); err != nil {
		t.Errorf("loopback http redirect: %v", err)
	}
}
