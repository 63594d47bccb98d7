package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"gopkg.in/yaml.v3"

	"github.com/sessiond/sessiond/api/gateway"
)

// TestDeployGatewayEnvoy loads deploy/gateway/envoy.yaml into Envoy's own
// bootstrap type (go-control-plane, every typed_config resolved) and runs
// Envoy's validation rules on it, then checks that its ext_authz filter
// calls sessiond's service over gRPC.
func TestDeployGatewayEnvoy(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(deployDir, "gateway", "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("envoy.yaml: %v", err)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var bs bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &bs); err != nil {
		t.Fatalf("envoy.yaml is not an Envoy v3 bootstrap: %v", err)
	}
	if err := bs.ValidateAll(); err != nil {
		t.Fatalf("envoy.yaml breaks Envoy's validation rules: %v", err)
	}
	var found bool
	for _, l := range bs.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if f.GetTypedConfig().UnmarshalTo(&hcm) != nil {
					continue
				}
				for _, hf := range hcm.GetHttpFilters() {
					var ea extauthzv3.ExtAuthz
					if hf.GetTypedConfig().UnmarshalTo(&ea) != nil {
						continue
					}
					found = true
					if ea.GetGrpcService().GetEnvoyGrpc().GetClusterName() != "sessiond" || ea.GetFailureModeAllow() {
						t.Errorf("ext_authz filter: grpc cluster %q, failure_mode_allow %t; want the sessiond cluster over gRPC, failing closed",
							ea.GetGrpcService().GetEnvoyGrpc().GetClusterName(), ea.GetFailureModeAllow())
					}
				}
			}
		}
	}
	if !found {
		t.Error("envoy.yaml has no ext_authz HTTP filter")
	}
}

// TestDeployGatewayHeaders checks that every forward-auth example copies
// every identity header (so a client's own are replaced) and asks the
// check route; where Caddy is installed, that it parses the Caddyfile.
func TestDeployGatewayHeaders(t *testing.T) {
	for _, f := range []string{"nginx.conf", "traefik.yml", "Caddyfile"} {
		raw, err := os.ReadFile(filepath.Join(deployDir, "gateway", f))
		if err != nil {
			t.Fatal(err)
		}
		s := string(raw)
		if !strings.Contains(s, gateway.CheckPath) {
			t.Errorf("deploy/gateway/%s does not call %s", f, gateway.CheckPath)
		}
		for _, h := range gateway.IdentityHeaders {
			if f == "nginx.conf" {
				h = "proxy_set_header " + h
			}
			if !strings.Contains(s, h) {
				t.Errorf("deploy/gateway/%s does not copy %s", f, h)
			}
		}
	}
	// Where Caddy is installed, its own parser adapts the Caddyfile.
	if caddy, err := exec.LookPath("caddy"); err == nil {
		if out, err := exec.Command(caddy, "adapt", "--adapter", "caddyfile", "--config", filepath.Join(deployDir, "gateway", "Caddyfile")).CombinedOutput(); err != nil {
			t.Errorf("caddy adapt deploy/gateway/Caddyfile: %v\n%s", err, out)
		}
	}
}
