package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/cluster/pki"
)

func newTLSCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tls", Short: "Create the cluster CA and its certificates (as consul tls does)",
		Long: `Create the cluster CA, node certificates (for the peer port and, by default,
the client API) and client certificates for operators and services. Every
certificate names one identity, spiffe://<trust-domain>/<node|operator|service>/<name>.
Files are PEM; keys are written mode 0600 and never overwritten.`}
	ca := &cobra.Command{Use: "ca", Short: "Manage the cluster CA"}
	ca.AddCommand(newTLSCACreateCmd())
	cert := &cobra.Command{Use: "cert", Short: "Issue certificates"}
	cert.AddCommand(newTLSCertCreateCmd())
	cmd.AddCommand(ca, cert)
	return cmd
}

func newTLSCACreateCmd() *cobra.Command {
	var dir, name string
	var days int
	cmd := &cobra.Command{
		Use: "create", Short: "Create a CA: ca.pem and ca-key.pem (refuses to overwrite)", Args: cobra.NoArgs,
		Example: "  sessiond tls ca create --dir /etc/sessiond/tls",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if days < 1 {
				return usageError{fmt.Errorf("--days %d: want at least 1", days)}
			}
			ca, err := pki.NewCA(pki.CAOptions{CommonName: name, Validity: time.Duration(days) * 24 * time.Hour})
			if err != nil {
				return err
			}
			certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
			if err := refuseOverwrite(certPath, keyPath); err != nil {
				return err
			}
			if err := pki.WriteFiles(certPath, keyPath, ca.Cert, ca.Key); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (give it to every node and client) and %s (keep it offline; mode 0600), valid until %s\n",
				certPath, keyPath, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".", "directory to write ca.pem and ca-key.pem to")
	cmd.Flags().StringVar(&name, "common-name", "sessiond cluster CA", "the CA's common name")
	cmd.Flags().IntVar(&days, "days", 5*365, "validity in days")
	return cmd
}

func newTLSCertCreateCmd() *cobra.Command {
	var (
		dir, caFile, caKey, domain, nodeID, name, kind string
		ips, dns                                       []string
		days                                           int
		client                                         bool
	)
	cmd := &cobra.Command{
		Use: "create", Short: "Issue a node certificate (--node-id) or a client certificate (--client)", Args: cobra.NoArgs,
		Example: `  sessiond tls cert create --node-id hk-1 --ip 10.0.1.10 --dns hk-1.internal
  sessiond tls cert create --client --kind operator --name alice`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id := pki.Identity{TrustDomain: domain}
			var opts pki.LeafOptions
			switch {
			case client && nodeID != "":
				return usageError{errors.New("--client with --node-id: a client certificate names an operator or service (--kind, --name)")}
			case client:
				id.Kind, id.Name = pki.Kind(kind), name
				if id.Kind != pki.KindOperator && id.Kind != pki.KindService {
					return usageError{fmt.Errorf("--kind %q: want operator or service", kind)}
				}
				if len(ips) > 0 || len(dns) > 0 {
					return usageError{errors.New("--ip and --dns are for node certificates")}
				}
			default:
				if nodeID == "" {
					return usageError{errors.New("give --node-id ID (a node) or --client --kind operator|service --name N")}
				}
				id.Kind, id.Name = pki.KindNode, nodeID
				for _, s := range ips {
					ip := net.ParseIP(s)
					if ip == nil {
						return usageError{fmt.Errorf("--ip %q: not an IP address", s)}
					}
					opts.IPs = append(opts.IPs, ip)
				}
				opts.DNSNames = dns
			}
			if err := id.Validate(); err != nil {
				return usageError{err}
			}
			if days < 1 {
				return usageError{fmt.Errorf("--days %d: want at least 1", days)}
			}
			ca, err := pki.LoadCA(caFile, caKey)
			if err != nil {
				return err
			}
			opts.Identity, opts.Validity = id, time.Duration(days)*24*time.Hour
			c, k, err := ca.Issue(opts)
			if err != nil {
				return err
			}
			base := filepath.Join(dir, string(id.Kind)+"-"+id.Name)
			if err := refuseOverwrite(base+".pem", base+"-key.pem"); err != nil {
				return err
			}
			if err := pki.WriteFiles(base+".pem", base+"-key.pem", c, k); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s and %s (mode 0600) for %s, valid until %s\n",
				base+".pem", base+"-key.pem", id, c.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", ".", "directory to write the certificate and key to")
	f.StringVar(&caFile, "ca", "ca.pem", "CA certificate")
	f.StringVar(&caKey, "ca-key", "ca-key.pem", "CA private key")
	f.StringVar(&domain, "trust-domain", pki.DefaultTrustDomain, "SPIFFE trust domain (the cluster's tls.trust_domain)")
	f.StringVar(&nodeID, "node-id", "", "issue a node certificate for this node id")
	f.StringSliceVar(&ips, "ip", nil, "IP addresses the node serves at (repeatable)")
	f.StringSliceVar(&dns, "dns", nil, "host names the node serves at (repeatable)")
	f.IntVar(&days, "days", 365, "validity in days (never beyond the CA's)")
	f.BoolVar(&client, "client", false, "issue a client certificate (operator or service)")
	f.StringVar(&kind, "kind", "operator", "with --client: operator or service")
	f.StringVar(&name, "name", "", "with --client: the operator's or service's name")
	return cmd
}

// refuseOverwrite fails when any of paths exists.
func refuseOverwrite(paths ...string) error {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s exists: refusing to overwrite it (move it away first)", p)
		}
	}
	return nil
}
