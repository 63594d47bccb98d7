package authsvc

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"sort"
	"time"

	"github.com/sessiond/sessiond/authsvc/notify"
	"github.com/sessiond/sessiond/authsvc/users"
	"github.com/sessiond/sessiond/clients/go/token"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// derivedID derives an id from another deterministically. The successor
// of a refresh token and the access token issued beside it are derived
// from its id, so a retry within the grace window re-signs the very same
// pair without the store ever holding a token id in plain.
func derivedID(label, from string) string {
	h := sha256.Sum256([]byte("sessiond/" + label + "\x00" + from))
	return base64.RawURLEncoding.EncodeToString(h[:16])
}

// Refresh spends a refresh token and returns the next pair. A token
// presented again after it was spent is theft: the session ends and the
// answer is an error, except for the immediate predecessor within the grace
// window, which gets the same successor pair again.
//
// A refresh token issued to an OpenID Connect client (through the
// provider's code grant) is refused here: only that client, authenticated
// at the provider's token endpoint, may refresh it.
func (s *Service) Refresh(ctx context.Context, refreshToken string, c Client) (*Tokens, error) {
	t, _, _, err := s.refresh(ctx, refreshToken, c, "")
	if err != nil {
		s.observeTokenError(c.IP, err)
	} else {
		s.counts.refreshes.Add(1)
	}
	return t, err
}

// refresh rotates a refresh token of a session issued to clientID ("" for
// the service's own logins) and returns the pair, the session and its user.
func (s *Service) refresh(ctx context.Context, refreshToken string, c Client, clientID string) (*Tokens, *storev1.Session, users.User, error) {
	now := s.now()
	claims, err := s.verifyRefresh(refreshToken, now)
	if err != nil {
		return nil, nil, users.User{}, err
	}
	// A first look at the local state refuses another client's token
	// before it is spent; the rotated session's own record decides below.
	if ss, err := s.d.State.Session(claims.SessionID, now); err == nil && ss.GetClientId() != clientID {
		return nil, nil, users.User{}, errRefreshInvalid
	}
	u, err := s.d.Directory.ByID(ctx, claims.Subject)
	switch {
	case errors.Is(err, users.ErrNotFound):
		return nil, nil, users.User{}, errRefreshInvalid
	case err != nil:
		return nil, nil, users.User{}, wrapErr(KindUnavailable, "directory_unavailable", "the user directory is unavailable", err)
	case u.Status != users.StatusActive:
		s.audit(ctx, "refresh_refused_suspended", slog.String("user", u.ID), slog.String("session", claims.SessionID))
		return nil, nil, users.User{}, errSuspended
	}
	nextJTI := derivedID("refresh", claims.TokenID)
	// The store clamps the successor's expiry to the session's absolute
	// expiry: rotation never extends a session.
	next := &storev1.RefreshToken{
		IdHash: token.HashTokenID(nextJTI), SessionId: claims.SessionID, FamilyId: claims.Family,
		IssuedUnixNano: now.UnixNano(), ExpiresUnixNano: now.Add(s.cfg.RefreshTTL).UnixNano(), UserId: u.ID,
	}
	idx, res, err := s.propose(ctx, now, &storev1.Command{Op: &storev1.Command_RotateRefresh{RotateRefresh: &storev1.RotateRefresh{
		OldIdHash: token.HashTokenID(claims.TokenID), Next: next,
		IdleExpiresUnixNano: now.Add(s.cfg.SessionIdle).UnixNano(), GraceNanos: int64(s.cfg.RefreshGrace),
	}}})
	if err != nil {
		return nil, nil, users.User{}, err
	}
	switch res.GetCode() {
	case storev1.ErrorCode_ERROR_CODE_UNSPECIFIED:
	case storev1.ErrorCode_ERROR_CODE_REUSE:
		s.audit(ctx, "refresh_reuse", slog.String("user", u.ID), slog.String("session", claims.SessionID), slog.String("ip", c.IP))
		s.alert(notify.Event{Kind: "refresh_reuse", UserID: u.ID, SessionID: claims.SessionID, IP: c.IP, At: now})
		return nil, nil, users.User{}, errRefreshReuse
	case storev1.ErrorCode_ERROR_CODE_NOT_FOUND:
		return nil, nil, users.User{}, errRefreshInvalid
	default:
		return nil, nil, users.User{}, s.resultErr(res)
	}
	// Sign with the successor's recorded issue time, so that a grace retry
	// gets byte-identical tokens.
	iat := time.Unix(0, res.GetRefresh().GetIssuedUnixNano())
	signer, err := s.keys.signer(iat)
	if err != nil {
		return nil, nil, users.User{}, err
	}
	sess := res.GetSession()
	if sess.GetClientId() != clientID {
		// Spent by the wrong door: the rightful client's retry of the
		// same token falls within the grace window and gets the pair.
		s.audit(ctx, "refresh_refused_other_client", slog.String("user", u.ID), slog.String("session", claims.SessionID))
		return nil, nil, users.User{}, errRefreshInvalid
	}
	event := "refresh"
	if res.GetGraceRetry() {
		event = "refresh_grace_retry"
	}
	s.audit(ctx, event, slog.String("user", u.ID), slog.String("session", claims.SessionID), slog.String("ip", c.IP))
	t, err := s.signPair(u, sess, nextJTI, iat, signer, idx)
	return t, sess, u, err
}

