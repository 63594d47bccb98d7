package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestOIDCConfigFromYAML: auth.oidc is read from the YAML file, including
// a client's JWKS written in YAML, and bad clients are refused with a
// message naming the client and the setting.
func TestOIDCConfigFromYAML(t *testing.T) {
	load := func(yamlText string) (Config, error) {
		fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
		cfg := defaultConfig()
		bindFlags(fs, &cfg)
		path := filepath.Join(t.TempDir(), "node.yaml")
		if err := os.WriteFile(path, []byte(yamlText), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := fs.Set("config", path); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"SESSIOND_KEK": strings.Repeat("a", 64)}
		if err := loadConfig(fs, &cfg, func(k string) string { return env[k] }); err != nil {
			return cfg, err
		}
		return cfg, cfg.Validate()
	}
	const good = `
region: hk
insecure_plaintext: true
auth:
  oidc:
    enabled: true
    clients:
      - id: portal
        auth_method: none
        first_party: true
        redirect_uris: [https://portal.example.com/cb]
      - id: batch
        auth_method: private_key_jwt
        grant_types: [client_credentials]
        jwks:
          keys:
            - {kty: EC, crv: P-256, kid: k1, x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
`
	cfg, err := load(good)
	if err != nil {
		t.Fatalf("a good auth.oidc section: %v", err)
	}
	pc, err := cfg.Auth.OIDC.providerConfig(cfg.Auth.Issuer)
	if err != nil || len(pc.Clients) != 2 || len(pc.Clients[1].JWKS.Keys) != 1 || pc.Clients[1].JWKS.Keys[0].KeyID != "k1" {
		t.Fatalf("provider config %+v, %v; want two clients, the second with key k1", pc, err)
	}
	for name, tc := range map[string]struct{ yaml, want string }{
		"http redirect":      {"redirect_uris: [http://portal.example.com/cb]", `oidc client "portal": URI "http://portal.example.com/cb": http only on a loopback host`},
		"fragment":           {"redirect_uris: ['https://portal.example.com/cb#x']", "no fragment"},
		"unknown scope":      {"redirect_uris: [https://p.example.com/cb]\n        scopes: [openid, admin]", `scope "admin"`},
		"public with secret": {"redirect_uris: [https://p.example.com/cb]\n        secret_hash: x", "a public client"},
		"no redirect":        {"grant_types: [authorization_code]", "needs at least one redirect URI"},
		"bad alg":            {"redirect_uris: [https://p.example.com/cb]\n        id_token_signed_response_alg: HS256", "want RS256 or ES256"},
		"unknown field":      {"redirect_uris: [https://p.example.com/cb]\n        redirect_uri: x", "redirect_uri"},
	} {
		text := "region: hk\ninsecure_plaintext: true\nauth:\n  oidc:\n    enabled: true\n    clients:\n      - id: portal\n        auth_method: none\n        " + tc.yaml + "\n"
		if _, err := load(text); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error containing %q", name, err, tc.want)
		}
	}
}

// TestDevOIDCBackchannel: `sessiond dev --oidc-backchannel-uri` gives the
// demo client its back-channel logout URI (a configuration the provider
// accepts), and is refused, before any node starts, without the
// --oidc-redirect-uri that turns the provider on.
func TestDevOIDCBackchannel(t *testing.T) {
	c := devOIDC([]string{"http://127.0.0.1:1/cb"}, "http://127.0.0.1:8079/backchannel-logout")
	if got := c.Clients[0].BackchannelLogoutURI; got != "http://127.0.0.1:8079/backchannel-logout" {
		t.Errorf("dev-app's backchannel_logout_uri: got %q", got)
	}
	if errs := c.validate("http://127.0.0.1:8081"); len(errs) != 0 {
		t.Errorf("the dev provider's configuration: %v", errs)
	}
	if errs := devOIDC([]string{"http://127.0.0.1:1/cb"}, "not a uri").validate("http://127.0.0.1:8081"); len(errs) == 0 {
		t.Error("a back-channel URI that is no URI was accepted")
	}
	var out, errOut strings.Builder
	root := newRootCmd(&out, &errOut)
	root.SetArgs([]string{"dev", "--oidc-backchannel-uri", "http://127.0.0.1:8079/backchannel-logout"})
	err := root.Execute()
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--oidc-redirect-uri") {
		t.Errorf("dev --oidc-backchannel-uri alone: got %v, want a usage error naming --oidc-redirect-uri", err)
	}
}
