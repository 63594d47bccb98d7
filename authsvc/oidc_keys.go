package authsvc

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"log/slog"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/sessiond/sessiond/authsvc/keys"
	"github.com/sessiond/sessiond/authsvc/notify"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// The OpenID Provider signs ID tokens (and client-credentials access
// tokens) with keys of its own, one rotation per algorithm: RS256, which
// OIDC Core requires every relying party to support, and ES256. They live
// in the replicated keyring beside the Ed25519 keys (purpose "id_token",
// algorithm "rs256" or "es256"), the public half as PKIX DER, the private
// half as PKCS #8 DER sealed with the KEK (keys.SealBytes, AAD = kid). A
// node trusts a record only if the sealed half opens with its KEK and
// matches the public half and the kid, as for the Ed25519 keys.

const oidcKeyPurpose = "id_token"

// Signing algorithms of ID tokens, as JOSE names them.
const (
	AlgRS256 = "RS256"
	AlgES256 = "ES256"
)

// oidcAlgs are the algorithms the provider signs with, RS256 first (the
// default of a client that names none).
var oidcAlgs = []string{AlgRS256, AlgES256}

// oidcKey is one trusted provider key.
type oidcKey struct {
	kid, alg                    string
	pub                         crypto.PublicKey
	priv                        crypto.Signer
	activates, retires, expires time.Time
	created                     time.Time
}

// oidcKeyCache keeps the provider's trusted keys, reloaded from the store
// at most every keyReload.
type oidcKeyCache struct {
	state     State
	kek       keys.KEK
	log       *slog.Logger
	untrusted func(kid, why string)

	mu       sync.Mutex
	loaded   time.Time
	keys     []oidcKey
	verdicts map[string]oidcVerdict
}

type oidcVerdict struct {
	sum [32]byte
	key *oidcKey // nil: refused
}

func storeAlg(jose string) string { return strings.ToLower(jose) }

// oidcKID is the key id of a public key: the algorithm and 16 bytes of the
// SHA-256 of its PKIX DER, base64url.
func oidcKID(alg string, pubDER []byte) string {
	h := sha256.Sum256(pubDER)
	return "oidc-" + storeAlg(alg) + "-" + base64.RawURLEncoding.EncodeToString(h[:16])
}

func (c *oidcKeyCache) reload(now time.Time) error {
	recs, err := c.state.SigningKeys(now)
	if err != nil {
		return err
	}
	if c.verdicts == nil {
		c.verdicts = map[string]oidcVerdict{}
	}
	var out []oidcKey
	present := map[string]bool{}
	for _, r := range recs {
		if r.GetPurpose() != oidcKeyPurpose {
			continue
		}
		present[r.GetKid()] = true
		if k := c.verify(r); k != nil {
			out = append(out, *k)
		}
	}
	for kid := range c.verdicts {
		if !present[kid] {
			delete(c.verdicts, kid)
		}
	}
	c.keys, c.loaded = out, now
	return nil
}

// verify opens and checks one record; callers hold mu.
func (c *oidcKeyCache) verify(r *storev1.SigningKey) *oidcKey {
	h := sha256.New()
	h.Write(r.GetPublicKey())
	h.Write([]byte{0})
	h.Write(r.GetEncryptedPrivateKey())
	var sum [32]byte
	h.Sum(sum[:0])
	if v, ok := c.verdicts[r.GetKid()]; ok && v.sum == sum {
		return v.key
	}
	k, why := c.open(r)
	c.verdicts[r.GetKid()] = oidcVerdict{sum: sum, key: k}
	if k == nil {
		c.log.Error("refusing an ID-token signing key record: it is not used or published", "kid", r.GetKid(), "why", why)
		if c.untrusted != nil {
			c.untrusted(r.GetKid(), why)
		}
	}
	return k
}

func (c *oidcKeyCache) open(r *storev1.SigningKey) (*oidcKey, string) {
	alg := strings.ToUpper(r.GetAlgorithm())
	if alg != AlgRS256 && alg != AlgES256 {
		return nil, "unknown algorithm " + r.GetAlgorithm()
	}
	if oidcKID(alg, r.GetPublicKey()) != r.GetKid() {
		return nil, "its kid does not name its public key"
	}
	der, err := keys.OpenBytes(c.kek, r.GetEncryptedPrivateKey(), []byte(r.GetKid()))
	if err != nil {
		return nil, "its private half does not open with this node's key-encryption key"
	}
	pk, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, "its private half is not a PKCS #8 key"
	}
	signer, ok := pk.(crypto.Signer)
	if !ok {
		return nil, "its private half cannot sign"
	}
	switch k := signer.(type) {
	case *rsa.PrivateKey:
		if alg != AlgRS256 {
			return nil, "an RSA key recorded as " + alg
		}
	case *ecdsa.PrivateKey:
		if alg != AlgES256 || k.Curve != elliptic.P256() {
			return nil, "an EC key recorded as " + alg + " or not on P-256"
		}
	default:
		return nil, "unsupported key type"
	}
	pubDER, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil || string(pubDER) != string(r.GetPublicKey()) {
		return nil, "its private half does not match its public key"
	}
	return &oidcKey{kid: r.GetKid(), alg: alg, pub: signer.Public(), priv: signer,
		created:   time.Unix(0, r.GetCreatedUnixNano()),
		activates: time.Unix(0, r.GetActivatesUnixNano()), retires: time.Unix(0, r.GetRetiresUnixNano()),
		expires: time.Unix(0, r.GetExpiresUnixNano())}, ""
}

