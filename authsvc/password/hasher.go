// Package password hashes and verifies user passwords with argon2id
// (RFC 9106) and encodes them as PHC strings
// `$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>` (salt and hash
// in unpadded standard base64).
//
// A Hasher bounds how many hashes run at once, since each one allocates
// Params.Memory KiB: when all slots are busy a call waits at most
// Config.MaxWait and then fails with ErrBusy, which callers should map to
// "429 Too Many Requests" instead of queueing unbounded memory.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"golang.org/x/crypto/argon2"
)

var (
	// ErrBusy is returned when no hashing slot became free within
	// Config.MaxWait. No work was done.
	ErrBusy = errors.New("password: too many hashes in progress")
	// ErrMismatch is returned by Verify and VerifyDummy when the password
	// does not match.
	ErrMismatch = errors.New("password: mismatch")
)

// DefaultMaxWait is the Config.MaxWait used when it is zero.
const DefaultMaxWait = 250 * time.Millisecond

// Config configures a Hasher.
type Config struct {
	// Params are used for new hashes and define which stored hashes need a
	// rehash. The zero value means DefaultParams().
	Params Params
	// MaxConcurrent is the number of hashes that may run at once;
	// 0 means runtime.NumCPU().
	MaxConcurrent int
	// MaxWait is how long a call waits for a free slot before failing with
	// ErrBusy; 0 means DefaultMaxWait, a negative value means do not wait.
	MaxWait time.Duration
	// Rand is the salt source; nil means crypto/rand.Reader.
	Rand io.Reader
}

// Hasher hashes and verifies passwords. It is safe for concurrent use.
type Hasher struct {
	params  Params
	sem     chan struct{}
	maxWait time.Duration
	rand    io.Reader
	dummy   PHC
}

// NewHasher returns a Hasher for cfg, or an error if cfg.Params are outside
// the bounds of Params.Validate.
func NewHasher(cfg Config) (*Hasher, error) {
	if cfg.Params == (Params{}) {
		cfg.Params = DefaultParams()
	}
	if err := cfg.Params.Validate(); err != nil {
		return nil, fmt.Errorf("password: invalid params: %w", err)
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = runtime.NumCPU()
	}
	switch {
	case cfg.MaxWait == 0:
		cfg.MaxWait = DefaultMaxWait
	case cfg.MaxWait < 0:
		cfg.MaxWait = 0
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	h := &Hasher{params: cfg.Params, sem: make(chan struct{}, cfg.MaxConcurrent), maxWait: cfg.MaxWait, rand: cfg.Rand}
	// The dummy hash has the hasher's own parameters so that VerifyDummy
	// costs exactly what Verify of a current hash costs. Its salt is fixed:
	// it protects nothing, it only burns the same CPU and memory.
	salt := make([]byte, cfg.Params.SaltLen)
	for i := range salt {
		salt[i] = byte(i)
	}
	h.dummy = PHC{Params: cfg.Params, Salt: salt, Hash: make([]byte, cfg.Params.KeyLen)}
	return h, nil
}

// Params returns the parameters used for new hashes.
func (h *Hasher) Params() Params { return h.params }

// Hash returns the PHC string of password under a fresh random salt and the
// hasher's parameters. It fails with ErrBusy when no slot frees in time.
func (h *Hasher) Hash(password string) (string, error) {
	salt := make([]byte, h.params.SaltLen)
	if _, err := io.ReadFull(h.rand, salt); err != nil {
		return "", fmt.Errorf("password: reading salt: %w", err)
	}
	key, err := h.derive(password, h.params, salt)
	if err != nil {
		return "", err
	}
	return PHC{Params: h.params, Salt: salt, Hash: key}.String(), nil
}

// Verify checks password against the stored PHC string phc, comparing in
// constant time. It returns:
//   - (true, needsRehash, nil) on a match; needsRehash is true when the
//     stored parameters (m, t, p, salt or key length) differ from the
//     hasher's, and the caller should store a fresh Hash(password);
//   - (false, false, ErrMismatch) when the password does not match;
//   - (false, false, err wrapping ErrMalformedHash) when phc cannot be
//     parsed or its parameters are out of bounds (nothing is computed);
//   - (false, false, ErrBusy) when no slot freed in time.
func (h *Hasher) Verify(password, phc string) (ok bool, needsRehash bool, err error) {
	stored, err := ParsePHC(phc)
	if err != nil {
		return false, false, err
	}
	key, err := h.derive(password, stored.Params, stored.Salt)
	if err != nil {
		return false, false, err
	}
	if subtle.ConstantTimeCompare(key, stored.Hash) != 1 {
		return false, false, ErrMismatch
	}
	return true, stored.Params != h.params, nil
}

// VerifyDummy performs the same work as Verify of a hash with the hasher's
// parameters and always reports a mismatch: (false, ErrMismatch), or
// (false, ErrBusy) when no slot freed in time. Call it for an unknown
// account so that response time does not reveal whether the account exists.
func (h *Hasher) VerifyDummy(password string) (bool, error) {
	key, err := h.derive(password, h.dummy.Params, h.dummy.Salt)
	if err != nil {
		return false, err
	}
	// Compare anyway so the code path matches Verify; the dummy hash is
	// all zeros, which argon2 output never equals in practice, and the
	// result is ignored regardless.
	_ = subtle.ConstantTimeCompare(key, h.dummy.Hash)
	return false, ErrMismatch
}

// derive runs argon2id inside a concurrency slot.
func (h *Hasher) derive(password string, p Params, salt []byte) ([]byte, error) {
	if err := h.acquire(); err != nil {
		return nil, err
	}
	defer func() { <-h.sem }()
	return argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen), nil
}

// acquire takes a slot, waiting at most h.maxWait.
func (h *Hasher) acquire() error {
	select {
	case h.sem <- struct{}{}:
		return nil
	default:
	}
	if h.maxWait <= 0 {
		return ErrBusy
	}
	t := time.NewTimer(h.maxWait)
	defer t.Stop()
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-t.C:
		return ErrBusy
	}
}
