package guard

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"connectrpc.com/connect"
	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/sessiond/sessiond/clients/go/checkreason"
	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
	"github.com/sessiond/sessiond/clients/go/token"
)

// Check verifies an access token and returns its claims when it is
// acceptable now. In order:
//  1. a token that is empty or larger than token.MaxTokenSize is refused
//     before any work;
//  2. the signature and claims are verified against the published keys
//     (iss = Config.Issuer, aud = Config.Audience, exp/nbf/iat at now with
//     Config.Leeway). Verified claims are cached by SHA-256 of the token
//     until the token expires (or its key does), so a repeated token costs
//     a hash and a few map lookups. A token naming an unknown key id makes
//     the Guard refetch the keys (at most once per KeyRefreshInterval) and
//     verify once more;
//  3. the token is refused if the local revocation set holds its session
//     (sid), its id (jti), or a cut-off for its user (sub) later than its
//     iat;
//  4. if the revocation watch has delivered no message for longer than
//     MaxStaleness (or the first snapshot is not loaded), the answer is
//     ErrStale under FailClosed; under FallbackRemote the token is checked
//     by CheckToken on the nodes in order until one answers (ErrStale when
//     none does).
//
// Refusals of the token are *AuthError (errors.Is ErrUnauthenticated and
// the cause). The returned claims are shared with the cache and other
// callers: do not modify them.
func (g *Guard) Check(ctx context.Context, raw string) (*token.AccessClaims, error) {
	return g.check(ctx, raw, g.now())
}

func (g *Guard) check(ctx context.Context, raw string, now time.Time) (*token.AccessClaims, error) {
	if raw == "" {
		return nil, &AuthError{Reason: checkreason.MissingToken, Err: fmt.Errorf("%w: empty", token.ErrMalformed)}
	}
	if len(raw) > token.MaxTokenSize {
		return nil, &AuthError{Reason: checkreason.Malformed, Err: fmt.Errorf("%w: %d bytes, above %d", token.ErrMalformed, len(raw), token.MaxTokenSize)}
	}
	c, err := g.verify(ctx, raw, now)
	if err != nil {
		return nil, err
	}
	if ae := g.revs.revoked(c); ae != nil {
		return nil, ae
	}
	if g.fresh(now) {
		return c, nil
	}
	if g.cfg.OnStale == FailClosed {
		return nil, g.staleError(now, nil)
	}
	return g.remoteCheck(ctx, raw, c, now)
}

func (g *Guard) staleError(now time.Time, remote error) error {
	last := g.lastMsg.Load()
	what := "no revocation snapshot loaded yet"
	if last != 0 && g.revs.loadedFast() {
		what = fmt.Sprintf("last watch message %s ago (max %s)", now.Sub(time.Unix(0, last)).Round(time.Millisecond), g.cfg.MaxStaleness)
	}
	if remote != nil {
		return fmt.Errorf("%w: %s; remote check failed: %w", ErrStale, what, remote)
	}
	return fmt.Errorf("%w: %s", ErrStale, what)
}

// verify returns the verified claims of raw, from the cache when possible.
func (g *Guard) verify(ctx context.Context, raw string, now time.Time) (*token.AccessClaims, error) {
	// The hash only reads raw: viewing its bytes without a copy is safe.
	key := sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
	nowNs := now.UnixNano()
	if e, ok := g.cache.get(key); ok {
		if nowNs < e.until {
			return e.claims, nil
		}
		if nowNs >= e.exp {
			return nil, tokenError(fmt.Errorf("%w: expired at %s", token.ErrExpired, e.claims.Expiration.Format(time.RFC3339)))
		}
		g.cache.remove(key) // its key expired: verify again
	}
	c, keyNotAfter, err := g.verifyOnce(raw, now)
	if errors.Is(err, token.ErrUnknownKey) {
		if g.refreshKeys(ctx, now, false) == nil {
			c, keyNotAfter, err = g.verifyOnce(raw, now)
		}
	}
	if err != nil {
		return nil, tokenError(err)
	}
	exp := c.Expiration.Add(g.cfg.Leeway).UnixNano()
	until := exp
	if keyNotAfter != 0 {
		until = min(until, keyNotAfter)
	}
	g.cache.put(key, cacheEntry{claims: c, exp: exp, until: until})
	return c, nil
}

