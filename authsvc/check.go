package authsvc

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/sessiond/sessiond/clients/go/checkreason"
	"github.com/sessiond/sessiond/clients/go/policy"
	"github.com/sessiond/sessiond/clients/go/token"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	"github.com/sessiond/sessiond/store"
)

// Check is the answer to "is this access token still valid?".
type Check struct {
	Active bool
	// Reason says why an inactive token is not active (checkreason.None
	// when it is active); checkreason.String gives its wire string.
	Reason checkreason.Reason
	// Claims are the token's claims when its signature verified.
	Claims *token.AccessClaims
	// EndReason is the session's end reason when Reason is session_ended.
	EndReason storev1.EndReason
	// Index is the applied log index the answer reflects.
	Index uint64
}

// verifier checks access tokens. Verifying an Ed25519 signature costs tens
// of microseconds, so verified claims are cached, keyed by a hash of the
// token, in a bounded LRU (hashicorp/golang-lru/v2 expirable) whose entries
// also expire after the longest accepted token lifetime; a hit is used only
// until the token's own expiry. A repeated check costs a hash, a cache
// lookup and the store lookups.
type verifier struct {
	s     *Service
	cache *expirable.LRU[[32]byte, *token.AccessClaims]

	hits, misses atomic.Uint64
}

func newVerifier(s *Service, size int) *verifier {
	return &verifier{s: s, cache: expirable.NewLRU[[32]byte, *token.AccessClaims](size, nil, s.cfg.MaxAccessLifetime)}
}

// claims verifies raw or finds it in the cache.
func (v *verifier) claims(raw string, now time.Time) (*token.AccessClaims, error) {
	// Hash the token's bytes in place: sha256 neither keeps nor changes
	// them, and a copy would be the only allocation of a cached check.
	key := sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
	c, ok := v.cache.Get(key)
	if ok {
		if now.Before(c.Expiration) {
			v.hits.Add(1)
			return c, nil
		}
		return nil, token.ErrExpired
	}
	v.misses.Add(1)
	exp := token.Expectation{Issuer: v.s.cfg.Issuer, Audience: v.s.cfg.Audience, Now: now, MaxLifetime: v.s.cfg.MaxAccessLifetime}
	var err error
	if v.s.cfg.JWTAccessTokens {
		c, err = token.VerifyAccessJWT(raw, v.s.keys.public, exp)
	} else {
		c, err = token.VerifyAccess(raw, v.s.keys.public, exp)
	}
	if err != nil {
		return nil, err
	}
	v.cache.Add(key, c)
	return c, nil
}

// CacheStats returns the verified-token cache's hits and misses.
func (s *Service) CacheStats() (hits, misses uint64) { return s.ver.hits.Load(), s.ver.misses.Load() }

// CheckToken answers, from this node's local state, whether an access token
// is active; its Index is the applied index of the state it read. The
// caller makes the local state fresh enough first.
func (s *Service) CheckToken(raw string) Check {
	now := s.now()
	var chk Check
	idx := s.d.State.IndexOf(func() { chk = s.checkToken(raw, now) })
	chk.Index = idx
	return chk
}

func (s *Service) checkToken(raw string, now time.Time) Check {
	c, err := s.ver.claims(raw, now)
	if err != nil {
		return Check{Reason: tokenReason(err)}
	}
	reason, end := s.liveness(c, now)
	if reason != checkreason.None {
		return Check{Reason: reason, Claims: c, EndReason: end}
	}
	return Check{Active: true, Claims: c}
}

// IndexOf runs read, which reads the local state through this service, and
// returns the applied index of the state it read (read may run more than
// once; see store.Store.IndexOf).
func (s *Service) IndexOf(read func()) uint64 { return s.d.State.IndexOf(read) }

// liveness checks a verified token against the replicated state: its
// session is live, no cut-off is after its issue time (both in
// nanoseconds: access tokens carry iat with its fraction of a second), its
// id is not revoked. One allocation-light read (store.TokenStatus).
func (s *Service) liveness(c *token.AccessClaims, now time.Time) (checkreason.Reason, storev1.EndReason) {
	st, err := s.d.State.TokenStatus(c.SessionID, c.Subject, c.TokenID, now)
	iat := c.IssuedAt.UnixNano()
	switch {
	case err != nil:
		return checkreason.InternalError, 0
	case !st.SessionFound:
		return checkreason.SessionNotFound, 0
	case st.SessionEnded:
		return endedReason(st.EndReason, checkreason.SessionEnded), st.EndReason
	case st.UserNotBefore > iat:
		return endedReason(st.UserCutoffReason, checkreason.LoggedOutAll), st.UserCutoffReason
	case st.SessionNotBefore > iat, st.Revoked:
		return checkreason.Revoked, 0
	}
	return checkreason.None, 0
}

// endedReason is the check reason for a session that ended, or a user
// cut-off set, for reason r; other reasons give def.
func endedReason(r storev1.EndReason, def checkreason.Reason) checkreason.Reason {
	switch r {
	case storev1.EndReason_END_REASON_LOGOUT_ALL:
		return checkreason.LoggedOutAll
	case storev1.EndReason_END_REASON_ACCOUNT_SUSPENDED:
		return checkreason.AccountSuspended
	case storev1.EndReason_END_REASON_ACCOUNT_CHANGED:
		return checkreason.AccountChanged
	case storev1.EndReason_END_REASON_UPSTREAM_REVOKED:
		return checkreason.UpstreamRevoked
	}
	return def
}

