package guard

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiond/sessiond/clients/go/token"
)

// maxKeysBody bounds a /.well-known/paserk response.
const maxKeysBody = 1 << 20

// keyFetchTimeout bounds one key fetch from one node.
const keyFetchTimeout = 3 * time.Second

// keyPeriodicRefresh is how often keys are refetched without being asked,
// so that retired keys disappear.
const keyPeriodicRefresh = 5 * time.Minute

// pubKey is one published verification key.
type pubKey struct {
	pub      ed25519.PublicKey
	notAfter int64 // Unix ns; 0 = no expiry
}

// keyStore holds the published keys, replaced whole on every successful
// fetch, and rate-limits fetches triggered by unknown key ids.
type keyStore struct {
	keys atomic.Pointer[map[string]pubKey]

	mu        sync.Mutex // serialises fetches
	lastFetch time.Time  // last on-demand fetch attempt (successful or not)
	fetches   atomic.Int64
}

// lookup returns the key kid if it is known and not past its not_after at
// now, and its not_after.
func (k *keyStore) lookup(kid string, now int64) (pubKey, bool) {
	m := k.keys.Load()
	if m == nil {
		return pubKey{}, false
	}
	pk, ok := (*m)[kid]
	if !ok || (pk.notAfter != 0 && now >= pk.notAfter) {
		return pubKey{}, false
	}
	return pk, true
}

// paserkDoc is GET /.well-known/paserk.
type paserkDoc struct {
	Keys []struct {
		Kid       string    `json:"kid"`
		PASERK    string    `json:"paserk"`
		NotAfter  time.Time `json:"not_after"`
		NotBefore time.Time `json:"not_before"`
	} `json:"keys"`
}

// errKeyRateLimited: a fetch happened less than KeyRefreshInterval ago.
var errKeyRateLimited = errors.New("guard: key refresh rate-limited")

// refreshKeys fetches the keys from the first node (in preference order)
// that serves them. A fetch on demand (force unset, for an unknown key id)
// does nothing and returns errKeyRateLimited when the previous on-demand
// attempt is less than KeyRefreshInterval old; concurrent callers wait for
// the running fetch and then find it recent. Forced fetches (start-up and
// periodic) are not rate-limited and do not count.
func (g *Guard) refreshKeys(ctx context.Context, now time.Time, force bool) error {
	k := &g.keys
	k.mu.Lock()
	defer k.mu.Unlock()
	if !force {
		if !k.lastFetch.IsZero() && now.Sub(k.lastFetch) < g.cfg.KeyRefreshInterval {
			return errKeyRateLimited
		}
		k.lastFetch = now
	}
	var errs []error
	for _, n := range g.cfg.Nodes {
		m, err := g.fetchKeys(ctx, n.URL)
		if err == nil {
			k.keys.Store(&m)
			k.fetches.Add(1)
			g.keysOnce.Do(func() { close(g.keysReady) })
			g.log.Debug("guard: keys fetched", "node", n.URL, "keys", len(m))
			return nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	err := errors.Join(errs...)
	g.log.Warn("guard: fetching keys failed", "error", err)
	return fmt.Errorf("guard: fetching keys: %w", err)
}

// fetchKeys reads and checks one node's key document. A key whose kid is
// not the k4.pid of its PASERK is refused.
func (g *Guard) fetchKeys(ctx context.Context, node string) (map[string]pubKey, error) {
	ctx, cancel := context.WithTimeout(ctx, keyFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, node+"/.well-known/paserk", nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", node, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := g.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", node, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: /.well-known/paserk: HTTP %d", node, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeysBody+1))
	if err != nil {
		return nil, fmt.Errorf("%s: reading keys: %w", node, err)
	}
	if len(body) > maxKeysBody {
		return nil, fmt.Errorf("%s: key document above %d bytes", node, maxKeysBody)
	}
	m, err := parseKeys(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", node, err)
	}
	return m, nil
}

// parseKeys decodes a key document (GET /.well-known/paserk). A key whose
// kid is not the k4.pid of its PASERK is refused.
func parseKeys(body []byte) (map[string]pubKey, error) {
	var doc paserkDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decoding keys: %w", err)
	}
	m := make(map[string]pubKey, len(doc.Keys))
	for i, key := range doc.Keys {
		pub, err := token.ParsePublicPASERK(key.PASERK)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if pid := token.PID(pub); pid != key.Kid {
			return nil, fmt.Errorf("key %d: kid %q is not the key's k4.pid %q", i, key.Kid, pid)
		}
		var na int64
		if !key.NotAfter.IsZero() {
			na = key.NotAfter.UnixNano()
		}
		m[key.Kid] = pubKey{pub: pub, notAfter: na}
	}
	return m, nil
}

// keyLoop fetches the keys at once, retrying with backoff until a fetch
// succeeds, then every keyPeriodicRefresh, until ctx ends.
func (g *Guard) keyLoop(ctx context.Context) {
	failures := 0
	for {
		wait := keyPeriodicRefresh
		if err := g.refreshKeys(ctx, g.now(), true); err != nil {
			wait = backoff(failures)
			failures++
		} else {
			failures = 0
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}
