package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestRemovedSettingsAreNamed: a config that still sets the shared cluster
// secret (YAML key or environment variable, from an earlier version) is
// refused with an error naming the setting and what replaces it, not
// started as if the secret still protected something.
func TestRemovedSettingsAreNamed(t *testing.T) {
	load := func(yamlText string, env map[string]string) error {
		fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
		cfg := defaultConfig()
		bindFlags(fs, &cfg)
		if yamlText != "" {
			path := filepath.Join(t.TempDir(), "node.yaml")
			if err := os.WriteFile(path, []byte(yamlText), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := fs.Set("config", path); err != nil {
				t.Fatal(err)
			}
		}
		return loadConfig(fs, &cfg, func(k string) string { return env[k] })
	}
	for _, tc := range []struct {
		name string
		yaml string
		env  map[string]string
		want []string
	}{
		{"yaml cluster_secret_file", "region: hk\ncluster_secret_file: /etc/sessiond/cluster-secret\n", nil,
			[]string{"line 2: cluster_secret_file: the shared cluster secret was removed", "operator token", "tls:", "delete this setting"}},
		{"yaml cluster_secret", "cluster_secret: abc\n", nil, []string{"line 1: cluster_secret: the shared cluster secret was removed"}},
		{"environment", "", map[string]string{"SESSIOND_CLUSTER_SECRET": "abc"}, []string{"SESSIOND_CLUSTER_SECRET: the shared cluster secret was removed"}},
		{"environment file", "", map[string]string{"SESSIOND_CLUSTER_SECRET_FILE": "/x"}, []string{"SESSIOND_CLUSTER_SECRET_FILE: the shared cluster secret was removed"}},
	} {
		err := load(tc.yaml, tc.env)
		if err == nil {
			t.Errorf("%s: got no error, want one naming the removed setting", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: got %q, want it to contain %q", tc.name, err, w)
			}
		}
	}
	if err := load("region: hk\n", nil); err != nil {
		t.Errorf("a config without removed settings: %v", err)
	}
	root := newRootCmd(io.Discard, io.Discard)
	root.SetArgs([]string{"agent", "--cluster-secret-file", "/etc/sessiond/cluster-secret"})
	var ue usageError
	if err := root.Execute(); !errors.As(err, &ue) || !strings.Contains(err.Error(), "--cluster-secret-file: the shared cluster secret was removed") {
		t.Errorf("agent --cluster-secret-file: got %v, want a usage error naming the removal", err)
	}
}
