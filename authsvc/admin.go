package authsvc

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/sessiond/sessiond/authsvc/password"
	"github.com/sessiond/sessiond/authsvc/users"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// RefreshTTL is the configured refresh-token lifetime (the cookie's max age).
func (s *Service) RefreshTTL() time.Duration { return s.cfg.RefreshTTL }

// SignupInput is a self-service signup.
type SignupInput struct {
	Email, Password, DisplayName, OrgName, Country string
	Platform                                       storev1.Platform
	DeviceID                                       string
	Client                                         Client
}

// Signup creates a user in a customer organization and logs it in. It is
// refused unless signup is enabled.
func (s *Service) Signup(ctx context.Context, in SignupInput) (*Tokens, error) {
	if !s.cfg.Signup {
		return nil, errSignupDisabled
	}
	login := LoginInput{Email: in.Email, Password: in.Password, Platform: in.Platform, DeviceID: in.DeviceID, Client: in.Client}
	if err := validateLogin(&login); err != nil {
		return nil, err
	}
	u, err := s.CreateUser(ctx, NewUserInput{
		Email: in.Email, Password: in.Password, DisplayName: in.DisplayName, OrgName: in.OrgName,
		Country: in.Country, OrgType: users.OrgCustomer,
	})
	if err != nil {
		return nil, err
	}
	s.audit(ctx, "signup", slog.String("user", u.ID), slog.String("ip", in.Client.IP))
	return s.loginVerified(ctx, u, login.meta(), s.now())
}

// NewUserInput creates a user with a plain-text password (hashed here).
type NewUserInput struct {
	Email, Password, DisplayName, OrgName, Country string
	OrgType                                        users.OrgType
	Roles                                          []string
}

// CreateUser hashes the password and creates the user in the directory.
func (s *Service) CreateUser(ctx context.Context, in NewUserInput) (users.User, error) {
	if err := policyErr(in.Password); err != nil {
		return users.User{}, err
	}
	h, err := s.d.Hasher.Hash(in.Password)
	if err != nil {
		return users.User{}, s.hashErr(err)
	}
	u, err := s.d.Directory.Create(ctx, users.NewUser{
		Email: in.Email, PasswordHash: h, DisplayName: in.DisplayName, OrgName: in.OrgName,
		Country: in.Country, OrgType: in.OrgType, Roles: in.Roles,
	})
	if err != nil {
		return users.User{}, directoryErr(err)
	}
	s.audit(ctx, "user_created", slog.String("user", u.ID))
	return u, nil
}

// SetUserStatus suspends or reactivates the user with this email. A
// suspended user is refused at login and at refresh, and suspending ends
// every session of the user and every access token issued to it before
// now, on every node at once (end reason ACCOUNT_SUSPENDED).
func (s *Service) SetUserStatus(ctx context.Context, email string, st users.Status) error {
	u, err := s.d.Directory.ByEmail(ctx, email)
	if err != nil {
		return directoryErr(err)
	}
	if err := s.d.Directory.SetStatus(ctx, u.ID, st); err != nil {
		return directoryErr(err)
	}
	s.audit(ctx, "user_status", slog.String("user", u.ID), slog.String("status", string(st)))
	if st == users.StatusSuspended {
		return s.accountChanged(ctx, u.ID, storev1.EndReason_END_REASON_ACCOUNT_SUSPENDED)
	}
	return nil
}

// accountChanged ends every session of a user whose account changed and
// invalidates every token issued to it before now: the replicated
// logout-everywhere path (a per-user cut-off every check consults), so
// the change takes effect on every node at once. Every account change that
// must end sessions (suspension, password change or reset, role or
// organisation change, deletion) calls it after
// the directory accepted the change; an error means the change is made but
// the sessions may live on, so the caller retries.
func (s *Service) accountChanged(ctx context.Context, userID string, reason storev1.EndReason) error {
	n, _, err := s.EndUserSessions(ctx, userID, reason)
	if err != nil {
		return err
	}
	s.audit(ctx, "account_sessions_ended", slog.String("user", userID), slog.String("reason", reason.String()), slog.Int("ended", n))
	return nil
}

