// Package pki makes and reads the certificates of a sessiond cluster: one
// cluster CA, a certificate per node (server and client authentication, used
// on every node-to-node channel and, by default, on the client API), and
// client certificates for operators and services.
//
// Every certificate it issues names exactly one identity in a URI SAN,
// SPIFFE style:
//
//	spiffe://<trust-domain>/node/<node-id>
//	spiffe://<trust-domain>/operator/<name>
//	spiffe://<trust-domain>/service/<name>
//
// The trust domain defaults to "sessiond"; a deployment that runs several
// clusters under one CA gives each its own. A peer is who its certificate's
// identity says, never what it claims in a message: cluster compares the
// node id a Raft peer claims with IdentityFromCert of its certificate.
//
// Keys are ECDSA P-256: every TLS stack (Go, OpenSSL, curl, browsers,
// Envoy, nginx) accepts them.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// DefaultTrustDomain is the trust domain of identities when none is given.
const DefaultTrustDomain = "sessiond"

// Kind is what a certificate's holder is.
type Kind string

const (
	// KindNode is a cluster node: it may take part in Raft, forward writes
	// and reads, and join.
	KindNode Kind = "node"
	// KindOperator is a person or tool operating the cluster.
	KindOperator Kind = "operator"
	// KindService is a service that checks tokens and watches revocations.
	KindService Kind = "service"
)

// Identity is who a certificate names.
type Identity struct {
	// TrustDomain is the SPIFFE trust domain (the cluster's name).
	TrustDomain string
	// Kind is node, operator or service.
	Kind Kind
	// Name is the node id, or the operator's or service's name.
	Name string
}

var (
	// nameRE matches node ids and names: the node-id character set.
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	// domainRE matches trust domains (SPIFFE: lower-case letters, digits,
	// '.', '-', '_').
	domainRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)
)

// Validate reports what is wrong with id, if anything.
func (id Identity) Validate() error {
	if !domainRE.MatchString(id.TrustDomain) {
		return fmt.Errorf("pki: trust domain %q: use lower-case letters, digits, '.', '-' or '_'", id.TrustDomain)
	}
	switch id.Kind {
	case KindNode, KindOperator, KindService:
	default:
		return fmt.Errorf("pki: kind %q: want node, operator or service", id.Kind)
	}
	if !nameRE.MatchString(id.Name) {
		return fmt.Errorf("pki: %s name %q: use 1-64 letters, digits, '.', '_' or '-'", id.Kind, id.Name)
	}
	return nil
}

// URI returns the identity's URI SAN, spiffe://<domain>/<kind>/<name>.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: "spiffe", Host: id.TrustDomain, Path: "/" + string(id.Kind) + "/" + id.Name}
}

// String returns the URI form.
func (id Identity) String() string { return id.URI().String() }

// ErrNoIdentity is wrapped when a certificate names no sessiond identity
// (no spiffe URI SAN, or more than one).
var ErrNoIdentity = errors.New("pki: certificate names no sessiond identity")

// ParseIdentity parses spiffe://<domain>/<kind>/<name>.
func ParseIdentity(s string) (Identity, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "spiffe" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Port() != "" {
		return Identity{}, fmt.Errorf("%w: %q is not spiffe://<domain>/<kind>/<name>", ErrNoIdentity, s)
	}
	kind, name, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if !ok || !strings.HasPrefix(u.Path, "/") {
		return Identity{}, fmt.Errorf("%w: %q is not spiffe://<domain>/<kind>/<name>", ErrNoIdentity, s)
	}
	id := Identity{TrustDomain: u.Host, Kind: Kind(kind), Name: name}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("%w: %q: %w", ErrNoIdentity, s, err)
	}
	return id, nil
}

// IdentityFromCert returns the one identity a certificate names in its
// spiffe URI SANs; ErrNoIdentity if it names none or several.
func IdentityFromCert(c *x509.Certificate) (Identity, error) {
	var found []Identity
	for _, u := range c.URIs {
		if u.Scheme != "spiffe" {
			continue
		}
		id, err := ParseIdentity(u.String())
		if err != nil {
			return Identity{}, err
		}
		found = append(found, id)
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return Identity{}, fmt.Errorf("%w: %q has no spiffe URI SAN", ErrNoIdentity, c.Subject.CommonName)
	default:
		return Identity{}, fmt.Errorf("%w: %q has %d spiffe URI SANs, want one", ErrNoIdentity, c.Subject.CommonName, len(found))
	}
}

