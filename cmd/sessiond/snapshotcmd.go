package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/store"
)

func newSnapshotCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Back up the replicated state, inspect a backup, restore one into a new cluster"}
	cmd.AddCommand(newSnapshotSaveCmd(), newSnapshotInspectCmd(), newSnapshotRestoreCmd())
	return cmd
}

func newSnapshotSaveCmd() *cobra.Command {
	var f clusterClientFlags
	cmd := &cobra.Command{
		Use:   "save FILE",
		Short: "Stream a backup of the cluster's state from a node into FILE",
		Long: `Save a backup of the replicated state (sessions, refresh tokens, revocations,
signing keys, built-in users) into FILE, through the cluster API of any node
(operator credentials). The node first confirms with the leader that it has
applied everything committed, so the backup holds every write acknowledged
before the command started. FILE is written under a temporary name, verified
(checksums and the database's consistency check) and renamed; an existing FILE
is not overwritten. Signing keys stay sealed with the KEK: keep the KEK to
restore.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if _, err := os.Stat(path); err == nil {
				return usageError{fmt.Errorf("%s exists: refusing to overwrite it", path)}
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, cancel := contextTimeout(cmd, f.timeout)
			defer cancel()
			tmp := path + ".partial"
			out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			defer os.Remove(tmp)
			stream, err := c.Snapshot(ctx, connect.NewRequest(&clusterv1.SnapshotRequest{}))
			if err != nil {
				out.Close()
				return err
			}
			var size int64
			for stream.Receive() {
				n, err := out.Write(stream.Msg().GetData())
				size += int64(n)
				if err != nil {
					out.Close()
					return err
				}
			}
			if err := stream.Err(); err != nil {
				out.Close()
				return fmt.Errorf("snapshot stream: %w", err)
			}
			if err := errors.Join(out.Sync(), out.Close()); err != nil {
				return err
			}
			info, err := store.InspectBackup(tmp, filepath.Dir(path))
			if err != nil {
				return fmt.Errorf("the received backup does not verify: %w", err)
			}
			if err := os.Rename(tmp, path); err != nil {
				return err
			}
			if f.output == "json" {
				return printBackupJSON(cmd.OutOrStdout(), path, info)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "saved %s: %d bytes, index %d, term %d, cluster %s, from %s at %s\n",
				path, size, info.Index, info.Term, info.ClusterID, info.NodeID, info.Time.Format(time.RFC3339))
			return nil
		},
	}
	f.bind(cmd)
	cmd.Flags().Lookup("timeout").DefValue = "5m"
	_ = cmd.Flags().Set("timeout", "5m")
	return cmd
}

func printBackupJSON(w io.Writer, path string, info store.BackupInfo) error {
	b, err := json.MarshalIndent(struct {
		File string `json:"file"`
		store.BackupInfo
	}{path, info}, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func newSnapshotInspectCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Verify a backup offline and show its index, term, cluster and record counts",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return usageError{fmt.Errorf("-o %q: want table or json", output)}
			}
			info, err := store.InspectBackup(args[0], "")
			if err != nil {
				return err
			}
			if output == "json" {
				return printBackupJSON(cmd.OutOrStdout(), args[0], info)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "file        %s\nverified    checksums and database consistency OK\nindex       %d\nterm        %d\ncluster     %s\ntaken by    %s\ntaken at    %s\nstate size  %d bytes\n\n",
				args[0], info.Index, info.Term, info.ClusterID, info.NodeID, info.Time.Format(time.RFC3339), info.Size)
			names := make([]string, 0, len(info.Counts))
			for k := range info.Counts {
				names = append(names, k)
			}
			sort.Strings(names)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RECORDS\tCOUNT")
			for _, k := range names {
				fmt.Fprintf(tw, "%s\t%d\n", k, info.Counts[k])
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func newSnapshotRestoreCmd() *cobra.Command {
	var dataDir, nodeID, region, raftAddr string
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Make an empty data dir the first node of a NEW cluster holding a backup's state",
		Long: `Restore a backup into an empty data dir, offline: the backup is verified
first (checksums, the database's consistency check, its metadata against the
state), then the node's state file and a Raft snapshot of the backup are
written, with a configuration of this node alone as a voter and a NEW cluster
id. Start the node with "sessiond agent" on that data dir (no bootstrap
needed); other nodes join it as usual.

Restore never writes into a running cluster or a data dir that holds Raft
state or a cluster id: it is refused. To roll a running cluster back, stop
serving from it, restore into new data dirs and move clients to the new
cluster. The nodes of the new cluster need the KEK of the old one (signing
keys are sealed with it).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dataDir == "" || nodeID == "" || region == "" || raftAddr == "" {
				return usageError{errors.New("--data-dir, --node-id, --region and --raft-addr (the peer address the node will advertise) are required")}
			}
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				return err
			}
			statePath := filepath.Join(dataDir, "state.db")
			if _, err := os.Stat(statePath); err == nil {
				return fmt.Errorf("%s exists: restore only into an empty data dir (a new cluster)", statePath)
			}
			meta, err := store.UnpackBackup(args[0], statePath)
			if err != nil {
				return err
			}
			snap, err := store.OpenBackupSnapshot(args[0])
			if err != nil {
				_ = os.Remove(statePath)
				return err
			}
			defer snap.Close()
			id, err := cluster.SeedNewCluster(cluster.SeedConfig{DataDir: dataDir, NodeID: nodeID, Region: region, RaftAddr: raftAddr,
				Index: meta.Index, Term: meta.Term, Logger: newLogger(cmd.ErrOrStderr(), "warn", "text")}, snap)
			if err != nil {
				_ = os.Remove(statePath)
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %s (index %d, term %d, from cluster %s) into %s as node %s of NEW cluster %s\nstart it with: sessiond agent --data-dir %s --node-id %s --region %s --raft-addr %s (no bootstrap); join the other nodes to it\n",
				args[0], meta.Index, meta.Term, meta.ClusterID, dataDir, nodeID, id, dataDir, nodeID, region, raftAddr)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&dataDir, "data-dir", "", "the new node's data dir (empty or absent)")
	fs.StringVar(&nodeID, "node-id", "", "the new node's id")
	fs.StringVar(&region, "region", "", "the new node's region")
	fs.StringVar(&raftAddr, "raft-addr", "", "the peer address (host:port) the new node will advertise")
	return cmd
}
