package store

import (
	"encoding/binary"
	"math"
	"sync"

	bolt "go.etcd.io/bbolt"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// checkIndex keeps in memory the few fields an access-token check needs —
// per session its expiry, end and cut-off; per user the logout-everywhere
// cut-off; the revoked token ids — so that TokenStatus costs map lookups
// and no allocation. bbolt stays the source of truth: the index is built
// from it at open and after a restore, and changed only after a batch's
// transaction has committed, with the batch's own record writes. Its cost
// is the sessions' (see sessionIndex).
type checkIndex struct {
	mu       sync.RWMutex
	sessions sessionIndex
	cutoffs  map[string]cutoffFields
	revoked  map[string]int64 // jti -> expiry
}

type cutoffFields struct {
	notBefore, expires int64
	reason             storev1.EndReason
}

// indexOp is one change of a committed batch to the index.
type indexOp struct {
	bucket int // iSessions, iCutoffs or iRevoked
	key    string
	del    bool
	sess   sessionFields
	cut    cutoffFields
	exp    int64
}

func newCheckIndex() *checkIndex {
	return &checkIndex{sessions: newSessionIndex(), cutoffs: map[string]cutoffFields{}, revoked: map[string]int64{}}
}

// load rebuilds the index from the database.
func (x *checkIndex) load(db *bolt.DB) error {
	sessions, cutoffs, revoked := newSessionIndex(), map[string]cutoffFields{}, map[string]int64{}
	err := db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			if !isSessionKey(k) {
				return nil
			}
			f, err := scanSession(v)
			setSession(&sessions, k, f)
			return err
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketCutoffs).ForEach(func(k, v []byte) error {
			c, err := scanCutoff(v)
			cutoffs[string(k)] = c
			return err
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketRevoked).ForEach(func(k, v []byte) error {
			exp, err := scanVarintField(v, 3)
			revoked[string(k)] = exp
			return err
		})
	})
	if err != nil {
		return err
	}
	x.mu.Lock()
	x.sessions, x.cutoffs, x.revoked = sessions, cutoffs, revoked
	x.mu.Unlock()
	return nil
}

// apply applies a committed batch's changes, in order.
func (x *checkIndex) apply(ops []indexOp) {
	if len(ops) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, op := range ops {
		switch {
		case op.bucket == iSessions && op.del:
			x.sessions.delete(op.key)
		case op.bucket == iSessions:
			setSession(&x.sessions, op.key, op.sess)
		case op.bucket == iCutoffs && op.del:
			delete(x.cutoffs, op.key)
		case op.bucket == iCutoffs:
			x.cutoffs[op.key] = op.cut
		case op.bucket == iRevoked && op.del:
			delete(x.revoked, op.key)
		case op.bucket == iRevoked:
			x.revoked[op.key] = op.exp
		}
	}
}

// status answers TokenStatus from memory.
func (x *checkIndex) status(sessionID, userID, jti string, now int64) TokenStatus {
	var st TokenStatus
	x.mu.RLock()
	defer x.mu.RUnlock()
	if c, ok := x.sessions.get(sessionID); ok && c.expiry > now {
		st.SessionFound, st.SessionEnded, st.EndReason, st.SessionNotBefore = true, c.ended, c.reason, c.notBefore
	}
	if c, ok := x.cutoffs[userID]; ok && c.expires > now {
		st.UserNotBefore, st.UserCutoffReason = c.notBefore, c.reason
	}
	if exp, ok := x.revoked[jti]; ok && exp > now {
		st.Revoked = true
	}
	return st
}

// sessionIndex maps session ids to what a check needs of them. An id in
// authsvc's form (sortableID: 18 bytes in 29 characters of base32hex,
// lower case, no padding) is keyed by its 18 bytes, and its fields packed
// into 10 (expiry, ended, end reason) when they fit — no not-before cut-off
// (the rules set none today) and an end reason below 256: a map slot of
// 28 bytes with no padding, no string. Any other id, or fields that do not
// pack, go to other by string with the fields unpacked. An id is in at
// most one of the two maps. Live heap per session at 1M sessions
// (BenchmarkCheckIndexMemory): 67 bytes with canonical ids, 125 with
// others (24 characters), down from 166 and 158 for one map[string] of
// the five fields. A packed slot costs 32 bytes of its table (28, its
// control byte, the allocation's rounding) and tables split when 7/8 full,
// so the cost depends on the count: at 1M the tables are about half full
// (48 bytes per session at 700k and at 900k).
type sessionIndex struct {
	packed map[sessionKey]packedSession
	other  map[string]sessionCheck
}

