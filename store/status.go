package store

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// TokenStatus is what the state says about an access token: whether its
// session exists and has ended, the session's and the user's not-before
// cut-offs, and whether its id is revoked.
type TokenStatus struct {
	// SessionFound is false when the session is unknown or expired.
	SessionFound bool
	// SessionEnded is whether the session ended, and EndReason why.
	SessionEnded bool
	EndReason    storev1.EndReason
	// SessionNotBefore and UserNotBefore are cut-offs in Unix nanoseconds
	// (0: none): tokens issued before them are invalid.
	SessionNotBefore int64
	UserNotBefore    int64
	// UserCutoffReason is why the user's cut-off was set.
	UserCutoffReason storev1.EndReason
	// Revoked is true when the token id is revoked.
	Revoked bool
}

// TokenStatus answers the store lookups of an access-token check — the
// session's liveness and cut-off, the user's cut-off, the token id's
// revocation — from the in-memory check index (see checkIndex), as of the
// applied index. It is the hot path of every check: map lookups, no
// allocation.
func (s *Store) TokenStatus(sessionID, userID, jti string, now time.Time) (TokenStatus, error) {
	if err := s.Err(); err != nil {
		return TokenStatus{}, err
	}
	return s.idx.status(sessionID, userID, jti, now.UnixNano()), nil
}

// sessionFields are the fields of an encoded Session a check needs.
type sessionFields struct {
	idle, absolute, ended, notBefore int64
	reason                           storev1.EndReason
}

// scanSession reads the check's fields of an encoded storev1.Session
// without unmarshalling it (field numbers from store.proto).
func scanSession(b []byte) (sessionFields, error) {
	var f sessionFields
	err := scanFields(b, func(num protowire.Number, v uint64) {
		switch num {
		case 8:
			f.idle = int64(v)
		case 9:
			f.absolute = int64(v)
		case 14:
			f.ended = int64(v)
		case 15:
			f.reason = storev1.EndReason(v)
		case 19:
			f.notBefore = int64(v)
		}
	})
	return f, err
}

// scanCutoff reads UserCutoff.not_before_unix_nano, expires_unix_nano and
// reason.
func scanCutoff(b []byte) (cutoffFields, error) {
	var c cutoffFields
	err := scanFields(b, func(num protowire.Number, v uint64) {
		switch num {
		case 2:
			c.notBefore = int64(v)
		case 3:
			c.expires = int64(v)
		case 4:
			c.reason = storev1.EndReason(v)
		}
	})
	return c, err
}

// scanVarintField returns the varint field num of an encoded message.
func scanVarintField(b []byte, num protowire.Number) (int64, error) {
	var out int64
	err := scanFields(b, func(n protowire.Number, v uint64) {
		if n == num {
			out = int64(v)
		}
	})
	return out, err
}

// scanFields calls f for every varint field of an encoded message and skips
// the others.
func scanFields(b []byte, f func(protowire.Number, uint64)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("store: corrupt record: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return fmt.Errorf("store: corrupt record: %w", protowire.ParseError(m))
			}
			f(num, v)
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return fmt.Errorf("store: corrupt record: %w", protowire.ParseError(m))
		}
		b = b[m:]
	}
	return nil
}
