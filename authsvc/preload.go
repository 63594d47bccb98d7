package authsvc

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/sessiond/sessiond/authsvc/users"
	"github.com/sessiond/sessiond/clients/go/token"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	"github.com/sessiond/sessiond/store"
)

// PreloadInput asks for users and sessions in bulk (see Service.Preload).
// Exactly one of Emails and Sessions is set.
type PreloadInput struct {
	// Emails: one new built-in-directory user per address, each with one
	// session; at most store.MaxBulkLoad.
	Emails []string
	// Password is the users' password, hashed once for all of them.
	Password string
	// Sessions: this many sessions of fresh user ids without a directory
	// record; at most store.MaxBulkLoad.
	Sessions int
}

// Preloaded is what Preload created, in request order.
type Preloaded struct {
	SessionIDs []string
	UserIDs    []string
	// Index is the log index of the write.
	Index uint64
}

// preloadDevice is the device id of preloaded sessions.
const preloadDevice = "preload"

// Preload creates users and opens sessions in one replicated BulkLoad
// command, for load tests and capacity planning (the caller must be an
// operator). Sessions are on PLATFORM_OTHER with device id "preload" and
// the configured lifetimes; no token is issued (their refresh token ids are
// random and never leave the node). Users are customers of the
// organization "Preload" (country ZZ) and share one password hash. With
// Emails the directory must be the built-in one: users in Postgres are
// created there.
func (s *Service) Preload(ctx context.Context, in PreloadInput) (*Preloaded, error) {
	n := in.Sessions
	switch {
	case len(in.Emails) > 0 && in.Sessions > 0:
		return nil, newErr(KindInvalid, "invalid_request", "set emails or sessions, not both")
	case len(in.Emails) > 0:
		n = len(in.Emails)
		if _, ok := s.d.Directory.(*BuiltinDirectory); !ok {
			return nil, newErr(KindInvalid, "invalid_request", "emails: users of this cluster live in Postgres; preload sessions only, or create users there")
		}
		if err := policyErr(in.Password); err != nil {
			return nil, err
		}
	}
	if n < 1 || n > store.MaxBulkLoad {
		return nil, newErr(KindInvalid, "invalid_request", "emails or sessions: 1 to "+strconv.Itoa(store.MaxBulkLoad))
	}
	now := s.now()
	op := &storev1.BulkLoad{}
	out := &Preloaded{}
	if len(in.Emails) > 0 {
		hash, err := s.d.Hasher.Hash(in.Password)
		if err != nil {
			return nil, s.hashErr(err)
		}
		for i, email := range in.Emails {
			nu, err := users.NewUser{Email: email, PasswordHash: hash, DisplayName: "Preloaded user",
				OrgName: "Preload", Country: "ZZ", OrgType: users.OrgCustomer}.Normalized()
			if err != nil {
				return nil, wrapErr(KindInvalid, "invalid_request", fmt.Sprintf("emails[%d]: %s", i, invalidMessage(err)), err)
			}
			op.Users = append(op.Users, &storev1.User{
				Id: "u-" + randomID()[:16], Email: nu.Email, EmailKey: nu.Email, PasswordHash: hash,
				DisplayName: nu.DisplayName, Status: storev1.UserStatus_USER_STATUS_ACTIVE,
				OrgId: "org-" + derivedID("org", "preload")[:12], OrgName: nu.OrgName, OrgCountry: nu.Country,
				OrgType: storev1.OrgType_ORG_TYPE_CUSTOMER, CreatedUnixNano: now.UnixNano(),
			})
		}
	}
	absolute := now.Add(s.cfg.SessionAbsolute)
	idle := minTime(now.Add(s.cfg.SessionIdle), absolute)
	refreshExp := minTime(now.Add(s.cfg.RefreshTTL), absolute)
	for i := range n {
		uid := "u-" + randomID()[:16]
		if len(op.Users) > 0 {
			uid = op.Users[i].GetId()
		}
		sid := sortableID(now)
		op.Sessions = append(op.Sessions, &storev1.OpenSession{
			Session: &storev1.Session{
				Id: sid, UserId: uid, Platform: storev1.Platform_PLATFORM_OTHER, DeviceId: preloadDevice,
				CreatedUnixNano: now.UnixNano(), IdleExpiresUnixNano: idle.UnixNano(), AbsoluteExpiresUnixNano: absolute.UnixNano(),
				Region: s.cfg.Region, NodeId: s.cfg.NodeID,
			},
			Refresh: &storev1.RefreshToken{IdHash: token.HashTokenID(randomID()), ExpiresUnixNano: refreshExp.UnixNano()},
		})
		out.SessionIDs = append(out.SessionIDs, sid)
		out.UserIDs = append(out.UserIDs, uid)
	}
	idx, res, err := s.propose(ctx, now, &storev1.Command{Op: &storev1.Command_BulkLoad{BulkLoad: op}})
	if err != nil {
		return nil, err
	}
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		if res.GetCode() == storev1.ErrorCode_ERROR_CODE_CONFLICT {
			return nil, newErr(KindConflict, "email_taken", res.GetMessage())
		}
		return nil, s.resultErr(res)
	}
	out.Index = idx
	s.audit(ctx, "preload", slog.Int("sessions", n), slog.Int("users", len(op.Users)))
	return out, nil
}
