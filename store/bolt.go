package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// Bucket names. See DESIGN.md.
var (
	bucketMeta     = []byte("meta")
	bucketSessions = []byte("sessions")
	bucketUserSess = []byte("sessions_by_user")
	bucketRefresh  = []byte("refresh")
	bucketRevoked  = []byte("revocations")
	bucketCutoffs  = []byte("cutoffs")
	bucketKeys     = []byte("signing_keys")
	bucketUsers    = []byte("users")
	bucketEmails   = []byte("users_by_email")
	bucketRequests = []byte("requests")
	bucketExpiry   = []byte("expiry")
	// bucketOperatorTokens: operator token id -> OperatorToken (operators.go).
	bucketOperatorTokens = []byte("operator_tokens")
	// bucketLoginFailures: throttle key hash -> LoginFailures (throttle.go).
	bucketLoginFailures = []byte("login_failures")
	// bucketAuthCodes: code hash -> AuthCode (oidc.go).
	bucketAuthCodes = []byte("oidc_auth_codes")
	// bucketOnceMarks: key -> MarkOnce (oidc.go).
	bucketOnceMarks = []byte("once_marks")
	// bucketAlertClaims: SHA-256 of an alert's event key -> AlertClaim (alerts.go).
	bucketAlertClaims = []byte("alert_claims")
	// bucketUpstreamLinks: lp(provider) | subject -> UpstreamLink (upstream.go).
	bucketUpstreamLinks = []byte("upstream_links")
	// bucketUpstreamStates: SHA-256 of a spent state -> UpstreamState (upstream.go).
	bucketUpstreamStates = []byte("upstream_states")
	// bucketOIDCClients: client_id -> OIDCClient (oidcclients.go).
	bucketOIDCClients = []byte("oidc_clients")

	allBuckets = [][]byte{
		bucketMeta, bucketSessions, bucketUserSess,
		bucketRefresh, bucketRevoked, bucketCutoffs, bucketKeys, bucketUsers,
		bucketEmails, bucketRequests, bucketExpiry, bucketOperatorTokens, bucketLoginFailures,
		bucketAuthCodes, bucketOnceMarks,
		bucketAlertClaims,
		bucketUpstreamLinks, bucketUpstreamStates,
		bucketOIDCClients,
	}

	metaApplied = []byte("applied") // value: be64 index | be64 term
	metaVersion = []byte("version") // value: be32 layout version
)

// Indexes into allBuckets (and boltTxn.b).
const (
	iMeta = iota
	iSessions
	iUserSess
	iRefresh
	iRevoked
	iCutoffs
	iKeys
	iUsers
	iEmails
	iRequests
	iExpiry
	iOperatorTokens
	iLoginFailures
	iAuthCodes
	iOnceMarks
	iAlertClaims
	iUpstreamLinks
	iUpstreamStates
	iOIDCClients
	numBuckets // keep last
)

// layoutVersion is the bucket layout version written in the meta bucket.
// Version 2 keeps a user's live slots in sessions_by_user, beside the
// user's sessions, and a session's token list in sessions, beside the
// session (version 1 had them in buckets of their own, sessions_live and
// tokens_by_session): opening or ending a session then rewrites one page of
// the user's keys and one of the session's instead of four at unrelated
// places. Version 3 changes no bucket: a rotation no longer rewrites the
// spent refresh token (marking it used cost a page at a random place per
// rotation); a token is spent when its generation is below its session's,
// and the session names its current token (current_refresh_id_hash).
// Tokens version 2 marked used keep their marks, which still decide.
// Version 4 changes no bucket either: a session that ends on its own
// keeps its slot and its mark in sessions_by_user until a later login of
// its user or its purge removes them (removing them at once cost each
// logout and revocation a page at a random place); every reader skips a
// session that is not live, as it skipped expired ones already.
// Open migrates a version 1 file (migrateLayout) and stamps an older file
// with the current version; a binary of an older version refuses a newer
// file (a version 2 binary would take a version 3 spent token for an
// unspent one, a version 3 binary an ended session's slot for a live
// one's), so upgrade every node before it receives a snapshot of one.
const layoutVersion = 4

