package authhttp

import (
	"net/http"
	"time"

	"github.com/sessiond/sessiond/clients/go/token"
)

type paserkKey struct {
	Kid      string    `json:"kid"`
	PASERK   string    `json:"paserk"`
	NotAfter time.Time `json:"not_after"`
	// NotBefore is when the key starts signing; keys are published earlier.
	NotBefore time.Time `json:"not_before"`
}

// paserk publishes the v4.public keys as PASERK strings.
func (rt *routes) paserk(w http.ResponseWriter, r *http.Request) {
	keys := rt.svc.PublishedKeys()
	out := make([]paserkKey, 0, len(keys))
	for _, k := range keys {
		out = append(out, paserkKey{Kid: k.Kid, PASERK: token.PublicKeyPASERK(k.Public), NotAfter: k.ExpiresAt.UTC(), NotBefore: k.ActivatesAt.UTC()})
	}
	w.Header().Set("Cache-Control", "public, max-age=60")
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
}

// jwks publishes the same keys as OKP/Ed25519 JWKs.
func (rt *routes) jwks(w http.ResponseWriter, r *http.Request) {
	keys := rt.svc.PublishedKeys()
	out := make([]token.PublicJWK, 0, len(keys))
	for _, k := range keys {
		out = append(out, token.JWK(k.Kid, k.Public))
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
}

// discovery is the OIDC discovery document of the issuer.
func (rt *routes) discovery(w http.ResponseWriter, r *http.Request) {
	iss := rt.svc.Issuer()
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                iss,
		"jwks_uri":                              iss + "/.well-known/jwks.json",
		"token_endpoint":                        iss + "/auth/token",
		"introspection_endpoint":                iss + "/oauth2/introspect",
		"revocation_endpoint":                   iss + "/oauth2/revoke",
		"end_session_endpoint":                  iss + "/auth/logout",
		"grant_types_supported":                 []string{"password", "refresh_token"},
		"token_endpoint_auth_methods_supported": []string{"none"},
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic"},
		"revocation_endpoint_auth_methods_supported":    []string{"client_secret_basic"},
		"id_token_signing_alg_values_supported":         []string{"EdDSA"},
		"subject_types_supported":                       []string{"public"},
		"response_types_supported":                      []string{"token"},
		"claims_supported":                              []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "org", "org_type", "country", "roles", "platform"},
		"paserk_uri":                                    iss + "/.well-known/paserk",
	})
}
