package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"

	"github.com/sessiond/sessiond/cluster"
)

// counterFSM counts applied commands: the least work a replicated state
// machine can do, so a cluster of it measures Raft itself.
type counterFSM struct {
	mu    sync.Mutex
	count uint64
}

func (f *counterFSM) Apply(*raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	return f.count
}

func (f *counterFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return counterSnapshot(f.count), nil
}

func (f *counterFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var n uint64
	if err := json.NewDecoder(rc).Decode(&n); err != nil {
		return fmt.Errorf("counter: restore: %w", err)
	}
	f.mu.Lock()
	f.count = n
	f.mu.Unlock()
	return nil
}

type counterSnapshot uint64

func (s counterSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(uint64(s)); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (counterSnapshot) Release() {}

// peer is one member of the counter cluster: id, Raft address, HTTP address.
type peer struct{ id, raft, http string }

// parsePeers parses "id=raftaddr=httpaddr,...".
func parsePeers(s string) ([]peer, error) {
	var out []peer
	for part := range strings.SplitSeq(s, ",") {
		f := strings.Split(part, "=")
		if len(f) != 3 || f[0] == "" || f[1] == "" || f[2] == "" {
			return nil, fmt.Errorf("peers: %q is not id=raft-addr=http-addr", part)
		}
		out = append(out, peer{f[0], f[1], f[2]})
	}
	return out, nil
}

// raftNodeMain runs one node of the bare Raft counter cluster: hashicorp/raft
// with sessiond's LAN timeouts, batching and log store (raft-wal), a
// counter FSM, and an HTTP front. POST /inc applies one increment (a
// follower forwards it to the leader over pooled keep-alive HTTP, as
// sessiond forwards writes); GET /status tells the leader.
func raftNodeMain(args []string) error {
	fs := flag.NewFlagSet("raft-node", flag.ContinueOnError)
	id := fs.String("id", "", "this node's id (one of --peers)")
	dir := fs.String("data-dir", "", "data directory")
	peersFlag := fs.String("peers", "", "every member as id=raft-addr=http-addr, comma-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	peers, err := parsePeers(*peersFlag)
	if err != nil {
		return err
	}
	var me *peer
	for i := range peers {
		if peers[i].id == *id {
			me = &peers[i]
		}
	}
	if me == nil || *dir == "" {
		return errors.New("raft-node: --id must be one of --peers, and --data-dir is required")
	}
	r, trans, err := openCounterRaft(*me, peers, *dir)
	if err != nil {
		return err
	}
	defer trans.Close()
	httpOf := map[raft.ServerID]string{}
	for _, p := range peers {
		httpOf[raft.ServerID(p.id)] = p.http
	}
	mux := counterFront(r, me.id, httpOf)
	ln, err := net.Listen("tcp", me.http)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { _ = srv.Serve(ln) }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return r.Shutdown().Error()
}

// counterFront is a counter node's HTTP API: POST /inc applies one
// increment on the leader (a follower forwards it over pooled keep-alive
// HTTP to the leader's front, whose address httpOf gives), GET /status
// names the leader.
func counterFront(r *raft.Raft, id string, httpOf map[raft.ServerID]string) *http.ServeMux {
	fwd := &http.Client{Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /inc", func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, 1024))
		if r.State() == raft.Leader {
			f := r.Apply([]byte("inc"), 10*time.Second)
			if err := f.Error(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, f.Response())
			return
		}
		_, leader := r.LeaderWithID()
		target, ok := httpOf[leader]
		if !ok {
			http.Error(w, "no leader", http.StatusServiceUnavailable)
			return
		}
		fr, err := http.NewRequestWithContext(req.Context(), http.MethodPost, "http://"+target+"/inc", nil)
		if err == nil {
			var resp *http.Response
			if resp, err = fwd.Do(fr); err == nil {
				defer resp.Body.Close()
				w.WriteHeader(resp.StatusCode)
				_, _ = io.Copy(w, resp.Body)
				return
			}
		}
		http.Error(w, "forward to the leader: "+err.Error(), http.StatusBadGateway)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		_, leader := r.LeaderWithID()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"id": id, "leader": string(leader), "state": r.State().String()})
	})
	return mux
}

// openCounterRaft starts Raft as sessiond's cluster package configures it:
// the same timeouts (cluster.LANTimeouts), BatchApplyCh with 512-entry
// appends, raft-wal behind a 512-entry log cache, TCP transport pool of 3.
// Unlike sessiond it runs plain TCP and keeps Raft's default pipelined
// replication (turning it off costs the counter 10-25%, not its lead over
// sessiond: docs/benchmarks.md).
// Every node bootstraps the same three-voter configuration.
func openCounterRaft(me peer, peers []peer, dir string) (*raft.Raft, *raft.NetworkTransport, error) {
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: os.Stderr})
	trans, err := raft.NewTCPTransportWithLogger(me.raft, nil, 3, 10*time.Second, hlog)
	if err != nil {
		return nil, nil, err
	}
	walDir := filepath.Join(dir, "wal")
	if err := os.MkdirAll(walDir, 0o700); err != nil {
		return nil, nil, err
	}
	store, err := wal.Open(walDir)
	if err != nil {
		return nil, nil, err
	}
	logs, err := raft.NewLogCache(512, store)
	if err != nil {
		return nil, nil, err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hlog)
	if err != nil {
		return nil, nil, err
	}
	t := cluster.LANTimeouts()
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(me.id)
	rc.HeartbeatTimeout, rc.ElectionTimeout = t.HeartbeatTimeout, t.ElectionTimeout
	rc.LeaderLeaseTimeout, rc.CommitTimeout = t.LeaderLeaseTimeout, t.CommitTimeout
	rc.SnapshotThreshold, rc.TrailingLogs = cluster.DefaultSnapshotThreshold, cluster.DefaultTrailingLogs
	rc.BatchApplyCh, rc.MaxAppendEntries = true, 512
	rc.Logger = hlog
	r, err := raft.NewRaft(rc, &counterFSM{}, logs, store, snaps, trans)
	if err != nil {
		return nil, nil, err
	}
	var servers []raft.Server
	for _, p := range peers {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.id), Address: raft.ServerAddress(p.raft)})
	}
	if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return nil, nil, err
	}
	log.Printf("raft-node %s: raft %s, http %s", me.id, me.raft, me.http)
	return r, trans, nil
}
