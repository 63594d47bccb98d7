package store

import (
	"bytes"
	"crypto/subtle"
	"time"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// The OpenID Provider's records (authsvc/oidc*.go): authorization codes,
// one-time marks (client-assertion ids), and two kinds of sessions that do
// not hold a (user, platform) live slot: a browser SSO session (it carries
// browser_secret_sha256) and a client session (it carries client_id and
// parent_session_id). Ending a browser SSO session with EndSession ends its
// client sessions (END_REASON_SSO_ENDED); EndUserSessions ends them all
// anyway since they are the user's sessions.

// Bounds of the OpenID Provider's records.
const (
	// MaxAuthCodeLife bounds an authorization code's redeemable life
	// (RFC 6749 §4.1.2 recommends at most ten minutes).
	MaxAuthCodeLife int64 = 10 * 60 * 1e9
	// MaxAuthCodeRecordLife bounds how long a code's record is kept to
	// recognise a second redemption.
	MaxAuthCodeRecordLife int64 = 24 * 3600 * 1e9
	// MaxOnceMarkLife bounds a one-time mark's life.
	MaxOnceMarkLife int64 = 24 * 3600 * 1e9
	// maxRedirectURILen bounds a redirect URI.
	maxRedirectURILen = 2048
	// maxScopeLen bounds a granted scope string; maxNonceLen a nonce.
	maxScopeLen = 1024
	maxNonceLen = 512
)

// unslotted reports whether s is a browser SSO session or a client session:
// neither holds the (user, platform) live slot.
func unslotted(s *storev1.Session) bool {
	return s.GetClientId() != "" || len(s.GetBrowserSecretSha256()) != 0
}

// --- typed transaction ---

func (t *boltTxn) authCode(hash []byte) (*storev1.AuthCode, error) {
	c := new(storev1.AuthCode)
	ok, err := t.getMsg(iAuthCodes, hash, c)
	if !ok {
		return nil, err
	}
	return c, nil
}

func (t *boltTxn) putAuthCode(c *storev1.AuthCode) error {
	old, err := t.authCode(c.GetCodeHash())
	if err != nil {
		return err
	}
	if err := t.putMsg(iAuthCodes, c.GetCodeHash(), c); err != nil {
		return err
	}
	return t.moveExpiry(kindAuthCode, c.GetCodeHash(), old.GetRecordExpiresUnixNano(), c.GetRecordExpiresUnixNano(), old != nil)
}

func (t *boltTxn) deleteAuthCode(hash []byte) error {
	old, err := t.authCode(hash)
	if err != nil || old == nil {
		return err
	}
	if err := t.b[iAuthCodes].Delete(hash); err != nil {
		return err
	}
	return t.dropExpiry(kindAuthCode, hash, old.GetRecordExpiresUnixNano())
}

func (t *boltTxn) onceMark(key []byte) (*storev1.MarkOnce, error) {
	m := new(storev1.MarkOnce)
	ok, err := t.getMsg(iOnceMarks, key, m)
	if !ok {
		return nil, err
	}
	return m, nil
}

func (t *boltTxn) putOnceMark(m *storev1.MarkOnce) error {
	old, err := t.onceMark(m.GetKey())
	if err != nil {
		return err
	}
	if err := t.putMsg(iOnceMarks, m.GetKey(), m); err != nil {
		return err
	}
	return t.moveExpiry(kindOnceMark, m.GetKey(), old.GetExpiresUnixNano(), m.GetExpiresUnixNano(), old != nil)
}

func (t *boltTxn) deleteOnceMark(key []byte) error {
	old, err := t.onceMark(key)
	if err != nil || old == nil {
		return err
	}
	if err := t.b[iOnceMarks].Delete(key); err != nil {
		return err
	}
	return t.dropExpiry(kindOnceMark, key, old.GetExpiresUnixNano())
}

// --- rules ---

// putAuthCode implements PutAuthCode (its shape is checked by
// validateCommand): the code hash unused, the SSO session live and the
// user's, now < expires <= record_expires.
func putAuthCode(t txn, now int64, op *storev1.PutAuthCode, lim limits) (*storev1.Result, error) {
	c := op.GetCode()
	if res := tooLarge("authorization code", c, lim); res != nil {
		return res, nil
	}
	if c.GetExpiresUnixNano() <= now || c.GetRecordExpiresUnixNano() < c.GetExpiresUnixNano() {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "code times must satisfy now < expires <= record_expires"), nil
	}
	if old, err := t.authCode(c.GetCodeHash()); err != nil || old != nil {
		if err != nil {
			return nil, err
		}
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "code hash already used"), nil
	}
	s, err := t.session(c.GetSessionId())
	if err != nil {
		return nil, err
	}
	if !isLive(s, now) || s.GetUserId() != c.GetUserId() || len(s.GetBrowserSecretSha256()) == 0 {
		return refuse(storev1.ErrorCode_ERROR_CODE_ENDED, "the SSO session has ended"), nil
	}
	c = proto.CloneOf(c)
	c.RedeemedUnixNano, c.IssuedSessionId = 0, ""
	if c.GetIssuedUnixNano() == 0 {
		c.IssuedUnixNano = now
	}
	if err := t.putAuthCode(c); err != nil {
		return nil, err
	}
	return &storev1.Result{}, nil
}

