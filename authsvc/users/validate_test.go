package users

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

func TestNormalizeEmail(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"user@example.com", "user@example.com", true},
		{"  User@Example.COM\t", "user@example.com", true},
		{"jose\u0301@example.com", "jos\u00e9@example.com", true},
		{"JOS\u00c9@EXAMPLE.COM", "jos\u00e9@example.com", true},
		{"o'brien@example.com", "o'brien@example.com", true},
		{strings.Repeat("a", 242) + "@example.com", strings.Repeat("a", 242) + "@example.com", true}, // 254 bytes
		{strings.Repeat("a", 243) + "@example.com", "", false},                                       // 255 bytes
		{"", "", false},
		{"   ", "", false},
		{"noat.example.com", "", false},
		{"a@b@example.com", "", false},
		{"@example.com", "", false},
		{"user@", "", false},
		{"us er@example.com", "", false},
		{"user\r\n@example.com", "", false},
		{"user\u0085@example.com", "", false}, // NEL, a C1 control
		{"user\xff@example.com", "", false},
		{strings.Repeat("é", 2000) + "@x", "", false},
	} {
		got, err := NormalizeEmail(tc.in)
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q, nil", tc.in, got, err, tc.want)
		}
		var fe *FieldError
		if !tc.ok && (!errors.Is(err, ErrInvalid) || !errors.As(err, &fe) || fe.Field != "email") {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want ErrInvalid on email", tc.in, got, err)
		}
	}
}

func TestEmbeddedMigrationsLoad(t *testing.T) {
	ms, err := loadMigrations(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].version != 1 || ms[0].name != "0001_init.sql" {
		t.Fatalf("embedded migrations: got %+v, want 0001_init.sql first", ms)
	}
	for i := 1; i < len(ms); i++ {
		if ms[i].version <= ms[i-1].version {
			t.Errorf("migrations out of order: %s after %s", ms[i].name, ms[i-1].name)
		}
	}
}

func TestLoadMigrationsRejectsBadNames(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"no version":   {"m/init.sql": {Data: []byte("SELECT 1")}},
		"zero version": {"m/0000_init.sql": {Data: []byte("SELECT 1")}},
		"duplicate":    {"m/0001_a.sql": {Data: []byte("SELECT 1")}, "m/001_b.sql": {Data: []byte("SELECT 1")}},
	} {
		if _, err := loadMigrations(fsys, "m"); err == nil {
			t.Errorf("%s: loadMigrations accepted %v", name, fsys)
		}
	}
	ms, err := loadMigrations(fstest.MapFS{
		"m/0010_b.sql": {Data: []byte("B")}, "m/0002_a.sql": {Data: []byte("A")}, "m/README": {Data: []byte("x")},
	}, "m")
	if err != nil || len(ms) != 2 || ms[0].version != 2 || ms[1].version != 10 {
		t.Errorf("loadMigrations: got %+v, %v; want versions 2 then 10", ms, err)
	}
}