// CA is a cluster certificate authority.
type CA struct {
	// Cert is the CA certificate.
	Cert *x509.Certificate
	// Key signs the certificates the CA issues.
	Key crypto.Signer
}

// CAOptions configures NewCA.
type CAOptions struct {
	// CommonName of the CA; empty means "sessiond cluster CA".
	CommonName string
	// Validity is how long the CA is valid; zero means 5 years.
	Validity time.Duration
	// Now is the issue time; zero means time.Now().
	Now time.Time
}

// NewCA creates a self-signed CA with a fresh P-256 key.
func NewCA(opts CAOptions) (*CA, error) {
	if opts.CommonName == "" {
		opts.CommonName = "sessiond cluster CA"
	}
	if opts.Validity == 0 {
		opts.Validity = 5 * 365 * 24 * time.Hour
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: opts.CommonName, Organization: []string{"sessiond"}},
		NotBefore:             opts.Now.Add(-time.Minute),
		NotAfter:              opts.Now.Add(opts.Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// LeafOptions configures CA.Issue.
type LeafOptions struct {
	// Identity is who the certificate names. Required.
	Identity Identity
	// DNSNames and IPs are the host names and addresses the holder serves
	// at (node certificates; ignored for operators and services).
	DNSNames []string
	IPs      []net.IP
	// Validity is how long the certificate is valid; zero means 1 year.
	// It never outlives the CA.
	Validity time.Duration
	// Now is the issue time; zero means time.Now().
	Now time.Time
}

// Issue creates a certificate and a fresh P-256 key for opts.Identity. Node
// certificates may authenticate servers and clients; operator and service
// certificates only clients.
func (ca *CA) Issue(opts LeafOptions) (cert *x509.Certificate, key crypto.Signer, err error) {
	if err := opts.Identity.Validate(); err != nil {
		return nil, nil, err
	}
	if opts.Validity == 0 {
		opts.Validity = 365 * 24 * time.Hour
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	notAfter := opts.Now.Add(opts.Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{CommonName: string(opts.Identity.Kind) + "." + opts.Identity.Name, Organization: []string{"sessiond"}},
		NotBefore:      opts.Now.Add(-time.Minute),
		NotAfter:       notAfter,
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:           []*url.URL{opts.Identity.URI()},
		SubjectKeyId:   keyID(&k.PublicKey),
		AuthorityKeyId: ca.Cert.SubjectKeyId,
	}
	if opts.Identity.Kind == KindNode {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.DNSNames = append([]string(nil), opts.DNSNames...)
		tmpl.IPAddresses = append([]net.IP(nil), opts.IPs...)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &k.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue %s: %w", opts.Identity, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return c, k, nil
}

// EncodeCert returns the certificate in PEM.
func EncodeCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// EncodeKey returns the private key in PKCS #8 PEM.
func EncodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("pki: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WriteFiles writes a certificate (mode 0644) and its key (mode 0600) as
// PEM; it refuses to overwrite an existing file.
func WriteFiles(certPath, keyPath string, c *x509.Certificate, k crypto.Signer) error {
	keyPEM, err := EncodeKey(k)
	if err != nil {
		return err
	}
	if err := writeNew(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeNew(certPath, EncodeCert(c), 0o644); err != nil {
		_ = os.Remove(keyPath)
		return err
	}
	return nil
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	return nil
}

// LoadCA reads a CA certificate and its key from PEM files.
func LoadCA(certPath, keyPath string) (*CA, error) {
	certs, err := LoadCertificates(certPath)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 || !certs[0].IsCA {
		return nil, fmt.Errorf("pki: %s: want exactly one CA certificate", certPath)
	}
	raw, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("pki: %s: want a PKCS #8 \"PRIVATE KEY\" PEM block", keyPath)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", keyPath, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: %s: not a signing key", keyPath)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(certs[0].PublicKey) {
		return nil, fmt.Errorf("pki: %s does not hold the key of the CA in %s", keyPath, certPath)
	}
	return &CA{Cert: certs[0], Key: signer}, nil
}

// LoadCertificates reads every certificate of a PEM file (a CA bundle may
// hold the old and the new CA during a rotation).
func LoadCertificates(path string) ([]*x509.Certificate, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, raw = pem.Decode(raw)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: %s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("pki: %s holds no PEM certificate", path)
	}
	return out, nil
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial: %w", err)
	}
	return s, nil
}

func keyID(pub *ecdsa.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	return sum[:20]
}
