package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/spf13/pflag"

	"github.com/sessiond/sessiond/cluster/pki"
)

// apiCredentials are how the CLI reaches a node's API as an operator: the
// cluster secret (from SESSIOND_CLUSTER_SECRET or --secret-file; never a
// command-line value in the docs) and the CA that signed the API's
// certificate.
type apiCredentials struct {
	secret     string
	secretFile string
	caFile     string
}

func (c *apiCredentials) bind(fs *pflag.FlagSet) {
	fs.StringVar(&c.secret, "secret", os.Getenv("SESSIOND_CLUSTER_SECRET"), "cluster secret (prefer SESSIOND_CLUSTER_SECRET or --secret-file: a flag's value is visible to other users of the machine)")
	_ = fs.MarkHidden("secret")
	fs.StringVar(&c.secretFile, "secret-file", os.Getenv("SESSIOND_CLUSTER_SECRET_FILE"), "file holding the cluster secret (or SESSIOND_CLUSTER_SECRET)")
	fs.StringVar(&c.caFile, "ca-file", os.Getenv("SESSIOND_CA_FILE"), "CA bundle (PEM) verifying the node's API certificate, for https:// addresses")
}

// clusterSecret returns the secret, reading --secret-file if given.
func (c *apiCredentials) clusterSecret() (string, error) {
	if c.secretFile != "" {
		s, err := readSecretFile(c.secretFile)
		if err != nil {
			return "", usageError{fmt.Errorf("--secret-file: %w", err)}
		}
		return s, nil
	}
	if c.secret == "" {
		return "", usageError{errors.New("the cluster secret is required: set SESSIOND_CLUSTER_SECRET or --secret-file")}
	}
	return c.secret, nil
}

// httpClient returns a client that trusts --ca-file for https addresses
// (the system roots without it).
func (c *apiCredentials) httpClient() (*http.Client, error) {
	if c.caFile == "" {
		return http.DefaultClient, nil
	}
	s, err := pki.NewStore(pki.Files{CAFile: c.caFile}, pki.StoreOptions{})
	if err != nil {
		return nil, usageError{fmt.Errorf("--ca-file: %w", err)}
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: s.Current().Pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: t}, nil
}
