package users

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is the Directory kept in Postgres (schema: Migrate). User and
// organisation IDs are the decimal form of their bigserial keys. Every
// query is parameterised.
type Postgres struct {
	pool *pgxpool.Pool
}

// NewPostgres returns the Directory stored in the database behind pool,
// whose schema Migrate must have brought up to date.
func NewPostgres(pool *pgxpool.Pool) Directory { return &Postgres{pool: pool} }

const selectUser = `
SELECT u.id, u.email, u.password_hash, u.display_name, u.status, u.created_at,
       o.id, o.name, o.country_code, o.type,
       coalesce(array_agg(r.role_name ORDER BY r.role_name) FILTER (WHERE r.role_name IS NOT NULL), '{}')
FROM user_account u
JOIN organization o ON o.id = u.org_id
LEFT JOIN user_role r ON r.user_id = u.id
`

const groupUser = ` GROUP BY u.id, o.id`

func scanUser(row pgx.Row) (User, error) {
	var (
		u          User
		id, orgID  int64
		status, ot string
	)
	if err := row.Scan(&id, &u.Email, &u.PasswordHash, &u.DisplayName, &status, &u.CreatedAt,
		&orgID, &u.Org.Name, &u.Org.Country, &ot, &u.Roles); err != nil {
		return User{}, err
	}
	u.ID, u.Org.ID = strconv.FormatInt(id, 10), strconv.FormatInt(orgID, 10)
	u.Status, u.Org.Type = Status(status), OrgType(ot)
	u.CreatedAt = u.CreatedAt.UTC()
	return u, nil
}

// parseID returns the key an ID names; ok is false when it is malformed.
func parseID(id string) (int64, bool) {
	n, err := strconv.ParseInt(id, 10, 64)
	return n, err == nil && n > 0 && strconv.FormatInt(n, 10) == id
}

// findOrCreateOrg returns the id of the organisation named o.Name,
// creating it when new; ErrInvalid when it exists with another country or
// type.
func findOrCreateOrg(ctx context.Context, tx pgx.Tx, o NewOrg) (int64, error) {
	var (
		orgID       int64
		country, ot string
	)
	// ON CONFLICT DO NOTHING waits for a concurrent insert of the same
	// name to commit; the SELECT (a new snapshot) then sees it.
	err := tx.QueryRow(ctx, `INSERT INTO organization (name, country_code, type) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO NOTHING RETURNING id, country_code, type`,
		o.Name, o.Country, string(o.Type)).Scan(&orgID, &country, &ot)
	if errors.Is(err, pgx.ErrNoRows) {
		err = tx.QueryRow(ctx, `SELECT id, country_code, type FROM organization WHERE name = $1`,
			o.Name).Scan(&orgID, &country, &ot)
	}
	if err != nil {
		return 0, fmt.Errorf("find or create organization: %w", err)
	}
	if country != o.Country || OrgType(ot) != o.Type {
		return 0, invalid("org_name", fmt.Sprintf("organization exists with country %s and type %s", country, ot))
	}
	return orgID, nil
}

// SetOrg implements Directory.
func (p *Postgres) SetOrg(ctx context.Context, id string, o NewOrg) error {
	o, err := o.Normalized()
	if err != nil {
		return err
	}
	n, ok := parseID(id)
	if !ok {
		return ErrNotFound
	}
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		orgID, err := findOrCreateOrg(ctx, tx, o)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE user_account SET org_id = $2 WHERE id = $1`, n, orgID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return nil
	})
	switch {
	case err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid):
		return err
	default:
		return fmt.Errorf("users: set organization of %s: %w", id, err)
	}
}

// Create implements Directory.
func (p *Postgres) Create(ctx context.Context, nu NewUser) (User, error) {
	nu, err := nu.Normalized()
	if err != nil {
		return User{}, err
	}
	var id int64
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		orgID, err := findOrCreateOrg(ctx, tx, NewOrg{Name: nu.OrgName, Country: nu.Country, Type: nu.OrgType})
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `INSERT INTO user_account (org_id, email, password_hash, display_name)
			VALUES ($1, $2, $3, $4) RETURNING id`,
			orgID, nu.Email, nu.PasswordHash, nu.DisplayName).Scan(&id)
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "user_account_email_lower_key" {
				return ErrEmailTaken
			}
			return fmt.Errorf("insert user: %w", err)
		}
		if len(nu.Roles) > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO user_role (user_id, role_name) SELECT $1, unnest($2::text[])`,
				id, nu.Roles); err != nil {
				return fmt.Errorf("insert roles: %w", err)
			}
		}
		return nil
	})
	switch {
	case errors.Is(err, ErrEmailTaken) || errors.Is(err, ErrInvalid):
		return User{}, err
	case err != nil:
		return User{}, fmt.Errorf("users: create: %w", err)
	}
	return p.byKey(ctx, id)
}

