package store

import (
	"fmt"
	"strings"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	"google.golang.org/protobuf/proto"
)

// RequestIDRetention is how long a request_id is remembered after the command
// that carried it (measured from that command's now_unix_nano). A command
// with the same request_id within it returns the first result unchanged.
const RequestIDRetention int64 = 10 * 60 * 1e9

// DefaultMaxRecordSize is the default limit on one record's encoded size.
const DefaultMaxRecordSize = 64 << 10

// MaxPurgeLimit caps Purge.limit so one command's transaction stays small.
const MaxPurgeLimit = 10000

// maxIDLen bounds every id and key string (they are length-prefixed with one
// byte in composite keys).
const maxIDLen = 255

// txn is the typed view of one read-write transaction the rules work
// against. Getters return (nil, nil) when a record is absent. Every put and
// delete keeps the expiry index (and the tokens-by-session index) in step
// with the record; the explicit session indexes (live, by user) and the
// e-mail index are the rules' business.
type txn interface {
	session(id string) (*storev1.Session, error)
	putSession(s *storev1.Session) error
	deleteSession(id string) error
	liveSessionID(userID string, p storev1.Platform) (string, error)
	setLiveSession(userID string, p storev1.Platform, id string) error
	deleteLiveSession(userID string, p storev1.Platform) error
	userSessionIDs(userID string, limit int) ([]string, error)
	addUserSession(userID, id string) error
	removeUserSession(userID, id string) error

	sessionTokenHashes(sessionID string) ([][]byte, error)
	refresh(hash []byte) (*storev1.RefreshToken, error)
	putRefresh(r *storev1.RefreshToken) error
	deleteRefresh(hash []byte) error

	revocation(jti string) (*storev1.Revocation, error)
	putRevocation(r *storev1.Revocation) error
	deleteRevocation(jti string) error
	cutoff(userID string) (*storev1.UserCutoff, error)
	putCutoff(c *storev1.UserCutoff) error
	deleteCutoff(userID string) error
	signingKey(kid string) (*storev1.SigningKey, error)
	putSigningKey(k *storev1.SigningKey) error
	deleteSigningKey(kid string) error

	user(id string) (*storev1.User, error)
	putUser(u *storev1.User) error
	userIDByEmail(emailKey string) (string, error)
	setEmail(emailKey, id string) error
	deleteEmail(emailKey string) error
	deleteUser(id string) error

	request(id string) (expires int64, result []byte, found bool, err error)
	putRequest(id string, expires int64, result []byte) error
	deleteRequest(id string) error

	operatorToken(id string) (*storev1.OperatorToken, error)
	operatorTokens() ([]*storev1.OperatorToken, error)
	putOperatorToken(o *storev1.OperatorToken) error
	deleteOperatorToken(id string) error

	oidcClient(id string) (*storev1.OIDCClient, error)
	countOIDCClients() int
	putOIDCClient(c *storev1.OIDCClient) error
	deleteOIDCClient(id string) error

	loginFailures(key []byte) (*storev1.LoginFailures, error)
	putLoginFailures(f *storev1.LoginFailures) error
	deleteLoginFailures(key []byte) error
	alertClaim(key []byte) (*storev1.AlertClaim, error)
	// noteExpired reports a live session the purger removes
	// (ChangeSessionExpired).
	noteExpired(s *storev1.Session)
	putAlertClaim(c *storev1.AlertClaim) error
	deleteAlertClaim(key []byte) error

	authCode(hash []byte) (*storev1.AuthCode, error)
	putAuthCode(c *storev1.AuthCode) error
	deleteAuthCode(hash []byte) error
	onceMark(key []byte) (*storev1.MarkOnce, error)
	putOnceMark(m *storev1.MarkOnce) error
	deleteOnceMark(key []byte) error
	upstreamLink(provider, subject string) (*storev1.UpstreamLink, error)
	putUpstreamLink(l *storev1.UpstreamLink) error
	upstreamState(hash []byte) (*storev1.UpstreamState, error)
	putUpstreamState(s *storev1.UpstreamState) error
	deleteUpstreamState(hash []byte) error

	expired(now int64, n int) ([]expiryEntry, error)
	deleteExpiryEntry(e expiryEntry) error
}