func (c *oidcKeyCache) fresh(now time.Time) {
	if now.Sub(c.loaded) > keyReload {
		_ = c.reload(now)
	}
}

// signer returns the newest key of alg that signs at t.
func (c *oidcKeyCache) signer(alg string, t time.Time) (oidcKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fresh(time.Now())
	pick := func() (oidcKey, bool) {
		var best oidcKey
		found := false
		for _, k := range c.keys {
			if k.alg == alg && !k.activates.After(t) && t.Before(k.retires) && (!found || k.activates.After(best.activates)) {
				best, found = k, true
			}
		}
		return best, found
	}
	if k, ok := pick(); ok {
		return k, nil
	}
	if err := c.reload(time.Now()); err != nil {
		return oidcKey{}, wrapErr(KindUnavailable, "no_signing_key", "signing keys cannot be read", err)
	}
	if k, ok := pick(); ok {
		return k, nil
	}
	return oidcKey{}, errNoKey
}

// published lists the keys verifiers should know at now.
func (c *oidcKeyCache) published(now time.Time) []oidcKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fresh(now)
	out := make([]oidcKey, 0, len(c.keys))
	for _, k := range c.keys {
		if now.Before(k.expires) {
			out = append(out, k)
		}
	}
	return out
}

// public returns a trusted key by kid (for verifying the provider's own
// ID tokens, e.g. an id_token_hint).
func (c *oidcKeyCache) public(kid string) (oidcKey, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fresh(time.Now())
	for _, k := range c.keys {
		if k.kid == kid {
			return k, true
		}
	}
	return oidcKey{}, false
}

func (c *oidcKeyCache) infos(alg string, now time.Time) ([]keys.KeyInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.reload(now); err != nil {
		return nil, err
	}
	var out []keys.KeyInfo
	for _, k := range c.keys {
		if k.alg == alg {
			out = append(out, keys.KeyInfo{Kid: k.kid, CreatedAt: k.created, ActivatesAt: k.activates, RetiresAt: k.retires, ExpiresAt: k.expires})
		}
	}
	return out, nil
}

// JWKS returns the provider's public keys to publish now, as JWKs with
// their algorithm and use "sig".
func (p *Provider) JWKS() []jose.JSONWebKey {
	ks := p.keys.published(p.s.now())
	out := make([]jose.JSONWebKey, 0, len(ks))
	for _, k := range ks {
		out = append(out, jose.JSONWebKey{Key: k.pub, KeyID: k.kid, Algorithm: k.alg, Use: "sig"})
	}
	return out
}

// rotateKeys plans and creates the provider's next keys (one rotation per
// algorithm), as RunKeyRotation does for the Ed25519 keys.
func (p *Provider) rotateKeys(ctx context.Context) error {
	s := p.s
	policy := keys.RotationPolicy{
		SigningPeriod:    s.cfg.KeyRotation,
		PrePublish:       s.cfg.KeyRotation / 24,
		MaxTokenLifetime: maxDur(p.cfg.IDTokenTTL, s.cfg.AccessTTL) + time.Minute,
	}
	for _, alg := range oidcAlgs {
		now := s.now()
		infos, err := p.keys.infos(alg, now)
		if err != nil {
			return err
		}
		need, activates, retires, expires := keys.PlanRotation(infos, now, policy)
		if !need {
			continue
		}
		var priv crypto.Signer
		if alg == AlgRS256 {
			priv, err = rsa.GenerateKey(rand.Reader, 2048)
		} else {
			priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		}
		if err != nil {
			return err
		}
		pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
		if err != nil {
			return err
		}
		privDER, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return err
		}
		kid := oidcKID(alg, pubDER)
		sealed, err := keys.SealBytes(s.d.KEK, privDER, []byte(kid))
		if err != nil {
			return err
		}
		_, res, err := s.propose(ctx, now, &storev1.Command{Op: &storev1.Command_PutSigningKey{PutSigningKey: &storev1.PutSigningKey{Key: &storev1.SigningKey{
			Kid: kid, Algorithm: storeAlg(alg), Purpose: oidcKeyPurpose, PublicKey: pubDER, EncryptedPrivateKey: sealed,
			CreatedUnixNano: now.UnixNano(), ActivatesUnixNano: activates.UnixNano(),
			RetiresUnixNano: retires.UnixNano(), ExpiresUnixNano: expires.UnixNano(),
		}}}})
		if err != nil {
			return err
		}
		if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
			return s.resultErr(res)
		}
		s.audit(ctx, "oidc_signing_key_created", slog.String("kid", kid), slog.String("alg", alg), slog.Time("activates", activates))
		p.keys.mu.Lock()
		p.keys.loaded = time.Time{}
		p.keys.mu.Unlock()
	}
	return nil
}

// RunKeyRotation keeps the provider supplied with RS256 and ES256 keys
// while this node leads; it returns when ctx is done.
func (p *Provider) RunKeyRotation(ctx context.Context) {
	wait := 200 * time.Millisecond
	for {
		if p.s.d.Cluster.IsLeader() {
			if err := p.rotateKeys(ctx); err != nil && ctx.Err() == nil {
				p.s.d.Logger.Warn("ID-token key rotation failed", "err", err)
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

func newOIDCKeyCache(s *Service) *oidcKeyCache {
	return &oidcKeyCache{state: s.d.State, kek: s.d.KEK, log: s.d.Logger, untrusted: func(kid, why string) {
		s.alert(notify.Event{Kind: notify.KindUntrustedKey, Detail: "ID-token signing key " + kid + " refused: " + why, At: s.now()})
	}}
}
