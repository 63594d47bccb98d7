package pki_test

import (
	"crypto/x509"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/sessiond/sessiond/cluster/pki"
)

func node(name string) pki.Identity {
	return pki.Identity{TrustDomain: pki.DefaultTrustDomain, Kind: pki.KindNode, Name: name}
}

func TestIssueVerifyAndIdentity(t *testing.T) {
	ca, err := pki.NewCA(pki.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := ca.Issue(pki.LeafOptions{Identity: node("hk-1"), IPs: []net.IP{net.ParseIP("10.0.1.10")}, DNSNames: []string{"hk-1.internal"}})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}, DNSName: "hk-1.internal"}); err != nil {
			t.Errorf("node certificate for usage %v: %v", usage, err)
		}
	}
	id, err := pki.IdentityFromCert(cert)
	if err != nil || id != node("hk-1") {
		t.Errorf("IdentityFromCert: got %+v, %v; want %+v", id, err, node("hk-1"))
	}
	if got, want := id.String(), "spiffe://sessiond/node/hk-1"; got != want {
		t.Errorf("URI: got %s, want %s", got, want)
	}

	op, _, err := ca.Issue(pki.LeafOptions{Identity: pki.Identity{TrustDomain: "sessiond", Kind: pki.KindOperator, Name: "alice"}, DNSNames: []string{"ignored"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("an operator certificate verified for server authentication; want refused")
	}
	if len(op.DNSNames) != 0 {
		t.Errorf("operator certificate has DNS names %v, want none", op.DNSNames)
	}

	other, _ := pki.NewCA(pki.CAOptions{})
	foreign, _, _ := other.Issue(pki.LeafOptions{Identity: node("hk-1")})
	if _, err := foreign.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("a certificate of another CA verified; want refused")
	}
}

func TestLeafNeverOutlivesCA(t *testing.T) {
	now := time.Now()
	ca, _ := pki.NewCA(pki.CAOptions{Validity: 24 * time.Hour, Now: now})
	c, _, err := ca.Issue(pki.LeafOptions{Identity: node("a"), Validity: 365 * 24 * time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if c.NotAfter.After(ca.Cert.NotAfter) {
		t.Errorf("leaf expires %s, after its CA (%s)", c.NotAfter, ca.Cert.NotAfter)
	}
}

func TestParseIdentityRefusesMalformed(t *testing.T) {
	for _, s := range []string{
		"", "https://sessiond/node/a", "spiffe://sessiond/node", "spiffe://sessiond/node/", "spiffe://sessiond/admin/a",
		"spiffe://Sessiond/node/a", "spiffe://sessiond/node/a/b", "spiffe://sessiond:8/node/a", "spiffe://u@sessiond/node/a",
		"spiffe://sessiond/node/a?x=1", "spiffe:///node/a",
	} {
		if id, err := pki.ParseIdentity(s); !errors.Is(err, pki.ErrNoIdentity) {
			t.Errorf("ParseIdentity(%q): got %+v, %v; want ErrNoIdentity", s, id, err)
		}
	}
}

func TestWriteAndLoadCA(t *testing.T) {
	dir := t.TempDir()
	ca, _ := pki.NewCA(pki.CAOptions{})
	certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if err := pki.WriteFiles(certPath, keyPath, ca.Cert, ca.Key); err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteFiles(certPath, keyPath, ca.Cert, ca.Key); err == nil {
		t.Error("WriteFiles over existing files: want an error, got none")
	}
	got, err := pki.LoadCA(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cert.Equal(ca.Cert) {
		t.Error("loaded CA certificate differs from the written one")
	}
	other, _ := pki.NewCA(pki.CAOptions{})
	otherKey := filepath.Join(dir, "other-key.pem")
	otherCert := filepath.Join(dir, "other.pem")
	_ = pki.WriteFiles(otherCert, otherKey, other.Cert, other.Key)
	if _, err := pki.LoadCA(certPath, otherKey); err == nil {
		t.Error("LoadCA with another CA's key: want an error, got none")
	}
}