// sessionKey is a canonical session id's 18 bytes.
type sessionKey [18]byte

// packedSession is a packed sessionCheck without notBefore (zero); its
// alignment is 1, so that a slot of packed has no padding.
type packedSession struct {
	expiry [8]byte // little-endian
	ended  bool
	reason uint8
}

// sessionCheck is what a check needs of a session: its expiry (the earlier
// of its idle and absolute expiries), its not-before cut-off, whether it
// ended and why.
type sessionCheck struct {
	expiry, notBefore int64
	reason            storev1.EndReason
	ended             bool
}

func newSessionIndex() sessionIndex {
	return sessionIndex{packed: map[sessionKey]packedSession{}, other: map[string]sessionCheck{}}
}

func (s *sessionIndex) get(id string) (sessionCheck, bool) {
	if k, ok := canonicalKey(id); ok {
		if p, ok := s.packed[k]; ok {
			return sessionCheck{expiry: int64(binary.LittleEndian.Uint64(p.expiry[:])), ended: p.ended, reason: storev1.EndReason(p.reason)}, true
		}
	}
	c, ok := s.other[id]
	return c, ok
}

// setSession indexes session id (a string, or a bbolt key at load) with
// its fields f.
func setSession[ID string | []byte](s *sessionIndex, id ID, f sessionFields) {
	c := sessionCheck{expiry: min(f.idle, f.absolute), notBefore: f.notBefore, reason: f.reason, ended: f.ended != 0}
	k, canonical := canonicalKey(id)
	if canonical && c.notBefore == 0 && c.reason >= 0 && c.reason <= math.MaxUint8 {
		p := packedSession{ended: c.ended, reason: uint8(c.reason)}
		binary.LittleEndian.PutUint64(p.expiry[:], uint64(c.expiry))
		s.packed[k] = p
		if len(s.other) > 0 {
			delete(s.other, string(id))
		}
		return
	}
	if canonical {
		delete(s.packed, k)
	}
	s.other[string(id)] = c
}

func (s *sessionIndex) delete(id string) {
	if k, ok := canonicalKey(id); ok {
		delete(s.packed, k)
	}
	delete(s.other, id)
}

func (s *sessionIndex) len() int { return len(s.packed) + len(s.other) }

// canonicalKey decodes a session id in authsvc's form. ok is false for any
// other id, including one whose last character has its unused low bit
// set: then encoding the 18 bytes would not give id back, and two ids
// would share a key.
func canonicalKey[ID string | []byte](id ID) (k sessionKey, ok bool) {
	if len(id) != 29 {
		return k, false
	}
	var b [29]byte
	copy(b[:], id)
	var bad byte
	var acc uint64
	var out [24]byte
	for i, c := range b {
		v := base32hexLower[c]
		bad |= v
		acc = acc<<5 | uint64(v&31)
		if i%8 == 7 { // 8 characters, 40 bits: 5 bytes
			binary.BigEndian.PutUint64(out[i/8*5:], acc<<24)
			acc = 0
		}
	}
	// The last 5 characters: 3 bytes and an unused bit, which must be 0.
	binary.BigEndian.PutUint64(out[15:], acc<<39)
	if bad >= 32 || acc&1 != 0 {
		return sessionKey{}, false
	}
	return sessionKey(out[:18]), true
}

// base32hexLower maps the characters of authsvc's ids to their 5 bits,
// and any other byte to 0xff.
var base32hexLower = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "0123456789abcdefghijklmnopqrstuv" {
		t[c] = byte(i)
	}
	return t
}()

// Index ops recorded by the transaction's writers.

func (t *boltTxn) indexSession(s *storev1.Session) {
	t.ops = append(t.ops, indexOp{bucket: iSessions, key: s.GetId(), sess: sessionFields{
		idle: s.GetIdleExpiresUnixNano(), absolute: s.GetAbsoluteExpiresUnixNano(), ended: s.GetEndedUnixNano(),
		notBefore: s.GetNotBeforeUnixNano(), reason: s.GetEndReason(),
	}})
}

func (t *boltTxn) indexDelete(bucket int, key string) {
	t.ops = append(t.ops, indexOp{bucket: bucket, key: key, del: true})
}
