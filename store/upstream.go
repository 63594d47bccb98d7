package store

import (
	"regexp"
	"time"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	bolt "go.etcd.io/bbolt"
)

// Upstream logins (PutUpstreamLink, ConsumeUpstreamState): the links from
// an upstream identity provider's subject to a user, with the provider's
// refresh token sealed by the auth service (the store never sees it in the
// clear), and the spent states of upstream logins, so that a callback is
// accepted once in the whole cluster.

// Bounds of upstream records.
const (
	maxUpstreamSubject = 255
	maxSealedRefresh   = 8192
	// maxUpstreamStateLife bounds how long a spent state is kept.
	maxUpstreamStateLife = int64(time.Hour)
)

var upstreamProviderRE = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// upstreamLinkKey is lp(provider) | subject.
func upstreamLinkKey(provider, subject string) []byte {
	return lp(provider, []byte(subject))
}

// --- typed transaction ---

func (t *boltTxn) upstreamLink(provider, subject string) (*storev1.UpstreamLink, error) {
	l := new(storev1.UpstreamLink)
	ok, err := t.getMsg(iUpstreamLinks, upstreamLinkKey(provider, subject), l)
	if !ok {
		return nil, err
	}
	return l, nil
}

func (t *boltTxn) putUpstreamLink(l *storev1.UpstreamLink) error {
	return t.putMsg(iUpstreamLinks, upstreamLinkKey(l.GetProvider(), l.GetSubject()), l)
}

func (t *boltTxn) upstreamState(hash []byte) (*storev1.UpstreamState, error) {
	s := new(storev1.UpstreamState)
	ok, err := t.getMsg(iUpstreamStates, hash, s)
	if !ok {
		return nil, err
	}
	return s, nil
}

func (t *boltTxn) putUpstreamState(s *storev1.UpstreamState) error {
	old, err := t.upstreamState(s.GetStateHash())
	if err != nil {
		return err
	}
	if err := t.putMsg(iUpstreamStates, s.GetStateHash(), s); err != nil {
		return err
	}
	return t.moveExpiry(kindUpstreamState, s.GetStateHash(), old.GetExpiresUnixNano(), s.GetExpiresUnixNano(), old != nil)
}

func (t *boltTxn) deleteUpstreamState(hash []byte) error {
	old, err := t.upstreamState(hash)
	if err != nil || old == nil {
		return err
	}
	if err := t.b[iUpstreamStates].Delete(hash); err != nil {
		return err
	}
	return t.dropExpiry(kindUpstreamState, hash, old.GetExpiresUnixNano())
}

// --- shape ---

func (v *shape) upstreamLink(l *storev1.UpstreamLink) {
	if l == nil {
		v.bad("link is required")
		return
	}
	if !upstreamProviderRE.MatchString(l.GetProvider()) {
		v.bad("link.provider: want 1 to 64 of a-z, 0-9, '-', '_'")
	}
	if s := l.GetSubject(); s == "" || len(s) > maxUpstreamSubject {
		v.bad("link.subject: want 1 to %d bytes", maxUpstreamSubject)
	}
	v.name("link.user_id", l.GetUserId())
	if len(l.GetSealedRefreshToken()) > maxSealedRefresh {
		v.bad("link.sealed_refresh_token: at most %d bytes", maxSealedRefresh)
	}
	v.time("link.created_unix_nano", l.GetCreatedUnixNano())
	v.time("link.updated_unix_nano", l.GetUpdatedUnixNano())
	for _, ts := range []struct {
		name string
		at   int64
	}{{"link.validated_unix_nano", l.GetValidatedUnixNano()}, {"link.revoked_unix_nano", l.GetRevokedUnixNano()}} {
		if ts.at != 0 {
			v.time(ts.name, ts.at)
		}
	}
}

func (v *shape) upstreamState(s *storev1.UpstreamState) {
	if s == nil {
		v.bad("state is required")
		return
	}
	v.hash("state.state_hash", s.GetStateHash(), false)
	if e := s.GetExpiresUnixNano(); e <= v.now || e > v.now+maxUpstreamStateLife {
		v.bad("state.expires_unix_nano: want after now, within an hour")
	}
}

// --- rules ---

// putUpstreamLinkCmd implements PutUpstreamLink.
func putUpstreamLinkCmd(t txn, op *storev1.PutUpstreamLink) (*storev1.Result, error) {
	l := op.GetLink()
	old, err := t.upstreamLink(l.GetProvider(), l.GetSubject())
	if err != nil {
		return nil, err
	}
	switch {
	case old == nil && !op.GetCreate():
		return refuse(storev1.ErrorCode_ERROR_CODE_NOT_FOUND, "no such upstream link"), nil
	case old != nil && old.GetUserId() != l.GetUserId():
		return refuse(storev1.ErrorCode_ERROR_CODE_CONFLICT, "this upstream identity is linked to another user"), nil
	}
	if old != nil {
		// The creation time is the first link's.
		l.CreatedUnixNano = old.GetCreatedUnixNano()
	}
	if err := t.putUpstreamLink(l); err != nil {
		return nil, err
	}
	return &storev1.Result{}, nil
}

// consumeUpstreamState implements ConsumeUpstreamState.
func consumeUpstreamState(t txn, now int64, op *storev1.ConsumeUpstreamState) (*storev1.Result, error) {
	s := op.GetState()
	old, err := t.upstreamState(s.GetStateHash())
	if err != nil {
		return nil, err
	}
	if old != nil && old.GetExpiresUnixNano() > now {
		return refuse(storev1.ErrorCode_ERROR_CODE_CONFLICT, "this login state was already used"), nil
	}
	if err := t.putUpstreamState(s); err != nil {
		return nil, err
	}
	return &storev1.Result{}, nil
}

// --- reads ---

// UpstreamLink returns the link of (provider, subject), or ErrNotFound.
func (s *Store) UpstreamLink(provider, subject string) (*storev1.UpstreamLink, error) {
	if !upstreamProviderRE.MatchString(provider) || subject == "" || len(subject) > maxUpstreamSubject {
		return nil, ErrNotFound
	}
	var out *storev1.UpstreamLink
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketUpstreamLinks).Get(upstreamLinkKey(provider, subject))
		if v == nil {
			return ErrNotFound
		}
		l := new(storev1.UpstreamLink)
		if err := decode("upstream link", v, l); err != nil {
			return err
		}
		out = l
		return nil
	})
	return out, err
}

// UpstreamLinks calls f for every link of provider (all providers when
// provider is ""), in key order, until f returns false.
func (s *Store) UpstreamLinks(provider string, f func(*storev1.UpstreamLink) bool) error {
	return s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketUpstreamLinks).Cursor()
		var prefix []byte
		if provider != "" {
			prefix = lp(provider, nil)
		}
		for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
			l := new(storev1.UpstreamLink)
			if err := decode("upstream link", v, l); err != nil {
				return err
			}
			if !f(l) {
				return nil
			}
		}
		return nil
	})
}

func hasPrefix(k, prefix []byte) bool {
	return len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix)
}
