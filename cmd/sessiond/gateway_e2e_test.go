package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/sessiond/sessiond/api/gateway"
	"github.com/sessiond/sessiond/cluster/pki"
)

// e2eNginx returns the path of Debian's nginx, skipping the test when it
// is not installed.
func e2eNginx(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skip("nginx is not installed (apt-get install nginx): the gateway end-to-end test runs deploy/gateway/nginx.conf through a real nginx")
	return ""
}

// e2eNginxConfig copies deploy/gateway/nginx.conf and the file it
// includes into dir with what must differ on one machine replaced; every
// replaced string must be in one of them, so the example cannot drift from
// what this test runs. It returns the path of nginx.conf.
func e2eNginxConfig(t *testing.T, dir string, repl [][2]string) string {
	t.Helper()
	files := map[string]string{}
	for _, f := range []string{"nginx.conf", "sessiond_check.conf"} {
		raw, err := os.ReadFile(filepath.Join(deployDir, "gateway", f))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = string(raw)
	}
	for _, r := range repl {
		found := false
		for f, conf := range files {
			if strings.Contains(conf, r[0]) {
				found = true
				files[f] = strings.ReplaceAll(conf, r[0], r[1])
			}
		}
		if !found {
			t.Fatalf("deploy/gateway no longer contains %q, which the test replaces with %q", r[0], r[1])
		}
	}
	for f, conf := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "nginx.conf")
}

