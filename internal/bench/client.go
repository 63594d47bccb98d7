package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/sessiond/sessiond/clients/go/coalesce"
)

// Conn says how the load generator talks to the nodes.
type Conn struct {
	// Targets are the nodes' API base URLs (http:// or https://); client i
	// talks to Targets[i mod len(Targets)].
	Targets []string
	// Conns is how many HTTP clients the load clients share: client i uses
	// HTTP client i mod Conns, which holds at most one connection per
	// target. 0 gives every load client its own.
	Conns int
	// HTTP is "1.1" (keep-alive, one request in flight per connection) or
	// "2" (multiplexed; over plain http:// it is h2c with prior knowledge,
	// which the server must accept).
	HTTP string
	// Protocol is "connect" (default) or "grpc" (needs HTTP "2"); Codec is
	// "proto" (default) or "json".
	Protocol string
	Codec    string
	// CACert, Cert and Key are PEM files: the CA that signed the nodes'
	// certificates, and a client certificate and key for mutual TLS.
	CACert, Cert, Key string
	// OperatorToken authenticates operator calls (user admin, preload) as
	// a Bearer token: an operator token (sessiond operator token create).
	OperatorToken string
	// ClientID and ClientSecret are a service client's credentials (HTTP
	// Basic) for SessionService calls; without them those calls carry the
	// operator token.
	ClientID, ClientSecret string
}

// Validate checks c.
func (c Conn) Validate() error {
	if len(c.Targets) == 0 {
		return errors.New("targets: at least one node URL is required")
	}
	for _, t := range c.Targets {
		u, err := url.Parse(t)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("targets: %q is not an http:// or https:// URL", t)
		}
	}
	switch {
	case c.Conns < 0:
		return errors.New("conns: must not be negative")
	case c.HTTP != "" && c.HTTP != "1.1" && c.HTTP != "2":
		return fmt.Errorf("http: want 1.1 or 2, got %q", c.HTTP)
	case c.Protocol != "" && c.Protocol != "connect" && c.Protocol != "grpc":
		return fmt.Errorf("protocol: want connect or grpc, got %q", c.Protocol)
	case c.Protocol == "grpc" && c.HTTP != "2":
		return errors.New("protocol grpc needs --http 2")
	case c.Codec != "" && c.Codec != "proto" && c.Codec != "json":
		return fmt.Errorf("codec: want proto or json, got %q", c.Codec)
	case (c.Cert == "") != (c.Key == ""):
		return errors.New("cert and key go together")
	case (c.ClientID == "") != (c.ClientSecret == ""):
		return errors.New("client id and client secret go together")
	}
	return nil
}

// tlsConfig builds the client TLS configuration, nil when no TLS option is
// set (the system roots then verify https:// targets).
func (c Conn) tlsConfig() (*tls.Config, error) {
	if c.CACert == "" && c.Cert == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CACert != "" {
		pem, err := os.ReadFile(c.CACert)
		if err != nil {
			return nil, fmt.Errorf("ca-file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca-file: %s holds no PEM certificate", c.CACert)
		}
	}
	if c.Cert != "" {
		kp, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("cert/key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return cfg, nil
}

// HTTPClient returns one HTTP client built as c says: keep-alive, at most
// perHost connections per target (0: no limit), the chosen HTTP version.
func (c Conn) HTTPClient(perHost int) (*http.Client, error) {
	tc, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: max(perHost, 1024),
		MaxConnsPerHost:     perHost,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		Protocols:           new(http.Protocols),
	}
	if c.HTTP == "2" {
		t.Protocols.SetHTTP2(true)
		t.Protocols.SetUnencryptedHTTP2(true)
	} else {
		t.Protocols.SetHTTP1(true)
	}
	// A Connect unary call's headers and message in one write, as the
	// SDK's users send them (package coalesce).
	return &http.Client{Transport: coalesce.Transport(t)}, nil
}

// pool is the HTTP clients the load clients share.
type pool struct {
	conn    Conn
	clients []*http.Client
	opts    []connect.ClientOption
}

// newPool builds the shared HTTP clients for n load clients.
func newPool(c Conn, n int) (*pool, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	k := c.Conns
	if k == 0 || k > n {
		k = n
	}
	p := &pool{conn: c}
	for range k {
		hc, err := c.HTTPClient(1)
		if err != nil {
			return nil, err
		}
		p.clients = append(p.clients, hc)
	}
	if c.Protocol == "grpc" {
		p.opts = append(p.opts, connect.WithGRPC())
	}
	if c.Codec == "json" {
		p.opts = append(p.opts, connect.WithProtoJSON())
	}
	return p, nil
}

// http returns load client i's HTTP client and target.
func (p *pool) http(i int) (*http.Client, string) {
	return p.clients[i%len(p.clients)], strings.TrimRight(p.conn.Targets[i%len(p.conn.Targets)], "/")
}

// close drops the idle connections.
func (p *pool) close() {
	for _, c := range p.clients {
		c.CloseIdleConnections()
	}
}

// operator returns the client options of an operator call.
func (p *pool) operator() []connect.ClientOption {
	return p.with(bearer(p.conn.OperatorToken))
}

// service returns the client options of a SessionService call: the
// service client's Basic credentials, else the operator token.
func (p *pool) service() []connect.ClientOption {
	if p.conn.ClientID != "" {
		raw := p.conn.ClientID + ":" + p.conn.ClientSecret
		return p.with("Basic " + base64.StdEncoding.EncodeToString([]byte(raw)))
	}
	return p.with(bearer(p.conn.OperatorToken))
}

// anonymous returns the client options of a call that carries no
// credentials (login, refresh).
func (p *pool) anonymous() []connect.ClientOption { return p.opts }

func (p *pool) with(authorization string) []connect.ClientOption {
	if authorization == "" {
		return p.opts
	}
	return append(append([]connect.ClientOption{}, p.opts...), connect.WithInterceptors(authHeader(authorization)))
}

func bearer(tok string) string {
	if tok == "" {
		return ""
	}
	return "Bearer " + tok
}

// authHeader sets the Authorization header of every call, unary or
// streaming.
type authHeader string

func (a authHeader) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", string(a))
		return next(ctx, req)
	}
}

func (a authHeader) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", string(a))
		return conn
	}
}

func (a authHeader) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// HTTPClients returns the HTTP clients of n load clients as c says (client
// i shares HTTP client i mod Conns) and each client's target, for adapters
// of other systems that speak HTTP.
func HTTPClients(c Conn, n int) ([]*http.Client, []string, error) {
	p, err := newPool(c, n)
	if err != nil {
		return nil, nil, err
	}
	hcs, ts := make([]*http.Client, n), make([]string, n)
	for i := range n {
		hcs[i], ts[i] = p.http(i)
	}
	return hcs, ts, nil
}
