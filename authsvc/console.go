package authsvc

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/sessiond/sessiond/authsvc/keys"
	"github.com/sessiond/sessiond/authsvc/users"
	"github.com/sessiond/sessiond/clients/go/token"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// Bounds of SearchUsers.
const (
	// MaxSearchQuery is the longest search text.
	MaxSearchQuery = 254
	// DefaultSearchLimit and MaxSearchLimit bound the users one search
	// returns.
	DefaultSearchLimit = 50
	MaxSearchLimit     = 500
)

// UserByID returns the directory's user with that id.
func (s *Service) UserByID(ctx context.Context, id string) (users.User, error) {
	u, err := s.d.Directory.ByID(ctx, id)
	if err != nil {
		return users.User{}, directoryErr(err)
	}
	return u, nil
}

// SearchUsers returns, sorted by email, the users whose email, display
// name, organisation, country, id or one of whose roles contains query
// (case-insensitive; "" matches everyone), at most limit of them (0:
// DefaultSearchLimit), and how many matched in all.
func (s *Service) SearchUsers(ctx context.Context, query string, limit int) ([]users.User, int, error) {
	switch {
	case len(query) > MaxSearchQuery:
		return nil, 0, newErr(KindInvalid, "invalid_request", "query: at most 254 bytes")
	case limit < 0 || limit > MaxSearchLimit:
		return nil, 0, newErr(KindInvalid, "invalid_request", "limit: want 0 to 500")
	case limit == 0:
		limit = DefaultSearchLimit
	}
	list, err := s.ListUsers(ctx)
	if err != nil {
		return nil, 0, err
	}
	q := strings.ToLower(strings.TrimSpace(query))
	out := list[:0]
	for _, u := range list {
		if q == "" || userMatches(u, q) {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b users.User) int { return strings.Compare(a.Email, b.Email) })
	total := len(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, total, nil
}

func userMatches(u users.User, q string) bool {
	for _, f := range append([]string{u.Email, u.DisplayName, u.Org.Name, u.Org.Country, u.ID}, u.Roles...) {
		if strings.Contains(strings.ToLower(f), q) {
			return true
		}
	}
	return false
}

// KeyState is where a signing key is in its life.
type KeyState string

// The states of a signing key at a given time.
const (
	// KeyActive signs new tokens now.
	KeyActive KeyState = "active"
	// KeyNext is published and will sign from its activation on.
	KeyNext KeyState = "next"
	// KeyRetiring no longer signs but is still published, because tokens
	// it signed may still be valid.
	KeyRetiring KeyState = "retiring"
)

// SigningKey is one key of the keyring as the console and the operator
// API show it: never its private half.
type SigningKey struct {
	Kid                                  string
	State                                KeyState
	Created, Activates, Retires, Expires time.Time
	PublicKey                            ed25519.PublicKey
}

// SigningKeys lists the trusted signing keys still published at now,
// newest activation first, each with its state: the one active key (the
// newest whose signing period has begun), the next ones (activation
// ahead) and the retiring ones (superseded or past their signing period,
// published until every token they signed has expired).
func (s *Service) SigningKeys() ([]SigningKey, error) {
	now := s.now()
	infos, err := s.keys.trusted(now)
	if err != nil {
		return nil, wrapErr(KindUnavailable, "unavailable", "signing keys cannot be read", err)
	}
	slices.SortFunc(infos, func(a, b keys.KeyInfo) int { return b.ActivatesAt.Compare(a.ActivatesAt) })
	out := make([]SigningKey, 0, len(infos))
	active := false
	for _, k := range infos {
		if !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) {
			continue
		}
		st := KeyRetiring
		switch {
		case k.ActivatesAt.After(now):
			st = KeyNext
		case !active && (k.RetiresAt.IsZero() || now.Before(k.RetiresAt)):
			st, active = KeyActive, true
		}
		out = append(out, SigningKey{Kid: k.Kid, State: st, Created: k.CreatedAt, Activates: k.ActivatesAt,
			Retires: k.RetiresAt, Expires: k.ExpiresAt, PublicKey: k.Public})
	}
	return out, nil
}

// RotateSigningKey creates a signing key that signs from now on, on every
// node: it is the newest active key, so it supersedes the current one,
// which stays published (retiring) until the tokens it signed have
// expired. Verifiers that cache the published keys learn the new one
// when they meet its kid (the SDKs refetch the key set on an unknown
// kid). It returns the new key's id and the log index of its write.
func (s *Service) RotateSigningKey(ctx context.Context, by string) (string, uint64, error) {
	now := s.now()
	priv, err := keys.Generate(rand.Reader)
	if err != nil {
		return "", 0, s.internal(err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	kid := token.PID(pub)
	sealed, err := keys.Seal(s.d.KEK, priv, []byte(kid))
	if err != nil {
		return "", 0, s.internal(err)
	}
	retires := now.Add(s.cfg.KeyRotation)
	expires := retires.Add(maxDur(s.cfg.AccessTTL, s.cfg.RefreshTTL))
	idx, res, err := s.propose(ctx, now, &storev1.Command{Op: &storev1.Command_PutSigningKey{PutSigningKey: &storev1.PutSigningKey{Key: &storev1.SigningKey{
		Kid: kid, Algorithm: "ed25519", Purpose: "sign", PublicKey: pub, EncryptedPrivateKey: sealed,
		CreatedUnixNano: now.UnixNano(), ActivatesUnixNano: now.UnixNano(),
		RetiresUnixNano: retires.UnixNano(), ExpiresUnixNano: expires.UnixNano(),
	}}}})
	if err != nil {
		return "", 0, err
	}
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		return "", 0, s.resultErr(res)
	}
	s.audit(ctx, "signing_key_rotated", slog.String("kid", kid), slog.String("by", by), slog.Time("retires", retires))
	s.keys.mu.Lock()
	s.keys.loaded = time.Time{}
	s.keys.mu.Unlock()
	return kid, idx, nil
}
