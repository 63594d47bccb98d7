package main

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// deployDir is the repository's deploy/ directory.
var deployDir = filepath.Join("..", "..", "deploy")

// deploySecretVars are the SESSIOND_* variables that are not flags.
var deploySecretVars = []string{"SESSIOND_KEK", "SESSIOND_GOSSIP_KEY", "SESSIOND_CONFIG"}

// deployLoad resolves a configuration the way `sessiond agent` does, from
// args and the environment, and validates it.
func deployLoad(t *testing.T, args []string, env map[string]string) (Config, error) {
	t.Helper()
	cfg := defaultConfig()
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	bindFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if err := loadConfig(fs, &cfg, func(k string) string { return env[k] }); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// TestDeployConfigs loads every example config through the real loader and
// Validate: each is valid, uses the bootstrap_expect form with the three
// servers' advertised peer addresses, and names distinct nodes.
func TestDeployConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(deployDir, "config", "*.yaml"))
	if err != nil || len(files) != 3 {
		t.Fatalf("deploy/config/*.yaml: got %v (%v), want 3 files", files, err)
	}
	ids := map[string]bool{}
	var peers []string
	for _, f := range files {
		cfg, err := deployLoad(t, []string{"--config", f}, nil)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if cfg.BootstrapExpect != 3 || len(cfg.RetryJoin) != 3 || cfg.Bootstrap || len(cfg.Join) != 0 {
			t.Errorf("%s: bootstrap_expect %d, retry_join %v, bootstrap %t, join %v; want bootstrap_expect 3 with 3 peers and neither bootstrap nor join",
				f, cfg.BootstrapExpect, cfg.RetryJoin, cfg.Bootstrap, cfg.Join)
		}
		if !slices.Contains(cfg.RetryJoin, cfg.AdvertiseRaft) {
			t.Errorf("%s: retry_join %v does not list the node's own advertise_raft %s", f, cfg.RetryJoin, cfg.AdvertiseRaft)
		}
		if ids[cfg.NodeID] {
			t.Errorf("%s: node id %s used twice", f, cfg.NodeID)
		}
		ids[cfg.NodeID] = true
		if peers == nil {
			peers = cfg.RetryJoin
		} else if !slices.Equal(peers, cfg.RetryJoin) {
			t.Errorf("%s: retry_join %v; want the same list in every file (%v)", f, cfg.RetryJoin, peers)
		}
	}
}

// TestDeployCompose checks docker-compose.yml structurally and resolves each
// service's environment through the real loader and Validate: every
// SESSIOND_* variable is a flag or a secret, host names are accepted as
// advertised addresses, and the retry_join list names every service.
func TestDeployCompose(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(deployDir, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Build struct {
				Context    string `yaml:"context"`
				Dockerfile string `yaml:"dockerfile"`
			} `yaml:"build"`
			Hostname    string            `yaml:"hostname"`
			Environment map[string]string `yaml:"environment"`
			Command     []string          `yaml:"command"`
			Ports       []string          `yaml:"ports"`
			Volumes     []string          `yaml:"volumes"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(compose.Services) != 3 {
		t.Fatalf("services: got %d, want 3", len(compose.Services))
	}
	flags := newAgentCmd().Flags()
	for name, s := range compose.Services {
		if s.Build.Dockerfile == "" {
			t.Errorf("%s: no build", name)
		} else if _, err := os.Stat(filepath.Join(deployDir, s.Build.Context, s.Build.Dockerfile)); err != nil {
			t.Errorf("%s: dockerfile: %v", name, err)
		}
		if !slices.Equal(s.Command, []string{"agent"}) || s.Hostname != name || len(s.Ports) != 1 {
			t.Errorf("%s: command %v, hostname %q, ports %v; want [agent], %q, one port", name, s.Command, s.Hostname, s.Ports, name)
		}
		for k := range s.Environment {
			known := slices.Contains(deploySecretVars, k)
			flags.VisitAll(func(f *pflag.Flag) { known = known || envName(f.Name) == k })
			if !known {
				t.Errorf("%s: environment %s is neither a flag nor a secret variable", name, k)
			}
		}
		for _, v := range s.Volumes {
			src, dst, ok := strings.Cut(v, ":")
			if !ok {
				t.Errorf("%s: volume %q", name, v)
				continue
			}
			if _, named := compose.Volumes[src]; !named && !strings.HasPrefix(src, "./") {
				t.Errorf("%s: volume %q is neither a named volume nor a path", name, v)
			}
			_ = dst
		}
		cfg, err := deployLoad(t, nil, s.Environment)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if cfg.BootstrapExpect != 3 || !slices.Contains(cfg.RetryJoin, cfg.AdvertiseRaft) || cfg.AdvertiseRaft != name+":7000" {
			t.Errorf("%s: bootstrap_expect %d, retry_join %v, advertise_raft %q; want 3 and its own host name in the list", name, cfg.BootstrapExpect, cfg.RetryJoin, cfg.AdvertiseRaft)
		}
		for _, p := range cfg.RetryJoin {
			if _, ok := compose.Services[strings.TrimSuffix(p, ":7000")]; !ok {
				t.Errorf("%s: retry_join %s is no service", name, p)
			}
		}
	}
}

// TestDeploySystemdUnit parses sessiond.service: ExecStart runs `sessiond
// agent` with flags the agent accepts, its config under a read-only path,
// and reload sends SIGHUP.
func TestDeploySystemdUnit(t *testing.T) {
	f, err := os.Open(filepath.Join(deployDir, "sessiond.service"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("unit line %q is not key=value", line)
			continue
		}
		keys[k] = v
	}
	args := strings.Fields(keys["ExecStart"])
	if len(args) < 2 || args[0] != "/usr/local/bin/sessiond" || args[1] != "agent" {
		t.Fatalf("ExecStart %q; want /usr/local/bin/sessiond agent ...", keys["ExecStart"])
	}
	cmd := newAgentCmd()
	if err := cmd.Flags().Parse(args[2:]); err != nil {
		t.Errorf("ExecStart flags %v: %v", args[2:], err)
	}
	conf, _ := cmd.Flags().GetString("config")
	if conf == "" || !strings.HasPrefix(conf, keys["ReadOnlyPaths"]) {
		t.Errorf("ExecStart --config %q; want a file under ReadOnlyPaths %q", conf, keys["ReadOnlyPaths"])
	}
	if !strings.Contains(keys["ExecReload"], "-HUP") || keys["KillSignal"] != "SIGTERM" || !strings.Contains(keys["ReadWritePaths"], "/var/lib/sessiond") {
		t.Errorf("ExecReload %q, KillSignal %q, ReadWritePaths %q; want SIGHUP reload, SIGTERM, the data dir writable", keys["ExecReload"], keys["KillSignal"], keys["ReadWritePaths"])
	}
}
