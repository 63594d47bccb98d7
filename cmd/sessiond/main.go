// Command sessiond is the multi-region replicated session store and auth
// daemon. `sessiond agent` runs a node, `sessiond dev` a demo cluster in one
// process; `sessiond cluster`, `sessiond user` and `sessiond migrate` operate
// a running cluster; `sessiond tls` makes the cluster CA and its
// certificates. Run `sessiond help` for the details.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd(os.Stdout, os.Stderr).ExecuteContext(ctx); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(os.Stderr, "sessiond:", err)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "sessiond:", err)
		os.Exit(1)
	}
}

// usageError marks an error in how the command was called (exit code 2).
type usageError struct{ error }

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "sessiond",
		Short:         "Multi-region replicated session store and auth daemon",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newAgentCmd(),
		newDevCmd(),
		newClusterCmd(),
		newUserCmd(),
		newOperatorCmd(),
		newMigrateCmd(),
		newHashSecretCmd(),
		newTLSCmd(),
		newBenchCmd(),
		newSnapshotCmd(),
		newRecoverCmd(),
		newDebugCmd(),
	)
	return root
}

// newLogger builds the process logger from the config's level and format.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
