package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TestReceiverVerifiesLogoutTokens checks the back-channel receiver as a
// relying party: a well-formed logout token signed by a key of the
// provider's JWKS is accepted, and each way of getting one wrong (§2.6 of
// OIDC Back-Channel Logout) is refused with logout_token_invalid.
func TestReceiverVerifiesLogoutTokens(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _ = json.NewEncoder(w).Encode(jwks) }))
	defer srv.Close()
	r := &receiver{clientID: "app", jwksURL: srv.URL, hc: srv.Client(), waiting: map[string]chan arrival{}}
	if err := r.fetchKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.issuer("https://op.test")

	now := time.Now()
	good := func() map[string]any {
		return map[string]any{"iss": "https://op.test", "aud": "app", "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
			"jti": "j1", "sub": "u1", "sid": "s1", "events": map[string]any{backchannelEvent: map[string]any{}}}
	}
	sign := func(k *ecdsa.PrivateKey, kid, typ string, claims map[string]any) string {
		sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: kid}},
			(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := jwt.Signed(sg).Claims(claims).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	with := func(k string, v any) map[string]any {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	if c, err := r.verify(context.Background(), sign(key, "k1", "logout+jwt", good())); err != nil || c.SID != "s1" {
		t.Fatalf("a good logout token: got %v (sid %v), want it accepted with sid s1", err, c)
	}
	for name, raw := range map[string]string{
		"not a JWT":        "nope",
		"typ JWT":          sign(key, "k1", "JWT", good()),
		"unknown key":      sign(key, "k9", "logout+jwt", good()),
		"another key":      sign(other, "k1", "logout+jwt", good()),
		"another audience": sign(key, "k1", "logout+jwt", with("aud", "someone-else")),
		"another issuer":   sign(key, "k1", "logout+jwt", with("iss", "https://evil.test")),
		"expired":          sign(key, "k1", "logout+jwt", with("exp", now.Add(-time.Hour).Unix())),
		"no event":         sign(key, "k1", "logout+jwt", with("events", map[string]any{})),
		"a nonce":          sign(key, "k1", "logout+jwt", with("nonce", "n")),
		"no jti":           sign(key, "k1", "logout+jwt", with("jti", nil)),
		"no sid":           sign(key, "k1", "logout+jwt", with("sid", nil)),
	} {
		if _, err := r.verify(context.Background(), raw); ErrorCode(err) != "logout_token_invalid" {
			t.Errorf("%s: got %v, want logout_token_invalid", name, err)
		}
	}
}
