// Package openapi holds the OpenAPI 3.1 description of a node's plain
// HTTP/JSON routes (openapi.yaml), embedded in the binary and served at
// GET /openapi.yaml. Tests keep it honest: cmd/sessiond compares its paths
// with the routes a node serves, api/authhttp its schemas' field names with
// the handlers' types.
package openapi

import (
	_ "embed"
	"net/http"
)

// Spec is openapi.yaml.
//
//go:embed openapi.yaml
var Spec []byte

// Path is where a node serves Spec.
const Path = "/openapi.yaml"

// Handler serves Spec.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(Spec)
	})
}