// Expiry-index kinds: the byte after the big-endian expiry time.
const (
	kindSession    byte = 1
	kindRefresh    byte = 2
	kindRevocation byte = 3
	kindCutoff     byte = 4
	kindSigningKey byte = 5
	kindRequest    byte = 6
	// kindOperatorToken: an operator token's expiry (operators.go).
	kindOperatorToken byte = 7
	// kindLoginFailures: a throttle count's expiry (throttle.go).
	kindLoginFailures byte = 8
	// kindAuthCode and kindOnceMark: OpenID Provider records (oidc.go).
	kindAuthCode byte = 50
	kindOnceMark byte = 51
	// kindAlertClaim: an alert claim's expiry (alerts.go).
	kindAlertClaim byte = 9
	// kindUpstreamState: a spent upstream-login state's expiry (upstream.go;
	// 60, in the upstream-login range of command numbers).
	kindUpstreamState byte = 60
)

var marshalOpts = proto.MarshalOptions{Deterministic: true}

// lp returns byte(len(s)) | s | suffix: a length-prefixed composite key, so a
// prefix scan for one id never matches a longer id. Callers validated that
// len(s) <= maxIDLen (255).
func lp(s string, suffix []byte) []byte {
	k := make([]byte, 0, 1+len(s)+len(suffix))
	k = append(k, byte(len(s)))
	k = append(k, s...)
	return append(k, suffix...)
}

func expiryKey(at int64, kind byte, key []byte) []byte {
	k := make([]byte, 9+len(key))
	binary.BigEndian.PutUint64(k, uint64(at))
	k[8] = kind
	copy(k[9:], key)
	return k
}

// sessionExpiry is when a session stops existing for reads and may be purged.
func sessionExpiry(s *storev1.Session) int64 {
	return min(s.GetIdleExpiresUnixNano(), s.GetAbsoluteExpiresUnixNano())
}

// boltTxn implements txn on a bbolt read-write transaction. It keeps the
// expiry index and the tokens-by-session index in step with the records.
type boltTxn struct {
	tx *bolt.Tx
	b  [numBuckets]*bolt.Bucket
	// index is the log index of the entry being applied; changes collects
	// the revocations the batch applied (see note).
	index   uint64
	changes []Change
	// proposed is the now_unix_nano of the command being applied.
	proposed int64
	// ops are the batch's changes to the in-memory check index.
	ops []indexOp
	// operators is set when the batch wrote an operator token.
	operators bool
}

func newBoltTxn(tx *bolt.Tx) (*boltTxn, error) {
	t := &boltTxn{tx: tx}
	for i, name := range allBuckets {
		b := tx.Bucket(name)
		if b == nil {
			return nil, fmt.Errorf("store: bucket %q missing", name)
		}
		if appendMostly[i] {
			b.FillPercent = appendFill
		}
		t.b[i] = b
	}
	return t, nil
}

// appendFill is the split threshold of the buckets whose keys mostly grow
// (appendMostly): a page that splits keeps this much, instead of bbolt's
// default half, since nothing will be inserted before its last key.
const appendFill = 0.9

// appendMostly marks the buckets whose new keys sort after the existing
// ones: time-ordered session ids (authsvc's sortableID; a session's tokens
// follow it) and request ids, and the expiry index.
var appendMostly = func() (m [numBuckets]bool) {
	for _, i := range []int{iSessions, iRequests, iExpiry} {
		m[i] = true
	}
	return m
}()

func (t *boltTxn) getMsg(bucket int, key []byte, m proto.Message) (bool, error) {
	v := t.b[bucket].Get(key)
	if v == nil {
		return false, nil
	}
	if err := proto.Unmarshal(v, m); err != nil {
		return false, fmt.Errorf("store: decode %s record: %w", allBuckets[bucket], err)
	}
	return true, nil
}

func (t *boltTxn) putMsg(bucket int, key []byte, m proto.Message) error {
	v, err := marshalOpts.Marshal(m)
	if err != nil {
		return fmt.Errorf("store: encode %s record: %w", allBuckets[bucket], err)
	}
	return t.b[bucket].Put(key, v)
}

func (t *boltTxn) moveExpiry(kind byte, key []byte, oldAt, newAt int64, hadOld bool) error {
	if hadOld && oldAt == newAt {
		return nil
	}
	if hadOld {
		if err := t.b[iExpiry].Delete(expiryKey(oldAt, kind, key)); err != nil {
			return err
		}
	}
	return t.b[iExpiry].Put(expiryKey(newAt, kind, key), nil)
}

