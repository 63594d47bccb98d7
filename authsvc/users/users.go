// Package users is the user directory of the auth service: the Directory
// interface, the validation rules every implementation shares, and a
// Postgres implementation (NewPostgres, Migrate).
//
// Emails are compared after NormalizeEmail: surrounding white space is
// trimmed, the address is put in Unicode NFC form and lower-cased, so two
// addresses that differ only in case or in Unicode normalisation form name
// the same user. Implementations store and return the normalised form.
package users

import (
	"context"
	"errors"
	"time"
)

// OrgType is the kind of organisation a user belongs to.
type OrgType string

// The organisation types.
const (
	OrgCustomer OrgType = "CUSTOMER"
	OrgSupplier OrgType = "SUPPLIER"
	OrgOperator OrgType = "OPERATOR"
)

// Valid reports whether t is one of the defined organisation types.
func (t OrgType) Valid() bool {
	return t == OrgCustomer || t == OrgSupplier || t == OrgOperator
}

// Status is whether a user may log in.
type Status string

// The statuses. Only StatusActive users may log in.
const (
	StatusActive    Status = "ACTIVE"
	StatusSuspended Status = "SUSPENDED"
)

// Valid reports whether s is one of the defined statuses.
func (s Status) Valid() bool { return s == StatusActive || s == StatusSuspended }

// Org is an organisation. Organisations are unique by Name.
type Org struct {
	ID      string
	Name    string
	Country string // ISO 3166-1 alpha-2, upper case
	Type    OrgType
}

// User is one account of the directory. Roles are sorted and free of
// duplicates; PasswordHash is a PHC string, never a password.
type User struct {
	ID           string
	Email        string // normalised, see NormalizeEmail
	PasswordHash string
	DisplayName  string
	Status       Status
	Roles        []string
	Org          Org
	CreatedAt    time.Time
}

// NewUser is what Create needs. OrgName names the organisation the user
// joins; it is created with Country and OrgType when it does not exist.
type NewUser struct {
	Email        string
	PasswordHash string
	DisplayName  string
	OrgName      string
	Country      string
	OrgType      OrgType
	Roles        []string
}

// Errors returned by every Directory. Test with errors.Is.
var (
	// ErrNotFound: no user has that email or ID (a malformed ID included).
	ErrNotFound = errors.New("users: not found")
	// ErrEmailTaken: another user has the same email once normalised.
	ErrEmailTaken = errors.New("users: email already taken")
	// ErrInvalid: an argument is malformed. The error is a *FieldError
	// naming the field.
	ErrInvalid = errors.New("users: invalid argument")
)

// FieldError reports which field of a request is invalid and why. It
// matches ErrInvalid under errors.Is.
type FieldError struct {
	Field  string // e.g. "email", "country", "roles"
	Reason string
}

// Error returns "users: invalid FIELD: REASON".
func (e *FieldError) Error() string { return "users: invalid " + e.Field + ": " + e.Reason }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, reason string) error { return &FieldError{Field: field, Reason: reason} }

// Directory stores users. Implementations are safe for concurrent use.
//
//   - Create validates nu (see NewUser.Normalized), finds or creates the
//     organisation named nu.OrgName and inserts the user with status ACTIVE
//     and its roles atomically. It returns ErrEmailTaken when the normalised
//     email is in use, and ErrInvalid when an argument is malformed or the
//     organisation exists with another country or type.
//   - ByEmail normalises email and returns its user, ErrInvalid when email
//     is malformed, ErrNotFound when no user has it.
//   - ByID returns the user with that ID or ErrNotFound.
//   - SetStatus and SetPasswordHash change one user; ErrNotFound when the ID
//     names none, ErrInvalid for an unknown status or an empty hash.
//   - List returns every user, oldest first.
type Directory interface {
	Create(ctx context.Context, nu NewUser) (User, error)
	ByEmail(ctx context.Context, email string) (User, error)
	ByID(ctx context.Context, id string) (User, error)
	SetStatus(ctx context.Context, id string, s Status) error
	SetPasswordHash(ctx context.Context, id, hash string) error
	// SetRoles replaces the user's roles (nil or empty: none).
	SetRoles(ctx context.Context, id string, roles []string) error
	// SetOrg moves the user to the organisation named org.Name, created
	// when new; ErrInvalid when it exists with another country or type.
	SetOrg(ctx context.Context, id string, org NewOrg) error
	// Delete deletes the user (ErrNotFound when there is none).
	Delete(ctx context.Context, id string) error
	List(ctx context.Context) ([]User, error)
}
