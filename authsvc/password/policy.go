package password

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// The password policy (NIST SP 800-63B §5.1.1.2): a length range counted in
// Unicode characters, and a blocklist of common and breached passwords. No
// composition rules (digits, symbols) and no expiry, as the guideline says.
// Both user directories (built-in and Postgres) and every way of setting a
// password (signup, admin create and reset, `sessiond user` against
// Postgres) apply it through CheckPolicy.
const (
	// MinLength is the fewest characters a password may have.
	MinLength = 8
	// MaxLength is the most characters a password may have (the guideline
	// asks to accept at least 64).
	MaxLength = 256
	// MaxBytes bounds a password's encoded size (a 256-character password
	// of 4-byte characters).
	MaxBytes = 1024
)

// The rules CheckPolicy names in a PolicyError.
const (
	RuleMinLength = "min_length"
	RuleMaxLength = "max_length"
	RuleEncoding  = "encoding"
	RuleCommon    = "common_password"
)

// ErrPolicy is what every PolicyError matches with errors.Is.
var ErrPolicy = errors.New("password: refused by the password policy")

// PolicyError says which rule a password breaks. Its message never holds
// the password.
type PolicyError struct {
	Rule    string
	Message string
}

func (e *PolicyError) Error() string { return "password: " + e.Message + " (rule " + e.Rule + ")" }

// Is makes a PolicyError match ErrPolicy.
func (e *PolicyError) Is(target error) bool { return target == ErrPolicy }

// CheckPolicy returns nil when pw may be set as a password, else a
// *PolicyError naming the rule it breaks.
func CheckPolicy(pw string) error {
	if len(pw) > MaxBytes {
		return &PolicyError{RuleMaxLength, fmt.Sprintf("at most %d characters (%d bytes)", MaxLength, MaxBytes)}
	}
	if !utf8.ValidString(pw) {
		return &PolicyError{RuleEncoding, "must be valid UTF-8"}
	}
	switch n := utf8.RuneCountInString(pw); {
	case n < MinLength:
		return &PolicyError{RuleMinLength, fmt.Sprintf("at least %d characters", MinLength)}
	case n > MaxLength:
		return &PolicyError{RuleMaxLength, fmt.Sprintf("at most %d characters", MaxLength)}
	}
	if Common(pw) {
		return &PolicyError{RuleCommon, "too common: it is on the list of common and breached passwords; choose another"}
	}
	return nil
}

// blocklistGz is the blocklist: the 30,000 most common passwords of the
// frequency list shipped in the npm package zxcvbn 4.4.2 (Dropbox, MIT
// licence; lib/frequency_lists.js, list "passwords", drawn from the Xato
// corpus of 10 million leaked passwords), keeping the 11,611 of at least 8
// characters (shorter ones break the length rule already), one per line,
// lower case, gzip-compressed. See blocklist/README.md to rebuild it.
//
//go:embed blocklist/common.txt.gz
var blocklistGz []byte

var blocklist = sync.OnceValue(func() map[string]struct{} {
	zr, err := gzip.NewReader(bytes.NewReader(blocklistGz))
	if err != nil {
		panic(fmt.Sprintf("password: embedded blocklist: %v", err)) // the build embeds a valid file
	}
	m := make(map[string]struct{}, 12000)
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		if w := sc.Text(); w != "" {
			m[w] = struct{}{}
		}
	}
	if err := sc.Err(); err != nil {
		panic(fmt.Sprintf("password: embedded blocklist: %v", err))
	}
	return m
})

// Common reports whether pw, compared case-insensitively, is on the
// embedded blocklist of common and breached passwords.
func Common(pw string) bool {
	_, ok := blocklist()[strings.ToLower(pw)]
	return ok
}

// BlocklistSize is the number of passwords on the blocklist.
func BlocklistSize() int { return len(blocklist()) }
