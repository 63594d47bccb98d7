package authsvc

import (
	"context"
	"errors"
	"log/slog"
	"time"
	"unicode/utf8"

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
	return s.openSession(ctx, u, login, s.now())
}

// NewUserInput creates a user with a plain-text password (hashed here).
type NewUserInput struct {
	Email, Password, DisplayName, OrgName, Country string
	OrgType                                        users.OrgType
	Roles                                          []string
}

// CreateUser hashes the password and creates the user in the directory.
func (s *Service) CreateUser(ctx context.Context, in NewUserInput) (users.User, error) {
	if len(in.Password) < 8 || len(in.Password) > maxPasswordLen || !utf8.ValidString(in.Password) {
		return users.User{}, newErr(KindInvalid, "invalid_request", "password: 8 to 1024 bytes of UTF-8")
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
// every session of the user at once (reason admin_revoked, with a cut-off
// for tokens issued before now), so its access tokens and WebSockets stop
// working everywhere.
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
		if _, _, err := s.EndUserSessions(ctx, u.ID, storev1.EndReason_END_REASON_ADMIN_REVOKED); err != nil {
			return err
		}
	}
	return nil
}

// SetUserPassword replaces the password of the user with this email.
func (s *Service) SetUserPassword(ctx context.Context, email, pw string) error {
	if len(pw) < 8 || len(pw) > maxPasswordLen {
		return newErr(KindInvalid, "invalid_request", "password: 8 to 1024 bytes")
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
	return nil
}

// ListUsers lists the directory's users.
func (s *Service) ListUsers(ctx context.Context) ([]users.User, error) {
	list, err := s.d.Directory.List(ctx)
	if err != nil {
		return nil, directoryErr(err)
	}
	return list, nil
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
