package pki_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sessiond/sessiond/cluster/pki"
)

// writeNode issues a node certificate for name into dir (replacing what is
// there) and returns its files with the CA's.
func writeNode(t *testing.T, ca *pki.CA, dir, name string) pki.Files {
	t.Helper()
	f := pki.Files{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "node.pem"), KeyFile: filepath.Join(dir, "node-key.pem")}
	c, k, err := ca.Issue(pki.LeafOptions{Identity: node(name)})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.EncodeKey(k)
	if err != nil {
		t.Fatal(err)
	}
	for path, data := range map[string][]byte{f.CAFile: pki.EncodeCert(ca.Cert), f.CertFile: pki.EncodeCert(c), f.KeyFile: keyPEM} {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func leafName(t *testing.T, s *pki.Store) string {
	t.Helper()
	id, err := pki.IdentityFromCert(s.Current().Cert.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	return id.Name
}

func TestStoreReloadsAndKeepsGoodMaterial(t *testing.T) {
	ca, err := pki.NewCA(pki.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := writeNode(t, ca, dir, "hk-1")
	onlyHK := func(m pki.Material) error {
		if id, err := pki.IdentityFromCert(m.Cert.Leaf); err != nil || id.Name != "hk-1" {
			return errors.New("not hk-1")
		}
		return nil
	}
	s, err := pki.NewStore(files, pki.StoreOptions{Check: onlyHK})
	if err != nil {
		t.Fatal(err)
	}
	first := s.Current().Cert.Leaf.SerialNumber
	if got := s.Current().NotAfter(); got.IsZero() || got.Before(time.Now()) {
		t.Errorf("NotAfter: got %v, want a future time", got)
	}

	// A renewed certificate for the same node is picked up by the watcher.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan error, 4)
	go s.Watch(ctx, 10*time.Millisecond, func(err error) { results <- err })
	writeNode(t, ca, dir, "hk-1")
	// The three files are replaced one by one; on a loaded machine the
	// watcher may still look between two of them and refuse a mismatched
	// pair, but it must settle on the renewed certificate.
	// The files are written in any order, so the watcher may also reload
	// once with only some of them new (the CA file, rewritten unchanged):
	// wait until a reload carries the renewed certificate.
	deadline := time.After(10 * time.Second)
	for renewed := false; !renewed; {
		select {
		case err := <-results:
			renewed = err == nil && s.Current().Cert.Leaf.SerialNumber.Cmp(first) != 0
		case <-deadline:
			t.Fatal("the watcher did not reload the renewed certificate within 10s")
		}
	}

	// A certificate the check refuses is reported and not used. Reloads
	// still under way from the renewal may report success first; none of
	// them may install another node's certificate.
	writeNode(t, ca, dir, "tokyo-1")
	deadline = time.After(10 * time.Second)
	for refused := false; !refused; {
		select {
		case err := <-results:
			refused = err != nil
		case <-deadline:
			t.Fatal("reload of another node's certificate: no refusal within 10s")
		}
		if got := leafName(t, s); got != "hk-1" {
			t.Fatalf("after a reload the store names %q, want hk-1 kept", got)
		}
	}
	if err := s.Reload(); err == nil {
		t.Errorf("explicit Reload of a refused certificate: got nil, want an error")
	}

	// Missing files are a clear error at start.
	if _, err := pki.NewStore(pki.Files{CAFile: filepath.Join(dir, "nope.pem")}, pki.StoreOptions{}); err == nil {
		t.Errorf("NewStore with a missing CA file: got nil error")
	}
	if _, err := pki.NewStore(pki.Files{CertFile: files.CertFile}, pki.StoreOptions{}); err == nil {
		t.Errorf("NewStore with a certificate but no key: got nil error")
	}
}