// expiryEntry is one key of the expiry index.
type expiryEntry struct {
	at   int64
	kind byte
	key  []byte
}

// limits are the rule parameters that are configuration, not state.
type limits struct {
	maxRecordSize int
}

func refuse(code storev1.ErrorCode, format string, args ...any) *storev1.Result {
	return &storev1.Result{Code: code, Message: fmt.Sprintf(format, args...)}
}

// applyCommand decodes and applies one command's bytes, the entry at log
// index. It returns the encoded Result; an error only for a storage failure
// (the transaction must then be rolled back).
func applyCommand(t txn, index uint64, data []byte, lim limits) ([]byte, error) {
	if len(data) > 4*lim.maxRecordSize+1024 {
		return encodeResult(refuse(storev1.ErrorCode_ERROR_CODE_TOO_LARGE, "command of %d bytes exceeds the limit", len(data)))
	}
	cmd := new(storev1.Command)
	if err := proto.Unmarshal(data, cmd); err != nil {
		return encodeResult(refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "undecodable command: not a sessiond.store.v1.Command"))
	}
	if res := validateCommand(cmd, lim); res != nil {
		return encodeResult(res)
	}
	now, rid := cmd.GetNowUnixNano(), cmd.GetRequestId()
	if bt, ok := t.(*boltTxn); ok {
		bt.proposed = now
	}
	if rid != "" {
		exp, stored, found, err := t.request(rid)
		if err != nil {
			return nil, err
		}
		if found && exp > now {
			return stored, nil
		}
	}
	res, err := applyOp(t, cmd, lim)
	if err != nil {
		return nil, err
	}
	res.Index = index
	out, err := encodeResult(res)
	if err != nil {
		return nil, err
	}
	if rid != "" && !malformed(res.GetCode()) {
		if err := t.putRequest(rid, now+RequestIDRetention, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// malformed reports refusals of the command's form (INVALID, TOO_LARGE,
// UNKNOWN_COMMAND): they change no state at all, not even the request-id
// record, so a corrected command may reuse the request id.
func malformed(c storev1.ErrorCode) bool {
	switch c {
	case storev1.ErrorCode_ERROR_CODE_INVALID, storev1.ErrorCode_ERROR_CODE_TOO_LARGE, storev1.ErrorCode_ERROR_CODE_UNKNOWN_COMMAND:
		return true
	}
	return false
}

func encodeResult(r *storev1.Result) ([]byte, error) {
	b, err := marshalOpts.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("store: encode result: %w", err)
	}
	return b, nil
}

// applyOp applies a decoded command. Refusals never change state (except
// REUSE, which ends the session by design).
func applyOp(t txn, cmd *storev1.Command, lim limits) (*storev1.Result, error) {
	now := cmd.GetNowUnixNano()
	switch op := cmd.GetOp().(type) {
	case *storev1.Command_OpenSession:
		return openSession(t, now, op.OpenSession, lim)
	case *storev1.Command_RotateRefresh:
		return rotateRefresh(t, now, op.RotateRefresh, lim)
	case *storev1.Command_EndSession:
		return endSessionCmd(t, now, op.EndSession)
	case *storev1.Command_EndUserSessions:
		return endUserSessions(t, now, op.EndUserSessions)
	case *storev1.Command_RevokeToken:
		return revokeToken(t, now, op.RevokeToken, lim)
	case *storev1.Command_PutSigningKey:
		return putSigningKey(t, op.PutSigningKey, lim)
	case *storev1.Command_PutUser:
		return putUser(t, op.PutUser, lim)
	case *storev1.Command_Purge:
		return purge(t, now, op.Purge)
	case *storev1.Command_BulkLoad:
		return bulkLoad(t, now, op.BulkLoad, lim)
	case *storev1.Command_PutOperatorToken:
		return putOperatorToken(t, now, op.PutOperatorToken)
	case *storev1.Command_DeleteOperatorToken:
		return deleteOperatorToken(t, now, op.DeleteOperatorToken)
	case *storev1.Command_PutOidcClient:
		return putOIDCClient(t, now, op.PutOidcClient)
	case *storev1.Command_DeleteOidcClient:
		return deleteOIDCClient(t, op.DeleteOidcClient)
	case *storev1.Command_RecordLoginFailure:
		return recordLoginFailure(t, now, op.RecordLoginFailure)
	case *storev1.Command_ClearLoginFailures:
		return clearLoginFailures(t, op.ClearLoginFailures)
	case *storev1.Command_DeleteUser:
		return deleteUserCmd(t, op.DeleteUser)
	case *storev1.Command_PutAuthCode:
		return putAuthCode(t, now, op.PutAuthCode, lim)
	case *storev1.Command_RedeemAuthCode:
		return redeemAuthCode(t, now, op.RedeemAuthCode, lim)
	case *storev1.Command_MarkOnce:
		return markOnce(t, now, op.MarkOnce)
	case *storev1.Command_ClaimAlert:
		return claimAlert(t, now, op.ClaimAlert)
	case *storev1.Command_PutUpstreamLink:
		return putUpstreamLinkCmd(t, op.PutUpstreamLink)
	case *storev1.Command_ConsumeUpstreamState:
		return consumeUpstreamState(t, now, op.ConsumeUpstreamState)
	default:
		return refuse(storev1.ErrorCode_ERROR_CODE_UNKNOWN_COMMAND, "unknown command type"), nil
	}
}

func validID(what, s string) *storev1.Result {
	if s == "" {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "%s is empty", what)
	}
	if len(s) > maxIDLen {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "%s longer than %d bytes", what, maxIDLen)
	}
	return nil
}

