package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/crypto/argon2"

	"github.com/sessiond/sessiond/authsvc/password"
	"github.com/sessiond/sessiond/internal/bench"
)

// baselines are the scenarios of the `load` command: other systems driven
// by the same runner as `sessiond bench`.
var baselines = []string{"raft-counter", "etcd-put", "etcd-get", "redis-get", "redis-setex", "argon2"}

// newBaseline returns the named baseline scenario. consistency applies to
// etcd-get (linearizable or serializable); valueSize to the writes.
func newBaseline(name string, c bench.Conn, consistency string, valueSize int) (bench.Scenario, error) {
	switch name {
	case "raft-counter":
		return &raftCounter{conn: c}, nil
	case "etcd-put", "etcd-get":
		if consistency != "linearizable" && consistency != "serializable" {
			return nil, fmt.Errorf("etcd: consistency: want linearizable or serializable, got %q", consistency)
		}
		tc, err := clientTLS(c.CACert, c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("etcd: %w", err)
		}
		return &etcdKV{conn: c, tls: tc, put: name == "etcd-put", serializable: consistency == "serializable", value: randomValue(valueSize)}, nil
	case "redis-get", "redis-setex":
		return &redisKV{conn: c, setex: name == "redis-setex", value: randomValue(valueSize)}, nil
	case "argon2":
		return &argon2Hash{}, nil
	}
	return nil, fmt.Errorf("unknown baseline %q (want one of %s)", name, strings.Join(baselines, ", "))
}

func randomValue(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = 'a' + b[i]%26
	}
	return string(b)
}

// raftCounter POSTs /inc to the counter nodes' HTTP fronts.
type raftCounter struct {
	conn    bench.Conn
	clients []*http.Client
	targets []string
}

func (s *raftCounter) Prepare(_ context.Context, n int) (err error) {
	s.clients, s.targets, err = bench.HTTPClients(s.conn, n)
	return err
}

func (s *raftCounter) Op(i int) bench.Op {
	hc, u := s.clients[i], s.targets[i]+"/inc"
	return func(ctx context.Context) (bench.Outcome, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
		if err != nil {
			return bench.Outcome{}, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return bench.Outcome{}, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return bench.Outcome{}, bench.Failf("http_"+strconv.Itoa(resp.StatusCode), "POST %s: %s", u, resp.Status)
		}
		return bench.Outcome{}, nil
	}
}

func (s *raftCounter) Close() error {
	for _, c := range s.clients {
		c.CloseIdleConnections()
	}
	return nil
}

// conns is how many connections (clients of the other system's library)
// n load clients share: Conns, or one per client.
func conns(c bench.Conn, n int) int {
	if c.Conns == 0 || c.Conns > n {
		return n
	}
	return c.Conns
}

// etcdKV puts or gets keys through etcd's Go client, one key per client
// (written in Prepare for gets), spread over the targets as sessiond's
// clients are; over https:// targets with tls (the CA, and the client
// certificate a member with --client-cert-auth asks for).
type etcdKV struct {
	conn         bench.Conn
	tls          *tls.Config
	put          bool
	serializable bool
	value        string
	clients      []*clientv3.Client
	n            int
}

func (s *etcdKV) Prepare(ctx context.Context, n int) error {
	s.n = n
	k := conns(s.conn, n)
	for i := range k {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{s.conn.Targets[i%len(s.conn.Targets)]}, DialTimeout: 5 * 1e9, TLS: s.tls})
		if err != nil {
			return fmt.Errorf("etcd client: %w", err)
		}
		s.clients = append(s.clients, c)
	}
	for i := range n {
		if _, err := s.clients[0].Put(ctx, key(i), s.value); err != nil {
			return fmt.Errorf("etcd put %s: %w", key(i), err)
		}
	}
	return nil
}

func key(i int) string { return "bench/" + strconv.Itoa(i) }

func (s *etcdKV) Op(i int) bench.Op {
	c, k := s.clients[i%len(s.clients)], key(i)
	if s.put {
		return func(ctx context.Context) (bench.Outcome, error) {
			_, err := c.Put(ctx, k, s.value)
			return bench.Outcome{}, err
		}
	}
	var opts []clientv3.OpOption
	if s.serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	return func(ctx context.Context) (bench.Outcome, error) {
		resp, err := c.Get(ctx, k, opts...)
		if err == nil && len(resp.Kvs) != 1 {
			err = bench.Failf("missing", "etcd get %s: %d keys", k, len(resp.Kvs))
		}
		return bench.Outcome{}, err
	}
}

func (s *etcdKV) Close() error {
	for _, c := range s.clients {
		_ = c.Close()
	}
	return nil
}

// redisKV runs GET or SETEX (600 s) on one key per client; the targets are
// redis://host:port or host:port.
type redisKV struct {
	conn    bench.Conn
	setex   bool
	value   string
	clients []*redis.Client
}

func (s *redisKV) Prepare(ctx context.Context, n int) error {
	k := conns(s.conn, n)
	for i := range k {
		addr := strings.TrimPrefix(s.conn.Targets[i%len(s.conn.Targets)], "redis://")
		s.clients = append(s.clients, redis.NewClient(&redis.Options{Addr: addr, PoolSize: max(n/k, 1), MinIdleConns: 1}))
	}
	for i := range n {
		if err := s.clients[0].Set(ctx, key(i), s.value, 0).Err(); err != nil {
			return fmt.Errorf("redis set: %w", err)
		}
	}
	return nil
}

func (s *redisKV) Op(i int) bench.Op {
	c, k := s.clients[i%len(s.clients)], key(i)
	if s.setex {
		return func(ctx context.Context) (bench.Outcome, error) {
			return bench.Outcome{}, c.SetEx(ctx, k, s.value, 600*1e9).Err()
		}
	}
	return func(ctx context.Context) (bench.Outcome, error) {
		return bench.Outcome{}, c.Get(ctx, k).Err()
	}
}

func (s *redisKV) Close() error {
	for _, c := range s.clients {
		_ = c.Close()
	}
	return nil
}

// argon2Hash hashes a password with sessiond's default argon2id parameters
// in this process: the bare cost a login pays.
type argon2Hash struct{ p password.Params }

func (s *argon2Hash) Prepare(context.Context, int) error {
	s.p = password.DefaultParams()
	return nil
}

func (s *argon2Hash) Op(int) bench.Op {
	salt := make([]byte, 16)
	return func(context.Context) (bench.Outcome, error) {
		_, _ = rand.Read(salt)
		argon2.IDKey([]byte("correct horse battery staple"), salt, s.p.Time, s.p.Memory, s.p.Threads, s.p.KeyLen)
		return bench.Outcome{}, nil
	}
}

func (s *argon2Hash) Close() error { return nil }
