package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1/sessionv1connect"
)

// apCheck calls CheckToken on base with the given protocol option and
// client, and fails unless the node answers (inactive: the token is junk).
func apCheck(t *testing.T, hc *http.Client, base, name string, opts ...connect.ClientOption) {
	t.Helper()
	c := sessionv1connect.NewSessionServiceClient(hc, base, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.CheckToken(ctx, connect.NewRequest(&sessionv1.CheckTokenRequest{Token: "junk"}))
	if err != nil || res.Msg.GetActive() {
		t.Errorf("%s CheckToken on %s: %v, %v; want an answer (inactive)", name, base, res, err)
	}
}

// apHealth asks the gRPC health service (over the Connect protocol) and
// returns its status.
func apHealth(t *testing.T, hc *http.Client, base string) string {
	t.Helper()
	resp, err := hc.Post(base+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("health check on %s: %v", base, err)
	}
	defer resp.Body.Close()
	var out struct{ Status string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("health check answer: %v", err)
	}
	return out.Status
}

// TestAPIPlaintextServesH2C: without TLS (dev, tests) the API speaks HTTP/2
// with prior knowledge, so native gRPC clients (grpcurl -plaintext) work,
// as well as Connect, gRPC-Web and HTTP/1.1; the gRPC health service says
// SERVING once the node is ready.
func TestAPIPlaintextServesH2C(t *testing.T) {
	tc := startTestCluster(t, 1, nil)
	base := tc.nodes[0].apiURL
	if !strings.HasPrefix(base, "http://") {
		t.Fatalf("API URL %s: want plain http in the test harness", base)
	}
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	// Checks need a caller credential: the test's service client (Basic).
	h2c := &http.Client{Transport: basicAuth{id: tcServiceID, secret: tcServiceSecret, base: &http.Transport{Protocols: protos}}}
	apCheck(t, h2c, base, "gRPC over h2c", connect.WithGRPC())
	apCheck(t, h2c, base, "Connect over h2c")
	apCheck(t, tcHTTP(), base, "gRPC-Web over HTTP/1.1", connect.WithGRPCWeb())
	if got := apHealth(t, http.DefaultClient, base); got != "SERVING_STATUS_SERVING" {
		t.Errorf("gRPC health of a ready node: %q; want SERVING_STATUS_SERVING", got)
	}
}

// TestAPIOverTLS: an agent serves its API over TLS 1.3 with its node
// certificate, to gRPC, Connect and gRPC-Web clients alike (HTTP/2 and
// HTTP/1.1) presenting a client certificate, and refuses TLS 1.2 by
// default.
func TestAPIOverTLS(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c := newE2ECluster(t, false)
	hk := c.startNode(e2eNodeOpts{Region: "hk"})
	hk.waitReady(e2eStartLimit)
	base := hk.url()
	// Checks need a caller credential: the harness's operator certificate,
	// which the API's TLS layer verifies on every protocol.
	h1cfg := e2eOperatorHTTP.Transport.(*http.Transport).TLSClientConfig.Clone()
	h1cfg.NextProtos = []string{"http/1.1"}
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: h1cfg}}
	apCheck(t, e2eOperatorHTTP, base, "gRPC over TLS", connect.WithGRPC())
	apCheck(t, e2eOperatorHTTP, base, "Connect over TLS")
	apCheck(t, h1, base, "gRPC-Web over TLS and HTTP/1.1", connect.WithGRPCWeb())
	if got := apHealth(t, e2eHTTP, base); got != "SERVING_STATUS_SERVING" {
		t.Errorf("gRPC health of a ready node: %q; want SERVING_STATUS_SERVING", got)
	}
	old := e2eHTTP.Transport.(*http.Transport).TLSClientConfig.Clone()
	old.MaxVersion = tls.VersionTLS12
	if _, err := tls.Dial("tcp", hk.httpAddr, old); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("a TLS 1.2 client: %v; want refused (protocol version)", err)
	}
}
