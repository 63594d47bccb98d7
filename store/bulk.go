package store

import (
	"fmt"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	"google.golang.org/protobuf/proto"
)

// MaxBulkLoad caps the users and the sessions of one BulkLoad command, so
// that a command stays well under the command size limit (about 500 bytes
// per user and session pair) and one transaction stays small.
const MaxBulkLoad = 256

// bulkLoad implements BulkLoad (see its doc in store.proto): users are
// checked all before anything is written, then stored; then sessions are
// opened with the OpenSession rule, stopping at the first refusal.
func bulkLoad(t txn, now int64, op *storev1.BulkLoad, lim limits) (*storev1.Result, error) {
	us, ss := op.GetUsers(), op.GetSessions()
	if len(us) > MaxBulkLoad || len(ss) > MaxBulkLoad {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "bulk load of %d users and %d sessions: at most %d of each", len(us), len(ss), MaxBulkLoad), nil
	}
	if len(us) == 0 && len(ss) == 0 {
		return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "bulk load is empty"), nil
	}
	if res, err := checkNewUsers(t, us, lim); res != nil || err != nil {
		return res, err
	}
	for _, u := range us {
		res, err := putUser(t, &storev1.PutUser{User: u}, lim)
		if err != nil || res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
			return res, err // checkNewUsers makes this unreachable
		}
	}
	out := &storev1.Result{}
	for i, o := range ss {
		if o.GetForce() {
			o = proto.CloneOf(o)
			o.Force = false
		}
		res, err := openSession(t, now, o, lim)
		if err != nil {
			return nil, err
		}
		if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
			res.Message = fmt.Sprintf("session %d: %s", i, res.GetMessage())
			res.Loaded = out.Loaded
			return res, nil
		}
		out.Loaded++
	}
	return out, nil
}

// checkNewUsers refuses the bulk load unless every user is valid and new:
// id and email_key unused in the store and distinct within the command.
func checkNewUsers(t txn, us []*storev1.User, lim limits) (*storev1.Result, error) {
	ids := make(map[string]bool, len(us))
	emails := make(map[string]bool, len(us))
	for i, u := range us {
		if u == nil {
			return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "user %d is empty", i), nil
		}
		if res := tooLarge("user", u, lim); res != nil {
			return res, nil
		}
		if res := validID("user.id", u.GetId()); res != nil {
			return res, nil
		}
		if res := validID("user.email_key", u.GetEmailKey()); res != nil {
			return res, nil
		}
		if ids[u.GetId()] || emails[u.GetEmailKey()] {
			return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "user %d repeats an id or email_key of the command", i), nil
		}
		ids[u.GetId()], emails[u.GetEmailKey()] = true, true
		if old, err := t.user(u.GetId()); err != nil || old != nil {
			if err != nil {
				return nil, err
			}
			return refuse(storev1.ErrorCode_ERROR_CODE_INVALID, "user %d: id already used", i), nil
		}
		if owner, err := t.userIDByEmail(u.GetEmailKey()); err != nil || owner != "" {
			if err != nil {
				return nil, err
			}
			return refuse(storev1.ErrorCode_ERROR_CODE_CONFLICT, "user %d: email_key belongs to another user", i), nil
		}
	}
	return nil, nil
}
