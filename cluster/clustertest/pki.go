package clustertest

import (
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/pki"
)

// PKI is a throwaway cluster CA whose files live in a test's temporary
// directory.
type PKI struct {
	// CA signs the certificates.
	CA *pki.CA
	// Dir holds ca.pem and the certificates issued.
	Dir string
	// TrustDomain is the identities' trust domain.
	TrustDomain string

	mu    sync.Mutex
	nodes map[string]pki.Files
}

// NewPKI creates a CA (trust domain pki.DefaultTrustDomain) and writes its
// certificate to Dir/ca.pem.
func NewPKI(tb testing.TB) *PKI {
	tb.Helper()
	p, err := NewPKIIn(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// NewPKIIn is NewPKI in a directory the caller owns (for a CA shared by
// the tests of a whole run).
func NewPKIIn(dir string) (*PKI, error) {
	ca, err := pki.NewCA(pki.CAOptions{})
	if err != nil {
		return nil, err
	}
	p := &PKI{CA: ca, Dir: dir, TrustDomain: pki.DefaultTrustDomain, nodes: map[string]pki.Files{}}
	if err := os.WriteFile(p.CAFile(), pki.EncodeCert(ca.Cert), 0o644); err != nil {
		return nil, err
	}
	return p, nil
}

// CAFile is the path of the CA certificate.
func (p *PKI) CAFile() string { return filepath.Join(p.Dir, "ca.pem") }

// Issue writes a certificate for id (valid for validity from now, 127.0.0.1
// and localhost) to Dir/<kind>-<name>.pem and its key beside it, replacing
// earlier files, and returns the files with CAFile.
func (p *PKI) Issue(tb testing.TB, id pki.Identity, validity time.Duration, now time.Time) pki.Files {
	tb.Helper()
	c, k, err := p.CA.Issue(pki.LeafOptions{Identity: id, Validity: validity, Now: now,
		IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}})
	if err != nil {
		tb.Fatal(err)
	}
	f := pki.Files{CAFile: p.CAFile(),
		CertFile: filepath.Join(p.Dir, string(id.Kind)+"-"+id.Name+".pem"),
		KeyFile:  filepath.Join(p.Dir, string(id.Kind)+"-"+id.Name+"-key.pem")}
	keyPEM, err := pki.EncodeKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	for path, data := range map[string][]byte{f.KeyFile: keyPEM, f.CertFile: pki.EncodeCert(c)} {
		if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
			tb.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			tb.Fatal(err)
		}
	}
	return f
}

// NodeFiles returns the files of a node certificate for id, issuing it (for
// a year) on first use.
func (p *PKI) NodeFiles(tb testing.TB, id string) pki.Files {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if f, ok := p.nodes[id]; ok {
		return f
	}
	f := p.Issue(tb, pki.Identity{TrustDomain: p.TrustDomain, Kind: pki.KindNode, Name: id}, 365*24*time.Hour, time.Time{})
	p.nodes[id] = f
	return f
}

// PeerTLS returns the peer TLS setting of node id: a store of its files
// that accepts only certificates naming it.
func (p *PKI) PeerTLS(tb testing.TB, id string) *cluster.PeerTLS {
	tb.Helper()
	s, err := pki.NewStore(p.NodeFiles(tb, id), pki.StoreOptions{Check: cluster.NodeCertCheck(p.TrustDomain, id)})
	if err != nil {
		tb.Fatal(err)
	}
	return &cluster.PeerTLS{Store: s, TrustDomain: p.TrustDomain}
}

// pkis holds each test's CA, so that every node config of one test trusts
// the same one.
var pkis sync.Map // testing.TB -> *PKI

// TestPKI returns the CA of tb, created on first use and forgotten when tb
// ends.
func TestPKI(tb testing.TB) *PKI {
	tb.Helper()
	if p, ok := pkis.Load(tb); ok {
		return p.(*PKI)
	}
	p := NewPKI(tb)
	if old, loaded := pkis.LoadOrStore(tb, p); loaded {
		return old.(*PKI)
	}
	tb.Cleanup(func() { pkis.Delete(tb) })
	return p
}
