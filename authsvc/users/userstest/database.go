package userstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultDatabaseURL is the Postgres tests use unless
// SESSIOND_TEST_DATABASE_URL names another: the local server, trust auth.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// NewDatabase creates an empty database with a random name on the test
// Postgres and returns its URL; the database is dropped (WITH (FORCE)) when
// t ends. Postgres being unreachable fails the test, or skips it under
// -short: a suite that silently skipped would prove nothing in CI.
func NewDatabase(t testing.TB) string {
	t.Helper()
	base := os.Getenv("SESSIOND_TEST_DATABASE_URL")
	if base == "" {
		base = DefaultDatabaseURL
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("SESSIOND_TEST_DATABASE_URL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		if testing.Short() {
			t.Skipf("Postgres unreachable at %s (-short): %v", u.Redacted(), err)
		}
		t.Fatalf("Postgres unreachable at %s: %v\n(start Postgres, set SESSIOND_TEST_DATABASE_URL, or run with -short to skip)", u.Redacted(), err)
	}
	defer admin.Close(ctx)
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "sessiond_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}
