package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/pflag"

	"github.com/sessiond/sessiond/api/clusterrpc"
	"github.com/sessiond/sessiond/cluster/pki"
)

// apiCredentials are the flags every operator command (cluster, user,
// operator) reaches a node's API with: the node (--addr, or its local
// operator socket --socket) and one credential: an operator token
// (SESSIOND_TOKEN or --token-file; never a command-line value), an
// operator client certificate (--cert/--key), or the socket itself.
// --ca-file verifies the certificate of an https node.
type apiCredentials struct {
	addr      string
	socket    string
	tokenFile string
	cert, key string
	caFile    string
}

// defaultAPIAddr is --addr's default for the cluster and operator commands.
const defaultAPIAddr = "https://127.0.0.1:8080"

// bind registers the flags; defaultAddr is --addr's default when neither
// it nor SESSIOND_ADDR is set ("" for no default).
func (c *apiCredentials) bind(fs *pflag.FlagSet, defaultAddr string) {
	fs.StringVar(&c.addr, "addr", firstNonEmpty(os.Getenv("SESSIOND_ADDR"), defaultAddr), "API URL of any node (or SESSIOND_ADDR)")
	fs.StringVar(&c.socket, "socket", os.Getenv("SESSIOND_SOCKET"), "the node's local operator socket (<data-dir>/operator.sock; or SESSIOND_SOCKET): acts as operator \"local\" and replaces --addr")
	fs.StringVar(&c.tokenFile, "token-file", os.Getenv("SESSIOND_TOKEN_FILE"), "file holding an operator token (or the token itself in SESSIOND_TOKEN)")
	fs.StringVar(&c.cert, "cert", os.Getenv("SESSIOND_CERT_FILE"), "operator client certificate (PEM; or SESSIOND_CERT_FILE), with --key")
	fs.StringVar(&c.key, "key", os.Getenv("SESSIOND_KEY_FILE"), "private key of --cert (PEM; or SESSIOND_KEY_FILE)")
	fs.StringVar(&c.caFile, "ca-file", os.Getenv("SESSIOND_CA_FILE"), "CA bundle (PEM; or SESSIOND_CA_FILE) verifying the node's API certificate, for https:// addresses")
}

// target reports whether a node was named (--addr or --socket).
func (c *apiCredentials) target() bool { return c.addr != "" || c.socket != "" }

// connection returns the HTTP client, base URL and Connect client options
// of the chosen node and credential.
func (c *apiCredentials) connection() (*http.Client, string, []connect.ClientOption, error) {
	if c.socket != "" {
		t := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", c.socket)
		}}
		return &http.Client{Transport: t}, "http://sessiond.sock", nil, nil
	}
	if c.addr == "" {
		return nil, "", nil, usageError{errors.New("no node: give --addr URL (or SESSIOND_ADDR), or --socket on a node")}
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.caFile != "" {
		s, err := pki.NewStore(pki.Files{CAFile: c.caFile}, pki.StoreOptions{})
		if err != nil {
			return nil, "", nil, usageError{fmt.Errorf("--ca-file: %w", err)}
		}
		tlsCfg.RootCAs = s.Current().Pool
	}
	if (c.cert == "") != (c.key == "") {
		return nil, "", nil, usageError{errors.New("--cert and --key go together")}
	}
	if c.cert != "" {
		pair, err := tls.LoadX509KeyPair(c.cert, c.key)
		if err != nil {
			return nil, "", nil, usageError{fmt.Errorf("--cert/--key: %w", err)}
		}
		tlsCfg.Certificates = []tls.Certificate{pair}
	}
	tok, err := operatorToken(c.tokenFile)
	if err != nil {
		return nil, "", nil, err
	}
	if tok == "" && c.cert == "" {
		return nil, "", nil, usageError{errors.New("no operator credential: set SESSIOND_TOKEN or --token-file, give --cert/--key, or use --socket on a node")}
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true, Proxy: http.ProxyFromEnvironment}}
	return hc, strings.TrimRight(c.addr, "/"), []connect.ClientOption{clusterrpc.WithBearer(tok)}, nil
}

// operatorToken reads the operator token of the CLIs: file (--token-file)
// if given, else SESSIOND_TOKEN; "" when neither is set.
func operatorToken(file string) (string, error) {
	if file != "" {
		s, err := readSecretFile(file)
		if err != nil {
			return "", usageError{fmt.Errorf("--token-file: %w", err)}
		}
		return s, nil
	}
	return strings.TrimSpace(os.Getenv("SESSIOND_TOKEN")), nil
}