// redeemAuthCode implements RedeemAuthCode. An unknown, expired or other
// client's code is NOT_FOUND and changes nothing; a redeemed one ends the
// session its first redemption opened (REUSE); an ended SSO session is
// ENDED. Otherwise the client session is opened with the OpenSession rules
// (its client_id, parent and user forced to the code's) and the code is
// marked redeemed.
func redeemAuthCode(t txn, now int64, op *storev1.RedeemAuthCode, lim limits) (*storev1.Result, error) {
	c, err := t.authCode(op.GetCodeHash())
	if err != nil {
		return nil, err
	}
	if c == nil || c.GetRecordExpiresUnixNano() <= now ||
		subtle.ConstantTimeCompare([]byte(c.GetClientId()), []byte(op.GetClientId())) != 1 {
		return refuse(storev1.ErrorCode_ERROR_CODE_NOT_FOUND, "authorization code unknown or expired"), nil
	}
	if c.GetRedeemedUnixNano() != 0 {
		res := &storev1.Result{Code: storev1.ErrorCode_ERROR_CODE_REUSE, Message: "authorization code used twice; the tokens it produced are revoked"}
		s, err := t.session(c.GetIssuedSessionId())
		if err != nil {
			return nil, err
		}
		if isLive(s, now) {
			if err := endSession(t, s, now, storev1.EndReason_END_REASON_CODE_REUSE, "", false); err != nil {
				return nil, err
			}
			res.Session, res.EndedSessionIds = s, []string{s.GetId()}
		}
		return res, nil
	}
	if c.GetExpiresUnixNano() <= now {
		return refuse(storev1.ErrorCode_ERROR_CODE_NOT_FOUND, "authorization code unknown or expired"), nil
	}
	parent, err := t.session(c.GetSessionId())
	if err != nil {
		return nil, err
	}
	if !isLive(parent, now) {
		return refuse(storev1.ErrorCode_ERROR_CODE_ENDED, "the SSO session has ended"), nil
	}
	open := proto.CloneOf(op.GetSession())
	if open.GetSession() == nil {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "session is required"), nil
	}
	s := open.GetSession()
	s.ClientId, s.ParentSessionId, s.UserId = c.GetClientId(), c.GetSessionId(), c.GetUserId()
	s.BrowserSecretSha256 = nil
	open.Force = false
	res, err := openSession(t, now, open, lim)
	if err != nil || res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		return res, err
	}
	c.RedeemedUnixNano, c.IssuedSessionId = now, s.GetId()
	if err := t.putAuthCode(c); err != nil {
		return nil, err
	}
	return res, nil
}

// endChildSessions ends the live client sessions issued under the browser
// SSO session parent (END_REASON_SSO_ENDED) and returns their ids.
func endChildSessions(t txn, parent *storev1.Session, now int64) ([]string, error) {
	if len(parent.GetBrowserSecretSha256()) == 0 {
		return nil, nil
	}
	ids, err := t.userSessionIDs(parent.GetUserId(), 0)
	if err != nil {
		return nil, err
	}
	var ended []string
	for _, id := range ids {
		s, err := t.session(id)
		if err != nil {
			return nil, err
		}
		if !isLive(s, now) || s.GetParentSessionId() != parent.GetId() {
			continue
		}
		if err := endSession(t, s, now, storev1.EndReason_END_REASON_SSO_ENDED, parent.GetId(), false); err != nil {
			return nil, err
		}
		ended = append(ended, id)
	}
	return ended, nil
}