func (t *boltTxn) dropExpiry(kind byte, key []byte, at int64) error {
	return t.b[iExpiry].Delete(expiryKey(at, kind, key))
}

// --- sessions ---

func (t *boltTxn) session(id string) (*storev1.Session, error) {
	s := new(storev1.Session)
	ok, err := t.getMsg(iSessions, []byte(id), s)
	if !ok {
		return nil, err
	}
	return s, nil
}

func (t *boltTxn) putSession(s *storev1.Session) error {
	key := []byte(s.GetId())
	old, err := t.session(s.GetId())
	if err != nil {
		return err
	}
	if err := t.putMsg(iSessions, key, s); err != nil {
		return err
	}
	if s.GetEndedUnixNano() != 0 && old.GetEndedUnixNano() == 0 {
		t.note(sessionEndChange(s))
	}
	t.indexSession(s)
	var oldAt int64
	if old != nil {
		oldAt = sessionExpiry(old)
	}
	return t.moveExpiry(kindSession, key, oldAt, sessionExpiry(s), old != nil)
}

func (t *boltTxn) deleteSession(id string) error {
	old, err := t.session(id)
	if err != nil || old == nil {
		return err
	}
	if err := t.b[iSessions].Delete([]byte(id)); err != nil {
		return err
	}
	t.indexDelete(iSessions, id)
	return t.dropExpiry(kindSession, []byte(id), sessionExpiry(old))
}

// A user's keys in sessions_by_user: lp(user) | 0x00 | platform holds the
// id of the user's latest session on that platform (its slot), and
// lp(user) | session id (never starting with 0x00: ids are printable) marks
// each of the user's sessions, until it is purged at the latest. The
// slots sort first.
// Since layout 4 a slot or a mark may name a session that ended: readers
// look at the session and skip it unless it is live.
const liveSlotMark = 0x00

func liveKey(userID string, p storev1.Platform) []byte {
	return lp(userID, []byte{liveSlotMark, byte(p)})
}

// userSessionKey reports whether k, a key of sessions_by_user after the
// user's prefix, names a session (rest) rather than a live slot.
func userSessionKey(rest []byte) bool { return len(rest) > 0 && rest[0] != liveSlotMark }

func (t *boltTxn) liveSessionID(userID string, p storev1.Platform) (string, error) {
	v := t.b[iUserSess].Get(liveKey(userID, p))
	return string(v), nil
}

func (t *boltTxn) setLiveSession(userID string, p storev1.Platform, id string) error {
	return t.b[iUserSess].Put(liveKey(userID, p), []byte(id))
}

func (t *boltTxn) deleteLiveSession(userID string, p storev1.Platform) error {
	return t.b[iUserSess].Delete(liveKey(userID, p))
}

// userSessionIDs returns the ids the user's marks name, in id order: the
// first limit of them, or all with limit <= 0.
func (t *boltTxn) userSessionIDs(userID string, limit int) ([]string, error) {
	prefix := lp(userID, nil)
	var ids []string
	c := t.b[iUserSess].Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && (limit <= 0 || len(ids) < limit); k, _ = c.Next() {
		if rest := k[len(prefix):]; userSessionKey(rest) {
			ids = append(ids, string(rest))
		}
	}
	return ids, nil
}

func (t *boltTxn) addUserSession(userID, id string) error {
	return t.b[iUserSess].Put(lp(userID, []byte(id)), nil)
}

func (t *boltTxn) removeUserSession(userID, id string) error {
	return t.b[iUserSess].Delete(lp(userID, []byte(id)))
}

// --- refresh tokens ---

// A session's refresh tokens are listed in the sessions bucket right after
// the session: session id | 0x00 | token hash (ids are printable, so such a
// key is never a session's, and sorts between the session and any longer
// id). Opening, rotating or ending a session then rewrites one page for the
// session and its token list.
const sessionTokenMark = 0x00

func sessionTokenKey(sessionID string, hash []byte) []byte {
	k := make([]byte, 0, len(sessionID)+1+len(hash))
	return append(append(append(k, sessionID...), sessionTokenMark), hash...)
}

// isSessionKey reports whether k, a key of the sessions bucket, is a
// session's (not an entry of a session's token list).
func isSessionKey(k []byte) bool { return bytes.IndexByte(k, sessionTokenMark) < 0 }

