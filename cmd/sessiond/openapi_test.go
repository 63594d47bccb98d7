package main

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/sessiond/sessiond/api/gateway"
	"github.com/sessiond/sessiond/api/openapi"
)

// TestOpenAPIMatchesRoutes: every plain HTTP route a node serves is in
// api/openapi/openapi.yaml with its method, and every documented route is
// served (the Connect and gRPC services, mounted at /<package.Service>/, are
// described by the .proto files instead). The node serves the embedded file
// at /openapi.yaml.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	n := &node{cfg: defaultConfig(), log: slog.New(slog.DiscardHandler), reg: prometheus.NewRegistry()}
	mux, _ := n.mux()

	var served []string
	for _, p := range mux.patterns {
		method, path, ok := strings.Cut(p, " ")
		if !ok {
			path, method = p, ""
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
		if method == "" && strings.Contains(first, ".") {
			continue // a Connect/gRPC service or procedure
		}
		if method == "" && path == gateway.CheckPath {
			// Forward auth takes the proxied request's method, whatever it
			// is; the description documents it as GET (what nginx sends).
			method = http.MethodGet
		}
		if method == "" {
			t.Errorf("route %q has no method: give it one (and document it)", p)
			continue
		}
		served = append(served, method+" "+path)
	}

	var spec struct {
		OpenAPI string                               `yaml:"openapi"`
		Paths   map[string]map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openapi.Spec, &spec); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if spec.OpenAPI != "3.1.0" {
		t.Errorf("openapi: %q, exp 3.1.0", spec.OpenAPI)
	}
	var documented []string
	for path, ops := range spec.Paths {
		for method := range ops {
			switch method {
			case "get", "post", "put", "delete", "patch", "head", "options":
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	slices.Sort(served)
	slices.Sort(documented)
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("served but not in api/openapi/openapi.yaml: %s", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("in api/openapi/openapi.yaml but not served: %s", r)
		}
	}
	if len(served) < 20 {
		t.Errorf("only %d routes found: the check looked in the wrong place (%v)", len(served), served)
	}

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, openapi.Path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	if rec.Code != http.StatusOK || !bytes.Equal(body, openapi.Spec) || rec.Header().Get("Content-Type") != "application/yaml" {
		t.Errorf("GET %s: %d %q, %d bytes; exp 200 application/yaml with the spec", openapi.Path, rec.Code, rec.Header().Get("Content-Type"), len(body))
	}
}
