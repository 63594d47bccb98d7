package authsvc

import (
	"strings"
	"time"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// CheckSession reports whether a session is live in the local state, and
// if not why: not_found (or expired), or its end reason.
func (s *Service) CheckSession(sid string) (bool, string) {
	ss, err := s.d.State.Session(sid, s.now())
	switch {
	case err != nil:
		return false, "not_found"
	case ss.GetEndedUnixNano() != 0:
		return false, strings.ToLower(strings.TrimPrefix(ss.GetEndReason().String(), "END_REASON_"))
	}
	return true, ""
}

// GetSession returns a session from the local state, ended ones included
// until they expire.
func (s *Service) GetSession(sid string) (*storev1.Session, bool) {
	ss, err := s.d.State.Session(sid, s.now())
	return ss, err == nil
}

// UserSessions lists a user's live sessions from the local state.
func (s *Service) UserSessions(uid string) ([]*storev1.Session, error) {
	return s.d.State.UserSessions(uid, s.now())
}

// RevocationQuery names what IsRevoked checks.
type RevocationQuery struct {
	Kind RevocationKind
	ID   string
}

// IsRevoked reports whether a token id is revoked, a session has ended, or
// a user has a logout-everywhere cut-off in force, and since when.
func (s *Service) IsRevoked(q RevocationQuery) (bool, time.Time) {
	now := s.now()
	switch q.Kind {
	case RevokedToken:
		if r, err := s.d.State.Revocation(q.ID, now); err == nil {
			return true, time.Unix(0, r.GetRevokedUnixNano())
		}
	case RevokedSession:
		if ss, err := s.d.State.Session(q.ID, now); err == nil && ss.GetEndedUnixNano() != 0 {
			return true, time.Unix(0, ss.GetEndedUnixNano())
		}
	case RevokedUser:
		if nb, err := s.d.State.UserCutoff(q.ID, now); err == nil && nb != 0 {
			return true, time.Unix(0, nb)
		}
	}
	return false, time.Time{}
}
