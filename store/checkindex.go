package store

import (
	"sync"

	bolt "go.etcd.io/bbolt"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// checkIndex keeps in memory the few fields an access-token check needs —
// per session its expiry, end and cut-off; per user the logout-everywhere
// cut-off; the revoked token ids — so that TokenStatus costs map lookups
// and no allocation. bbolt stays the source of truth: the index is built
// from it at open and after a restore, and changed only after a batch's
// transaction has committed, with the batch's own record writes. It costs
// about 120 bytes per session (120 MB for a million).
type checkIndex struct {
	mu       sync.RWMutex
	sessions map[string]sessionFields
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
	return &checkIndex{sessions: map[string]sessionFields{}, cutoffs: map[string]cutoffFields{}, revoked: map[string]int64{}}
}

// load rebuilds the index from the database.
func (x *checkIndex) load(db *bolt.DB) error {
	sessions, cutoffs, revoked := map[string]sessionFields{}, map[string]cutoffFields{}, map[string]int64{}
	err := db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			if !isSessionKey(k) {
				return nil
			}
			f, err := scanSession(v)
			sessions[string(k)] = f
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
			delete(x.sessions, op.key)
		case op.bucket == iSessions:
			x.sessions[op.key] = op.sess
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
	if f, ok := x.sessions[sessionID]; ok && min(f.idle, f.absolute) > now {
		st.SessionFound, st.SessionEnded, st.EndReason, st.SessionNotBefore = true, f.ended, f.reason, f.notBefore
	}
	if c, ok := x.cutoffs[userID]; ok && c.expires > now {
		st.UserNotBefore, st.UserCutoffReason = c.notBefore, c.reason
	}
	if exp, ok := x.revoked[jti]; ok && exp > now {
		st.Revoked = true
	}
	return st
}

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