func tooLarge(what string, m proto.Message, lim limits) *storev1.Result {
	if n := proto.Size(m); n > lim.maxRecordSize {
		return refuse(storev1.ErrorCode_ERROR_CODE_TOO_LARGE, "%s record of %d bytes exceeds %d", what, n, lim.maxRecordSize)
	}
	return nil
}

func validPlatform(p storev1.Platform) bool {
	return p > storev1.Platform_PLATFORM_UNSPECIFIED && p <= storev1.Platform_PLATFORM_OTHER
}

func validReason(r storev1.EndReason) bool {
	return r > storev1.EndReason_END_REASON_UNSPECIFIED && r <= storev1.EndReason_END_REASON_UPSTREAM_REVOKED ||
		r == storev1.EndReason_END_REASON_CODE_REUSE || r == storev1.EndReason_END_REASON_SSO_ENDED
}

// isLive reports whether s exists, has not ended and has not expired at now.
func isLive(s *storev1.Session, now int64) bool {
	return s != nil && s.GetEndedUnixNano() == 0 && sessionExpiry(s) > now
}

// openSession implements OpenSession. Validation (refusal INVALID):
// session.id, user_id, device_id non-empty (<= 255 bytes); platform set;
// 0 < created <= idle_expires <= absolute_expires; idle_expires > now; ended
// fields zero; the session id unused. refresh.id_hash is 32 bytes and
// unused; refresh.expires > now. family_id defaults to the session id; the
// token's identity fields (session, family, user, generation 1) are set by
// the rule, issued defaults to now, and its expiry is clamped to the
// session's absolute expiry.
func openSession(t txn, now int64, op *storev1.OpenSession, lim limits) (*storev1.Result, error) {
	s, r := op.GetSession(), op.GetRefresh()
	if s == nil || r == nil {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "session and refresh are required"), nil
	}
	if res := tooLarge("session", s, lim); res != nil {
		return res, nil
	}
	if res := tooLarge("refresh token", r, lim); res != nil {
		return res, nil
	}
	for _, f := range []struct{ what, v string }{{"session.id", s.GetId()}, {"session.user_id", s.GetUserId()}, {"session.device_id", s.GetDeviceId()}} {
		if res := validID(f.what, f.v); res != nil {
			return res, nil
		}
	}
	if len(s.GetFamilyId()) > maxIDLen {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "session.family_id longer than %d bytes", maxIDLen), nil
	}
	if !validPlatform(s.GetPlatform()) {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "session.platform %v is invalid", s.GetPlatform()), nil
	}
	c, idle, abs := s.GetCreatedUnixNano(), s.GetIdleExpiresUnixNano(), s.GetAbsoluteExpiresUnixNano()
	if c <= 0 || c > idle || idle > abs {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "session times must satisfy 0 < created <= idle_expires <= absolute_expires"), nil
	}
	if idle <= now {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "session already expired"), nil
	}
	if s.GetEndedUnixNano() != 0 || s.GetEndReason() != storev1.EndReason_END_REASON_UNSPECIFIED || s.GetEndedBySessionId() != "" {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "a new session must not be ended"), nil
	}
	if len(r.GetIdHash()) != 32 {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "refresh.id_hash must be 32 bytes"), nil
	}
	if r.GetExpiresUnixNano() <= now {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "refresh token already expired"), nil
	}
	if old, err := t.session(s.GetId()); err != nil || old != nil {
		if err != nil {
			return nil, err
		}
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "session id already used"), nil
	}
	// A login authenticated before a user cut-off (logout everywhere, an
	// account change) reaches the log after it: the credentials it checked
	// may be the ones the change revoked, so it opens nothing.
	if cut, err := t.cutoff(s.GetUserId()); err != nil {
		return nil, err
	} else if cut != nil && cut.GetExpiresUnixNano() > now && cut.GetNotBeforeUnixNano() > c {
		return refuse(storev1.ErrorCode_ERROR_CODE_ENDED, "the user's sessions were ended (%s) after this login was authenticated; log in again",
			strings.ToLower(strings.TrimPrefix(cut.GetReason().String(), "END_REASON_"))), nil
	}
	if old, err := t.refresh(r.GetIdHash()); err != nil || old != nil {
		if err != nil {
			return nil, err
		}
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "refresh token id already used"), nil
	}

	s = proto.CloneOf(s)
	r = proto.CloneOf(r)
	res := &storev1.Result{}
	// Browser SSO sessions and client sessions of the OpenID Provider
	// (oidc.go) do not hold the platform's live slot.
	slotted := !unslotted(s)
	liveID := ""
	if slotted {
		var err error
		if liveID, err = t.liveSessionID(s.GetUserId(), s.GetPlatform()); err != nil {
			return nil, err
		}
	}
	if liveID != "" {
		cur, err := t.session(liveID)
		if err != nil {
			return nil, err
		}
		if isLive(cur, now) {
			reason := storev1.EndReason_END_REASON_REPLACED
			if cur.GetDeviceId() != s.GetDeviceId() {
				if !op.GetForce() {
					return &storev1.Result{Code: storev1.ErrorCode_ERROR_CODE_CONFLICT, Message: "another device holds the platform's live session", Session: cur}, nil
				}
				reason = storev1.EndReason_END_REASON_FORCED_OUT
			}
			if err := endSession(t, cur, now, reason, s.GetId(), false); err != nil {
				return nil, err
			}
			// This login rewrites the user's keys anyway (the slot, its
			// own mark): the replaced session leaves them now, for free,
			// rather than cost a page when it is purged.
			if err := leaveUserIndex(t, cur); err != nil {
				return nil, err
			}
			res.EndedSessionIds = append(res.EndedSessionIds, cur.GetId())
		}
	}

	if err := pruneUserIndex(t, s.GetUserId(), now); err != nil {
		return nil, err
	}

	if s.GetFamilyId() == "" {
		s.FamilyId = s.GetId()
	}
	if s.GetLastRefreshedUnixNano() == 0 {
		s.LastRefreshedUnixNano = c
	}
	s.RefreshGeneration = 1
	r.SessionId, r.FamilyId, r.UserId, r.Generation = s.GetId(), s.GetFamilyId(), s.GetUserId(), 1
	r.UsedUnixNano, r.ReplacedByHash = 0, nil
	if r.GetIssuedUnixNano() == 0 {
		r.IssuedUnixNano = now
	}
	r.ExpiresUnixNano = min(r.GetExpiresUnixNano(), abs)

	if err := t.putSession(s); err != nil {
		return nil, err
	}
	if slotted {
		if err := t.setLiveSession(s.GetUserId(), s.GetPlatform(), s.GetId()); err != nil {
			return nil, err
		}
	}
	if err := t.addUserSession(s.GetUserId(), s.GetId()); err != nil {
		return nil, err
	}
	if err := t.putRefresh(r); err != nil {
		return nil, err
	}
	res.Session, res.Refresh = s, r
	return res, nil
}

