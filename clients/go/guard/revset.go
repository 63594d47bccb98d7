package guard

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiond/sessiond/clients/go/checkreason"
	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
	"github.com/sessiond/sessiond/clients/go/token"
)

// revMaps is one revocation set. Times are Unix nanoseconds; an expires of
// 0 means "never forgotten".
type revMaps struct {
	sessions map[string]int64   // session id -> expires
	jtis     map[string]int64   // token id -> expires
	users    map[string]userCut // user id -> cut-off
	reasons  map[string]string  // session id -> end reason, when given
}

type userCut struct{ notBefore, expires int64 }

func newRevMaps() *revMaps {
	return &revMaps{sessions: map[string]int64{}, jtis: map[string]int64{}, users: map[string]userCut{}, reasons: map[string]string{}}
}

func (m *revMaps) len() int { return len(m.sessions) + len(m.jtis) + len(m.users) }

func nanos(t interface{ AsTime() time.Time }, ok bool) int64 {
	if !ok {
		return 0
	}
	return t.AsTime().UnixNano()
}

// add applies one event. Several events on the same subject keep the
// latest expiry and, for users, the latest cut-off.
func (m *revMaps) add(e *sessionv1.RevocationEvent) {
	exp := nanos(e.GetExpires(), e.GetExpires() != nil)
	keep := func(old int64, seen bool) int64 {
		if seen && (old == 0 || exp == 0) {
			return 0
		}
		return max(old, exp)
	}
	switch s := e.GetSubject().(type) {
	case *sessionv1.RevocationEvent_SessionId:
		old, seen := m.sessions[s.SessionId]
		m.sessions[s.SessionId] = keep(old, seen)
		if e.GetReason() != "" {
			m.reasons[s.SessionId] = e.GetReason()
		}
	case *sessionv1.RevocationEvent_Jti:
		old, seen := m.jtis[s.Jti]
		m.jtis[s.Jti] = keep(old, seen)
	case *sessionv1.RevocationEvent_UserId:
		nb := nanos(e.GetNotBefore(), e.GetNotBefore() != nil)
		old, seen := m.users[s.UserId]
		m.users[s.UserId] = userCut{notBefore: max(old.notBefore, nb), expires: keep(old.expires, seen)}
	}
}

// prune forgets entries whose expiry is at or before now and returns how
// many it dropped.
func (m *revMaps) prune(now int64) int {
	n := 0
	for k, exp := range m.sessions {
		if exp != 0 && exp <= now {
			delete(m.sessions, k)
			delete(m.reasons, k)
			n++
		}
	}
	for k, exp := range m.jtis {
		if exp != 0 && exp <= now {
			delete(m.jtis, k)
			n++
		}
	}
	for k, u := range m.users {
		if u.expires != 0 && u.expires <= now {
			delete(m.users, k)
			n++
		}
	}
	return n
}

// revSet is the Guard's revocation set, kept current by the watch.
//
// A snapshot replaces the set. Because a large snapshot arrives split over
// several messages (the first marked snapshot, the rest carrying the same
// index), it is collected in staging and committed when a message that is
// not part of it arrives; meanwhile the live set holds the union of the
// previous set and the snapshot so far, which can only over-revoke. The
// resume index moves to the snapshot's index only on commit, so a stream
// broken mid-snapshot resumes from before it.
type revSet struct {
	mu           sync.RWMutex
	live         *revMaps
	staging      *revMaps // nil when no snapshot is being received
	stagingIndex uint64
	index        uint64 // resume index: everything up to it is applied
	loaded       bool   // a snapshot has been committed
	ready        atomic.Bool
}

// loadedFast reports, without locking, whether a snapshot has been
// committed.
func (r *revSet) loadedFast() bool { return r.ready.Load() }

func newRevSet() *revSet { return &revSet{live: newRevMaps()} }

// apply applies one stream message and reports whether the first snapshot
// has been committed (now or before).
func (r *revSet) apply(msg *sessionv1.WatchRevocationsResponse) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.staging != nil {
		if !msg.GetSnapshot() && msg.GetIndex() == r.stagingIndex && len(msg.GetEvents()) > 0 {
			for _, e := range msg.GetEvents() {
				r.staging.add(e)
				r.live.add(e)
			}
			return r.loaded
		}
		r.commitLocked()
	}
	if msg.GetSnapshot() {
		r.staging, r.stagingIndex = newRevMaps(), msg.GetIndex()
		for _, e := range msg.GetEvents() {
			r.staging.add(e)
			r.live.add(e)
		}
		return r.loaded
	}
	for _, e := range msg.GetEvents() {
		r.live.add(e)
	}
	r.index = max(r.index, msg.GetIndex())
	return r.loaded
}

func (r *revSet) commitLocked() {
	r.live, r.index, r.loaded = r.staging, r.stagingIndex, true
	r.ready.Store(true)
	r.staging = nil
}

// streamEnded drops a snapshot being received; the live set keeps the
// union (over-revoking until the next snapshot or expiry).
func (r *revSet) streamEnded() {
	r.mu.Lock()
	r.staging = nil
	r.mu.Unlock()
}

// resumeIndex is the from_index of the next watch call.
func (r *revSet) resumeIndex() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.index
}

func (r *revSet) size() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.live.len()
}

// prune forgets expired entries of the live and staging sets.
func (r *revSet) prune(now time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.staging != nil {
		r.staging.prune(now.UnixNano())
	}
	return r.live.prune(now.UnixNano())
}

// revoked returns why c is revoked, or nil. It does not allocate when the
// token is not revoked.
func (r *revSet) revoked(c *token.AccessClaims) *AuthError {
	r.mu.RLock()
	m := r.live
	_, sess := m.sessions[c.SessionID]
	cut, user := m.users[c.Subject]
	_, jti := m.jtis[c.TokenID]
	var end string
	if sess {
		end = m.reasons[c.SessionID]
	}
	r.mu.RUnlock()
	switch {
	case sess && c.SessionID != "":
		end = strings.ToLower(strings.TrimPrefix(end, "END_REASON_"))
		if end == "logout_all" {
			return &AuthError{Reason: checkreason.LoggedOutAll, Err: &detailError{ErrRevoked, "session ended: " + end}, EndReason: end}
		}
		if end != "" {
			return &AuthError{Reason: checkreason.SessionEnded, Err: &detailError{ErrRevoked, "session ended: " + end}, EndReason: end}
		}
		return &AuthError{Reason: checkreason.SessionEnded, Err: ErrRevoked}
	case user && cut.notBefore > c.IssuedAt.UnixNano():
		return &AuthError{Reason: checkreason.LoggedOutAll, Err: ErrRevoked}
	case jti && c.TokenID != "":
		return &AuthError{Reason: checkreason.Revoked, Err: ErrRevoked}
	}
	return nil
}