// verifyRefresh checks a refresh token's signature and claims.
func (s *Service) verifyRefresh(raw string, now time.Time) (*token.RefreshClaims, error) {
	if raw == "" {
		return nil, newErr(KindInvalid, "invalid_request", "refresh_token: required")
	}
	claims, err := token.VerifyRefresh(raw, s.keys.public, token.Expectation{Issuer: s.cfg.Issuer, Audience: s.cfg.Issuer, Now: now})
	if err != nil {
		return nil, wrapErr(KindUnauthenticated, "invalid_refresh_token", "the refresh token is not valid", err)
	}
	return claims, nil
}

// Logout ends a session, named either by a valid access token or by a
// refresh token of the session (which may be spent or expired soon).
func (s *Service) Logout(ctx context.Context, bearer, refreshToken string) (uint64, error) {
	now := s.now()
	var sid, uid string
	switch {
	case bearer != "":
		a, err := s.Authenticate(ctx, bearer)
		if err != nil {
			return 0, err
		}
		sid, uid = a.SessionID, a.Subject
	case refreshToken != "":
		c, err := s.verifyRefresh(refreshToken, now)
		if err != nil {
			return 0, err
		}
		sid, uid = c.SessionID, c.Subject
	default:
		return 0, newErr(KindUnauthenticated, "unauthenticated", "send a bearer access token or the refresh token")
	}
	idx, res, err := s.propose(ctx, now, &storev1.Command{Op: &storev1.Command_EndSession{EndSession: &storev1.EndSession{
		SessionId: sid, Reason: storev1.EndReason_END_REASON_LOGOUT,
	}}})
	if err != nil {
		return 0, err
	}
	if c := res.GetCode(); c != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED && c != storev1.ErrorCode_ERROR_CODE_ENDED && c != storev1.ErrorCode_ERROR_CODE_NOT_FOUND {
		return 0, s.resultErr(res)
	}
	s.audit(ctx, "logout", slog.String("user", uid), slog.String("session", sid))
	return idx, nil
}

// LogoutAll ends every session of the bearer's user and invalidates every
// token issued to it before now.
func (s *Service) LogoutAll(ctx context.Context, bearer string) (int, uint64, error) {
	a, err := s.Authenticate(ctx, bearer)
	if err != nil {
		return 0, 0, err
	}
	return s.EndUserSessions(ctx, a.Subject, storev1.EndReason_END_REASON_LOGOUT_ALL)
}

// EndUserSessions ends every session of a user (logout-all or an admin's
// revocation) and sets a cut-off for tokens issued before now.
func (s *Service) EndUserSessions(ctx context.Context, userID string, reason storev1.EndReason) (int, uint64, error) {
	now := s.now()
	idx, res, err := s.propose(ctx, now, &storev1.Command{Op: &storev1.Command_EndUserSessions{EndUserSessions: &storev1.EndUserSessions{
		UserId: userID, Reason: reason,
		CutoffExpiresUnixNano: now.Add(s.cfg.AccessTTL + s.cfg.RefreshTTL).UnixNano(),
	}}})
	if err != nil {
		return 0, 0, err
	}
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		return 0, 0, s.resultErr(res)
	}
	s.audit(ctx, "logout_all", slog.String("user", userID), slog.Int("ended", len(res.GetEndedSessionIds())))
	return len(res.GetEndedSessionIds()), idx, nil
}

// EndSessionAs ends a session. With owner set, the session must belong to
// that user (a user kicking one of its own devices); reason says why.
func (s *Service) EndSessionAs(ctx context.Context, owner, sid string, reason storev1.EndReason) (uint64, error) {
	now := s.now()
	if owner != "" {
		sess, err := s.d.State.Session(sid, now)
		if err != nil || sess.GetUserId() != owner {
			return 0, newErr(KindNotFound, "not_found", "no such session")
		}
	}
	idx, res, err := s.propose(ctx, now, &storev1.Command{Op: &storev1.Command_EndSession{EndSession: &storev1.EndSession{SessionId: sid, Reason: reason}}})
	if err != nil {
		return 0, err
	}
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		return 0, s.resultErr(res)
	}
	s.audit(ctx, "session_ended", slog.String("session", sid), slog.String("reason", reason.String()))
	return idx, nil
}

// EndOwnSession ends one of the bearer's own sessions.
func (s *Service) EndOwnSession(ctx context.Context, bearer, sid string) error {
	a, err := s.Authenticate(ctx, bearer)
	if err != nil {
		return err
	}
	_, err = s.EndSessionAs(ctx, a.Subject, sid, storev1.EndReason_END_REASON_LOGOUT)
	return err
}

// SessionView is a session as its owner sees it.
type SessionView struct {
	Session *storev1.Session
	Current bool
}

// ListSessions lists the bearer's live sessions, newest first.
func (s *Service) ListSessions(ctx context.Context, bearer string) ([]SessionView, error) {
	a, err := s.Authenticate(ctx, bearer)
	if err != nil {
		return nil, err
	}
	list, err := s.d.State.UserSessions(a.Subject, s.now())
	if err != nil {
		return nil, s.internal(err)
	}
	out := make([]SessionView, 0, len(list))
	for _, ss := range list {
		out = append(out, SessionView{Session: ss, Current: ss.GetId() == a.SessionID})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Session.GetCreatedUnixNano() > out[j].Session.GetCreatedUnixNano()
	})
	return out, nil
}
