package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/store"
)

func newRecoverCmd() *cobra.Command {
	var dataDir, peersFile string
	cmd := &cobra.Command{
		Use:   "recover --data-dir DIR --peers-file FILE",
		Short: "Outage recovery: rewrite a stopped node's Raft configuration when a quorum is lost for good",
		Long: `Outage recovery (like Consul's peers.json or etcd's --force-new-cluster), for a
cluster that lost a quorum of its voters permanently. Run it, with the node
STOPPED, on every surviving node with the same FILE: a JSON list of the
servers of the new configuration,

  [{"id": "seoul-1", "address": "10.0.2.10:7000"},
   {"id": "tokyo-1", "address": "10.0.3.10:7000", "non_voter": false}]

then start them: they elect a leader among themselves. Every entry in the
node's log is applied, including entries the lost quorum never committed,
and the nodes left out must never be started again with their old data dirs
(remove them from your inventory; wipe them before reuse). Use it only when
the lost voters cannot come back: a cluster that merely waits for a node
does not need it. The cluster id is kept.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" || peersFile == "" {
				return usageError{errors.New("--data-dir and --peers-file are required")}
			}
			raw, err := os.ReadFile(peersFile)
			if err != nil {
				return usageError{fmt.Errorf("--peers-file: %w", err)}
			}
			dec := json.NewDecoder(strings.NewReader(string(raw)))
			dec.DisallowUnknownFields()
			var servers []cluster.RecoveryServer
			if err := dec.Decode(&servers); err != nil {
				return usageError{fmt.Errorf("--peers-file %s: %w (want [{\"id\": ..., \"address\": \"host:port\"}, ...])", peersFile, err)}
			}
			id, err := cluster.LoadIdentity(dataDir)
			if err != nil {
				return fmt.Errorf("--data-dir %s is not a node's data dir: %w", dataDir, err)
			}
			log := newLogger(cmd.ErrOrStderr(), "warn", "text")
			st, err := store.Open(filepath.Join(dataDir, "state.db"), store.Options{Logger: log})
			if err != nil {
				return fmt.Errorf("%w (is the node still running? stop it first)", err)
			}
			defer st.Close()
			w := cmd.ErrOrStderr()
			fmt.Fprintln(w, "WARNING: outage recovery rewrites this node's Raft configuration.")
			fmt.Fprintln(w, "WARNING: run it only when a quorum of voters is lost for good; every entry in this node's log is applied, committed or not;")
			fmt.Fprintln(w, "WARNING: the same peers file must be used on every surviving node, and the nodes it leaves out must never start again with their old data.")
			if err := cluster.RecoverConfiguration(dataDir, id.NodeID, servers, st, log); err != nil {
				return err
			}
			ids := make([]string, len(servers))
			for i, s := range servers {
				ids[i] = s.ID
			}
			fmt.Fprintf(cmd.OutOrStdout(), "recovered %s (node %s, cluster %s): the configuration is now %s at index %d; start the node(s)\n",
				dataDir, id.NodeID, id.ClusterID, strings.Join(ids, ", "), st.AppliedIndex())
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the stopped node's data dir")
	cmd.Flags().StringVar(&peersFile, "peers-file", "", "JSON list of the new configuration's servers")
	return cmd
}
