package authsvc

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/sessiond/sessiond/authsvc/users"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// ClaimAlert claims the event key of an alert for window on behalf of this
// node, through the replicated store (ClaimAlert): it returns true when this
// node is the first in the cluster to claim key within the window, and
// should send the alert; false when another node (or this one) already
// did. The key is hashed before it is replicated, so it may name an
// address. Without a quorum the claim fails: nobody can tell whether
// another node alerted.
func (s *Service) ClaimAlert(ctx context.Context, key string, window time.Duration) (bool, error) {
	node := s.cfg.NodeID
	if node == "" {
		node = "unknown"
	}
	h := sha256.Sum256([]byte("sessiond/alert\x00" + key))
	_, res, err := s.propose(ctx, s.now(), &storev1.Command{Op: &storev1.Command_ClaimAlert{ClaimAlert: &storev1.ClaimAlert{
		Key: h[:], NodeId: node, WindowNanos: int64(window),
	}}})
	if err != nil {
		return false, err
	}
	switch res.GetCode() {
	case storev1.ErrorCode_ERROR_CODE_UNSPECIFIED:
		return true, nil
	case storev1.ErrorCode_ERROR_CODE_CONFLICT:
		return false, nil
	}
	return false, s.resultErr(res)
}

// observeTokenError reports a refused client token to Deps.OnTokenError.
func (s *Service) observeTokenError(ip string, err error) {
	var e *Error
	if s.d.OnTokenError == nil || ip == "" || !errors.As(err, &e) || e.Kind != KindUnauthenticated {
		return
	}
	s.d.OnTokenError(ip, e.Code)
}

// SessionsByEmail returns the user with email and their live sessions, from
// this node's state after a linearizable barrier (so an operator sees a
// login that just happened anywhere). An unknown e-mail is KindNotFound.
func (s *Service) SessionsByEmail(ctx context.Context, email string) (users.User, []*storev1.Session, error) {
	u, err := s.d.Directory.ByEmail(ctx, email)
	if err != nil {
		return users.User{}, nil, directoryErr(err)
	}
	if err := s.d.Cluster.Sync(ctx); err != nil {
		return users.User{}, nil, clusterUnavailable("the cluster did not confirm the read", err)
	}
	list, err := s.d.State.UserSessions(u.ID, s.now())
	if err != nil {
		return users.User{}, nil, s.internal(err)
	}
	return u, list, nil
}

// Counts are a node's auth operations since it started.
type Counts struct {
	// Logins and Refreshes count successful ones.
	Logins, Refreshes uint64
	// Checks counts access-token checks (every door's).
	Checks uint64
}

// Counts returns this node's counts so far.
func (s *Service) Counts() Counts {
	h, m := s.CacheStats()
	return Counts{Logins: s.counts.logins.Load(), Refreshes: s.counts.refreshes.Load(), Checks: h + m}
}
