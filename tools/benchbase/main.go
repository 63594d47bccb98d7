// Command benchbase runs the baselines that `make bench-cluster` compares
// sessiond with, and the driver that runs them all in one invocation. It
// is a separate Go module so that etcd's and Redis's clients never become
// dependencies of the product.
//
//	benchbase cluster [flags]     start 3 sessiond agents, 3 bare-Raft counter
//	                              nodes and 3 etcd members (twice: plaintext
//	                              and TLS) on loopback, run
//	                              the scenarios interleaved with the anchors,
//	                              print one table and write the raw results
//	benchbase load SCENARIO ...   one baseline with sessiond's load generator:
//	                              raft-counter, etcd-put, etcd-get, redis-get,
//	                              redis-setex, argon2
//	benchbase raft-node ...       one node of the bare-Raft counter cluster
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/internal/bench"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchbase cluster|load|raft-node [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "cluster":
		err = clusterMain(os.Args[2:])
	case "load":
		err = loadMain(os.Args[2:], os.Stdout)
	case "raft-node":
		err = raftNodeMain(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want cluster, load or raft-node", os.Args[1])
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "benchbase:", err)
		os.Exit(1)
	}
}

// loadMain runs one baseline scenario and prints its summary, with the
// same flags as `sessiond bench` where they apply.
func loadMain(args []string, stdout *os.File) error {
	if len(args) < 1 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("load: name a scenario: %s", strings.Join(baselines, ", "))
	}
	name := args[0]
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	targets := fs.String("targets", "", "comma-separated targets: http://host:port (raft-counter, etcd), https://host:port (etcd with -ca-file, -cert, -key) or host:port (redis)")
	clients := fs.Int("clients", 64, "concurrent clients")
	connsF := fs.Int("conns", 0, "connections the clients share (0: one per client)")
	duration := fs.Duration("duration", 0, "how long to run (default 10s unless -total)")
	total := fs.Int64("total", 0, "run this many operations")
	rate := fs.Float64("rate", 0, "open loop at this total rate per second")
	consistency := fs.String("consistency", "linearizable", "etcd-get: linearizable or serializable")
	valueSize := fs.Int("value-size", 64, "bytes of each value written")
	caFile := fs.String("ca-file", "", "etcd over https://: CA bundle (PEM) that signed the members' certificates")
	cert := fs.String("cert", "", "etcd over https://: client certificate (PEM), with -key, for members with --client-cert-auth")
	key := fs.String("key", "", "private key of -cert (PEM)")
	output := fs.String("o", "text", "text or json")
	quiet := fs.Bool("q", false, "no progress lines")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *duration == 0 && *total == 0 {
		*duration = 10 * time.Second
	}
	c := bench.Conn{Conns: *connsF, HTTP: "1.1", CACert: *caFile, Cert: *cert, Key: *key}
	if *targets != "" {
		c.Targets = strings.Split(*targets, ",")
	}
	if name == "argon2" && len(c.Targets) == 0 {
		c.Targets = []string{"http://in-process"}
	}
	if len(c.Targets) == 0 {
		return errors.New("load: -targets is required")
	}
	sc, err := newBaseline(name, c, *consistency, *valueSize)
	if err != nil {
		return err
	}
	defer sc.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := bench.Options{Clients: *clients, Duration: *duration, Total: *total, Rate: *rate}
	if !*quiet {
		opts.Progress = os.Stderr
	}
	sum, err := bench.Run(ctx, name, sc, opts)
	if err != nil {
		return err
	}
	sum.Params = map[string]string{"targets": strings.Join(c.Targets, ",")}
	if name == "etcd-get" {
		sum.Params["consistency"] = *consistency
	}
	if *output == "json" {
		return sum.WriteJSON(stdout)
	}
	return sum.WriteText(stdout)
}
