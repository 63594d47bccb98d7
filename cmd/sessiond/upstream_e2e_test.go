package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/api/authrpc"
	"github.com/sessiond/sessiond/authsvc/idp/idptest"
	"github.com/sessiond/sessiond/clients/go/checkreason"
)

// Upstream login on real processes: three agents behind a load balancer
// (a reverse proxy in this process, the cluster's public_url) that sends
// the login start to hk and the provider's callback to seoul, with a local
// Google-like OpenID provider. The callback finishes on another node than
// the one that started the login; the refresh cookie it sets works on
// tokyo. Then the provider disables the account: the leader's revalidation
// ends the user's sessions, and every node's check answers
// upstream_revoked.
func TestUpstreamLoginAcrossNodesE2E(t *testing.T) {
	e2eSkipShort(t)
	google := idptest.NewOIDC(t, idptest.Google)
	google.AddUser(idptest.User{Subject: "g-e2e", Email: "ana@gmail.test", EmailVerified: true, Name: "Ana"})

	// The load balancer: started first, so its URL can be public_url.
	var backendFor atomic.Value // func(path string) string
	lb := httptest.NewTLSServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			target, _ := url.Parse(backendFor.Load().(func(string) string)(r.In.URL.Path))
			r.SetURL(target)
			r.SetXForwarded()
		},
		Transport: e2eHTTP.Transport,
	})
	t.Cleanup(lb.Close)

	dir := t.TempDir()
	secret := filepath.Join(dir, "google-secret")
	if err := os.WriteFile(secret, []byte(google.ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	section := fmt.Sprintf(`
identity_providers:
  public_url: %s
  revalidate_interval: 2s
  call_timeout: 5s
  providers:
    google:
      type: oidc
      issuer: %s
      client_id: %s
      client_secret_file: %s
      auth_params: {access_type: offline, prompt: consent}
      link_verified_email: true
      signup: true
      org: Google Users
      country: HK
`, lb.URL, google.URL, google.ClientID, secret)
	config := func(region string) []string {
		base, err := os.ReadFile(filepath.Join("..", "..", "deploy", "config", region+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, region+".yaml")
		if err := os.WriteFile(p, append(base, section...), 0o600); err != nil {
			t.Fatal(err)
		}
		return []string{"--config", p}
	}
	c := newE2ECluster(t, false)
	hk := c.startNode(e2eNodeOpts{Region: "hk", Extra: config("hk")})
	hk.waitReady(e2eStartLimit)
	seoul := c.startNode(e2eNodeOpts{Region: "seoul", Join: []string{hk.raftAddr}, Extra: config("seoul")})
	tokyo := c.startNode(e2eNodeOpts{Region: "tokyo", Join: []string{hk.raftAddr, seoul.raftAddr}, Extra: config("tokyo")})
	hk.waitMembers(e2eStartLimit, hk.id, seoul.id, tokyo.id)
	seoul.waitReady(e2eStartLimit)
	tokyo.waitReady(e2eStartLimit)

	var starts, callbacks atomic.Int32
	backendFor.Store(func(path string) string {
		switch {
		case strings.HasPrefix(path, "/auth/login/"):
			starts.Add(1)
			return hk.url()
		case strings.HasPrefix(path, "/auth/callback/"):
			callbacks.Add(1)
			return seoul.url()
		}
		return tokyo.url()
	})

	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := lb.Client()
	browser.Jar, browser.Timeout = jar, 30*time.Second
	browser.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if req.URL.Path == "/done" {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := browser.Get(lb.URL + "/auth/login/google?return_to=/done")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/done" {
		t.Fatalf("login through the load balancer: %s to %q: %s\nhk: %s\nseoul: %s", resp.Status, resp.Header.Get("Location"), body, hk.tail(20), seoul.tail(20))
	}
	if starts.Load() != 1 || callbacks.Load() != 1 {
		t.Fatalf("the login started %d times on hk and finished %d times on seoul; want once each", starts.Load(), callbacks.Load())
	}
	lbURL, _ := url.Parse(lb.URL)
	var refresh string
	for _, ck := range jar.Cookies(lbURL) {
		if ck.Name == authrpc.HostRefreshCookie {
			refresh = ck.Value
		}
	}
	if refresh == "" {
		t.Fatalf("no %s cookie after the callback", authrpc.HostRefreshCookie)
	}
	// The cookie's session refreshes on tokyo (HTTP/JSON, refresh token in
	// the body, as a native client would send it).
	code, out, err := e2ePost(tokyo.url()+"/auth/token", map[string]string{"refresh_token": refresh})
	if err != nil || code != http.StatusOK {
		t.Fatalf("refresh on tokyo: %d %s %v", code, out, err)
	}
	var pair e2eLoginResponse
	if err := json.Unmarshal(out, &pair); err != nil || pair.AccessToken == "" {
		t.Fatalf("refresh answer %s: %v", out, err)
	}
	for _, n := range []*e2eNode{hk, seoul, tokyo} {
		if r := e2eCheckToken(t, n.url(), pair.AccessToken, e2eLinear); !r.GetActive() {
			t.Fatalf("check on %s of the upstream login's token: %v", n.id, r)
		}
	}

	// The account is disabled upstream: within a few revalidation periods
	// every node refuses the token with upstream_revoked.
	google.Disable("g-e2e")
	want := checkreason.String(checkreason.UpstreamRevoked)
	for _, n := range []*e2eNode{hk, seoul, tokyo} {
		e2eWaitFor(t, 30*time.Second, n.id+" to answer "+want, func() bool {
			r := e2eCheckToken(t, n.url(), pair.AccessToken, e2eLinear)
			return !r.GetActive() && r.GetReason() == want
		})
	}
	code, out, _ = e2ePost(hk.url()+"/auth/token", map[string]string{"refresh_token": pair.RefreshToken})
	if code == http.StatusOK {
		t.Errorf("the revoked session still refreshes on hk: %s", out)
	}
}
