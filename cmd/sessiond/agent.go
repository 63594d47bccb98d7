package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sessiond/sessiond/cluster"
)

func newAgentCmd() *cobra.Command {
	cfg := defaultConfig()
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a sessiond node",
		Long: `Run one node of a sessiond cluster.

Start the servers of a new cluster with --bootstrap-expect N and the same
--retry-join list of their peer addresses (host:port), in any order: the one
with the lowest node id bootstraps once it sees the others, the others join,
and a node whose peers already form a cluster joins it (a replacement with an
empty data dir never starts a second cluster). Add more nodes with --join and
the peer address of any member: they join as non-voters and the leader
promotes them once caught up (--voter=false keeps a read replica). Every channel is encrypted and
authenticated: peers use mutual TLS with node certificates of the cluster CA
(--tls-*; make them with "sessiond tls"), gossip is encrypted (a gossip key is
required), the client API serves TLS. Without TLS the agent refuses to start
unless --insecure-plaintext is given (a laptop only). SIGHUP reloads the
certificates; so does replacing the files. Every setting can also come from a YAML file (--config) or a SESSIOND_*
environment variable (--raft-addr is SESSIOND_RAFT_ADDR); flags win over the
environment, which wins over the file. A node restarted from its data dir needs
no flags but --data-dir (and its secrets in the environment, if that is where
they came from): it finds its identity, config file and flags there, and
rejoins.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := resumeFlags(cmd.Flags(), os.Getenv); err != nil {
				return err
			}
			if err := loadConfig(cmd.Flags(), &cfg, os.Getenv); err != nil {
				return usageError{err}
			}
			if err := cfg.resume(); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return usageError{fmt.Errorf("invalid configuration:\n%w", err)}
			}
			log := newLogger(cmd.ErrOrStderr(), cfg.LogLevel, cfg.LogFormat)
			setMemoryLimit(cmd.Context(), log)
			keepGCHeadroom(cmd.Context(), log, cfg.GCHeadroomMB)
			n, err := startNode(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			if err := persistFlags(cmd.Flags(), cfg.DataDir); err != nil {
				log.Warn("cannot record the node's settings in its data dir", "err", err)
			}
			// SIGHUP reloads the certificates (the files are also watched).
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
		wait:
			for {
				select {
				case <-hup:
					log.Info("SIGHUP: reloading TLS files")
					n.tls.reload(log)
				case <-cmd.Context().Done():
					break wait
				}
			}
			log.Info("draining")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			n.close(ctx)
			log.Info("stopped")
			return nil
		},
	}
	bindFlags(cmd.Flags(), &cfg)
	cmd.SetFlagErrorFunc(removedFlagError)
	return cmd
}

// setMemoryLimit sets the Go runtime's soft memory limit (GOMEMLIMIT) to
// 90% of the memory cgroup's limit when the node runs in one (a container,
// a systemd unit with MemoryMax=) and follows changes of that limit, so
// that the garbage collector works harder before the kernel's OOM killer
// would. An explicit GOMEMLIMIT, or AUTOMEMLIMIT=off, wins; AUTOMEMLIMIT=0.8
// sets another ratio. The rest of the limit is left to the page cache of
// state.db, which the kernel reclaims under the limit.
func setMemoryLimit(ctx context.Context, log *slog.Logger) {
	// Set logs the limit it applies (and an error, which leaves the
	// runtime's default: no limit).
	_, _ = memlimit.Set(memlimit.WithLogger(log), memlimit.WithRefreshInterval(ctx, time.Minute))
}

// agentFile records, in the data dir, how the node was started: its config
// file and the flags and SESSIOND_* settings it was given (never the
// secrets' values, which are not flags), so that a restart with only
// --data-dir comes back the same. The file is readable by its owner only.
const agentFile = "agent.json"

type persisted struct {
	// Config is the absolute path of the YAML config file, if any.
	Config string `json:"config,omitempty"`
	// Flags maps flag names to the values the node ran with.
	Flags map[string][]string `json:"flags"`
}

// flagValues returns the values of a set flag.
func flagValues(f *pflag.Flag) []string {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return sv.GetSlice()
	}
	return []string{f.Value.String()}
}

// resumeFlags applies the settings recorded in the data dir for every flag
// neither the command line nor the environment sets now.
func resumeFlags(fs *pflag.FlagSet, getenv func(string) string) error {
	dir, _ := fs.GetString("data-dir")
	if !fs.Changed("data-dir") && getenv(envName("data-dir")) != "" {
		dir = getenv(envName("data-dir"))
	}
	raw, err := os.ReadFile(filepath.Join(dir, agentFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	var p persisted
	if err := json.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, agentFile), err)
	}
	if p.Config != "" && !fs.Changed("config") && getenv("SESSIOND_CONFIG") == "" {
		if err := fs.Set("config", p.Config); err != nil {
			return err
		}
	}
	for name, vals := range p.Flags {
		f := fs.Lookup(name)
		if f == nil || f.Changed || getenv(envName(name)) != "" {
			continue
		}
		_, isSlice := f.Value.(pflag.SliceValue)
		if len(vals) == 0 && !isSlice {
			continue
		}
		// fs.Set marks the flag as set, so the file does not override it;
		// an empty list given on purpose (--join=) stays empty.
		err := fs.Set(name, strings.Join(vals, ","))
		if err != nil {
			return fmt.Errorf("%s: flag %s: %w", agentFile, name, err)
		}
	}
	return nil
}

// persistFlags records the config path and the set flags in the data dir.
func persistFlags(fs *pflag.FlagSet, dataDir string) error {
	p := persisted{Flags: map[string][]string{}}
	fs.Visit(func(f *pflag.Flag) {
		if f.Name == "config" {
			if abs, err := filepath.Abs(f.Value.String()); err == nil {
				p.Config = abs
			}
			return
		}
		p.Flags[f.Name] = flagValues(f)
	})
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dataDir, agentFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dataDir, agentFile))
}

// resume fills the node id and region from the identity stored in the data
// dir when they were not given, and the node id from the host name on a
// first start.
func (c *Config) resume() error {
	def := defaultConfig()
	id, err := cluster.LoadIdentity(c.DataDir)
	switch {
	case err == nil:
		if c.NodeID == "" {
			c.NodeID = id.NodeID
		}
		if c.Region == def.Region {
			c.Region = id.Region
		}
	case errors.Is(err, os.ErrNotExist):
		if c.NodeID == "" {
			host, herr := os.Hostname()
			if herr != nil {
				return fmt.Errorf("node-id: not set and no host name: %w", herr)
			}
			c.NodeID = host
		}
	default:
		return err
	}
	return nil
}