// endSession ends the live session s at now: it records the reason and
// drops the session from the live and by-user indexes; with deleteTokens
// (refresh reuse) it also deletes the session's refresh tokens. Otherwise
// the tokens stay as they are until their expiry, so that a later refresh
// is told ENDED (with the reason) rather than NOT_FOUND: every reader of a
// refresh token looks at its session first (RotateRefresh answers ENDED
// for an ended session whether the token was spent or not, and
// authsvc's CheckRefresh refuses either), so marking them spent as well
// would cost a random page per token and tell nobody anything. The
// session record itself stays until its original expiry.
func endSession(t txn, s *storev1.Session, now int64, reason storev1.EndReason, by string, deleteTokens bool) error {
	s.EndedUnixNano, s.EndReason, s.EndedBySessionId = now, reason, by
	if err := t.putSession(s); err != nil {
		return err
	}
	// The session's entries in sessions_by_user (its slot, its mark) stay
	// (layout 4): every reader skips a session that is not live. A caller
	// that rewrites the user's keys anyway removes them (leaveUserIndex);
	// otherwise Purge does, in its large batches, instead of each logout
	// and revocation writing a page of the user's keys at a random place.
	if !deleteTokens {
		return nil
	}
	hashes, err := t.sessionTokenHashes(s.GetId())
	if err != nil {
		return err
	}
	for _, h := range hashes {
		if err := t.deleteRefresh(h); err != nil {
			return err
		}
	}
	return nil
}

