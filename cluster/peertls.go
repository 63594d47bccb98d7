package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/cluster/pki"
)

// PeerTLS is the mutual-TLS setting of the peer address, used by every
// node-to-node channel (Raft, forwarded writes and reads, joins). Both ends
// present a certificate of the cluster CA naming a node
// (spiffe://<TrustDomain>/node/<id>) and verify the other's: the chain, the
// kind (node), the trust domain, and where the caller knows whom it dials
// (the leader, a server of the Raft configuration, a joining node) the id.
type PeerTLS struct {
	// Store holds this node's certificate (it must name this node), its
	// key, and the CA bundle peers are verified against. Reloading the
	// store takes effect for new connections.
	Store *pki.Store
	// TrustDomain is the SPIFFE trust domain of the cluster's identities;
	// empty means pki.DefaultTrustDomain.
	TrustDomain string
}

// ALPN protocol names on the peer address: one TLS listener, the protocol
// the client asks for picks the handler.
const (
	alpnRaft  = "sessiond-raft/1"
	alpnRPC   = "h2"
	alpnProbe = "sessiond-probe/1"
)

// ErrIdentity is wrapped when a peer's certificate does not name the node
// it must (another kind, another trust domain, another node id).
var ErrIdentity = errors.New("cluster: peer identity refused")

func (p *PeerTLS) domain() string {
	if p.TrustDomain == "" {
		return pki.DefaultTrustDomain
	}
	return p.TrustDomain
}

// NodeCertCheck returns a pki.StoreOptions.Check that accepts only material
// whose certificate names node nodeID in trustDomain (empty:
// pki.DefaultTrustDomain) and chains to the material's CA bundle: give it to
// the store of a node's peer certificate, so that a reload cannot swap in
// another identity.
func NodeCertCheck(trustDomain, nodeID string) func(pki.Material) error {
	p := &PeerTLS{TrustDomain: trustDomain}
	return func(m pki.Material) error {
		if m.Cert == nil || m.Cert.Leaf == nil {
			return errors.New("no certificate")
		}
		if m.Pool == nil {
			return errors.New("no CA bundle")
		}
		if err := checkNodeIdentity(m.Cert.Leaf, p.domain(), nodeID); err != nil {
			return err
		}
		chain := append([]*x509.Certificate{m.Cert.Leaf}, parseRest(m.Cert)...)
		if err := m.VerifyChain(chain, x509.ExtKeyUsageServerAuth, time.Now()); err != nil {
			return fmt.Errorf("the node certificate does not chain to the CA bundle: %w", err)
		}
		return nil
	}
}

func parseRest(c *tls.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	for _, der := range c.Certificate[min(1, len(c.Certificate)):] {
		if x, err := x509.ParseCertificate(der); err == nil {
			out = append(out, x)
		}
	}
	return out
}

// checkNodeIdentity checks that c names a node of domain, and node wantID
// when wantID is not empty. The error wraps ErrIdentity.
func checkNodeIdentity(c *x509.Certificate, domain, wantID string) error {
	id, err := pki.IdentityFromCert(c)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	switch {
	case id.TrustDomain != domain:
		return fmt.Errorf("%w: certificate names %s, of trust domain %q; want %q", ErrIdentity, id, id.TrustDomain, domain)
	case id.Kind != pki.KindNode:
		return fmt.Errorf("%w: certificate names %s, a %s, not a node", ErrIdentity, id, id.Kind)
	case wantID != "" && id.Name != wantID:
		return fmt.Errorf("%w: certificate names node %q, want node %q", ErrIdentity, id.Name, wantID)
	}
	return nil
}

// peerNodeID returns the node id a verified connection's certificate names.
func peerNodeID(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	id, err := pki.IdentityFromCert(cs.PeerCertificates[0])
	if err != nil {
		return ""
	}
	return id.Name
}

// serverConfig is the listener's TLS configuration: each handshake uses the
// store's current certificate and CA bundle, requires a client certificate
// that chains to it (the standard verification, whose errors name an
// expiry or an unknown authority) and names a node of the trust domain.
func (p *PeerTLS) serverConfig() *tls.Config {
	protos := []string{alpnRaft, alpnRPC, alpnProbe}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: protos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := p.Store.Current()
			return &tls.Config{
				MinVersion:   tls.VersionTLS13,
				NextProtos:   protos,
				Certificates: []tls.Certificate{*m.Cert},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    m.Pool,
				VerifyConnection: func(cs tls.ConnectionState) error {
					if len(cs.PeerCertificates) == 0 {
						return fmt.Errorf("%w: no client certificate", ErrIdentity)
					}
					return checkNodeIdentity(cs.PeerCertificates[0], p.domain(), "")
				},
			}, nil
		},
	}
}

// clientConfig is the dialer's TLS configuration for one connection: it
// offers this node's certificate, asks for protocol alpn, and accepts only
// a server certificate that chains to the CA bundle and names a node
// (wantID, when not empty). Host names are not checked: a peer is who its
// certificate's identity says, wherever it is reached.
func (p *PeerTLS) clientConfig(alpn, wantID string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{alpn},
		InsecureSkipVerify: true, // verified below, against the cluster CA, by identity
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return p.Store.Current().Cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.NegotiatedProtocol != alpn {
				return fmt.Errorf("cluster: peer did not agree to %s (it is not a sessiond peer port, or an older version)", alpn)
			}
			if err := p.Store.Current().VerifyChain(cs.PeerCertificates, x509.ExtKeyUsageServerAuth, time.Now()); err != nil {
				return fmt.Errorf("%w: %w", ErrIdentity, err)
			}
			return checkNodeIdentity(cs.PeerCertificates[0], p.domain(), wantID)
		},
	}
}
