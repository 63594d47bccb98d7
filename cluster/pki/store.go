package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Files names the PEM files of a TLS identity and the CA bundle it trusts.
// CAFile may be empty (an identity that verifies no one), and CertFile and
// KeyFile may both be empty (a bundle of trust anchors only), but not all.
type Files struct {
	// CAFile holds one or more CA certificates (during a rotation, the old
	// and the new CA).
	CAFile string
	// CertFile holds the leaf certificate, optionally followed by
	// intermediates.
	CertFile string
	// KeyFile holds the leaf's private key (PKCS #8, PKCS #1 or EC PEM).
	KeyFile string
}

// Material is one consistent load of Files.
type Material struct {
	// Cert is the identity (nil when Files has no CertFile); Cert.Leaf is
	// set.
	Cert *tls.Certificate
	// CAs are the certificates of CAFile (nil when there is none) and Pool
	// the same as a pool.
	CAs  []*x509.Certificate
	Pool *x509.CertPool
}

// StoreOptions configures NewStore.
type StoreOptions struct {
	// Check, if set, vets every load before it replaces the current one
	// (for example: the certificate must name this node). A load it refuses
	// is reported by Reload and the previous material is kept.
	Check func(Material) error
}

// Store holds the material loaded from Files and replaces it, atomically,
// on Reload (SIGHUP) or when Watch sees a file change. Connections started
// after a reload use the new material; established ones keep theirs. Safe
// for concurrent use.
type Store struct {
	files Files
	opts  StoreOptions

	cur atomic.Pointer[Material]

	mu     sync.Mutex // serialises reloads
	mtimes [3]time.Time
	// changed is closed and replaced after every successful reload.
	changed chan struct{}
}

// NewStore loads files once; any problem (a missing or malformed file, a key
// that is not the certificate's, a Check refusal) is an error naming the
// file.
func NewStore(files Files, opts StoreOptions) (*Store, error) {
	if files.CAFile == "" && files.CertFile == "" && files.KeyFile == "" {
		return nil, errors.New("pki: no certificate, key or CA file given")
	}
	if (files.CertFile == "") != (files.KeyFile == "") {
		return nil, fmt.Errorf("pki: certificate file %q and key file %q: give both or neither", files.CertFile, files.KeyFile)
	}
	s := &Store{files: files, opts: opts, changed: make(chan struct{})}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Files returns the file names the store loads.
func (s *Store) Files() Files { return s.files }

// Current returns the material in use.
func (s *Store) Current() Material { return *s.cur.Load() }

// Changed returns a channel closed at the next successful reload.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Reload reads the files again and, if they load and pass the Check,
// makes them current. On error the previous material stays in use.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, mtimes, err := load(s.files)
	if err != nil {
		return err
	}
	if s.opts.Check != nil {
		if err := s.opts.Check(m); err != nil {
			return fmt.Errorf("pki: %s refused: %w", s.describe(), err)
		}
	}
	s.cur.Store(&m)
	s.mtimes = mtimes
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

func (s *Store) describe() string {
	if s.files.CertFile != "" {
		return s.files.CertFile
	}
	return s.files.CAFile
}

// Watch checks the files' modification times every interval until ctx
// ends and reloads when they changed and then stayed unchanged for one
// interval (files are often replaced one after the other — certificate,
// then key — and a reload between the two would see a mismatched pair);
// onReload (if not nil) is told the outcome of every such reload. A file
// replaced by a rename (as most tools and Kubernetes do) counts as changed.
// A reload that fails keeps the current material and is not retried until
// the files change again.
func (s *Store) Watch(ctx context.Context, interval time.Duration, onReload func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var pending [3]time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now, err := statAll(s.files)
		if err != nil {
			// A file missing for a moment (being replaced) is retried.
			continue
		}
		s.mu.Lock()
		same := now == s.mtimes
		s.mu.Unlock()
		if same {
			continue
		}
		if now != pending {
			// Changed since the last look: let the writer finish.
			pending = now
			continue
		}
		err = s.Reload()
		if onReload != nil {
			onReload(err)
		}
		if err != nil {
			s.mu.Lock()
			s.mtimes = now
			s.mu.Unlock()
		}
	}
}

func statAll(f Files) ([3]time.Time, error) {
	var out [3]time.Time
	for i, p := range []string{f.CAFile, f.CertFile, f.KeyFile} {
		if p == "" {
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return out, err
		}
		out[i] = st.ModTime()
	}
	return out, nil
}

func load(f Files) (Material, [3]time.Time, error) {
	var m Material
	mtimes, err := statAll(f)
	if err != nil {
		return m, mtimes, fmt.Errorf("pki: %w", err)
	}
	if f.CAFile != "" {
		cas, err := LoadCertificates(f.CAFile)
		if err != nil {
			return m, mtimes, err
		}
		m.CAs = cas
		m.Pool = x509.NewCertPool()
		for _, c := range cas {
			if !c.IsCA {
				return m, mtimes, fmt.Errorf("pki: %s: %q is not a CA certificate", f.CAFile, c.Subject.CommonName)
			}
			m.Pool.AddCert(c)
		}
	}
	if f.CertFile != "" {
		c, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return m, mtimes, fmt.Errorf("pki: %s and %s: %w", f.CertFile, f.KeyFile, err)
		}
		m.Cert = &c
	}
	return m, mtimes, nil
}

// NotAfter returns when the material's certificate expires (zero without
// one).
func (m Material) NotAfter() time.Time {
	if m.Cert == nil || m.Cert.Leaf == nil {
		return time.Time{}
	}
	return m.Cert.Leaf.NotAfter
}

// CANotAfter returns the earliest expiry among the CA certificates (zero
// without any).
func (m Material) CANotAfter() time.Time {
	var out time.Time
	for _, c := range m.CAs {
		if out.IsZero() || c.NotAfter.Before(out) {
			out = c.NotAfter
		}
	}
	return out
}

// VerifyChain checks that c (with the intermediates that came with it)
// chains to the material's CA pool at now, for the given key usage. Host
// names are not checked: a sessiond peer is who its identity says.
func (m Material) VerifyChain(certs []*x509.Certificate, usage x509.ExtKeyUsage, now time.Time) error {
	if len(certs) == 0 {
		return errors.New("pki: no certificate presented")
	}
	if m.Pool == nil {
		return errors.New("pki: no CA to verify against")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: m.Pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}