// leaveUserIndex removes s's entries from sessions_by_user: its slot if
// it still holds it, and its mark.
func leaveUserIndex(t txn, s *storev1.Session) error {
	live, err := t.liveSessionID(s.GetUserId(), s.GetPlatform())
	if err != nil {
		return err
	}
	if live == s.GetId() {
		if err := t.deleteLiveSession(s.GetUserId(), s.GetPlatform()); err != nil {
			return err
		}
	}
	return t.removeUserSession(s.GetUserId(), s.GetId())
}

// maxPruneScan bounds how many of a user's marks a login looks at.
const maxPruneScan = 64

// pruneUserIndex removes from sessions_by_user the entries of the user's
// sessions that are not live at now, among the first maxPruneScan marks
// (the oldest sessions: ids are time-ordered). A login writes the user's
// keys anyway; without this, a user who logs in and out in a loop would
// keep a mark per ended session until each is purged (two weeks by
// default), and every command that ends the user's sessions would read
// them all.
func pruneUserIndex(t txn, userID string, now int64) error {
	ids, err := t.userSessionIDs(userID, maxPruneScan)
	if err != nil {
		return err
	}
	for _, id := range ids {
		s, err := t.session(id)
		if err != nil {
			return err
		}
		switch {
		case s == nil:
			err = t.removeUserSession(userID, id)
		case !isLive(s, now):
			err = leaveUserIndex(t, s)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// rotateRefresh implements RotateRefresh; see the package DESIGN.md.
func rotateRefresh(t txn, now int64, op *storev1.RotateRefresh, lim limits) (*storev1.Result, error) {
	if len(op.GetOldIdHash()) != 32 {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "old_id_hash must be 32 bytes"), nil
	}
	if op.GetGraceNanos() < 0 {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "grace_nanos is negative"), nil
	}
	next := op.GetNext()
	if next == nil || len(next.GetIdHash()) != 32 {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "next.id_hash must be 32 bytes"), nil
	}
	if res := tooLarge("refresh token", next, lim); res != nil {
		return res, nil
	}
	tok, err := t.refresh(op.GetOldIdHash())
	if err != nil {
		return nil, err
	}
	if tok == nil || tok.GetExpiresUnixNano() <= now {
		return refuse(storev1.ErrorCode_ERROR_CODE_NOT_FOUND, "refresh token unknown or expired"), nil
	}
	s, err := t.session(tok.GetSessionId())
	if err != nil {
		return nil, err
	}
	if !isLive(s, now) {
		res := refuse(storev1.ErrorCode_ERROR_CODE_ENDED, "session ended or expired")
		if s != nil && sessionExpiry(s) > now {
			res.Session = s
		}
		return res, nil
	}
	if RefreshSpent(tok, s) {
		// The successor and when tok was spent: recorded on tok by a
		// rotation of layout 2, on the session by one of layout 3 (the
		// session's last rotation, if tok is the generation before it).
		succHash, spentAt := tok.GetReplacedByHash(), tok.GetUsedUnixNano()
		if spentAt == 0 && tok.GetGeneration()+1 == s.GetRefreshGeneration() {
			succHash, spentAt = s.GetCurrentRefreshIdHash(), s.GetLastRefreshedUnixNano()
		}
		var succ *storev1.RefreshToken
		if len(succHash) == 32 {
			if succ, err = t.refresh(succHash); err != nil {
				return nil, err
			}
		}
		if succ != nil && !RefreshSpent(succ, s) && succ.GetSessionId() == s.GetId() &&
			succ.GetGeneration() == s.GetRefreshGeneration() && succ.GetExpiresUnixNano() > now &&
			now-spentAt <= op.GetGraceNanos() {
			return &storev1.Result{Session: s, Refresh: succ, GraceRetry: true}, nil
		}
		if err := endSession(t, s, now, storev1.EndReason_END_REASON_REFRESH_REUSE, "", true); err != nil {
			return nil, err
		}
		return &storev1.Result{Code: storev1.ErrorCode_ERROR_CODE_REUSE, Message: "refresh token reused; session ended",
			Session: s, EndedSessionIds: []string{s.GetId()}}, nil
	}
	if next.GetExpiresUnixNano() <= now {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "next token already expired"), nil
	}
	if op.GetIdleExpiresUnixNano() <= now {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "idle_expires_unix_nano must be after now"), nil
	}
	if other, err := t.refresh(next.GetIdHash()); err != nil || other != nil {
		if err != nil {
			return nil, err
		}
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "next token id already used"), nil
	}

	n := proto.CloneOf(next)
	n.SessionId, n.FamilyId, n.UserId = s.GetId(), s.GetFamilyId(), s.GetUserId()
	n.Generation = tok.GetGeneration() + 1
	n.UsedUnixNano, n.ReplacedByHash = 0, nil
	if n.GetIssuedUnixNano() == 0 {
		n.IssuedUnixNano = now
	}
	n.ExpiresUnixNano = min(n.GetExpiresUnixNano(), s.GetAbsoluteExpiresUnixNano())

	// tok stays as it is: its generation, now below the session's, marks
	// it spent (layout 3).
	if err := t.putRefresh(n); err != nil {
		return nil, err
	}
	s.RefreshGeneration = n.GetGeneration()
	s.CurrentRefreshIdHash = n.GetIdHash()
	s.LastRefreshedUnixNano = now
	s.IdleExpiresUnixNano = min(op.GetIdleExpiresUnixNano(), s.GetAbsoluteExpiresUnixNano())
	if err := t.putSession(s); err != nil {
		return nil, err
	}
	return &storev1.Result{Session: s, Refresh: n}, nil
}

