package keys

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrNoSigningKey is returned by Keyring.Current when no key may sign at the
// given time (none is active and unretired, or none of those has its
// private half opened).
var ErrNoSigningKey = errors.New("keys: no signing key active")

// KeyInfo describes one signing key as stored. The zero time in RetiresAt
// or ExpiresAt means "never".
type KeyInfo struct {
	// Kid is the key id (the service uses the PASERK k4.pid of Public).
	Kid string
	// Purpose is free-form (e.g. "sign"); this package does not interpret it.
	Purpose string
	// Public is the Ed25519 public key (32 bytes).
	Public ed25519.PublicKey
	// SealedPrivate is the private key sealed by Seal with AAD = Kid; may
	// be empty on nodes that only verify.
	SealedPrivate []byte
	// CreatedAt is when the key was generated (and first published).
	CreatedAt time.Time
	// ActivatesAt is the first instant the key may sign.
	ActivatesAt time.Time
	// RetiresAt is the first instant the key no longer signs.
	RetiresAt time.Time
	// ExpiresAt is when every token the key signed has expired; the key is
	// published until then (exclusive) and may be deleted afterwards.
	ExpiresAt time.Time
}

// signsAt reports whether k may sign at t: ActivatesAt <= t < RetiresAt and
// t < ExpiresAt (zero bounds mean "never").
func (k *KeyInfo) signsAt(t time.Time) bool {
	return !k.ActivatesAt.After(t) && beforeOrNever(t, k.RetiresAt) && beforeOrNever(t, k.ExpiresAt)
}

// beforeOrNever reports t < bound, with a zero bound meaning "never".
func beforeOrNever(t, bound time.Time) bool { return bound.IsZero() || t.Before(bound) }

// PublishedKey is one entry of the published key list (JWKS).
type PublishedKey struct {
	Kid         string
	Public      ed25519.PublicKey
	ActivatesAt time.Time
	// NotAfter is the key's ExpiresAt: verifiers may drop it from then on.
	// Zero means no planned end.
	NotAfter time.Time
}

// Keyring is an immutable set of keys. Build a new one when the stored keys
// change; it is safe for concurrent use.
type Keyring struct {
	// keys sorted newest first: ActivatesAt, then CreatedAt, then Kid,
	// all descending.
	keys  []KeyInfo
	privs map[string]ed25519.PrivateKey
	pubs  map[string]ed25519.PublicKey
}

// NewKeyring builds a Keyring from infos. Every key needs a non-empty,
// unique Kid and a 32-byte Public key. If kek is not zero, every non-empty
// SealedPrivate is opened with it (AAD = Kid) and must match Public;
// otherwise the ring only verifies and Current always fails. Errors name
// the offending kid and wrap ErrSealed for a blob that does not open.
func NewKeyring(infos []KeyInfo, kek KEK) (*Keyring, error) {
	r := &Keyring{
		keys:  make([]KeyInfo, 0, len(infos)),
		privs: make(map[string]ed25519.PrivateKey),
		pubs:  make(map[string]ed25519.PublicKey, len(infos)),
	}
	for _, k := range infos {
		if k.Kid == "" {
			return nil, errors.New("keys: key with empty kid")
		}
		if _, dup := r.pubs[k.Kid]; dup {
			return nil, fmt.Errorf("keys: duplicate kid %q", k.Kid)
		}
		if len(k.Public) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("keys: kid %q: public key is %d bytes, want %d", k.Kid, len(k.Public), ed25519.PublicKeySize)
		}
		k.Public = slices.Clone(k.Public)
		r.pubs[k.Kid] = k.Public
		if !kek.IsZero() && len(k.SealedPrivate) > 0 {
			priv, err := Open(kek, k.SealedPrivate, []byte(k.Kid))
			if err != nil {
				return nil, fmt.Errorf("keys: kid %q: %w", k.Kid, err)
			}
			if !k.Public.Equal(priv.Public()) {
				return nil, fmt.Errorf("keys: kid %q: sealed private key does not match the public key", k.Kid)
			}
			r.privs[k.Kid] = priv
		}
		k.SealedPrivate = nil
		r.keys = append(r.keys, k)
	}
	slices.SortStableFunc(r.keys, func(a, b KeyInfo) int {
		if c := b.ActivatesAt.Compare(a.ActivatesAt); c != 0 {
			return c
		}
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		switch {
		case a.Kid > b.Kid:
			return -1
		case a.Kid < b.Kid:
			return 1
		}
		return 0
	})
	return r, nil
}

// Current returns the key that signs at now: among keys with
// ActivatesAt <= now < RetiresAt (and now < ExpiresAt), the one with the
// latest ActivatesAt (ties: latest CreatedAt, then greatest Kid). It returns
// ErrNoSigningKey if there is none or its private half was not opened.
func (r *Keyring) Current(now time.Time) (kid string, priv ed25519.PrivateKey, err error) {
	for i := range r.keys {
		k := &r.keys[i]
		if !k.signsAt(now) {
			continue
		}
		p, ok := r.privs[k.Kid]
		if !ok {
			return "", nil, fmt.Errorf("%w: private half of %q not available", ErrNoSigningKey, k.Kid)
		}
		return k.Kid, p, nil
	}
	return "", nil, ErrNoSigningKey
}

// Public returns the public key with the given kid, whatever its dates (a
// token's own expiry bounds how long its key matters). Its signature
// matches token.KeyLookup.
func (r *Keyring) Public(kid string) (ed25519.PublicKey, bool) {
	k, ok := r.pubs[kid]
	return k, ok
}

// Published lists the keys verifiers should know at now, newest first:
// every key with now < ExpiresAt (or no ExpiresAt), including keys created
// ahead of their activation (pre-published) and retired keys whose tokens
// may still be valid.
func (r *Keyring) Published(now time.Time) []PublishedKey {
	out := make([]PublishedKey, 0, len(r.keys))
	for _, k := range r.keys {
		if beforeOrNever(now, k.ExpiresAt) {
			out = append(out, PublishedKey{Kid: k.Kid, Public: k.Public, ActivatesAt: k.ActivatesAt, NotAfter: k.ExpiresAt})
		}
	}
	return out
}
