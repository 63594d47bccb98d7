package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSecurityRunbook runs docs/security.md against two real nodes: create
// a CA and node certificates with `sessiond tls`, renew a node certificate,
// rotate the CA through a two-CA bundle, and check at every step that both
// nodes take writes. The API keeps a certificate of the run's CA
// (api_tls), so the test's clients need not change.
func TestSecurityRunbook(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	work := t.TempDir()
	sh := func(args ...string) {
		t.Helper()
		r := e2eCLI(t, "", args...)
		if r.code != 0 {
			t.Fatalf("sessiond %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	in := func(parts ...string) string { return filepath.Join(append([]string{work}, parts...)...) }
	for _, d := range []string{"ca", "ca2", "certs", "renewed", "certs2", "hk", "seoul"} {
		if err := os.MkdirAll(in(d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// install replaces dst with src's content the way the runbook says:
	// write a new file, rename it over the old.
	install := func(dst string, srcs ...string) {
		t.Helper()
		var data []byte
		for _, s := range srcs {
			b, err := os.ReadFile(s)
			if err != nil {
				t.Fatal(err)
			}
			data = append(data, b...)
		}
		if err := os.WriteFile(dst+".new", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(dst+".new", dst); err != nil {
			t.Fatal(err)
		}
	}

	// 1. The CA and the node certificates.
	sh("tls", "ca", "create", "--dir", in("ca"))
	if r := e2eCLI(t, "", "tls", "ca", "create", "--dir", in("ca")); r.code == 0 || !strings.Contains(r.stderr, "refusing to overwrite") {
		t.Errorf("a second tls ca create in the same dir: exit %d, %q; want a refusal to overwrite", r.code, r.stderr)
	}
	if st, err := os.Stat(in("ca", "ca-key.pem")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("ca-key.pem: %v, %v; want mode 0600", st.Mode(), err)
	}
	ca1 := []string{"--ca", in("ca", "ca.pem"), "--ca-key", in("ca", "ca-key.pem")}
	ca2 := []string{"--ca", in("ca2", "ca.pem"), "--ca-key", in("ca2", "ca-key.pem")}
	for _, id := range []string{"hk-1", "seoul-1"} {
		sh(append(append([]string{"tls", "cert", "create"}, ca1...), "--dir", in("certs"), "--node-id", id, "--ip", "127.0.0.1")...)
		dir := in(strings.TrimSuffix(id, "-1"))
		install(filepath.Join(dir, "ca.pem"), in("ca", "ca.pem"))
		install(filepath.Join(dir, "node-key.pem"), in("certs", "node-"+id+"-key.pem"))
		install(filepath.Join(dir, "node.pem"), in("certs", "node-"+id+".pem"))
	}
	c := newE2ECluster(t, false)
	// The peers use the runbook's CA, the one being rotated; the client API
	// keeps a certificate and a client CA of the run's (the harness's
	// operator certificate is from it), so that the harness reaches it
	// throughout.
	flags := func(region, id string) []string {
		api := e2ePKI.NodeFiles(t, id)
		dir := in(region)
		return []string{"--tls-ca-file", filepath.Join(dir, "ca.pem"), "--tls-cert-file", filepath.Join(dir, "node.pem"),
			"--tls-key-file", filepath.Join(dir, "node-key.pem"), "--api-tls-cert-file", api.CertFile, "--api-tls-key-file", api.KeyFile,
			"--api-tls-client-ca-file", e2ePKI.CAFile()}
	}
	hk := c.startNode(e2eNodeOpts{Region: "hk", Extra: flags("hk", "hk-1")})
	hk.waitReady(e2eStartLimit)
	seoul := c.startNode(e2eNodeOpts{Region: "seoul", Join: []string{hk.raftAddr}, Extra: flags("seoul", "seoul-1")})
	hk.waitMembers(e2eStartLimit, hk.id, seoul.id)
	seoul.waitReady(e2eStartLimit)
	nodes := []*e2eNode{hk, seoul}
	e2eBuiltinUser(t, c, hk, "rota@example.com")
	writes := func(what string) {
		t.Helper()
		for i, n := range nodes {
			var lr e2eLoginResponse
			var err error
			e2eWaitFor(t, 15*time.Second, fmt.Sprintf("a login through %s after %s (last error: %v)", n.id, what, &err), func() bool {
				// One device per node: a login replaces that device's session.
				lr, _, err = e2eTryLogin(n.url(), "rota@example.com", e2ePassword, []string{"web", "ios"}[i], fmt.Sprintf("device-%d", i))
				return err == nil
			})
			for _, m := range nodes {
				if ct := e2eCheckToken(t, m.url(), lr.AccessToken, e2eLinear); !ct.GetActive() {
					t.Fatalf("after %s: token from %s inactive on %s (%s)", what, n.id, m.id, ct.GetReason())
				}
			}
		}
	}
	reload := func() {
		for _, n := range nodes {
			if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}
	}
	// servedBy reports whether a new peer connection to n presents a
	// certificate issued by the CA in caDir.
	servedBy := func(n *e2eNode, caDir string) bool {
		caPEM, err := os.ReadFile(filepath.Join(caDir, "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		f := e2ePKI.NodeFiles(t, "tokyo-1")
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.Dial("tcp", n.raftAddr, &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true, NextProtos: []string{"sessiond-probe/1"}})
		if err != nil {
			return false
		}
		defer conn.Close()
		block, _ := pem.Decode(caPEM)
		ca, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return conn.ConnectionState().PeerCertificates[0].CheckSignatureFrom(ca) == nil
	}
	writes("start")

	// 2. Renew hk's certificate with the same CA.
	sh(append(append([]string{"tls", "cert", "create"}, ca1...), "--dir", in("renewed"), "--node-id", "hk-1", "--ip", "127.0.0.1")...)
	install(in("hk", "node-key.pem"), in("renewed", "node-hk-1-key.pem"))
	install(in("hk", "node.pem"), in("renewed", "node-hk-1.pem"))
	reload()
	writes("renewing hk-1's certificate")

	// 3. Rotate the CA: bundle both, new certificates, new CA alone.
	sh("tls", "ca", "create", "--dir", in("ca2"))
	for _, r := range []string{"hk", "seoul"} {
		install(in(r, "ca.pem"), in("ca", "ca.pem"), in("ca2", "ca.pem"))
	}
	reload()
	writes("bundling the old and the new CA")
	for _, id := range []string{"hk-1", "seoul-1"} {
		sh(append(append([]string{"tls", "cert", "create"}, ca2...), "--dir", in("certs2"), "--node-id", id, "--ip", "127.0.0.1")...)
		r := strings.TrimSuffix(id, "-1")
		install(in(r, "node-key.pem"), in("certs2", "node-"+id+"-key.pem"))
		install(in(r, "node.pem"), in("certs2", "node-"+id+".pem"))
		if err := map[string]*e2eNode{"hk-1": hk, "seoul-1": seoul}[id].cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		writes("moving " + id + " to the new CA") // one node on each CA
	}
	for _, n := range nodes {
		e2eWaitFor(t, 10*time.Second, n.id+" to serve a certificate of the new CA", func() bool { return servedBy(n, in("ca2")) })
	}
	for _, r := range []string{"hk", "seoul"} {
		install(in(r, "ca.pem"), in("ca2", "ca.pem"))
	}
	reload()
	writes("dropping the old CA")
	// New connections everywhere: seoul restarts (from its data dir alone)
	// and both directions handshake with the new certificates only.
	seoul.stop(20 * time.Second)
	seoul.restart()
	seoul.waitReady(e2eStartLimit)
	writes("restarting seoul-1 on the new CA")

	// The old CA is refused from now on.
	sh(append(append([]string{"tls", "cert", "create"}, ca1...), "--dir", in("certs"), "--node-id", "tokyo-1")...)
	old, err := tls.LoadX509KeyPair(in("certs", "node-tokyo-1.pem"), in("certs", "node-tokyo-1-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	e2eWaitFor(t, 10*time.Second, "hk to refuse a certificate of the old CA", func() bool {
		return atHandshake(hk.raftAddr, &tls.Config{Certificates: []tls.Certificate{old}, InsecureSkipVerify: true, NextProtos: []string{"h2"}}) != nil
	})
	for _, n := range nodes {
		if n.exited() {
			t.Errorf("%s exited during the runbook:\n%s", n.id, n.tail(20))
		}
	}
}

// e2eBuiltinUser creates a user in the built-in directory through n's API
// with the CLI (an operator token from a file, as the docs say).
func e2eBuiltinUser(t *testing.T, c *e2eCluster, n *e2eNode, email string) {
	t.Helper()
	r := e2eCLI(t, e2ePassword+"\n", "user", "create", "--addr", n.url(), "--token-file", c.opToken(n), "--password-stdin",
		"--email", email, "--display-name", "E2E", "--org-name", "Org", "--country", "TH", "--org-type", "SUPPLIER", "--role", "r")
	if r.code != 0 {
		t.Fatalf("user create through %s: exit %d: %s", n.id, r.code, r.stderr)
	}
}