// RefreshSpent reports whether rotation has replaced refresh token tok of
// session s: marked by a rotation of layout 2, or of a generation before
// the session's current one (layout 3 leaves a spent token unchanged).
func RefreshSpent(tok *storev1.RefreshToken, s *storev1.Session) bool {
	return tok.GetUsedUnixNano() != 0 || tok.GetGeneration() < s.GetRefreshGeneration()
}

// endSessionCmd implements EndSession: NOT_FOUND for an unknown or expired
// session, ENDED (with the session) if it has already ended.
func endSessionCmd(t txn, now int64, op *storev1.EndSession) (*storev1.Result, error) {
	if res := validID("session_id", op.GetSessionId()); res != nil {
		return res, nil
	}
	if !validReason(op.GetReason()) {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "reason %v is invalid", op.GetReason()), nil
	}
	s, err := t.session(op.GetSessionId())
	if err != nil {
		return nil, err
	}
	if s == nil || sessionExpiry(s) <= now {
		return refuse(storev1.ErrorCode_ERROR_CODE_NOT_FOUND, "session not found"), nil
	}
	if s.GetEndedUnixNano() != 0 {
		res := refuse(storev1.ErrorCode_ERROR_CODE_ENDED, "session already ended")
		res.Session = s
		return res, nil
	}
	if err := endSession(t, s, now, op.GetReason(), "", false); err != nil {
		return nil, err
	}
	ended, err := endChildSessions(t, s, now)
	if err != nil {
		return nil, err
	}
	return &storev1.Result{Session: s, EndedSessionIds: append([]string{s.GetId()}, ended...)}, nil
}

