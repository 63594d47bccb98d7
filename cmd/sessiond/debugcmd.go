package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
)

func newDebugCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "debug", Short: "Diagnostics for support"}
	cmd.AddCommand(newDebugBundleCmd())
	return cmd
}

// bundleItem is one file of a debug bundle and the route it comes from.
type bundleItem struct{ name, path string }

func newDebugBundleCmd() *cobra.Command {
	var f clusterClientFlags
	var seconds int
	cmd := &cobra.Command{
		Use:   "bundle [FILE]",
		Short: "Collect a node's status, metrics, profiles and redacted config into a tar.gz",
		Long: `Collect, from the node at --addr or --socket (operator credentials with the
admin scope for the profiles and the config), a tar.gz for
support, like "consul debug": the cluster status, /readyz, /metrics, a
goroutine dump, a heap profile, a CPU profile of --profile-seconds, and the
node's configuration with every secret redacted, plus manifest.json listing
what was collected and what failed. FILE defaults to
sessiond-debug-<time>.tar.gz; an existing file is not overwritten.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "sessiond-debug-" + time.Now().UTC().Format("20060102T150405Z") + ".tar.gz"
			if len(args) == 1 {
				path = args[0]
			}
			if seconds < 1 || seconds > maxProfileSeconds {
				return usageError{fmt.Errorf("--profile-seconds %d: want 1-%d", seconds, maxProfileSeconds)}
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			hc, base, _, err := f.creds.connection()
			if err != nil {
				return err
			}
			token, err := operatorToken(f.creds.tokenFile)
			if err != nil {
				return err
			}
			out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			ctx, cancel := contextTimeout(cmd, f.timeout+time.Duration(seconds)*time.Second)
			defer cancel()
			gz := gzip.NewWriter(out)
			tw := tar.NewWriter(gz)
			now := time.Now().UTC()
			add := func(name string, data []byte) error {
				if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), ModTime: now}); err != nil {
					return err
				}
				_, err := tw.Write(data)
				return err
			}
			manifest := map[string]any{"addr": base, "time": now, "version": version}
			failures := map[string]string{}
			if res, err := c.Status(ctx, connect.NewRequest(&clusterv1.StatusRequest{})); err != nil {
				failures["status.json"] = err.Error()
			} else if b, err := (protojson.MarshalOptions{Multiline: true, UseProtoNames: true}).Marshal(res.Msg); err == nil {
				if err := add("status.json", b); err != nil {
					return err
				}
			}
			for _, it := range []bundleItem{
				{"readyz.json", "/readyz"},
				{"metrics.txt", "/metrics"},
				{"config.json", "/debug/config"},
				{"goroutine.txt", "/debug/pprof/goroutine?debug=2"},
				{"heap.pprof", "/debug/pprof/heap"},
				{"cpu.pprof", fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds)},
			} {
				b, err := fetch(ctx, hc, base+it.path, token)
				if err != nil {
					failures[it.name] = err.Error()
					continue
				}
				if err := add(it.name, b); err != nil {
					return err
				}
			}
			manifest["failed"] = failures
			mb, _ := json.MarshalIndent(manifest, "", "  ")
			if err := errors.Join(add("manifest.json", mb), tw.Close(), gz.Close(), out.Sync(), out.Close()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%d items failed)\n", path, len(failures))
			for name, why := range failures {
				fmt.Fprintf(cmd.ErrOrStderr(), "  %s: %s\n", name, why)
			}
			return nil
		},
	}
	f.bind(cmd)
	cmd.Flags().IntVar(&seconds, "profile-seconds", 5, "length of the CPU profile")
	return cmd
}

// fetch GETs url (with the operator token, when there is one: a client
// certificate or the local socket authenticates otherwise) and returns
// the body of a 200 answer, at most 256 MiB.
func fetch(ctx context.Context, hc *http.Client, url, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK && !(strings.HasSuffix(url, "/readyz") && resp.StatusCode == http.StatusServiceUnavailable) {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, nil
}