func (t *boltTxn) sessionTokenHashes(sessionID string) ([][]byte, error) {
	prefix := sessionTokenKey(sessionID, nil)
	var hs [][]byte
	c := t.b[iSessions].Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		hs = append(hs, bytes.Clone(k[len(prefix):]))
	}
	return hs, nil
}

func (t *boltTxn) refresh(hash []byte) (*storev1.RefreshToken, error) {
	r := new(storev1.RefreshToken)
	ok, err := t.getMsg(iRefresh, hash, r)
	if !ok {
		return nil, err
	}
	return r, nil
}

func (t *boltTxn) putRefresh(r *storev1.RefreshToken) error {
	old, err := t.refresh(r.GetIdHash())
	if err != nil {
		return err
	}
	if err := t.putMsg(iRefresh, r.GetIdHash(), r); err != nil {
		return err
	}
	if old == nil {
		if err := t.b[iSessions].Put(sessionTokenKey(r.GetSessionId(), r.GetIdHash()), nil); err != nil {
			return err
		}
	}
	return t.moveExpiry(kindRefresh, r.GetIdHash(), old.GetExpiresUnixNano(), r.GetExpiresUnixNano(), old != nil)
}

func (t *boltTxn) deleteRefresh(hash []byte) error {
	old, err := t.refresh(hash)
	if err != nil || old == nil {
		return err
	}
	if err := t.b[iRefresh].Delete(hash); err != nil {
		return err
	}
	if err := t.b[iSessions].Delete(sessionTokenKey(old.GetSessionId(), hash)); err != nil {
		return err
	}
	return t.dropExpiry(kindRefresh, hash, old.GetExpiresUnixNano())
}

// --- revocations, cut-offs, signing keys ---

func (t *boltTxn) revocation(jti string) (*storev1.Revocation, error) {
	r := new(storev1.Revocation)
	ok, err := t.getMsg(iRevoked, []byte(jti), r)
	if !ok {
		return nil, err
	}
	return r, nil
}

func (t *boltTxn) putRevocation(r *storev1.Revocation) error {
	old, err := t.revocation(r.GetJti())
	if err != nil {
		return err
	}
	if err := t.putMsg(iRevoked, []byte(r.GetJti()), r); err != nil {
		return err
	}
	t.note(Change{Kind: ChangeTokenRevoked, ID: r.GetJti(), ExpiresUnixNano: r.GetExpiresUnixNano(), Reason: r.GetReason()})
	t.ops = append(t.ops, indexOp{bucket: iRevoked, key: r.GetJti(), exp: r.GetExpiresUnixNano()})
	return t.moveExpiry(kindRevocation, []byte(r.GetJti()), old.GetExpiresUnixNano(), r.GetExpiresUnixNano(), old != nil)
}

func (t *boltTxn) deleteRevocation(jti string) error {
	old, err := t.revocation(jti)
	if err != nil || old == nil {
		return err
	}
	if err := t.b[iRevoked].Delete([]byte(jti)); err != nil {
		return err
	}
	t.indexDelete(iRevoked, jti)
	return t.dropExpiry(kindRevocation, []byte(jti), old.GetExpiresUnixNano())
}

func (t *boltTxn) cutoff(userID string) (*storev1.UserCutoff, error) {
	c := new(storev1.UserCutoff)
	ok, err := t.getMsg(iCutoffs, []byte(userID), c)
	if !ok {
		return nil, err
	}
	return c, nil
}

func (t *boltTxn) putCutoff(c *storev1.UserCutoff) error {
	old, err := t.cutoff(c.GetUserId())
	if err != nil {
		return err
	}
	if err := t.putMsg(iCutoffs, []byte(c.GetUserId()), c); err != nil {
		return err
	}
	t.note(Change{Kind: ChangeUserCutoff, ID: c.GetUserId(), NotBeforeUnixNano: c.GetNotBeforeUnixNano(), ExpiresUnixNano: c.GetExpiresUnixNano()})
	t.ops = append(t.ops, indexOp{bucket: iCutoffs, key: c.GetUserId(), cut: cutoffFields{c.GetNotBeforeUnixNano(), c.GetExpiresUnixNano(), c.GetReason()}})
	return t.moveExpiry(kindCutoff, []byte(c.GetUserId()), old.GetExpiresUnixNano(), c.GetExpiresUnixNano(), old != nil)
}

