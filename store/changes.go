package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// ChangeKind says what a Change revokes.
type ChangeKind uint8

// The kinds of changes the store reports to Options.OnChanges.
const (
	// ChangeSessionEnded: a session ended; every token of it is invalid.
	ChangeSessionEnded ChangeKind = iota + 1
	// ChangeUserCutoff: tokens of a user issued before NotBeforeUnixNano are
	// invalid (logout everywhere).
	ChangeUserCutoff
	// ChangeTokenRevoked: one token id is revoked.
	ChangeTokenRevoked
	// ChangeSessionExpired: the purger removed a session that had not ended
	// (its idle or absolute lifetime ran out). It revokes nothing (the
	// session already read as absent): it is reported so that the alerts can
	// count sessions ending by expiry.
	ChangeSessionExpired
)

// Change is one revocation the state machine applied, at the log index of
// the command that caused it. Watchers (services' revocation sets) are fed
// from these.
type Change struct {
	Index uint64
	Kind  ChangeKind
	// ID is the session id, user id or token id.
	ID string
	// NotBeforeUnixNano is the cut-off of a ChangeUserCutoff.
	NotBeforeUnixNano int64
	// ExpiresUnixNano is when no token the change affects can still be valid.
	ExpiresUnixNano int64
	// Reason is the end reason of a session, or the revocation's reason.
	Reason string
	// ClientID is, for a session change, the OpenID Connect client the
	// session was issued to (empty for the service's own logins).
	ClientID string
	// ProposedUnixNano is the now_unix_nano of the command that made the
	// change (its proposer's clock): apply time minus it is how long the
	// change took to reach this node.
	ProposedUnixNano int64
}

// note records a change of the entry being applied; ApplyBatch reports the
// batch's changes once its transaction has committed.
func (t *boltTxn) note(c Change) {
	c.Index, c.ProposedUnixNano = t.index, t.proposed
	t.changes = append(t.changes, c)
}

func (t *boltTxn) noteExpired(s *storev1.Session) {
	t.note(Change{Kind: ChangeSessionExpired, ID: s.GetId(), ExpiresUnixNano: sessionExpiry(s), Reason: "expired"})
}

func sessionEndChange(s *storev1.Session) Change {
	return Change{Kind: ChangeSessionEnded, ID: s.GetId(), ExpiresUnixNano: sessionExpiry(s), Reason: endReasonName(s.GetEndReason()), ClientID: s.GetClientId()}
}

func endReasonName(r storev1.EndReason) string {
	const prefix = "END_REASON_"
	n := r.String()
	if len(n) > len(prefix) {
		n = n[len(prefix):]
	}
	b := []byte(n)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// RevocationSet returns every revocation in force at now — ended sessions
// not yet expired, user cut-offs, revoked token ids — and the applied index
// it reflects, from one consistent read. It scans the sessions, so it is
// meant for the rare resync of a watcher, not for a hot path.
func (s *Store) RevocationSet(now time.Time) ([]Change, uint64, error) {
	var out []Change
	var idx uint64
	n := now.UnixNano()
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		if idx, _, err = appliedIn(tx); err != nil {
			return err
		}
		sess := new(storev1.Session)
		err = tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			if !isSessionKey(k) {
				return nil
			}
			if err := proto.Unmarshal(v, sess); err != nil {
				return fmt.Errorf("store: decode session %q: %w", k, err)
			}
			if sess.GetEndedUnixNano() != 0 && sessionExpiry(sess) > n {
				out = append(out, sessionEndChange(sess))
			}
			return nil
		})
		if err != nil {
			return err
		}
		cut := new(storev1.UserCutoff)
		err = tx.Bucket(bucketCutoffs).ForEach(func(k, v []byte) error {
			if err := proto.Unmarshal(v, cut); err != nil {
				return fmt.Errorf("store: decode cut-off %q: %w", k, err)
			}
			if cut.GetExpiresUnixNano() > n {
				out = append(out, Change{Kind: ChangeUserCutoff, ID: cut.GetUserId(),
					NotBeforeUnixNano: cut.GetNotBeforeUnixNano(), ExpiresUnixNano: cut.GetExpiresUnixNano()})
			}
			return nil
		})
		if err != nil {
			return err
		}
		rev := new(storev1.Revocation)
		return tx.Bucket(bucketRevoked).ForEach(func(k, v []byte) error {
			if err := proto.Unmarshal(v, rev); err != nil {
				return fmt.Errorf("store: decode revocation %q: %w", k, err)
			}
			if rev.GetExpiresUnixNano() > n {
				out = append(out, Change{Kind: ChangeTokenRevoked, ID: rev.GetJti(),
					ExpiresUnixNano: rev.GetExpiresUnixNano(), Reason: rev.GetReason()})
			}
			return nil
		})
	})
	if err != nil {
		return nil, 0, err
	}
	for i := range out {
		out[i].Index = idx
	}
	return out, idx, nil
}
