package store

import (
	"time"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	bolt "go.etcd.io/bbolt"
)

// Login-failure counts (RecordLoginFailure, ClearLoginFailures): the
// replicated state of the password throttle (authsvc/throttle), so that
// three nodes do not give three times the guesses. Keys are SHA-256 hashes
// chosen by the throttle; the store only counts.

// maxLoginFailures saturates a count (it only ever grows a delay).
const maxLoginFailures = 1 << 20

// --- typed transaction ---

func (t *boltTxn) loginFailures(key []byte) (*storev1.LoginFailures, error) {
	f := new(storev1.LoginFailures)
	ok, err := t.getMsg(iLoginFailures, key, f)
	if !ok {
		return nil, err
	}
	return f, nil
}

func (t *boltTxn) putLoginFailures(f *storev1.LoginFailures) error {
	old, err := t.loginFailures(f.GetKey())
	if err != nil {
		return err
	}
	if err := t.putMsg(iLoginFailures, f.GetKey(), f); err != nil {
		return err
	}
	return t.moveExpiry(kindLoginFailures, f.GetKey(), old.GetExpiresUnixNano(), f.GetExpiresUnixNano(), old != nil)
}

func (t *boltTxn) deleteLoginFailures(key []byte) error {
	old, err := t.loginFailures(key)
	if err != nil || old == nil {
		return err
	}
	if err := t.b[iLoginFailures].Delete(key); err != nil {
		return err
	}
	return t.dropExpiry(kindLoginFailures, key, old.GetExpiresUnixNano())
}

// --- rules ---

// recordLoginFailure implements RecordLoginFailure (its shape is checked
// by validateCommand): each key's count grows by one, restarting from one
// when its record has expired, and is remembered until now + window.
func recordLoginFailure(t txn, now int64, op *storev1.RecordLoginFailure) (*storev1.Result, error) {
	for _, k := range op.GetKeys() {
		f, err := t.loginFailures(k)
		if err != nil {
			return nil, err
		}
		if f == nil || f.GetExpiresUnixNano() <= now {
			f = &storev1.LoginFailures{Key: k}
		}
		f.Failures = min(f.GetFailures()+1, maxLoginFailures)
		f.LastFailureUnixNano = max(f.GetLastFailureUnixNano(), now)
		f.ExpiresUnixNano = max(f.GetExpiresUnixNano(), now+op.GetWindowNanos())
		if err := t.putLoginFailures(f); err != nil {
			return nil, err
		}
	}
	return &storev1.Result{}, nil
}

// clearLoginFailures implements ClearLoginFailures.
func clearLoginFailures(t txn, op *storev1.ClearLoginFailures) (*storev1.Result, error) {
	for _, k := range op.GetKeys() {
		if err := t.deleteLoginFailures(k); err != nil {
			return nil, err
		}
	}
	return &storev1.Result{}, nil
}

// --- reads ---

// LoginFailures returns the failure count of a throttle key and the time
// of its latest failure, or zeros when it has none at now.
func (s *Store) LoginFailures(key []byte, now time.Time) (failures uint32, last time.Time, err error) {
	if len(key) != 32 {
		return 0, time.Time{}, nil
	}
	err = s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketLoginFailures).Get(key)
		if v == nil {
			return nil
		}
		f := new(storev1.LoginFailures)
		if err := decode("login failures", v, f); err != nil {
			return err
		}
		if f.GetExpiresUnixNano() > now.UnixNano() {
			failures, last = f.GetFailures(), time.Unix(0, f.GetLastFailureUnixNano())
		}
		return nil
	})
	return failures, last, err
}