// TestGatewayNginx runs the example nginx configuration in front of a
// service, nginx authenticating to sessiond with a service certificate:
// a valid token passes with identity headers (a client's own X-Sessiond-*
// headers replaced), none or a bad one gets sessiond's 401 and never
// reaches the service, a session logged out through the node nginx asks
// is refused on the next request, and one revoked through another node is
// refused as soon as that node has applied it; when the node nginx asks
// stops, nginx asks its backup. Envoy's ext_authz is asked over the same
// TLS port with a service certificate too.
func TestGatewayNginx(t *testing.T) {
	e2eSkipShort(t)
	nginx := e2eNginx(t)
	t.Parallel()

	c := newE2ECluster(t, true)
	hk, seoul, tokyo := e2eThreeNodes(t, c)
	c.createUser("gw@example.com", e2ePassword)

	// The protected service: records the identity headers it receives.
	var calls atomic.Int64
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		out := map[string]string{"authorization_to_sessiond": r.Header.Get(gateway.CredentialHeader)}
		for _, h := range gateway.IdentityHeaders {
			out[h] = r.Header.Get(h)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
	defer app.Close()

	// nginx's service certificate (service/nginx: the check scope).
	dir := t.TempDir()
	svc := e2ePKI.Issue(t, pki.Identity{TrustDomain: e2ePKI.TrustDomain, Kind: pki.KindService, Name: "nginx"}, time.Hour, time.Now())
	listen := e2eAddr(t)
	conf := e2eNginxConfig(t, dir, [][2]string{
		{"10.0.1.10:8080", hk.httpAddr},
		{"10.0.2.10:8080", seoul.httpAddr},
		{"127.0.0.1:9090", strings.TrimPrefix(app.URL, "http://")},
		{"listen 80;", "listen " + listen + ";"},
		{"/etc/nginx/sessiond/service-nginx.pem", svc.CertFile},
		{"/etc/nginx/sessiond/service-nginx-key.pem", svc.KeyFile},
		{"/etc/nginx/sessiond/ca.pem", svc.CAFile},
		{"proxy_ssl_name sessiond.internal;", "proxy_ssl_name localhost;"}, // the test nodes' certificates name localhost
		{"http {", fmt.Sprintf("http {\n    access_log %[1]s/access.log;\n    client_body_temp_path %[1]s/body;\n    proxy_temp_path %[1]s/proxy;\n"+
			"    fastcgi_temp_path %[1]s/fastcgi;\n    uwsgi_temp_path %[1]s/uwsgi;\n    scgi_temp_path %[1]s/scgi;\n", dir)},
	})
	args := []string{"-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"),
		"-g", "daemon off; master_process off; pid " + filepath.Join(dir, "nginx.pid") + ";"}
	if out, err := exec.Command(nginx, append([]string{"-t"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t of deploy/gateway/nginx.conf: %v\n%s", err, out)
	}
	proc, err := e2eStartCmd(t, "nginx", exec.Command(nginx, args...), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proc.stop(10 * time.Second)
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx error.log:\n%s", log)
		}
	})
	base := "http://" + listen
	e2eWaitFor(t, 10*time.Second, "nginx listening on "+listen, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})

	getPath := func(path string, hdr ...string) (*http.Response, map[string]string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s%s through nginx: %v", base, path, err)
		}
		defer resp.Body.Close()
		body := map[string]string{}
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("the service's answer: %v", err)
			}
		}
		return resp, body
	}
	get := func(hdr ...string) (*http.Response, map[string]string) {
		t.Helper()
		return getPath("/hello", hdr...)
	}

	// A valid token passes, with sessiond's identity headers replacing the
	// ones the client forged.
	web := e2eLogin(t, hk.url(), "gw@example.com", e2ePassword, "web", "laptop")
	resp, body := get("Authorization", "Bearer "+web.AccessToken, gateway.HeaderUser, "admin", gateway.HeaderRoles, "superuser",
		gateway.CredentialHeader, "Basic Zm9yZ2Vk")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /hello with a valid token through nginx: status %d; want 200", resp.StatusCode)
	}
	if body[gateway.HeaderSession] != web.SessionID || body[gateway.HeaderUser] == "" || body[gateway.HeaderUser] == "admin" ||
		body[gateway.HeaderRoles] != "customs-agent" || body[gateway.HeaderCountry] != "TH" || body[gateway.HeaderPlatform] != "web" {
		t.Errorf("identity headers at the service: %v; want session %s, the real user id (not the forged admin), roles customs-agent, country TH, platform web",
			body, web.SessionID)
	}
	if body["authorization_to_sessiond"] != "" {
		t.Errorf("the service received %s %q; want it stripped", gateway.CredentialHeader, body["authorization_to_sessiond"])
	}
	served := calls.Load()

	// No token, a garbage token: sessiond's 401, relayed with its challenge
	// and reason; the service never sees the request.
	for _, c := range []struct {
		name, reason string
		hdr          []string
	}{
		{"no token", "", nil},
		{"a garbage token", "malformed", []string{"Authorization", "Bearer v4.public.garbage"}},
		{"a forged identity without a token", "", []string{gateway.HeaderUser, "admin"}},
	} {
		resp, _ := get(c.hdr...)
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") ||
			resp.Header.Get(gateway.HeaderReason) != c.reason {
			t.Errorf("%s through nginx: status %d, WWW-Authenticate %q, %s %q; want 401, a Bearer challenge, reason %q",
				c.name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), gateway.HeaderReason, resp.Header.Get(gateway.HeaderReason), c.reason)
		}
	}
	if n := calls.Load(); n != served {
		t.Errorf("the service got %d requests without a valid token; want none", n-served)
	}

	// A route that needs a permission (hk.yaml's policy: th-customs for
	// customs agents of TH): the agent passes, a clerk gets 403 and the
	// service never sees the clerk's request.
	if resp, body := getPath("/th-customs/desk", "Authorization", "Bearer "+web.AccessToken); resp.StatusCode != http.StatusOK || body[gateway.HeaderSession] != web.SessionID {
		t.Errorf("GET /th-customs as a customs agent through nginx: status %d, identity %v; want 200 with session %s", resp.StatusCode, body, web.SessionID)
	}
	if r := e2eCLI(t, e2ePassword+"\n", "user", "create", "--database-url", c.dbURL, "--password-stdin", "--email", "clerk@example.com",
		"--display-name", "Clerk", "--org-name", "Siam Customs Brokers", "--country", "TH", "--org-type", "SUPPLIER", "--role", "clerk"); r.code != 0 {
		t.Fatalf("sessiond user create clerk: exit %d, stderr %q", r.code, r.stderr)
	}
	clerk := e2eLogin(t, seoul.url(), "clerk@example.com", e2ePassword, "web", "pc")
	served = calls.Load()
	if resp, _ := getPath("/th-customs/desk", "Authorization", "Bearer "+clerk.AccessToken); resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET /th-customs as a clerk through nginx: status %d; want 403", resp.StatusCode)
	}
	if resp, _ := getPath("/hello", "Authorization", "Bearer "+clerk.AccessToken); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /hello as a clerk through nginx: status %d; want 200 (no permission needed)", resp.StatusCode)
	}
	if n := calls.Load(); n != served+1 {
		t.Errorf("the service got %d requests from the clerk; want 1 (/hello only)", n-served)
	}

	// Envoy's ext_authz over gRPC on the same TLS port, authenticated by a
	// service certificate as Envoy's upstream TLS context presents it.
	envoyCert, err := tls.LoadX509KeyPair(svc.CertFile, svc.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(e2ePKI.CA.Cert)
	cc, err := grpc.NewClient(seoul.httpAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: roots, Certificates: []tls.Certificate{envoyCert}, ServerName: "localhost", MinVersion: tls.VersionTLS13})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	res, err := authv3.NewAuthorizationClient(cc).Check(context.Background(), gwEnvoyRequest(map[string]string{"authorization": "Bearer " + web.AccessToken}))
	if err != nil || res.GetOkResponse() == nil || !gwHasHeader(res.GetOkResponse().GetHeaders(), "x-sessiond-session", web.SessionID) {
		t.Errorf("ext_authz over TLS with a service certificate: %v, %v; want an ok_response naming session %s", res, err, web.SessionID)
	}

	// Logged out through hk, the node nginx asks: once hk has applied the
	// cluster's commit index, the very next request is refused (nothing
	// cached an allow).
	if code, b, err := e2ePost(hk.url()+"/auth/logout", "{}", "Authorization", "Bearer "+web.AccessToken); err != nil || code != http.StatusNoContent {
		t.Fatalf("logout through hk: %d %s %v; want 204", code, b, err)
	}
	e2eWaitApplied(t, hk, seoul)
	resp, _ = get("Authorization", "Bearer "+web.AccessToken)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get(gateway.HeaderReason) != "session_ended" {
		t.Errorf("the next request after logout: status %d, reason %q; want 401 session_ended", resp.StatusCode, resp.Header.Get(gateway.HeaderReason))
	}

	// A token checked (through nginx, on hk) is revoked through seoul:
	// refused through nginx as soon as hk has applied it.
	ios := e2eLogin(t, seoul.url(), "gw@example.com", e2ePassword, "ios", "phone")
	e2eWaitFor(t, 10*time.Second, "the new ios session passing through nginx", func() bool {
		resp, _ := get("Authorization", "Bearer "+ios.AccessToken)
		return resp.StatusCode == http.StatusOK
	})
	if code, b, err := e2ePost(seoul.url()+"/auth/logout", "{}", "Authorization", "Bearer "+ios.AccessToken); err != nil || code != http.StatusNoContent {
		t.Fatalf("logout through seoul: %d %s %v; want 204", code, b, err)
	}
	e2eWaitApplied(t, hk, seoul)
	resp, _ = get("Authorization", "Bearer "+ios.AccessToken)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get(gateway.HeaderReason) != "session_ended" {
		t.Errorf("after logout through seoul: status %d through nginx (asking hk), reason %q; want 401 session_ended", resp.StatusCode, resp.Header.Get(gateway.HeaderReason))
	}

	// hk, nginx's primary, stops: nginx asks its backup (seoul) and the
	// session still passes once seoul answers from fresh state (a leader
	// of the two left); a logged-out one is still refused.
	android := e2eLogin(t, seoul.url(), "gw@example.com", e2ePassword, "android", "tablet")
	e2eWaitApplied(t, seoul, hk, tokyo)
	hk.stop(30 * time.Second)
	e2eWaitFor(t, e2eStartLimit, "the android session passing through nginx with hk stopped", func() bool {
		resp, _ := get("Authorization", "Bearer "+android.AccessToken)
		return resp.StatusCode == http.StatusOK
	})
	if resp, _ := get("Authorization", "Bearer "+ios.AccessToken); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the logged-out ios token with hk stopped: status %d through nginx; want 401", resp.StatusCode)
	}
}

// e2eWaitApplied waits until node has applied every entry the cluster
// had committed when it was called (the highest commit index of nodes).
func e2eWaitApplied(t *testing.T, node *e2eNode, others ...*e2eNode) {
	t.Helper()
	var commit uint64
	for _, n := range append([]*e2eNode{node}, others...) {
		if r, ok := n.readyz(); ok {
			commit = max(commit, r.CommitIndex)
		}
	}
	e2eWaitFor(t, 10*time.Second, fmt.Sprintf("%s applying index %d", node.id, commit), func() bool {
		r, ok := node.readyz()
		return ok && r.AppliedIndex >= commit
	})
}