func (t *boltTxn) deleteCutoff(userID string) error {
	old, err := t.cutoff(userID)
	if err != nil || old == nil {
		return err
	}
	if err := t.b[iCutoffs].Delete([]byte(userID)); err != nil {
		return err
	}
	t.indexDelete(iCutoffs, userID)
	return t.dropExpiry(kindCutoff, []byte(userID), old.GetExpiresUnixNano())
}

func (t *boltTxn) signingKey(kid string) (*storev1.SigningKey, error) {
	k := new(storev1.SigningKey)
	ok, err := t.getMsg(iKeys, []byte(kid), k)
	if !ok {
		return nil, err
	}
	return k, nil
}

func (t *boltTxn) putSigningKey(k *storev1.SigningKey) error {
	old, err := t.signingKey(k.GetKid())
	if err != nil {
		return err
	}
	if err := t.putMsg(iKeys, []byte(k.GetKid()), k); err != nil {
		return err
	}
	return t.moveExpiry(kindSigningKey, []byte(k.GetKid()), old.GetExpiresUnixNano(), k.GetExpiresUnixNano(), old != nil)
}

func (t *boltTxn) deleteSigningKey(kid string) error {
	old, err := t.signingKey(kid)
	if err != nil || old == nil {
		return err
	}
	if err := t.b[iKeys].Delete([]byte(kid)); err != nil {
		return err
	}
	return t.dropExpiry(kindSigningKey, []byte(kid), old.GetExpiresUnixNano())
}

// --- users ---

func (t *boltTxn) user(id string) (*storev1.User, error) {
	u := new(storev1.User)
	ok, err := t.getMsg(iUsers, []byte(id), u)
	if !ok {
		return nil, err
	}
	return u, nil
}

func (t *boltTxn) putUser(u *storev1.User) error {
	return t.putMsg(iUsers, []byte(u.GetId()), u)
}

func (t *boltTxn) deleteUser(id string) error {
	return t.b[iUsers].Delete([]byte(id))
}

func (t *boltTxn) userIDByEmail(emailKey string) (string, error) {
	return string(t.b[iEmails].Get([]byte(emailKey))), nil
}

func (t *boltTxn) setEmail(emailKey, id string) error {
	return t.b[iEmails].Put([]byte(emailKey), []byte(id))
}

func (t *boltTxn) deleteEmail(emailKey string) error {
	return t.b[iEmails].Delete([]byte(emailKey))
}

// --- request ids ---

// request returns the stored result of request id and when it expires.
func (t *boltTxn) request(id string) (expires int64, result []byte, found bool, err error) {
	v := t.b[iRequests].Get([]byte(id))
	if v == nil {
		return 0, nil, false, nil
	}
	if len(v) < 8 {
		return 0, nil, false, fmt.Errorf("store: request record %q is %d bytes", id, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), bytes.Clone(v[8:]), true, nil
}

func (t *boltTxn) putRequest(id string, expires int64, result []byte) error {
	oldAt, _, had, err := t.request(id)
	if err != nil {
		return err
	}
	v := make([]byte, 8+len(result))
	binary.BigEndian.PutUint64(v, uint64(expires))
	copy(v[8:], result)
	if err := t.b[iRequests].Put([]byte(id), v); err != nil {
		return err
	}
	return t.moveExpiry(kindRequest, []byte(id), oldAt, expires, had)
}

func (t *boltTxn) deleteRequest(id string) error {
	at, _, had, err := t.request(id)
	if err != nil || !had {
		return err
	}
	if err := t.b[iRequests].Delete([]byte(id)); err != nil {
		return err
	}
	return t.dropExpiry(kindRequest, []byte(id), at)
}

// --- expiry index ---

// expired returns up to n entries of the expiry index with time <= now, in
// index order.
func (t *boltTxn) expired(now int64, n int) ([]expiryEntry, error) {
	var out []expiryEntry
	c := t.b[iExpiry].Cursor()
	for k, _ := c.First(); k != nil && len(out) < n; k, _ = c.Next() {
		if len(k) < 9 {
			return nil, fmt.Errorf("store: expiry index key of %d bytes", len(k))
		}
		at := int64(binary.BigEndian.Uint64(k))
		if at > now {
			break
		}
		out = append(out, expiryEntry{at: at, kind: k[8], key: bytes.Clone(k[9:])})
	}
	return out, nil
}

func (t *boltTxn) deleteExpiryEntry(e expiryEntry) error {
	return t.dropExpiry(e.kind, e.key, e.at)
}

var _ txn = (*boltTxn)(nil)