// verifyOnce verifies raw with the current keys and returns the claims and
// the not_after of the key that signed it.
func (g *Guard) verifyOnce(raw string, now time.Time) (*token.AccessClaims, int64, error) {
	var notAfter int64
	nowNs := now.UnixNano()
	lookup := func(kid string) (ed25519.PublicKey, bool) {
		pk, ok := g.keys.lookup(kid, nowNs)
		notAfter = pk.notAfter
		return pk.pub, ok
	}
	c, err := token.VerifyAccess(raw, lookup, token.Expectation{
		Issuer: g.cfg.Issuer, Audience: g.cfg.Audience, Now: now, Leeway: g.cfg.Leeway,
		MaxLifetime: g.cfg.MaxAccessLifetime,
	})
	return c, notAfter, err
}

// remoteCheck asks the nodes, in order (recently failed ones last), whether
// raw is active; c are its locally verified claims.
func (g *Guard) remoteCheck(ctx context.Context, raw string, c *token.AccessClaims, now time.Time) (*token.AccessClaims, error) {
	var errs []error
	for _, i := range g.nodeOrder(now) {
		cctx, cancel := context.WithTimeout(ctx, g.cfg.RemoteTimeout)
		resp, err := g.clients[i].CheckToken(cctx, connect.NewRequest(&sessionv1.CheckTokenRequest{Token: raw, Read: g.cfg.RemoteRead}))
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", g.cfg.Nodes[i].URL, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if !resp.Msg.GetActive() {
			return nil, remoteError(resp.Msg.GetReason(), resp.Msg.GetEndReason())
		}
		return c, nil
	}
	return nil, g.staleError(now, errors.Join(errs...))
}

// cacheEntry is a verified token's claims, valid until until (Unix ns:
// the token's expiry plus leeway, or its key's not_after if sooner).
type cacheEntry struct {
	claims     *token.AccessClaims
	exp, until int64
}

// cacheTTL bounds how long any entry stays in the claims cache, whatever
// its own validity: the longest access-token lifetime a node issues (30
// minutes). An entry is also refused on read once its until has passed.
const cacheTTL = 30 * time.Minute

// claimsCache is a bounded LRU of verified tokens by SHA-256 whose entries
// also expire after cacheTTL (hashicorp/golang-lru/v2's expirable LRU: a
// full cache evicts the least recently used token, so the tokens in use
// stay cached under a flood of new ones). A nil *claimsCache (CacheSize
// negative) caches nothing.
type claimsCache struct {
	lru *expirable.LRU[[32]byte, cacheEntry]
}

func newClaimsCache(size int) *claimsCache {
	if size <= 0 {
		return nil
	}
	return &claimsCache{lru: expirable.NewLRU[[32]byte, cacheEntry](size, nil, cacheTTL)}
}

func (c *claimsCache) get(k [32]byte) (cacheEntry, bool) {
	if c == nil {
		return cacheEntry{}, false
	}
	return c.lru.Get(k)
}

func (c *claimsCache) put(k [32]byte, e cacheEntry) {
	if c != nil {
		c.lru.Add(k, e)
	}
}

func (c *claimsCache) remove(k [32]byte) {
	if c != nil {
		c.lru.Remove(k)
	}
}

// purge empties the cache (Close: the LRU's expiry goroutine outlives it,
// the claims need not).
func (c *claimsCache) purge() {
	if c != nil {
		c.lru.Purge()
	}
}

func (c *claimsCache) len() int {
	if c == nil {
		return 0
	}
	return c.lru.Len()
}
