package authsvc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sessiond/sessiond/authsvc/users"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	"github.com/sessiond/sessiond/store"
)

// UserState is the part of the replicated store the built-in directory
// reads. *store.Store implements it.
type UserState interface {
	User(id string) (*storev1.User, error)
	UserByEmail(emailKey string) (*storev1.User, error)
	Users() ([]*storev1.User, error)
}

// BuiltinDirectory is a users.Directory kept in the replicated store, for
// clusters without Postgres (the dev default). Reads are local; writes are
// replicated. Updates read the user locally and write it back whole, so two
// concurrent updates of the same user may lose one (last write wins); the
// operator-driven admin calls this serves make that acceptable.
type BuiltinDirectory struct {
	st  UserState
	c   Cluster
	now func() time.Time
}

// NewBuiltinDirectory returns the built-in directory.
func NewBuiltinDirectory(st UserState, c Cluster) *BuiltinDirectory {
	return &BuiltinDirectory{st: st, c: c, now: time.Now}
}

var _ users.Directory = (*BuiltinDirectory)(nil)

var orgTypeToStore = map[users.OrgType]storev1.OrgType{
	users.OrgCustomer: storev1.OrgType_ORG_TYPE_CUSTOMER,
	users.OrgSupplier: storev1.OrgType_ORG_TYPE_SUPPLIER,
	users.OrgOperator: storev1.OrgType_ORG_TYPE_OPERATOR,
}

func fromStore(u *storev1.User) users.User {
	var t users.OrgType
	for k, v := range orgTypeToStore {
		if v == u.GetOrgType() {
			t = k
		}
	}
	st := users.StatusActive
	if u.GetStatus() == storev1.UserStatus_USER_STATUS_SUSPENDED {
		st = users.StatusSuspended
	}
	return users.User{
		ID: u.GetId(), Email: u.GetEmail(), PasswordHash: u.GetPasswordHash(), DisplayName: u.GetDisplayName(),
		Status: st, Roles: slices.Clone(u.GetRoles()),
		Org:       users.Org{ID: u.GetOrgId(), Name: u.GetOrgName(), Country: u.GetOrgCountry(), Type: t},
		CreatedAt: time.Unix(0, u.GetCreatedUnixNano()).UTC(),
	}
}

// propose replicates cmd and returns the state machine's result.
func (d *BuiltinDirectory) propose(ctx context.Context, cmd *storev1.Command) (*storev1.Result, error) {
	_, res, err := proposeCommand(ctx, d.c, d.now(), cmd)
	if err != nil {
		return nil, fmt.Errorf("built-in directory: %w", err)
	}
	return res, nil
}

// put replicates a user record.
func (d *BuiltinDirectory) put(ctx context.Context, u *storev1.User) error {
	res, err := d.propose(ctx, &storev1.Command{Op: &storev1.Command_PutUser{PutUser: &storev1.PutUser{User: u}}})
	if err != nil {
		return err
	}
	switch res.GetCode() {
	case storev1.ErrorCode_ERROR_CODE_UNSPECIFIED:
		return nil
	case storev1.ErrorCode_ERROR_CODE_CONFLICT:
		return users.ErrEmailTaken
	default:
		return fmt.Errorf("%w: %s", users.ErrInvalid, res.GetMessage())
	}
}

// Create implements users.Directory.
func (d *BuiltinDirectory) Create(ctx context.Context, nu users.NewUser) (users.User, error) {
	nu, err := nu.Normalized()
	if err != nil {
		return users.User{}, err
	}
	if _, err := d.st.UserByEmail(nu.Email); err == nil {
		return users.User{}, users.ErrEmailTaken
	}
	orgID, err := d.orgID(users.NewOrg{Name: nu.OrgName, Country: nu.Country, Type: nu.OrgType})
	if err != nil {
		return users.User{}, err
	}
	rec := &storev1.User{
		Id: "u-" + randomID()[:16], Email: nu.Email, EmailKey: nu.Email, PasswordHash: nu.PasswordHash,
		DisplayName: nu.DisplayName, Status: storev1.UserStatus_USER_STATUS_ACTIVE, Roles: nu.Roles,
		OrgId: orgID, OrgName: nu.OrgName, OrgCountry: nu.Country, OrgType: orgTypeToStore[nu.OrgType],
		CreatedUnixNano: d.now().UnixNano(),
	}
	if err := d.put(ctx, rec); err != nil {
		return users.User{}, err
	}
	return fromStore(rec), nil
}

// orgID returns the id of the organisation o names (derived from its
// name), or ErrInvalid when users of it have another country or type.
func (d *BuiltinDirectory) orgID(o users.NewOrg) (string, error) {
	orgID := "org-" + derivedID("org", strings.ToLower(o.Name))[:12]
	all, err := d.st.Users()
	if err != nil {
		return "", err
	}
	for _, u := range all {
		if u.GetOrgId() == orgID && (u.GetOrgCountry() != o.Country || u.GetOrgType() != orgTypeToStore[o.Type]) {
			return "", &users.FieldError{Field: "org_name", Reason: "the organization exists with another country or type"}
		}
	}
	return orgID, nil
}

