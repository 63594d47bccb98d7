package authsvc

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/sessiond/sessiond/authsvc/keys"
	"github.com/sessiond/sessiond/clients/go/token"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// signer is a private key ready to sign, with its PASERK id and its
// prepared access-token signer.
type signer struct {
	kid    string
	priv   ed25519.PrivateKey
	access *token.AccessSigner
}

// keyCache keeps the cluster's signing keys as read from the replicated
// store. A key is trusted (used to verify, to sign and published) only if
// its sealed private half opens with this node's KEK and matches its public
// key: a record anyone managed to commit without the KEK is refused, logged
// and alerted on once, and never published. It reloads from the store at
// most every keyReload, or at once (rate-limited) when a token names a key
// it does not know.
type keyCache struct {
	state State
	kek   keys.KEK
	log   *slog.Logger
	// untrusted is called once per refused key record.
	untrusted func(kid, why string)

	mu     sync.Mutex
	loaded time.Time
	missAt time.Time
	infos  []keys.KeyInfo
	pubs   map[string]ed25519.PublicKey
	privs  map[string]ed25519.PrivateKey
	// access keeps each trusted key's prepared access-token signer (a
	// kid names one key pair, so it never goes stale).
	access map[string]*token.AccessSigner
	// verdicts remembers each record's check, keyed by kid and the SHA-256
	// of its public and sealed halves (a replaced record is checked anew).
	verdicts map[string]keyVerdict
}

type keyVerdict struct {
	sum  [32]byte
	priv ed25519.PrivateKey // nil: refused
}

const (
	keyReload   = time.Second
	keyMissWait = 100 * time.Millisecond
)

func newKeyCache(st State, kek keys.KEK, log *slog.Logger, untrusted func(kid, why string)) *keyCache {
	return &keyCache{state: st, kek: kek, log: log, untrusted: untrusted, pubs: map[string]ed25519.PublicKey{},
		privs: map[string]ed25519.PrivateKey{}, access: map[string]*token.AccessSigner{}, verdicts: map[string]keyVerdict{}}
}

// reload re-reads the keys from the store, keeping only trusted ones.
// Callers hold mu.
func (c *keyCache) reload(now time.Time) error {
	recs, err := c.state.SigningKeys(now)
	if err != nil {
		return err
	}
	infos := make([]keys.KeyInfo, 0, len(recs))
	pubs := make(map[string]ed25519.PublicKey, len(recs))
	present := make(map[string]bool, len(recs))
	// The OpenID Provider's RSA and EC keys are its own (oidc_keys.go).
	recs = slices.DeleteFunc(slices.Clone(recs), func(r *storev1.SigningKey) bool { return r.GetPurpose() == oidcKeyPurpose })
	for _, r := range recs {
		present[r.GetKid()] = true
	}
	for kid := range c.verdicts { // forget purged keys
		if !present[kid] {
			delete(c.verdicts, kid)
			delete(c.privs, kid)
			delete(c.access, kid)
		}
	}
	for _, r := range recs {
		priv := c.verify(r)
		if priv == nil {
			continue
		}
		info := keyInfo(r)
		infos = append(infos, info)
		pubs[r.GetKid()] = ed25519.PublicKey(r.GetPublicKey())
		c.privs[r.GetKid()] = priv
		if c.access[r.GetKid()] == nil {
			a, err := token.NewAccessSigner(r.GetKid(), priv)
			if err != nil { // verify checked the kid and the pair
				return fmt.Errorf("signing key %s: %w", r.GetKid(), err)
			}
			c.access[r.GetKid()] = a
		}
	}
	c.infos, c.pubs, c.loaded = infos, pubs, now
	return nil
}

// verify opens r's sealed private half with the KEK and checks that it
// matches the public key and the kid; it returns the private key, or nil
// for a record that must not be trusted. Callers hold mu.
func (c *keyCache) verify(r *storev1.SigningKey) ed25519.PrivateKey {
	h := sha256.New()
	h.Write(r.GetPublicKey())
	h.Write([]byte{0})
	h.Write(r.GetEncryptedPrivateKey())
	var sum [32]byte
	h.Sum(sum[:0])
	if v, ok := c.verdicts[r.GetKid()]; ok && v.sum == sum {
		return v.priv
	}
	var why string
	priv, err := keys.Open(c.kek, r.GetEncryptedPrivateKey(), []byte(r.GetKid()))
	switch {
	case err != nil:
		why = "its private half does not open with this node's key-encryption key"
	case !ed25519.PublicKey(r.GetPublicKey()).Equal(priv.Public()):
		why, priv = "its private half does not match its public key", nil
	case token.PID(ed25519.PublicKey(r.GetPublicKey())) != r.GetKid():
		why, priv = "its kid is not the PASERK id of its public key", nil
	}
	c.verdicts[r.GetKid()] = keyVerdict{sum: sum, priv: priv}
	if priv == nil {
		delete(c.privs, r.GetKid())
		delete(c.access, r.GetKid())
		c.log.Error("refusing a signing key record: tokens it signs are not trusted and it is not published", "kid", r.GetKid(), "why", why)
		if c.untrusted != nil {
			c.untrusted(r.GetKid(), why)
		}
	}
	return priv
}

// trusted returns the trusted keys, freshly read.
func (c *keyCache) trusted(now time.Time) ([]keys.KeyInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.reload(now); err != nil {
		return nil, err
	}
	return slices.Clone(c.infos), nil
}