func (p *Postgres) byKey(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(p.pool.QueryRow(ctx, selectUser+`WHERE u.id = $1`+groupUser, id))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return User{}, ErrNotFound
	case err != nil:
		return User{}, fmt.Errorf("users: read user: %w", err)
	}
	return u, nil
}

// ByEmail implements Directory.
func (p *Postgres) ByEmail(ctx context.Context, email string) (User, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return User{}, err
	}
	u, err := scanUser(p.pool.QueryRow(ctx, selectUser+`WHERE lower(u.email) = lower($1)`+groupUser, e))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return User{}, ErrNotFound
	case err != nil:
		return User{}, fmt.Errorf("users: read user by email: %w", err)
	}
	return u, nil
}

// ByID implements Directory.
func (p *Postgres) ByID(ctx context.Context, id string) (User, error) {
	n, ok := parseID(id)
	if !ok {
		return User{}, ErrNotFound
	}
	return p.byKey(ctx, n)
}

// SetStatus implements Directory.
func (p *Postgres) SetStatus(ctx context.Context, id string, s Status) error {
	if !s.Valid() {
		return invalid("status", "want ACTIVE or SUSPENDED")
	}
	return p.update(ctx, id, `UPDATE user_account SET status = $2 WHERE id = $1`, string(s))
}

// SetPasswordHash implements Directory.
func (p *Postgres) SetPasswordHash(ctx context.Context, id, hash string) error {
	if hash == "" || len(hash) > MaxPasswordHash || !printable(hash) {
		return invalid("password_hash", "required, a PHC string")
	}
	return p.update(ctx, id, `UPDATE user_account SET password_hash = $2 WHERE id = $1`, hash)
}

// SetRoles implements Directory: the roles are replaced in one transaction.
func (p *Postgres) SetRoles(ctx context.Context, id string, roles []string) error {
	roles, err := NormalizeRoles(roles)
	if err != nil {
		return err
	}
	n, ok := parseID(id)
	if !ok {
		return ErrNotFound
	}
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM user_account WHERE id = $1 FOR UPDATE`, n).Scan(&one); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrNotFound
			}
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM user_role WHERE user_id = $1`, n); err != nil {
			return err
		}
		if len(roles) > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO user_role (user_id, role_name) SELECT $1, unnest($2::text[])`, n, roles); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("users: set roles of %s: %w", id, err)
	}
	return err
}

// Delete implements Directory (the user's roles go with it).
func (p *Postgres) Delete(ctx context.Context, id string) error {
	n, ok := parseID(id)
	if !ok {
		return ErrNotFound
	}
	tag, err := p.pool.Exec(ctx, `DELETE FROM user_account WHERE id = $1`, n)
	if err != nil {
		return fmt.Errorf("users: delete user %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

func (p *Postgres) update(ctx context.Context, id, sql string, v string) error {
	n, ok := parseID(id)
	if !ok {
		return ErrNotFound
	}
	tag, err := p.pool.Exec(ctx, sql, n, v)
	if err != nil {
		return fmt.Errorf("users: update user %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// List implements Directory.
func (p *Postgres) List(ctx context.Context) ([]User, error) {
	rows, err := p.pool.Query(ctx, selectUser+groupUser+` ORDER BY u.id`)
	if err != nil {
		return nil, fmt.Errorf("users: list: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("users: list: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("users: list: %w", err)
	}
	return out, nil
}
