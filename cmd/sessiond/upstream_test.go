package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// Every bad identity_providers setting is refused, naming the setting.
func TestIdentityProvidersConfigRefusals(t *testing.T) {
	good := func() IdentityProvidersConfig {
		return IdentityProvidersConfig{PublicURL: "https://auth.example.com", Providers: map[string]ProviderConfig{
			"google": {Type: "oidc", Issuer: "https://accounts.google.com", ClientID: "id", ClientSecretEnv: "GOOGLE_SECRET",
				Signup: true, Org: "Google Users", Country: "KR"},
		}}
	}
	if errs := good().validate(); len(errs) != 0 {
		t.Fatalf("a good section: %v", errs)
	}
	for _, tc := range []struct {
		want   string
		change func(c *IdentityProvidersConfig)
	}{
		{"public_url", func(c *IdentityProvidersConfig) { c.PublicURL = "" }},
		{"plain http is allowed on loopback only", func(c *IdentityProvidersConfig) { c.PublicURL = "http://auth.example.com" }},
		{"return_origins", func(c *IdentityProvidersConfig) { c.ReturnOrigins = []string{"https://app.example.com/path"} }},
		{"state_ttl", func(c *IdentityProvidersConfig) { c.StateTTL = 2 * time.Hour }},
		{"revalidate_interval", func(c *IdentityProvidersConfig) { c.RevalidateInterval = time.Millisecond }},
		{`providers "Google!"`, func(c *IdentityProvidersConfig) { c.Providers["Google!"] = c.Providers["google"] }},
		{"type", func(c *IdentityProvidersConfig) {
			p := c.Providers["google"]
			p.Type = "saml"
			c.Providers["google"] = p
		}},
		{"issuer", func(c *IdentityProvidersConfig) {
			p := c.Providers["google"]
			p.Issuer = "http://accounts.google.com"
			c.Providers["google"] = p
		}},
		{"client_id", func(c *IdentityProvidersConfig) {
			p := c.Providers["google"]
			p.ClientID = ""
			c.Providers["google"] = p
		}},
		{"exactly one is required", func(c *IdentityProvidersConfig) {
			p := c.Providers["google"]
			p.ClientSecretFile = "/x"
			c.Providers["google"] = p
		}},
		{"country", func(c *IdentityProvidersConfig) {
			p := c.Providers["google"]
			p.Country = ""
			c.Providers["google"] = p
		}},
		{"org_type", func(c *IdentityProvidersConfig) {
			p := c.Providers["google"]
			p.OrgType = "boss"
			c.Providers["google"] = p
		}},
	} {
		c := good()
		tc.change(&c)
		errs := c.validate()
		if len(errs) == 0 || !strings.Contains(errs[0].Error(), tc.want) || !strings.HasPrefix(errs[0].Error(), "identity_providers.") {
			t.Errorf("%s: got %v, want an identity_providers error naming %q", tc.want, errs, tc.want)
		}
	}
}

// The client secret comes from its file or variable, and a missing one
// stops the start with a message that names the setting, not the value.
func TestIdentityProviderSecrets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte("s3cret-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := (ProviderConfig{ClientSecretFile: path}).clientSecret(os.Getenv); err != nil || s != "s3cret-from-file" {
		t.Errorf("secret from file: %q, %v", s, err)
	}
	env := func(k string) string { return map[string]string{"G": "s3cret-from-env"}[k] }
	if s, err := (ProviderConfig{ClientSecretEnv: "G"}).clientSecret(env); err != nil || s != "s3cret-from-env" {
		t.Errorf("secret from env: %q, %v", s, err)
	}
	if _, err := (ProviderConfig{ClientSecretEnv: "MISSING"}).clientSecret(env); err == nil || !strings.Contains(err.Error(), "MISSING") {
		t.Errorf("missing variable: %v, want an error naming it", err)
	}
	// The YAML has no field for the secret itself.
	var p ProviderConfig
	err := yaml.Unmarshal([]byte("type: oidc\nclient_secret: plain\n"), &p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.clientSecret(env); err == nil {
		t.Errorf("a provider with client_secret in the YAML got a secret")
	}
}