func keyInfo(r *storev1.SigningKey) keys.KeyInfo {
	return keys.KeyInfo{
		Kid: r.GetKid(), Purpose: r.GetPurpose(), Public: ed25519.PublicKey(r.GetPublicKey()),
		SealedPrivate: r.GetEncryptedPrivateKey(),
		CreatedAt:     time.Unix(0, r.GetCreatedUnixNano()), ActivatesAt: time.Unix(0, r.GetActivatesUnixNano()),
		RetiresAt: time.Unix(0, r.GetRetiresUnixNano()), ExpiresAt: time.Unix(0, r.GetExpiresUnixNano()),
	}
}

// public looks a verification key up by kid; it is a token.KeyLookup.
func (c *keyCache) public(kid string) (ed25519.PublicKey, bool) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.loaded) > keyReload {
		_ = c.reload(now)
	}
	if k, ok := c.pubs[kid]; ok {
		return k, true
	}
	if now.Sub(c.missAt) < keyMissWait {
		return nil, false
	}
	c.missAt = now
	_ = c.reload(now)
	k, ok := c.pubs[kid]
	return k, ok
}

// signer returns the key that signs at t: the newest key active at t.
func (c *keyCache) signer(t time.Time) (signer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pick := func() (keys.KeyInfo, bool) {
		var best keys.KeyInfo
		found := false
		for _, k := range c.infos {
			if !k.ActivatesAt.After(t) && t.Before(k.RetiresAt) && (!found || k.ActivatesAt.After(best.ActivatesAt)) {
				best, found = k, true
			}
		}
		return best, found
	}
	if time.Since(c.loaded) > keyReload {
		_ = c.reload(time.Now())
	}
	k, ok := pick()
	if !ok {
		if err := c.reload(time.Now()); err != nil {
			return signer{}, wrapErr(KindUnavailable, "no_signing_key", "signing keys cannot be read", err)
		}
		if k, ok = pick(); !ok {
			return signer{}, errNoKey
		}
	}
	priv, access := c.privs[k.Kid], c.access[k.Kid]
	if priv == nil || access == nil { // trusted keys always have both
		return signer{}, errNoKey
	}
	return signer{kid: k.Kid, priv: priv, access: access}, nil
}

// published lists the keys to publish at now.
func (c *keyCache) published(now time.Time) []keys.KeyInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.loaded) > keyReload {
		_ = c.reload(now)
	}
	out := make([]keys.KeyInfo, 0, len(c.infos))
	for _, k := range c.infos {
		if now.Before(k.ExpiresAt) {
			out = append(out, k)
		}
	}
	return out
}

// PublishedKeys lists the public keys verifiers should accept now.
func (s *Service) PublishedKeys() []keys.KeyInfo { return s.keys.published(s.now()) }

// PublicKey looks a public key up by its PASERK id.
func (s *Service) PublicKey(kid string) (ed25519.PublicKey, bool) { return s.keys.public(kid) }

// RunKeyRotation keeps the cluster supplied with signing keys: while this
// node leads, it generates the next key before the current one retires,
// seals its private half with the KEK and replicates it. The next key is
// published PrePublish before it signs; retired keys stay published until
// every token they signed has expired. It returns when ctx is done.
func (s *Service) RunKeyRotation(ctx context.Context) {
	policy := keys.RotationPolicy{
		SigningPeriod:    s.cfg.KeyRotation,
		PrePublish:       s.cfg.KeyRotation / 24,
		MaxTokenLifetime: maxDur(s.cfg.AccessTTL, s.cfg.RefreshTTL),
	}
	wait := 200 * time.Millisecond
	for {
		if s.d.Cluster.IsLeader() {
			if err := s.rotateOnce(ctx, policy); err != nil && ctx.Err() == nil {
				s.d.Logger.Warn("key rotation failed", "err", err)
			} else if err == nil {
				wait = 10 * time.Second
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (s *Service) rotateOnce(ctx context.Context, policy keys.RotationPolicy) error {
	now := s.now()
	// Only trusted keys count: a forged record planned far ahead must not
	// stop the rotation.
	infos, err := s.keys.trusted(now)
	if err != nil {
		return err
	}
	need, activates, retires, expires := keys.PlanRotation(infos, now, policy)
	if !need {
		return nil
	}
	priv, err := keys.Generate(rand.Reader)
	if err != nil {
		return err
	}
	pub := priv.Public().(ed25519.PublicKey)
	kid := token.PID(pub)
	sealed, err := keys.Seal(s.d.KEK, priv, []byte(kid))
	if err != nil {
		return err
	}
	_, res, err := s.propose(ctx, now, &storev1.Command{Op: &storev1.Command_PutSigningKey{PutSigningKey: &storev1.PutSigningKey{Key: &storev1.SigningKey{
		Kid: kid, Algorithm: "ed25519", Purpose: "sign", PublicKey: pub, EncryptedPrivateKey: sealed,
		CreatedUnixNano: now.UnixNano(), ActivatesUnixNano: activates.UnixNano(),
		RetiresUnixNano: retires.UnixNano(), ExpiresUnixNano: expires.UnixNano(),
	}}}})
	if err != nil {
		return err
	}
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		return s.resultErr(res)
	}
	s.audit(ctx, "signing_key_created", slog.String("kid", kid), slog.Time("activates", activates), slog.Time("retires", retires))
	s.keys.mu.Lock()
	s.keys.loaded = time.Time{}
	s.keys.mu.Unlock()
	return nil
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}