// endUserSessions implements EndUserSessions: ends every live session of
// the user (in session-id order) and sets the user's cut-off to
// not_before = max(old, now), expires = max(old, cutoff_expires).
func endUserSessions(t txn, now int64, op *storev1.EndUserSessions) (*storev1.Result, error) {
	if res := validID("user_id", op.GetUserId()); res != nil {
		return res, nil
	}
	if !validReason(op.GetReason()) {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "reason %v is invalid", op.GetReason()), nil
	}
	if op.GetCutoffExpiresUnixNano() <= now {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "cutoff_expires_unix_nano must be after now"), nil
	}
	ids, err := t.userSessionIDs(op.GetUserId(), 0)
	if err != nil {
		return nil, err
	}
	res := &storev1.Result{}
	for _, id := range ids {
		s, err := t.session(id)
		if err != nil {
			return nil, err
		}
		if !isLive(s, now) {
			continue
		}
		if err := endSession(t, s, now, op.GetReason(), "", false); err != nil {
			return nil, err
		}
		// The user's keys sit together: one page for all of them now,
		// where each purge later would write it again.
		if err := leaveUserIndex(t, s); err != nil {
			return nil, err
		}
		res.EndedSessionIds = append(res.EndedSessionIds, id)
	}
	c := &storev1.UserCutoff{UserId: op.GetUserId(), NotBeforeUnixNano: now, ExpiresUnixNano: op.GetCutoffExpiresUnixNano(), Reason: op.GetReason()}
	old, err := t.cutoff(op.GetUserId())
	if err != nil {
		return nil, err
	}
	if old != nil && old.GetExpiresUnixNano() > now {
		c.NotBeforeUnixNano = max(c.GetNotBeforeUnixNano(), old.GetNotBeforeUnixNano())
		c.ExpiresUnixNano = max(c.GetExpiresUnixNano(), old.GetExpiresUnixNano())
	}
	if err := t.putCutoff(c); err != nil {
		return nil, err
	}
	return res, nil
}

// revokeToken implements RevokeToken: jti non-empty, expires > 0;
// revoked_unix_nano defaults to now. An existing revocation is replaced but
// its expiry never shrinks.
func revokeToken(t txn, now int64, op *storev1.RevokeToken, lim limits) (*storev1.Result, error) {
	r := op.GetRevocation()
	if r == nil {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "revocation is required"), nil
	}
	if res := tooLarge("revocation", r, lim); res != nil {
		return res, nil
	}
	if res := validID("revocation.jti", r.GetJti()); res != nil {
		return res, nil
	}
	if r.GetExpiresUnixNano() <= 0 {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "revocation.expires_unix_nano must be positive"), nil
	}
	r = proto.CloneOf(r)
	if r.GetRevokedUnixNano() == 0 {
		r.RevokedUnixNano = now
	}
	old, err := t.revocation(r.GetJti())
	if err != nil {
		return nil, err
	}
	if old != nil {
		r.ExpiresUnixNano = max(r.GetExpiresUnixNano(), old.GetExpiresUnixNano())
	}
	if err := t.putRevocation(r); err != nil {
		return nil, err
	}
	return &storev1.Result{}, nil
}

// putSigningKey implements PutSigningKey: kid non-empty, expires > 0;
// creates or replaces.
func putSigningKey(t txn, op *storev1.PutSigningKey, lim limits) (*storev1.Result, error) {
	k := op.GetKey()
	if k == nil {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "key is required"), nil
	}
	if res := tooLarge("signing key", k, lim); res != nil {
		return res, nil
	}
	if res := validID("key.kid", k.GetKid()); res != nil {
		return res, nil
	}
	if k.GetExpiresUnixNano() <= 0 {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "key.expires_unix_nano must be positive"), nil
	}
	if err := t.putSigningKey(k); err != nil {
		return nil, err
	}
	return &storev1.Result{}, nil
}

