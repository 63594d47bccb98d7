package users

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Limits on the fields of a user.
const (
	MaxEmailLen       = 254  // bytes, after normalisation (RFC 5321 path limit)
	MaxDisplayNameLen = 200  // runes
	MaxOrgNameLen     = 200  // runes
	MaxRoleLen        = 64   // bytes
	MaxRoles          = 64   // per user
	MaxPasswordHash   = 1024 // bytes
)

// NormalizeEmail returns the canonical form of an email address: white
// space around it trimmed, Unicode NFC, lower case. It returns a
// *FieldError (ErrInvalid) unless the result is valid UTF-8 of at most
// MaxEmailLen bytes holding exactly one '@' with text on both sides and no
// control or white-space characters. It does not check that the domain
// exists or that the local part follows RFC 5322.
func NormalizeEmail(email string) (string, error) {
	if len(email) > 4*MaxEmailLen { // bound the work on hostile input
		return "", invalid("email", "longer than 254 bytes")
	}
	if !utf8.ValidString(email) {
		return "", invalid("email", "not valid UTF-8")
	}
	e := strings.ToLower(norm.NFC.String(strings.TrimSpace(email)))
	switch {
	case e == "":
		return "", invalid("email", "required")
	case len(e) > MaxEmailLen:
		return "", invalid("email", "longer than 254 bytes")
	}
	for _, r := range e {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == utf8.RuneError {
			return "", invalid("email", "contains a control or space character")
		}
	}
	at := strings.IndexByte(e, '@')
	switch {
	case at < 0 || strings.IndexByte(e[at+1:], '@') >= 0:
		return "", invalid("email", "must contain exactly one @")
	case at == 0 || at == len(e)-1:
		return "", invalid("email", "needs text before and after @")
	}
	return e, nil
}

// Normalized returns nu checked and in canonical form: the email
// normalised (NormalizeEmail), display and organisation names trimmed, the
// country upper-cased, roles trimmed, de-duplicated and sorted. It returns
// a *FieldError (ErrInvalid) naming the first invalid field. Every
// Directory applies it in Create.
func (nu NewUser) Normalized() (NewUser, error) {
	var err error
	if nu.Email, err = NormalizeEmail(nu.Email); err != nil {
		return NewUser{}, err
	}
	switch {
	case nu.PasswordHash == "":
		return NewUser{}, invalid("password_hash", "required")
	case len(nu.PasswordHash) > MaxPasswordHash || !printable(nu.PasswordHash):
		return NewUser{}, invalid("password_hash", "not a PHC string")
	}
	nu.DisplayName = strings.TrimSpace(nu.DisplayName)
	if utf8.RuneCountInString(nu.DisplayName) > MaxDisplayNameLen || !text(nu.DisplayName) {
		return NewUser{}, invalid("display_name", "at most 200 characters of UTF-8 text without control characters")
	}
	o, err := NewOrg{Name: nu.OrgName, Country: nu.Country, Type: nu.OrgType}.Normalized()
	if err != nil {
		return NewUser{}, err
	}
	nu.OrgName, nu.Country = o.Name, o.Country
	roles, err := NormalizeRoles(nu.Roles)
	if err != nil {
		return NewUser{}, err
	}
	nu.Roles = roles
	return nu, nil
}

// NewOrg names the organisation a user moves to (SetOrg): found by name,
// or created with this country and type.
type NewOrg struct {
	Name, Country string
	Type          OrgType
}

// Normalized returns o checked and in canonical form (name trimmed,
// country upper-cased), or a *FieldError naming the first invalid field.
func (o NewOrg) Normalized() (NewOrg, error) {
	o.Name = strings.TrimSpace(o.Name)
	if o.Name == "" || utf8.RuneCountInString(o.Name) > MaxOrgNameLen || !text(o.Name) {
		return NewOrg{}, invalid("org_name", "required, at most 200 characters of UTF-8 text without control characters")
	}
	o.Country = strings.ToUpper(strings.TrimSpace(o.Country))
	if len(o.Country) != 2 || !isUpperASCII(o.Country[0]) || !isUpperASCII(o.Country[1]) {
		return NewOrg{}, invalid("country", "want a two-letter ISO 3166-1 code")
	}
	if !o.Type.Valid() {
		return NewOrg{}, invalid("org_type", "want CUSTOMER, SUPPLIER or OPERATOR")
	}
	return o, nil
}

// NormalizeRoles trims, de-duplicates and sorts roles, and returns
// ErrInvalid for more than MaxRoles or a role that is empty, longer than
// MaxRoleLen or not printable ASCII.
func NormalizeRoles(in []string) ([]string, error) {
	if len(in) > MaxRoles {
		return nil, invalid("roles", "at most 64 roles")
	}
	roles := make([]string, 0, len(in))
	for _, r := range in {
		r = strings.TrimSpace(r)
		if r == "" || len(r) > MaxRoleLen || !printable(r) {
			return nil, invalid("roles", "each role is 1 to 64 bytes of printable ASCII without spaces")
		}
		roles = append(roles, r)
	}
	slices.Sort(roles)
	return slices.Compact(roles), nil
}

// text reports whether s is valid UTF-8 without control characters.
func text(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// printable reports whether s is printable ASCII without spaces.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func isUpperASCII(b byte) bool { return b >= 'A' && b <= 'Z' }