// SetUserPassword replaces (resets) the password of the user with this
// email, and ends the user's sessions and live tokens everywhere (end
// reason ACCOUNT_CHANGED).
func (s *Service) SetUserPassword(ctx context.Context, email, pw string) error {
	if err := policyErr(pw); err != nil {
		return err
	}
	u, err := s.d.Directory.ByEmail(ctx, email)
	if err != nil {
		return directoryErr(err)
	}
	h, err := s.d.Hasher.Hash(pw)
	if err != nil {
		return s.hashErr(err)
	}
	if err := s.d.Directory.SetPasswordHash(ctx, u.ID, h); err != nil {
		return directoryErr(err)
	}
	s.audit(ctx, "user_password_set", slog.String("user", u.ID))
	return s.accountChanged(ctx, u.ID, storev1.EndReason_END_REASON_ACCOUNT_CHANGED)
}

// SetUserRoles replaces the roles of the user with this email, and ends
// the user's sessions and live tokens everywhere (they carry the old
// roles; end reason ACCOUNT_CHANGED).
func (s *Service) SetUserRoles(ctx context.Context, email string, roles []string) error {
	u, err := s.d.Directory.ByEmail(ctx, email)
	if err != nil {
		return directoryErr(err)
	}
	if err := s.d.Directory.SetRoles(ctx, u.ID, roles); err != nil {
		return directoryErr(err)
	}
	s.audit(ctx, "user_roles_set", slog.String("user", u.ID))
	return s.accountChanged(ctx, u.ID, storev1.EndReason_END_REASON_ACCOUNT_CHANGED)
}

// SetUserOrg moves the user with this email to another organisation
// (created when new), and ends the user's sessions and live tokens
// everywhere (they carry the old organisation; end reason
// ACCOUNT_CHANGED).
func (s *Service) SetUserOrg(ctx context.Context, email string, org users.NewOrg) error {
	u, err := s.d.Directory.ByEmail(ctx, email)
	if err != nil {
		return directoryErr(err)
	}
	if err := s.d.Directory.SetOrg(ctx, u.ID, org); err != nil {
		return directoryErr(err)
	}
	s.audit(ctx, "user_org_set", slog.String("user", u.ID))
	return s.accountChanged(ctx, u.ID, storev1.EndReason_END_REASON_ACCOUNT_CHANGED)
}

// DeleteUser deletes the user with this email, and ends its sessions and
// live tokens everywhere (end reason ACCOUNT_CHANGED).
func (s *Service) DeleteUser(ctx context.Context, email string) error {
	u, err := s.d.Directory.ByEmail(ctx, email)
	if err != nil {
		return directoryErr(err)
	}
	if err := s.d.Directory.Delete(ctx, u.ID); err != nil {
		return directoryErr(err)
	}
	s.audit(ctx, "user_deleted", slog.String("user", u.ID))
	return s.accountChanged(ctx, u.ID, storev1.EndReason_END_REASON_ACCOUNT_CHANGED)
}

// ListUsers lists the directory's users.
func (s *Service) ListUsers(ctx context.Context) ([]users.User, error) {
	list, err := s.d.Directory.List(ctx)
	if err != nil {
		return nil, directoryErr(err)
	}
	return list, nil
}

// policyErr applies the password policy (password.CheckPolicy) to a new
// password; a refusal is KindInvalid with code weak_password and a message
// naming the rule.
func policyErr(pw string) error {
	if err := password.CheckPolicy(pw); err != nil {
		return wrapErr(KindInvalid, "weak_password", err.Error(), err)
	}
	return nil
}

func directoryErr(err error) error {
	switch {
	case errors.Is(err, users.ErrNotFound):
		return newErr(KindNotFound, "not_found", "no such user")
	case errors.Is(err, users.ErrEmailTaken):
		return newErr(KindConflict, "email_taken", "a user with this email exists")
	case errors.Is(err, users.ErrInvalid):
		return wrapErr(KindInvalid, "invalid_request", invalidMessage(err), err)
	default:
		return wrapErr(KindUnavailable, "directory_unavailable", "the user directory is unavailable", err)
	}
}

// invalidMessage returns the validation message of a users.ErrInvalid error
// (which says which field is wrong and holds no secret).
func invalidMessage(err error) string { return err.Error() }

func (s *Service) hashErr(err error) error {
	if errors.Is(err, password.ErrBusy) {
		return &Error{Kind: KindThrottled, Code: "busy", Message: "too many password operations in progress; retry", RetryAfter: time.Second}
	}
	return s.internal(err)
}