// putUser implements PutUser: id and email_key non-empty; email_key owned by
// another id -> CONFLICT; a changed email_key releases the old one.
func putUser(t txn, op *storev1.PutUser, lim limits) (*storev1.Result, error) {
	u := op.GetUser()
	if u == nil {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "user is required"), nil
	}
	if res := tooLarge("user", u, lim); res != nil {
		return res, nil
	}
	if res := validID("user.id", u.GetId()); res != nil {
		return res, nil
	}
	if res := validID("user.email_key", u.GetEmailKey()); res != nil {
		return res, nil
	}
	owner, err := t.userIDByEmail(u.GetEmailKey())
	if err != nil {
		return nil, err
	}
	if owner != "" && owner != u.GetId() {
		return refuse(storev1.ErrorCode_ERROR_CODE_CONFLICT, "email_key belongs to another user"), nil
	}
	old, err := t.user(u.GetId())
	if err != nil {
		return nil, err
	}
	if old != nil && old.GetEmailKey() != u.GetEmailKey() {
		if err := t.deleteEmail(old.GetEmailKey()); err != nil {
			return nil, err
		}
	}
	if err := t.putUser(u); err != nil {
		return nil, err
	}
	if err := t.setEmail(u.GetEmailKey(), u.GetId()); err != nil {
		return nil, err
	}
	return &storev1.Result{User: u}, nil
}

// deleteUserCmd implements DeleteUser: the user record and its email index
// entry go; NOT_FOUND when there is no such user. Its sessions are ended by
// the EndUserSessions the auth service proposes with it.
func deleteUserCmd(t txn, op *storev1.DeleteUser) (*storev1.Result, error) {
	u, err := t.user(op.GetUserId())
	if err != nil {
		return nil, err
	}
	if u == nil {
		return refuse(storev1.ErrorCode_ERROR_CODE_NOT_FOUND, "no such user"), nil
	}
	if owner, err := t.userIDByEmail(u.GetEmailKey()); err != nil {
		return nil, err
	} else if owner == u.GetId() {
		if err := t.deleteEmail(u.GetEmailKey()); err != nil {
			return nil, err
		}
	}
	if err := t.deleteUser(u.GetId()); err != nil {
		return nil, err
	}
	return &storev1.Result{}, nil
}

// purge implements Purge: deletes up to limit (1..MaxPurgeLimit) records
// whose expiry <= now, in expiry-index order. A purged live session also
// leaves the live and by-user indexes. more reports expired records left.
func purge(t txn, now int64, op *storev1.Purge) (*storev1.Result, error) {
	limit := int(op.GetLimit())
	if limit <= 0 || limit > MaxPurgeLimit {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "purge limit must be 1..%d", MaxPurgeLimit), nil
	}
	entries, err := t.expired(now, limit+1)
	if err != nil {
		return nil, err
	}
	res := &storev1.Result{}
	if len(entries) > limit {
		res.More = true
		entries = entries[:limit]
	}
	for _, e := range entries {
		if err := purgeOne(t, e); err != nil {
			return nil, err
		}
		res.Purged++
	}
	return res, nil
}

func purgeOne(t txn, e expiryEntry) error {
	key := string(e.key)
	var err error
	switch e.kind {
	case kindSession:
		var s *storev1.Session
		if s, err = t.session(key); err == nil && s != nil {
			if s.GetEndedUnixNano() == 0 {
				t.noteExpired(s)
			}
			// Ended or not, the session leaves sessions_by_user now (one
			// that ended on layout 3, by a login replacing it or a logout
			// everywhere has left it already).
			err = leaveUserIndex(t, s)
			if err == nil {
				err = t.deleteSession(key)
			}
		}
	case kindRefresh:
		err = t.deleteRefresh(e.key)
	case kindRevocation:
		err = t.deleteRevocation(key)
	case kindCutoff:
		err = t.deleteCutoff(key)
	case kindSigningKey:
		err = t.deleteSigningKey(key)
	case kindRequest:
		err = t.deleteRequest(key)
	case kindOperatorToken:
		err = t.deleteOperatorToken(key)
	case kindLoginFailures:
		err = t.deleteLoginFailures(e.key)
	case kindAuthCode:
		err = t.deleteAuthCode(e.key)
	case kindOnceMark:
		err = t.deleteOnceMark(e.key)
	case kindAlertClaim:
		err = t.deleteAlertClaim(e.key)
	case kindUpstreamState:
		err = t.deleteUpstreamState(e.key)
	}
	if err != nil {
		return err
	}
	// Whatever the record said, the index entry itself goes (a no-op when
	// the delete above already removed it).
	return t.deleteExpiryEntry(e)
}