func tokenReason(err error) checkreason.Reason {
	switch {
	case errors.Is(err, token.ErrExpired):
		return checkreason.Expired
	case errors.Is(err, token.ErrNotYetValid):
		return checkreason.NotYetValid
	case errors.Is(err, token.ErrUnknownKey):
		return checkreason.UnknownKey
	case errors.Is(err, token.ErrBadSignature):
		return checkreason.InvalidSignature
	case errors.Is(err, token.ErrWrongAudience):
		return checkreason.WrongAudience
	case errors.Is(err, token.ErrWrongIssuer):
		return checkreason.WrongIssuer
	case errors.Is(err, token.ErrWrongPurpose):
		return checkreason.WrongPurpose
	case errors.Is(err, token.ErrLifetimeTooLong):
		return checkreason.LifetimeTooLong
	default:
		return checkreason.Malformed
	}
}

// CheckTokenSynced is CheckToken for a caller that may present a token
// issued through another node a moment ago: when the token's session is
// not found on this node, it waits for one linearizable read barrier and
// checks again (if the barrier fails, the first answer stands).
func (s *Service) CheckTokenSynced(ctx context.Context, raw string) Check {
	chk := s.CheckToken(raw)
	if chk.Reason == checkreason.SessionNotFound {
		if err := s.d.Cluster.Sync(ctx); err == nil {
			chk = s.CheckToken(raw)
		}
	}
	return chk
}

// Authenticate checks a bearer access token and returns its claims when it
// is active. A session this node has not seen yet (the login was just
// acknowledged elsewhere) costs one linearizable read barrier, so a client
// may use its tokens on any node at once.
func (s *Service) Authenticate(ctx context.Context, bearer string) (*token.AccessClaims, error) {
	if bearer == "" {
		return nil, newErr(KindUnauthenticated, "unauthenticated", "a bearer access token is required")
	}
	chk := s.CheckTokenSynced(ctx, bearer)
	if !chk.Active {
		return nil, newErr(KindUnauthenticated, "invalid_token", "the access token is not active: "+checkreason.String(chk.Reason))
	}
	return chk.Claims, nil
}

// Authorize evaluates the RBAC and ABAC rules for an active access token.
func (s *Service) Authorize(ctx context.Context, raw, action, resource string) (policy.Decision, error) {
	c, err := s.Authenticate(ctx, raw)
	if err != nil {
		return policy.Decision{}, err
	}
	return s.Decide(c, action, resource), nil
}

// Decide evaluates the RBAC and ABAC rules for the claims of a token
// already found active.
func (s *Service) Decide(c *token.AccessClaims, action, resource string) policy.Decision {
	return s.d.Policy.Authorize(SubjectOf(c), action, resource)
}

// SubjectOf turns token claims into a policy subject: roles, plus the
// attributes country, org_type, org and platform.
func SubjectOf(c *token.AccessClaims) policy.Subject {
	return policy.Subject{UserID: c.Subject, Roles: c.Roles, Attrs: map[string]string{
		"country": c.Country, "org_type": c.OrgType, "org": c.OrgID, "platform": c.Platform,
	}}
}

// Issuer is the configured issuer URL.
func (s *Service) Issuer() string { return s.cfg.Issuer }

// CheckRefresh reports whether a refresh token is valid now: signed by a
// cluster key, not expired, unspent, and its session live.
func (s *Service) CheckRefresh(raw string) (*token.RefreshClaims, bool) {
	now := s.now()
	c, err := s.verifyRefresh(raw, now)
	if err != nil {
		return nil, false
	}
	rec, err := s.d.State.RefreshToken(token.HashTokenID(c.TokenID), now)
	if err != nil {
		return nil, false
	}
	sess, err := s.d.State.Session(c.SessionID, now)
	if err != nil || sess.GetEndedUnixNano() != 0 || store.RefreshSpent(rec, sess) {
		return nil, false
	}
	return c, true
}

// IntrospectRefresh is CheckRefresh for a caller that may have just
// received the token from another node: when the token verifies but its
// records are not on this node, it waits for one linearizable read barrier
// and checks again.
func (s *Service) IntrospectRefresh(ctx context.Context, raw string) (*token.RefreshClaims, bool) {
	if c, ok := s.CheckRefresh(raw); ok {
		return c, true
	}
	if _, err := s.verifyRefresh(raw, s.now()); err != nil || s.d.Cluster.Sync(ctx) != nil {
		return nil, false
	}
	return s.CheckRefresh(raw)
}

// RevokeToken revokes a token (RFC 7009): an access token's id until its
// expiry, or a refresh token's whole session. An invalid token is not an
// error: there is nothing to revoke.
func (s *Service) RevokeToken(ctx context.Context, raw string) error {
	now := s.now()
	if c, err := s.ver.claims(raw, now); err == nil {
		_, res, err := s.propose(ctx, now, &storev1.Command{Op: &storev1.Command_RevokeToken{RevokeToken: &storev1.RevokeToken{
			Revocation: &storev1.Revocation{Jti: c.TokenID, RevokedUnixNano: now.UnixNano(),
				ExpiresUnixNano: c.Expiration.UnixNano(), Reason: "revoked"},
		}}})
		if err != nil {
			return err
		}
		if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
			return s.resultErr(res)
		}
		s.audit(ctx, "token_revoked", slog.String("user", c.Subject), slog.String("session", c.SessionID))
		return nil
	}
	if c, err := s.verifyRefresh(raw, now); err == nil {
		_, err := s.EndSessionAs(ctx, "", c.SessionID, storev1.EndReason_END_REASON_ADMIN_REVOKED)
		if ErrorKind(err) == KindNotFound {
			return nil
		}
		var e *Error
		if errors.As(err, &e) && e.Code == errSessionEnded.Code {
			return nil
		}
		return err
	}
	return nil
}
