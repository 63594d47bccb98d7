package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/sessiond/sessiond/cluster/pki"
)

// pkiFiles is the TLS material of one run, made fresh with cluster/pki: a
// cluster CA, a node certificate per sessiond node (127.0.0.1, localhost),
// and an operator client certificate for the load generator.
type pkiFiles struct {
	dir           string
	caCert, caKey string
	nodeCert      []string
	nodeKey       []string
	opCert, opKey string
	ca            *x509.Certificate
	clientCert    tls.Certificate
}

// newPKI writes the run's CA and certificates under dir/pki.
func newPKI(dir string, nodes int) (*pkiFiles, error) {
	p := &pkiFiles{dir: filepath.Join(dir, "pki")}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := pki.NewCA(pki.CAOptions{CommonName: "benchbase run CA", Validity: 24 * time.Hour})
	if err != nil {
		return nil, err
	}
	p.ca = ca.Cert
	p.caCert, p.caKey = filepath.Join(p.dir, "ca.pem"), filepath.Join(p.dir, "ca-key.pem")
	if err := pki.WriteFiles(p.caCert, p.caKey, ca.Cert, ca.Key); err != nil {
		return nil, err
	}
	for i := range nodes {
		c, k, err := ca.Issue(pki.LeafOptions{
			Identity: pki.Identity{TrustDomain: pki.DefaultTrustDomain, Kind: pki.KindNode, Name: regions[i] + "-1"},
			DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		})
		if err != nil {
			return nil, err
		}
		cp, kp := filepath.Join(p.dir, fmt.Sprintf("node-%d.pem", i)), filepath.Join(p.dir, fmt.Sprintf("node-%d-key.pem", i))
		if err := pki.WriteFiles(cp, kp, c, k); err != nil {
			return nil, err
		}
		p.nodeCert, p.nodeKey = append(p.nodeCert, cp), append(p.nodeKey, kp)
	}
	c, k, err := ca.Issue(pki.LeafOptions{Identity: pki.Identity{TrustDomain: pki.DefaultTrustDomain, Kind: pki.KindOperator, Name: "benchbase"}})
	if err != nil {
		return nil, err
	}
	p.opCert, p.opKey = filepath.Join(p.dir, "operator.pem"), filepath.Join(p.dir, "operator-key.pem")
	if err := pki.WriteFiles(p.opCert, p.opKey, c, k); err != nil {
		return nil, err
	}
	if p.clientCert, err = tls.LoadX509KeyPair(p.opCert, p.opKey); err != nil {
		return nil, err
	}
	return p, nil
}

// tlsWiring is how one sessiond node and its clients use the run's TLS
// material.
type tlsWiring struct {
	// agentFlags are added to the node's `sessiond agent` command line.
	agentFlags []string
	// scheme is the node's API URL scheme.
	scheme string
	// benchFlags are added to `sessiond bench` command lines.
	benchFlags []string
}

// wiring returns the TLS wiring of sessiond node i: the agent's peer TLS
// (its node certificate, which its API also serves), and the CA and
// operator certificate the load generator uses.
func (p *pkiFiles) wiring(i int) tlsWiring {
	return tlsWiring{
		agentFlags: []string{"--tls-ca-file", p.caCert, "--tls-cert-file", p.nodeCert[i], "--tls-key-file", p.nodeKey[i]},
		scheme:     "https",
		benchFlags: []string{"--ca-file", p.caCert, "--cert", p.opCert, "--key", p.opKey},
	}
}

// httpClient is the driver's own client for readiness probes: it trusts
// the run's CA and presents the operator certificate.
func (p *pkiFiles) httpClient() *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(p.ca)
	t := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{p.clientCert}, MinVersion: tls.VersionTLS12}}
	return &http.Client{Timeout: 2 * time.Second, Transport: t}
}

// etcdFlags are etcd member i's TLS flags: node certificate i on the client
// and peer URLs, the run's CA verifying client certificates on both.
func (p *pkiFiles) etcdFlags(i int) []string {
	return []string{
		"--cert-file", p.nodeCert[i], "--key-file", p.nodeKey[i], "--trusted-ca-file", p.caCert, "--client-cert-auth",
		"--peer-cert-file", p.nodeCert[i], "--peer-key-file", p.nodeKey[i], "--peer-trusted-ca-file", p.caCert, "--peer-client-cert-auth",
	}
}

// clientTLS is the TLS configuration of a baseline's clients from PEM
// files (`benchbase load -ca-file -cert -key`, the flags of `sessiond
// bench`): nil when none is set.
func clientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("cert and key go together")
	}
	if caFile == "" && certFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("ca-file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca-file: %s holds no PEM certificate", caFile)
		}
	}
	if certFile != "" {
		kp, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("cert/key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return cfg, nil
}