// markOnce implements MarkOnce: CONFLICT when the key is marked and the
// mark is in force.
func markOnce(t txn, now int64, op *storev1.MarkOnce) (*storev1.Result, error) {
	if op.GetExpiresUnixNano() <= now {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "expires_unix_nano must be after now"), nil
	}
	old, err := t.onceMark(op.GetKey())
	if err != nil {
		return nil, err
	}
	if old != nil && old.GetExpiresUnixNano() > now {
		return refuse(storev1.ErrorCode_ERROR_CODE_CONFLICT, "already used"), nil
	}
	if err := t.putOnceMark(&storev1.MarkOnce{Key: bytes.Clone(op.GetKey()), ExpiresUnixNano: op.GetExpiresUnixNano()}); err != nil {
		return nil, err
	}
	return &storev1.Result{}, nil
}

// --- shapes ---

func (v *shape) authCode(c *storev1.AuthCode) {
	if c == nil {
		v.bad("code is required")
		return
	}
	v.hash("code.code_hash", c.GetCodeHash(), false)
	v.id("code.client_id", c.GetClientId(), false)
	v.id("code.session_id", c.GetSessionId(), false)
	v.name("code.user_id", c.GetUserId())
	v.text("code.redirect_uri", c.GetRedirectUri(), maxRedirectURILen)
	if c.GetRedirectUri() == "" {
		v.bad("code.redirect_uri is empty")
	}
	if len(c.GetCodeChallenge()) != 43 {
		v.bad("code.code_challenge: want 43 base64url characters (S256)")
	}
	v.text("code.nonce", c.GetNonce(), maxNonceLen)
	v.text("code.scope", c.GetScope(), maxScopeLen)
	v.id("code.issued_session_id", c.GetIssuedSessionId(), true)
	for _, f := range []struct {
		what string
		t    int64
	}{
		{"code.issued_unix_nano", c.GetIssuedUnixNano()}, {"code.expires_unix_nano", c.GetExpiresUnixNano()},
		{"code.record_expires_unix_nano", c.GetRecordExpiresUnixNano()}, {"code.redeemed_unix_nano", c.GetRedeemedUnixNano()},
		{"code.auth_time_unix_nano", c.GetAuthTimeUnixNano()},
	} {
		v.time(f.what, f.t)
	}
	if c.GetExpiresUnixNano()-v.now > MaxAuthCodeLife {
		v.bad("code.expires_unix_nano: at most %d minutes after now", MaxAuthCodeLife/60e9)
	}
	if c.GetRecordExpiresUnixNano()-v.now > MaxAuthCodeRecordLife {
		v.bad("code.record_expires_unix_nano: at most one day after now")
	}
}

// oidcSession checks the OpenID Provider's fields of a session.
func (v *shape) oidcSession(s *storev1.Session) {
	v.id("session.client_id", s.GetClientId(), true)
	v.id("session.parent_session_id", s.GetParentSessionId(), true)
	if b := s.GetBrowserSecretSha256(); len(b) != 0 && len(b) != 32 {
		v.bad("session.browser_secret_sha256: want 32 bytes or none")
	}
	if s.GetClientId() != "" && len(s.GetBrowserSecretSha256()) != 0 {
		v.bad("session: a client session carries no browser secret")
	}
	v.text("session.scope", s.GetScope(), maxScopeLen)
	v.time("session.auth_time_unix_nano", s.GetAuthTimeUnixNano())
}

// --- reads ---

// AuthCode returns the authorization code record with hash, or ErrNotFound
// when there is none or its record expired at now.
func (s *Store) AuthCode(hash []byte, now time.Time) (*storev1.AuthCode, error) {
	if len(hash) != 32 {
		return nil, ErrNotFound
	}
	var out *storev1.AuthCode
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAuthCodes).Get(hash)
		if v == nil {
			return ErrNotFound
		}
		c := new(storev1.AuthCode)
		if err := decode("authorization code", v, c); err != nil {
			return err
		}
		if c.GetRecordExpiresUnixNano() <= now.UnixNano() {
			return ErrNotFound
		}
		out = c
		return nil
	})
	return out, err
}
