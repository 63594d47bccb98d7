package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/cluster"
)

func newAgentCmd() *cobra.Command {
	cfg := defaultConfig()
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a sessiond node",
		Long: `Run one node of a sessiond cluster.

Start the first node with --bootstrap; start the others with --join URL of any
member. Every setting can also come from a YAML file (--config) or a SESSIOND_*
environment variable (--raft-addr is SESSIOND_RAFT_ADDR); flags win over the
environment, which wins over the file. A node restarted from its data dir needs
no flags but --data-dir: it finds its identity and addresses there and rejoins.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			n, err := startNode(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			if err := cfg.persist(); err != nil {
				log.Warn("cannot record the node's addresses in its data dir", "err", err)
			}
			<-cmd.Context().Done()
			log.Info("draining")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			n.close(ctx)
			log.Info("stopped")
			return nil
		},
	}
	bindFlags(cmd.Flags(), &cfg)
	return cmd
}

// agentFile records, in the data dir, the addresses a node started with,
// so that a restart with only --data-dir comes back the same.
const agentFile = "agent.json"

type persisted struct {
	HTTPAddr        string `json:"http_addr"`
	RaftAddr        string `json:"raft_addr"`
	GossipAddr      string `json:"gossip_addr"`
	AdvertiseHTTP   string `json:"advertise_http,omitempty"`
	AdvertiseRaft   string `json:"advertise_raft,omitempty"`
	AdvertiseGossip string `json:"advertise_gossip,omitempty"`
	Voter           bool   `json:"voter"`
	WAN             bool   `json:"wan"`
}

// resume fills settings left at their defaults from the data dir: the
// node's identity (node id, region) and the addresses it last ran with.
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
	raw, err := os.ReadFile(filepath.Join(c.DataDir, agentFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	var p persisted
	if err := json.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(c.DataDir, agentFile), err)
	}
	keep := func(field *string, def, saved string) {
		if *field == def && saved != "" {
			*field = saved
		}
	}
	keep(&c.HTTPAddr, def.HTTPAddr, p.HTTPAddr)
	keep(&c.RaftAddr, def.RaftAddr, p.RaftAddr)
	keep(&c.GossipAddr, def.GossipAddr, p.GossipAddr)
	keep(&c.AdvertiseHTTP, "", p.AdvertiseHTTP)
	keep(&c.AdvertiseRaft, "", p.AdvertiseRaft)
	keep(&c.AdvertiseGossip, "", p.AdvertiseGossip)
	if c.Voter == def.Voter {
		c.Voter = p.Voter
	}
	if !c.WAN {
		c.WAN = p.WAN
	}
	return nil
}

// persist records the node's addresses in its data dir.
func (c *Config) persist() error {
	b, err := json.MarshalIndent(persisted{
		HTTPAddr: c.HTTPAddr, RaftAddr: c.RaftAddr, GossipAddr: c.GossipAddr,
		AdvertiseHTTP: c.AdvertiseHTTP, AdvertiseRaft: c.AdvertiseRaft, AdvertiseGossip: c.AdvertiseGossip,
		Voter: c.Voter, WAN: c.WAN,
	}, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(c.DataDir, agentFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(c.DataDir, agentFile))
}
