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
	out := make([]any, 0, len(keys))
	for _, k := range keys {
		out = append(out, token.JWK(k.Kid, k.Public))
	}
	if rt.opts.ExtraJWKs != nil {
		out = append(out, rt.opts.ExtraJWKs()...)
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
}

// Access-token formats of the discovery document's access_token_format.
const (
	formatPASETO = "v4.public"
	formatJWT    = "jwt"
)

// accessClaims are the claims of an access token, as the token package
// writes them: in both formats, then in JWTs only.
var (
	accessClaims    = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "org_id", "org_type", "country", "roles", "platform"}
	accessJWTClaims = []string{"token_use"}
)

// discovery is the authorization server's metadata (RFC 8414), served at
// /.well-known/oauth-authorization-server and, for clients that look
// there, /.well-known/openid-configuration. It lists exactly what is
// served: the grants /auth/token takes (the password grant only when
// enabled), the claims the access tokens carry, and their format. Without
// the OpenID Provider there is no authorization endpoint and there are no
// ID tokens, so no response type and no ID-token algorithm is listed; with
// it (Options.Metadata), the provider's endpoints replace those entries.
func (rt *routes) discovery(w http.ResponseWriter, r *http.Request) {
	iss := rt.svc.Issuer()
	grants := rt.grants()
	claims := accessClaims
	doc := map[string]any{
		"issuer":                                iss,
		"jwks_uri":                              iss + "/.well-known/jwks.json",
		"paserk_uri":                            iss + "/.well-known/paserk",
		"token_endpoint":                        iss + "/auth/token",
		"introspection_endpoint":                iss + "/oauth2/introspect",
		"revocation_endpoint":                   iss + "/oauth2/revoke",
		"grant_types_supported":                 grants,
		"response_types_supported":              []string{},
		"token_endpoint_auth_methods_supported": []string{"none"},
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic"},
		"revocation_endpoint_auth_methods_supported":    []string{"client_secret_basic"},
		"access_token_format":                           formatPASETO,
	}
	if rt.opts.JWTAccessTokens {
		claims = append(append([]string{}, accessClaims...), accessJWTClaims...)
		doc["access_token_format"] = formatJWT
		doc["access_token_signing_alg_values_supported"] = []string{"EdDSA"}
	}
	doc["claims_supported"] = claims
	if rt.opts.Metadata != nil {
		rt.opts.Metadata(doc)
	}
	w.Header().Set("Cache-Control", "public, max-age=60")
	writeJSON(w, http.StatusOK, doc)
}
