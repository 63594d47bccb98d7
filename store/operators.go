package store

import (
	"slices"
	"sync"
	"time"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	bolt "go.etcd.io/bbolt"
)

// MaxOperatorTokens caps the live operator tokens of a cluster, so that the
// name-uniqueness scan of PutOperatorToken and a listing stay small.
const MaxOperatorTokens = 1000

// --- typed transaction ---

func (t *boltTxn) operatorToken(id string) (*storev1.OperatorToken, error) {
	o := new(storev1.OperatorToken)
	ok, err := t.getMsg(iOperatorTokens, []byte(id), o)
	if !ok {
		return nil, err
	}
	return o, nil
}

func (t *boltTxn) operatorTokens() ([]*storev1.OperatorToken, error) {
	var out []*storev1.OperatorToken
	err := t.b[iOperatorTokens].ForEach(func(_, v []byte) error {
		o := new(storev1.OperatorToken)
		if err := decode("operator token", v, o); err != nil {
			return err
		}
		out = append(out, o)
		return nil
	})
	return out, err
}

func (t *boltTxn) putOperatorToken(o *storev1.OperatorToken) error {
	old, err := t.operatorToken(o.GetId())
	if err != nil {
		return err
	}
	t.operators = true
	if err := t.putMsg(iOperatorTokens, []byte(o.GetId()), o); err != nil {
		return err
	}
	return t.moveExpiry(kindOperatorToken, []byte(o.GetId()), old.GetExpiresUnixNano(), o.GetExpiresUnixNano(), old != nil)
}

func (t *boltTxn) deleteOperatorToken(id string) error {
	old, err := t.operatorToken(id)
	if err != nil || old == nil {
		return err
	}
	t.operators = true
	if err := t.b[iOperatorTokens].Delete([]byte(id)); err != nil {
		return err
	}
	return t.dropExpiry(kindOperatorToken, []byte(id), old.GetExpiresUnixNano())
}

// --- rules ---

// putOperatorToken implements PutOperatorToken (its shape is checked by
// validateCommand): the id must be unused, the name not held by another
// live token, and fewer than MaxOperatorTokens tokens live.
func putOperatorToken(t txn, now int64, op *storev1.PutOperatorToken) (*storev1.Result, error) {
	o := op.GetToken()
	list, err := t.operatorTokens()
	if err != nil {
		return nil, err
	}
	live := 0
	for _, x := range list {
		if x.GetExpiresUnixNano() <= now {
			continue
		}
		live++
		if x.GetId() == o.GetId() {
			return refuse(storev1.ErrorCode_ERROR_CODE_CONFLICT, "operator token id already used"), nil
		}
		if x.GetName() == o.GetName() {
			return refuse(storev1.ErrorCode_ERROR_CODE_CONFLICT, "a live operator token is already named %q", o.GetName()), nil
		}
	}
	if live >= MaxOperatorTokens {
		return refuse(storev1.ErrorCode_ERROR_CODE_CONFLICT, "the cluster already has %d live operator tokens (the cap); revoke some first", live), nil
	}
	if err := t.putOperatorToken(o); err != nil {
		return nil, err
	}
	return &storev1.Result{}, nil
}

// deleteOperatorToken implements DeleteOperatorToken: NOT_FOUND for an
// unknown or expired token.
func deleteOperatorToken(t txn, now int64, op *storev1.DeleteOperatorToken) (*storev1.Result, error) {
	o, err := t.operatorToken(op.GetId())
	if err != nil {
		return nil, err
	}
	if o == nil || o.GetExpiresUnixNano() <= now {
		return refuse(storev1.ErrorCode_ERROR_CODE_NOT_FOUND, "no such operator token"), nil
	}
	if err := t.deleteOperatorToken(op.GetId()); err != nil {
		return nil, err
	}
	return &storev1.Result{}, nil
}

// --- reads ---

// OperatorToken returns the operator token with id, or ErrNotFound when it
// does not exist or has expired at now. The record is shared with other
// callers: do not modify it.
func (s *Store) OperatorToken(id string, now time.Time) (*storev1.OperatorToken, error) {
	if id == "" || len(id) > maxIDLen {
		return nil, ErrNotFound
	}
	o, gen := s.opTokens.get(id)
	if o == nil {
		err := s.view(func(tx *bolt.Tx) error {
			v := tx.Bucket(bucketOperatorTokens).Get(keyOf(id))
			if v == nil {
				return ErrNotFound
			}
			o = new(storev1.OperatorToken)
			return decode("operator token", v, o)
		})
		if err != nil {
			return nil, err
		}
		s.opTokens.put(id, o, gen)
	}
	if o.GetExpiresUnixNano() <= now.UnixNano() {
		return nil, ErrNotFound
	}
	return o, nil
}

// opTokenCache keeps the operator tokens OperatorToken has read, decoded:
// every operator call is authenticated by one, and a bbolt read
// transaction per call cost a check-heavy node 6% of its CPU. Any commit
// that writes an operator token, and any restore, empties it. A reader
// fills it only if no such commit ended since it began (gen), so it never
// keeps a record older than the store's. Unknown ids are not kept.
type opTokenCache struct {
	mu  sync.RWMutex
	gen uint64
	m   map[string]*storev1.OperatorToken
}

// get returns the kept token of id (nil if none) and the generation a
// reader that misses must pass to put.
func (c *opTokenCache) get(id string) (*storev1.OperatorToken, uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[id], c.gen
}

func (c *opTokenCache) put(id string, o *storev1.OperatorToken, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || len(c.m) >= MaxOperatorTokens {
		return
	}
	if c.m == nil {
		c.m = make(map[string]*storev1.OperatorToken)
	}
	c.m[id] = o
}

func (c *opTokenCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.m)
}

// OperatorTokens returns every operator token live at now, ordered by name.
func (s *Store) OperatorTokens(now time.Time) ([]*storev1.OperatorToken, error) {
	var out []*storev1.OperatorToken
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOperatorTokens).ForEach(func(_, v []byte) error {
			o := new(storev1.OperatorToken)
			if err := decode("operator token", v, o); err != nil {
				return err
			}
			if o.GetExpiresUnixNano() > now.UnixNano() {
				out = append(out, o)
			}
			return nil
		})
	})
	slices.SortFunc(out, func(a, b *storev1.OperatorToken) int {
		switch {
		case a.GetName() < b.GetName():
			return -1
		case a.GetName() > b.GetName():
			return 1
		}
		return 0
	})
	return out, err
}