// SetOrg implements users.Directory.
func (d *BuiltinDirectory) SetOrg(ctx context.Context, id string, o users.NewOrg) error {
	o, err := o.Normalized()
	if err != nil {
		return err
	}
	if err := d.c.Sync(ctx); err != nil {
		return fmt.Errorf("built-in directory: %w", err)
	}
	orgID, err := d.orgID(o)
	if err != nil {
		return err
	}
	return d.update(ctx, id, func(u *storev1.User) {
		u.OrgId, u.OrgName, u.OrgCountry, u.OrgType = orgID, o.Name, o.Country, orgTypeToStore[o.Type]
	})
}

// ByEmail implements users.Directory. A user this node has not applied
// yet (just created through another node) costs one read barrier.
func (d *BuiltinDirectory) ByEmail(ctx context.Context, email string) (users.User, error) {
	key, err := users.NormalizeEmail(email)
	if err != nil {
		return users.User{}, err
	}
	return d.read(ctx, func() (*storev1.User, error) { return d.st.UserByEmail(key) })
}

// ByID implements users.Directory.
func (d *BuiltinDirectory) ByID(ctx context.Context, id string) (users.User, error) {
	return d.read(ctx, func() (*storev1.User, error) { return d.st.User(id) })
}

// read runs a local lookup, and once more after a read barrier if the
// record is not there.
func (d *BuiltinDirectory) read(ctx context.Context, get func() (*storev1.User, error)) (users.User, error) {
	u, err := get()
	if errors.Is(err, store.ErrNotFound) && d.c.Sync(ctx) == nil {
		u, err = get()
	}
	if err != nil {
		return users.User{}, notFound(err)
	}
	return fromStore(u), nil
}

func notFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return users.ErrNotFound
	}
	return err
}

// update reads a user, changes it and writes it back.
func (d *BuiltinDirectory) update(ctx context.Context, id string, f func(*storev1.User)) error {
	if err := d.c.Sync(ctx); err != nil {
		return fmt.Errorf("built-in directory: %w", err)
	}
	u, err := d.st.User(id)
	if err != nil {
		return notFound(err)
	}
	f(u)
	return d.put(ctx, u)
}

// SetStatus implements users.Directory.
func (d *BuiltinDirectory) SetStatus(ctx context.Context, id string, s users.Status) error {
	if !s.Valid() {
		return &users.FieldError{Field: "status", Reason: "want ACTIVE or SUSPENDED"}
	}
	return d.update(ctx, id, func(u *storev1.User) {
		u.Status = storev1.UserStatus_USER_STATUS_ACTIVE
		if s == users.StatusSuspended {
			u.Status = storev1.UserStatus_USER_STATUS_SUSPENDED
		}
	})
}

// SetPasswordHash implements users.Directory.
func (d *BuiltinDirectory) SetPasswordHash(ctx context.Context, id, hash string) error {
	if hash == "" {
		return &users.FieldError{Field: "password_hash", Reason: "empty"}
	}
	return d.update(ctx, id, func(u *storev1.User) { u.PasswordHash = hash })
}

// SetRoles implements users.Directory.
func (d *BuiltinDirectory) SetRoles(ctx context.Context, id string, roles []string) error {
	roles, err := users.NormalizeRoles(roles)
	if err != nil {
		return err
	}
	return d.update(ctx, id, func(u *storev1.User) { u.Roles = roles })
}

// Delete implements users.Directory.
func (d *BuiltinDirectory) Delete(ctx context.Context, id string) error {
	if id == "" {
		return users.ErrNotFound
	}
	res, err := d.propose(ctx, &storev1.Command{Op: &storev1.Command_DeleteUser{DeleteUser: &storev1.DeleteUser{UserId: id}}})
	if err != nil {
		return err
	}
	switch res.GetCode() {
	case storev1.ErrorCode_ERROR_CODE_UNSPECIFIED:
		return nil
	case storev1.ErrorCode_ERROR_CODE_NOT_FOUND:
		return users.ErrNotFound
	default:
		return fmt.Errorf("%w: %s", users.ErrInvalid, res.GetMessage())
	}
}

// List implements users.Directory: every user, oldest first.
func (d *BuiltinDirectory) List(context.Context) ([]users.User, error) {
	all, err := d.st.Users()
	if err != nil {
		return nil, err
	}
	out := make([]users.User, 0, len(all))
	for _, u := range all {
		out = append(out, fromStore(u))
	}
	slices.SortStableFunc(out, func(a, b users.User) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}
