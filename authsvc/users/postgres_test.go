package users_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessiond/sessiond/authsvc/users"
	"github.com/sessiond/sessiond/authsvc/users/userstest"
)

// freshDB returns a pool on a new empty database (see
// userstest.NewDatabase).
func freshDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, userstest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestPostgresDirectory(t *testing.T) {
	pool := freshDB(t)
	ctx := context.Background()
	if err := users.Migrate(ctx, pool); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	userstest.Run(t, func(t *testing.T) users.Directory {
		if _, err := pool.Exec(ctx, "TRUNCATE user_role, user_account, organization RESTART IDENTITY CASCADE"); err != nil {
			t.Fatalf("empty the directory: %v", err)
		}
		return users.NewPostgres(pool)
	})
}

func TestMigrateIdempotentAndConcurrent(t *testing.T) {
	pool := freshDB(t)
	ctx := context.Background()
	// Several processes starting at once: every Migrate succeeds and each
	// migration is applied exactly once.
	const n = 4
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = users.Migrate(ctx, pool) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Migrate: %v", err)
	}
	if err := users.Migrate(ctx, pool); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	var count, version int
	if err := pool.QueryRow(ctx, "SELECT count(*), max(version) FROM schema_migrations").Scan(&count, &version); err != nil {
		t.Fatal(err)
	}
	if count != 1 || version != 1 {
		t.Errorf("schema_migrations: got %d rows up to version %d, want 1 row, version 1", count, version)
	}
	// The advisory lock is released: another session can take it at once.
	var got bool
	if err := pool.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", int64(0x73657373696f6e64)).Scan(&got); err != nil || !got {
		t.Errorf("advisory lock after Migrate: try lock got %v, %v; want true", got, err)
	}
	// The schema's constraints hold even against direct writes.
	if _, err := pool.Exec(ctx, "INSERT INTO organization (name, country_code, type) VALUES ('x', 'th', 'CUSTOMER')"); err == nil {
		t.Errorf("lower-case country code accepted by the schema")
	}
	if _, err := pool.Exec(ctx, "INSERT INTO organization (name, country_code, type) VALUES ('x', 'TH', 'PARTNER')"); err == nil {
		t.Errorf("unknown org type accepted by the schema")
	}
}

func TestCreateConcurrentSameOrg(t *testing.T) {
	pool := freshDB(t)
	ctx := context.Background()
	if err := users.Migrate(ctx, pool); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	d := users.NewPostgres(pool)
	const n = 8
	got := make([]users.User, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			got[i], errs[i] = d.Create(ctx, users.NewUser{
				Email: string(rune('a'+i)) + "@race.example", PasswordHash: "$argon2id$x",
				OrgName: "Race Co", Country: "SG", OrgType: users.OrgSupplier,
			})
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Create #%d: %v", i, errs[i])
		}
		if got[i].Org.ID != got[0].Org.ID {
			t.Errorf("user %d in org %s, user 0 in org %s; want one org", i, got[i].Org.ID, got[0].Org.ID)
		}
	}
	// Same email at once: exactly one wins.
	errs = make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = d.Create(ctx, users.NewUser{
				Email: "Same@race.example", PasswordHash: "$argon2id$x",
				OrgName: "Race Co", Country: "SG", OrgType: users.OrgSupplier,
			})
		})
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, users.ErrEmailTaken):
			t.Errorf("concurrent duplicate: got %v, want nil or ErrEmailTaken", err)
		}
	}
	if wins != 1 {
		t.Errorf("concurrent duplicate: %d creates succeeded, want 1", wins)
	}
}
