package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
	"unsafe"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// keyOf returns the bytes of s without copying. bbolt never retains or
// modifies lookup keys, so this is safe for Get and Seek.
func keyOf(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

func decode(what string, v []byte, m proto.Message) error {
	if err := proto.Unmarshal(v, m); err != nil {
		return fmt.Errorf("store: decode %s: %w", what, err)
	}
	return nil
}

// Session returns the session with id, live or ended (an ended one carries
// its end reason). It returns ErrNotFound if there is none or if it expired
// (min of idle and absolute expiry) at or before now, purged or not.
func (s *Store) Session(id string, now time.Time) (*storev1.Session, error) {
	if id == "" {
		return nil, ErrNotFound
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("store: read: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	return sessionIn(tx, id, now.UnixNano())
}

func sessionIn(tx *bolt.Tx, id string, now int64) (*storev1.Session, error) {
	v := tx.Bucket(bucketSessions).Get(keyOf(id))
	if v == nil {
		return nil, ErrNotFound
	}
	sess := new(storev1.Session)
	if err := decode("session", v, sess); err != nil {
		return nil, err
	}
	if sessionExpiry(sess) <= now {
		return nil, ErrNotFound
	}
	return sess, nil
}

// LiveSession returns the user's live (not ended, not expired at now)
// session on platform p, or ErrNotFound.
func (s *Store) LiveSession(userID string, p storev1.Platform, now time.Time) (*storev1.Session, error) {
	if userID == "" || len(userID) > maxIDLen {
		return nil, ErrNotFound
	}
	var out *storev1.Session
	err := s.view(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketUserSess).Get(liveKey(userID, p))
		if id == nil {
			return ErrNotFound
		}
		sess, err := sessionIn(tx, string(id), now.UnixNano())
		if err != nil {
			return err
		}
		if sess.GetEndedUnixNano() != 0 {
			return ErrNotFound
		}
		out = sess
		return nil
	})
	return out, err
}

// UserSessions returns the user's live sessions at now, ordered by
// created time then id. No sessions is an empty slice and a nil error.
func (s *Store) UserSessions(userID string, now time.Time) ([]*storev1.Session, error) {
	if userID == "" || len(userID) > maxIDLen {
		return nil, nil
	}
	var out []*storev1.Session
	err := s.view(func(tx *bolt.Tx) error {
		prefix := lp(userID, nil)
		c := tx.Bucket(bucketUserSess).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if !userSessionKey(k[len(prefix):]) {
				continue
			}
			sess, err := sessionIn(tx, string(k[len(prefix):]), now.UnixNano())
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if sess.GetEndedUnixNano() == 0 {
				out = append(out, sess)
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b *storev1.Session) int {
		if c := a.GetCreatedUnixNano() - b.GetCreatedUnixNano(); c != 0 {
			if c < 0 {
				return -1
			}
			return 1
		}
		return bytes.Compare(keyOf(a.GetId()), keyOf(b.GetId()))
	})
	return out, err
}

// RefreshToken returns the refresh-token record with the given id hash
// (SHA-256 of the token id), used or not, or ErrNotFound if there is none
// or it expired at or before now.
func (s *Store) RefreshToken(idHash []byte, now time.Time) (*storev1.RefreshToken, error) {
	if len(idHash) == 0 {
		return nil, ErrNotFound
	}
	var out *storev1.RefreshToken
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRefresh).Get(idHash)
		if v == nil {
			return ErrNotFound
		}
		r := new(storev1.RefreshToken)
		if err := decode("refresh token", v, r); err != nil {
			return err
		}
		if r.GetExpiresUnixNano() <= now.UnixNano() {
			return ErrNotFound
		}
		out = r
		return nil
	})
	return out, err
}

// Revocation returns the revocation of token id jti, or ErrNotFound if
// there is none or it expired at or before now.
func (s *Store) Revocation(jti string, now time.Time) (*storev1.Revocation, error) {
	if jti == "" {
		return nil, ErrNotFound
	}
	var out *storev1.Revocation
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRevoked).Get(keyOf(jti))
		if v == nil {
			return ErrNotFound
		}
		r := new(storev1.Revocation)
		if err := decode("revocation", v, r); err != nil {
			return err
		}
		if r.GetExpiresUnixNano() <= now.UnixNano() {
			return ErrNotFound
		}
		out = r
		return nil
	})
	return out, err
}

// UserCutoff returns the user's cut-off: tokens issued before the returned
// Unix-nanosecond time are invalid. It returns (0, nil) when the user has
// no cut-off or it expired at or before now (never ErrNotFound).
func (s *Store) UserCutoff(userID string, now time.Time) (int64, error) {
	if userID == "" {
		return 0, nil
	}
	var nb int64
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketCutoffs).Get(keyOf(userID))
		if v == nil {
			return nil
		}
		c := new(storev1.UserCutoff)
		if err := decode("cutoff", v, c); err != nil {
			return err
		}
		if c.GetExpiresUnixNano() > now.UnixNano() {
			nb = c.GetNotBeforeUnixNano()
		}
		return nil
	})
	return nb, err
}

// SigningKeys returns every signing key not expired at now, ordered by kid.
func (s *Store) SigningKeys(now time.Time) ([]*storev1.SigningKey, error) {
	var out []*storev1.SigningKey
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(_, v []byte) error {
			k := new(storev1.SigningKey)
			if err := decode("signing key", v, k); err != nil {
				return err
			}
			if k.GetExpiresUnixNano() > now.UnixNano() {
				out = append(out, k)
			}
			return nil
		})
	})
	return out, err
}

// User returns the built-in directory user with id, or ErrNotFound.
func (s *Store) User(id string) (*storev1.User, error) {
	if id == "" {
		return nil, ErrNotFound
	}
	var out *storev1.User
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		out, err = userIn(tx, keyOf(id))
		return err
	})
	return out, err
}

func userIn(tx *bolt.Tx, id []byte) (*storev1.User, error) {
	v := tx.Bucket(bucketUsers).Get(id)
	if v == nil {
		return nil, ErrNotFound
	}
	u := new(storev1.User)
	if err := decode("user", v, u); err != nil {
		return nil, err
	}
	return u, nil
}

// UserByEmail returns the user whose email_key is emailKey (the caller
// normalises it), or ErrNotFound.
func (s *Store) UserByEmail(emailKey string) (*storev1.User, error) {
	if emailKey == "" {
		return nil, ErrNotFound
	}
	var out *storev1.User
	err := s.view(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketEmails).Get(keyOf(emailKey))
		if id == nil {
			return ErrNotFound
		}
		var err error
		out, err = userIn(tx, id)
		return err
	})
	return out, err
}

// Users returns every user of the built-in directory, ordered by id.
func (s *Store) Users() ([]*storev1.User, error) {
	var out []*storev1.User
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsers).ForEach(func(_, v []byte) error {
			u := new(storev1.User)
			if err := decode("user", v, u); err != nil {
				return err
			}
			out = append(out, u)
			return nil
		})
	})
	return out, err
}

// HasExpired reports whether any record has expired at now and awaits a
// Purge. It reads only the first key of the expiry index. It returns false
// if the store is closed.
func (s *Store) HasExpired(now time.Time) bool {
	found := false
	_ = s.view(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketExpiry).Cursor().First()
		found = len(k) >= 8 && int64(binary.BigEndian.Uint64(k)) <= now.UnixNano()
		return nil
	})
	return found
}
