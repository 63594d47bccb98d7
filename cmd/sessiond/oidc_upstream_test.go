package main

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/sessiond/sessiond/authsvc/idp/idptest"
	"github.com/sessiond/sessiond/cluster/clustertest"
)

// TestOIDCSignInWithUpstream: the provider's login page offers the
// configured upstream provider; a browser that signs in there (a local
// Google-like OpenID provider) comes back to the authorization request
// with a browser SSO session and gets its code, which redeems.
func TestOIDCSignInWithUpstream(t *testing.T) {
	google := idptest.NewOIDC(t, idptest.Google)
	google.AddUser(idptest.User{Subject: "g-sso", Email: "sso-up@gmail.test", EmailVerified: true, Name: "Up"})
	t.Setenv("SSO_OP_TEST_GOOGLE_SECRET", google.ClientSecret)
	port := e2eFreePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", port)
	tc := startTestCluster(t, 1, func(_ int, c *Config) {
		c.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", port)
		c.Auth.Issuer = issuer
		c.Auth.OIDC = OIDCConfig{Enabled: true, Clients: []OIDCClientConfig{
			{ID: opSPAClient, AuthMethod: "none", FirstParty: true, RedirectURIs: []string{opRedirectURI}}}}
		c.IdentityProviders = IdentityProvidersConfig{PublicURL: issuer, Providers: map[string]ProviderConfig{
			"google": {Type: "oidc", Issuer: google.URL, ClientID: google.ClientID, ClientSecretEnv: "SSO_OP_TEST_GOOGLE_SECRET",
				LinkVerifiedEmail: true, Signup: true, Org: "Google Users", Country: "HK"}}}
	})
	clustertest.WaitFor(t, 60*time.Second, "ID-token keys", func() bool {
		p := tc.nodes[0].oidc.p.Load()
		return p != nil && len(p.JWKS()) == 2
	})
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host == "app.test" {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	verifier := oauth2.GenerateVerifier()
	q := url.Values{"response_type": {"code"}, "client_id": {opSPAClient}, "redirect_uri": {opRedirectURI}, "scope": {"openid email"},
		"state": {"up"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
	resp, err := browser.Get(issuer + "/oidc/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	page := readPage(t, resp)
	m := regexp.MustCompile(`href="(/auth/login/google\?[^"]*)">Google</a>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the login page offers no Google link:\n%s", page)
	}
	resp, err = browser.Get(issuer + html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	loc, err := resp.Location()
	if resp.StatusCode != http.StatusSeeOther || err != nil || loc.Query().Get("code") == "" || loc.Query().Get("state") != "up" || loc.Query().Get("iss") != issuer {
		t.Fatalf("after the upstream sign-in: %d to %v; want 303 to the client with a code, the state and iss", resp.StatusCode, loc)
	}
	code := loc.Query().Get("code")
	tok, err := browser.PostForm(issuer+"/oidc/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {opRedirectURI}, "code_verifier": {verifier}, "client_id": {opSPAClient}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(tok.Body)
	tok.Body.Close()
	if tok.StatusCode != http.StatusOK || !strings.Contains(string(body), `"id_token"`) {
		t.Fatalf("redeeming the code of an upstream sign-in: %d %s", tok.StatusCode, body)
	}
}
