package password

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckPolicy(t *testing.T) {
	for _, tc := range []struct {
		pw   string
		rule string // "" means accepted
	}{
		{"short", RuleMinLength},
		{"password", RuleCommon},
		{"12345678", RuleCommon},
		{"PassWord1", RuleCommon}, // case-insensitive: "password1" is listed
		{"iloveyou", RuleCommon},
		{"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", RuleEncoding},
		{strings.Repeat("a", MaxLength+1), RuleMaxLength},
		{strings.Repeat("€", MaxBytes), RuleMaxLength},
		{"correct horse battery staple", ""},
		{strings.Repeat("x7", 32), ""},       // 64 characters: NIST asks to accept at least 64
		{strings.Repeat("é", MinLength), ""}, // 8 characters of 2 bytes each
		{"ünïcödé-pässwörd", ""},
	} {
		err := CheckPolicy(tc.pw)
		var pe *PolicyError
		switch {
		case tc.rule == "" && err != nil:
			t.Errorf("CheckPolicy(%.20q) = %v, want accepted", tc.pw, err)
		case tc.rule != "" && (!errors.As(err, &pe) || pe.Rule != tc.rule || !errors.Is(err, ErrPolicy)):
			t.Errorf("CheckPolicy(%.20q) = %v, want rule %s", tc.pw, err, tc.rule)
		case tc.rule != "" && !strings.Contains(err.Error(), tc.rule):
			t.Errorf("CheckPolicy(%.20q): message %q does not name the rule %s", tc.pw, err, tc.rule)
		}
	}
	if n := BlocklistSize(); n < 10000 {
		t.Errorf("blocklist holds %d passwords, want the 11,611 of the embedded list", n)
	}
}
