package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/authsvc/password"
	"github.com/sessiond/sessiond/authsvc/users"
	authv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1/authv1connect"
)

// userTarget is where `sessiond user` works: Postgres directly, or a node's
// admin API for the built-in directory.
type userTarget struct {
	databaseURL string
	creds       apiCredentials
}

func (t *userTarget) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&t.databaseURL, "database-url", os.Getenv("SESSIOND_DATABASE_URL"), "Postgres DSN of the user directory")
	// No default address here: --addr (or --socket) selects the built-in
	// directory through a node.
	t.creds.bind(f, "")
}

// warnSessionsLive tells whoever changed an account directly in Postgres
// that the user's sessions live on: only a change made through a node
// (--addr, the admin API) ends them everywhere.
func (t *userTarget) warnSessionsLive(cmd *cobra.Command) {
	if t.databaseURL != "" {
		fmt.Fprintln(cmd.ErrOrStderr(), "warning: changed in Postgres directly: the user's sessions and access tokens stay valid until they expire; "+
			"make account changes with --addr (a node's admin API) to end them on every node at once")
	}
}

// userOps is what the user commands need; the two targets implement it.
type userOps interface {
	create(ctx context.Context, nu users.NewUser, pw string) (users.User, error)
	setStatus(ctx context.Context, email string, s users.Status) error
	setPassword(ctx context.Context, email, pw string) error
	setRoles(ctx context.Context, email string, roles []string) error
	setOrg(ctx context.Context, email string, org users.NewOrg) error
	deleteUser(ctx context.Context, email string) error
	list(ctx context.Context) ([]users.User, error)
	close()
}

func (t *userTarget) open(ctx context.Context) (userOps, error) {
	switch {
	case t.databaseURL != "" && t.creds.target():
		return nil, usageError{errors.New("give --database-url or --addr, not both")}
	case t.databaseURL != "":
		pool, err := pgxpool.New(ctx, t.databaseURL)
		if err != nil {
			return nil, fmt.Errorf("database-url: %w", err)
		}
		h, err := password.NewHasher(password.Config{})
		if err != nil {
			return nil, err
		}
		return &pgUsers{pool: pool, dir: users.NewPostgres(pool), hasher: h}, nil
	case t.creds.target():
		hc, base, opts, err := t.creds.connection()
		if err != nil {
			return nil, err
		}
		return &apiUsers{c: authv1connect.NewUserAdminServiceClient(hc, base, opts...)}, nil
	default:
		return nil, usageError{errors.New("give --database-url DSN (Postgres) or --addr URL (a node with the built-in directory)")}
	}
}

func newUserCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage users (Postgres or the built-in directory)"}
	cmd.AddCommand(newUserCreateCmd(), newUserSetStatusCmd(), newUserSetPasswordCmd(), newUserSetRolesCmd(), newUserSetOrgCmd(), newUserDeleteCmd(), newUserListCmd())
	return cmd
}

// readPassword reads one line from r (the password never goes on the
// command line, where ps and shell history would show it).
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", usageError{errors.New("no password on standard input")}
	}
	return pw, nil
}

func newUserCreateCmd() *cobra.Command {
	var t userTarget
	var nu users.NewUser
	var orgType string
	var stdin bool
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a user (password read from standard input)",
		Example: `  echo 's3cret-pass' | sessiond user create --database-url postgres://... --password-stdin \
      --email ana@example.com --display-name Ana --org-name Acme --country TH --org-type CUSTOMER --role customs-agent`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !stdin {
				return usageError{errors.New("--password-stdin is required: pipe the password in")}
			}
			pw, err := readPassword(cmd.InOrStdin())
			if err != nil {
				return err
			}
			nu.OrgType = users.OrgType(strings.ToUpper(orgType))
			ops, err := t.open(cmd.Context())
			if err != nil {
				return err
			}
			defer ops.close()
			u, err := ops.create(cmd.Context(), nu, pw)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created user %s <%s> in %s\n", u.ID, u.Email, u.Org.Name)
			return nil
		},
	}
	t.bind(cmd)
	f := cmd.Flags()
	f.StringVar(&nu.Email, "email", "", "email address")
	f.BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
	f.StringVar(&nu.DisplayName, "display-name", "", "display name")
	f.StringVar(&nu.OrgName, "org-name", "", "organization (created if new)")
	f.StringVar(&nu.Country, "country", "", "organization country code (ISO 3166-1 alpha-2)")
	f.StringVar(&orgType, "org-type", "CUSTOMER", "CUSTOMER, SUPPLIER or OPERATOR")
	f.StringSliceVar(&nu.Roles, "role", nil, "role (repeatable)")
	return cmd
}

func newUserSetStatusCmd() *cobra.Command {
	var t userTarget
	var email, status string
	cmd := &cobra.Command{
		Use: "set-status", Short: "Suspend or reactivate a user", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s := users.Status(strings.ToUpper(status))
			if !s.Valid() {
				return usageError{fmt.Errorf("--status %q: want ACTIVE or SUSPENDED", status)}
			}
			ops, err := t.open(cmd.Context())
			if err != nil {
				return err
			}
			defer ops.close()
			if err := ops.setStatus(cmd.Context(), email, s); err != nil {
				return err
			}
			if s == users.StatusSuspended {
				t.warnSessionsLive(cmd)
			}
			return nil
		},
	}
	t.bind(cmd)
	cmd.Flags().StringVar(&email, "email", "", "the user's email")
	cmd.Flags().StringVar(&status, "status", "", "ACTIVE or SUSPENDED")
	return cmd
}

func newUserSetPasswordCmd() *cobra.Command {
	var t userTarget
	var email string
	cmd := &cobra.Command{
		Use: "set-password", Short: "Replace a user's password (read from standard input)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := readPassword(cmd.InOrStdin())
			if err != nil {
				return err
			}
			ops, err := t.open(cmd.Context())
			if err != nil {
				return err
			}
			defer ops.close()
			if err := ops.setPassword(cmd.Context(), email, pw); err != nil {
				return err
			}
			t.warnSessionsLive(cmd)
			return nil
		},
	}
	t.bind(cmd)
	cmd.Flags().StringVar(&email, "email", "", "the user's email")
	return cmd
}

func newUserSetRolesCmd() *cobra.Command {
	var t userTarget
	var email string
	var roles []string
	cmd := &cobra.Command{
		Use: "set-roles", Short: "Replace a user's roles (ends its sessions, which carry the old roles)", Args: cobra.NoArgs,
		Example: `  sessiond user set-roles --addr https://10.0.1.10:8080 --email ana@example.com --role customs-agent --role viewer`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ops, err := t.open(cmd.Context())
			if err != nil {
				return err
			}
			defer ops.close()
			if err := ops.setRoles(cmd.Context(), email, roles); err != nil {
				return err
			}
			t.warnSessionsLive(cmd)
			return nil
		},
	}
	t.bind(cmd)
	cmd.Flags().StringVar(&email, "email", "", "the user's email")
	cmd.Flags().StringSliceVar(&roles, "role", nil, "role (repeatable; none clears the roles)")
	return cmd
}

func newUserSetOrgCmd() *cobra.Command {
	var t userTarget
	var email, orgType string
	var org users.NewOrg
	cmd := &cobra.Command{
		Use: "set-org", Short: "Move a user to another organization (ends its sessions, which carry the old one)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			org.Type = users.OrgType(strings.ToUpper(orgType))
			ops, err := t.open(cmd.Context())
			if err != nil {
				return err
			}
			defer ops.close()
			if err := ops.setOrg(cmd.Context(), email, org); err != nil {
				return err
			}
			t.warnSessionsLive(cmd)
			return nil
		},
	}
	t.bind(cmd)
	f := cmd.Flags()
	f.StringVar(&email, "email", "", "the user's email")
	f.StringVar(&org.Name, "org-name", "", "organization (created if new)")
	f.StringVar(&org.Country, "country", "", "organization country code (ISO 3166-1 alpha-2)")
	f.StringVar(&orgType, "org-type", "CUSTOMER", "CUSTOMER, SUPPLIER or OPERATOR")
	return cmd
}

func newUserDeleteCmd() *cobra.Command {
	var t userTarget
	var email string
	cmd := &cobra.Command{
		Use: "delete", Short: "Delete a user (ends its sessions)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ops, err := t.open(cmd.Context())
			if err != nil {
				return err
			}
			defer ops.close()
			if err := ops.deleteUser(cmd.Context(), email); err != nil {
				return err
			}
			t.warnSessionsLive(cmd)
			return nil
		},
	}
	t.bind(cmd)
	cmd.Flags().StringVar(&email, "email", "", "the user's email")
	return cmd
}

func newUserListCmd() *cobra.Command {
	var t userTarget
	cmd := &cobra.Command{
		Use: "list", Short: "List users", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ops, err := t.open(cmd.Context())
			if err != nil {
				return err
			}
			defer ops.close()
			list, err := ops.list(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tSTATUS\tORG\tCOUNTRY\tTYPE\tROLES\tCREATED")
			for _, u := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, u.Email, u.DisplayName, u.Status,
					u.Org.Name, u.Org.Country, u.Org.Type, strings.Join(u.Roles, ","), u.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	t.bind(cmd)
	return cmd
}

// pgUsers works on Postgres directly.
type pgUsers struct {
	pool   *pgxpool.Pool
	dir    users.Directory
	hasher *password.Hasher
}

func (p *pgUsers) close() { p.pool.Close() }

func (p *pgUsers) create(ctx context.Context, nu users.NewUser, pw string) (users.User, error) {
	if err := password.CheckPolicy(pw); err != nil {
		return users.User{}, err
	}
	h, err := p.hasher.Hash(pw)
	if err != nil {
		return users.User{}, err
	}
	nu.PasswordHash = h
	return p.dir.Create(ctx, nu)
}

func (p *pgUsers) setStatus(ctx context.Context, email string, s users.Status) error {
	u, err := p.dir.ByEmail(ctx, email)
	if err != nil {
		return err
	}
	return p.dir.SetStatus(ctx, u.ID, s)
}

func (p *pgUsers) setPassword(ctx context.Context, email, pw string) error {
	if err := password.CheckPolicy(pw); err != nil {
		return err
	}
	u, err := p.dir.ByEmail(ctx, email)
	if err != nil {
		return err
	}
	h, err := p.hasher.Hash(pw)
	if err != nil {
		return err
	}
	return p.dir.SetPasswordHash(ctx, u.ID, h)
}

func (p *pgUsers) setRoles(ctx context.Context, email string, roles []string) error {
	u, err := p.dir.ByEmail(ctx, email)
	if err != nil {
		return err
	}
	return p.dir.SetRoles(ctx, u.ID, roles)
}

func (p *pgUsers) setOrg(ctx context.Context, email string, org users.NewOrg) error {
	u, err := p.dir.ByEmail(ctx, email)
	if err != nil {
		return err
	}
	return p.dir.SetOrg(ctx, u.ID, org)
}

func (p *pgUsers) deleteUser(ctx context.Context, email string) error {
	u, err := p.dir.ByEmail(ctx, email)
	if err != nil {
		return err
	}
	return p.dir.Delete(ctx, u.ID)
}

func (p *pgUsers) list(ctx context.Context) ([]users.User, error) { return p.dir.List(ctx) }

// apiUsers works through a node's UserAdminService.
type apiUsers struct {
	c authv1connect.UserAdminServiceClient
}

func (a *apiUsers) close() {}

var orgTypeMsg = map[users.OrgType]authv1.OrgType{
	users.OrgCustomer: authv1.OrgType_ORG_TYPE_CUSTOMER,
	users.OrgSupplier: authv1.OrgType_ORG_TYPE_SUPPLIER,
	users.OrgOperator: authv1.OrgType_ORG_TYPE_OPERATOR,
}

func (a *apiUsers) create(ctx context.Context, nu users.NewUser, pw string) (users.User, error) {
	res, err := a.c.CreateUser(ctx, connect.NewRequest(&authv1.CreateUserRequest{
		Email: nu.Email, Password: pw, DisplayName: nu.DisplayName, OrgName: nu.OrgName,
		Country: nu.Country, OrgType: orgTypeMsg[nu.OrgType], Roles: nu.Roles,
	}))
	if err != nil {
		return users.User{}, err
	}
	return userFromMsg(res.Msg.GetUser()), nil
}

func userFromMsg(m *authv1.User) users.User {
	u := users.User{ID: m.GetId(), Email: m.GetEmail(), DisplayName: m.GetDisplayName(), Status: users.StatusActive,
		Roles: m.GetRoles(), Org: users.Org{Name: m.GetOrgName(), Country: m.GetCountry()}, CreatedAt: m.GetCreated().AsTime()}
	if m.GetSuspended() {
		u.Status = users.StatusSuspended
	}
	for k, v := range orgTypeMsg {
		if v == m.GetOrgType() {
			u.Org.Type = k
		}
	}
	return u
}

func (a *apiUsers) setStatus(ctx context.Context, email string, s users.Status) error {
	_, err := a.c.SetUserStatus(ctx, connect.NewRequest(&authv1.SetUserStatusRequest{Email: email, Suspended: s == users.StatusSuspended}))
	return err
}

func (a *apiUsers) setPassword(ctx context.Context, email, pw string) error {
	_, err := a.c.SetUserPassword(ctx, connect.NewRequest(&authv1.SetUserPasswordRequest{Email: email, Password: pw}))
	return err
}

func (a *apiUsers) setRoles(ctx context.Context, email string, roles []string) error {
	_, err := a.c.SetUserRoles(ctx, connect.NewRequest(&authv1.SetUserRolesRequest{Email: email, Roles: roles}))
	return err
}

func (a *apiUsers) setOrg(ctx context.Context, email string, org users.NewOrg) error {
	_, err := a.c.SetUserOrg(ctx, connect.NewRequest(&authv1.SetUserOrgRequest{
		Email: email, OrgName: org.Name, Country: org.Country, OrgType: orgTypeMsg[org.Type],
	}))
	return err
}

func (a *apiUsers) deleteUser(ctx context.Context, email string) error {
	_, err := a.c.DeleteUser(ctx, connect.NewRequest(&authv1.DeleteUserRequest{Email: email}))
	return err
}

func (a *apiUsers) list(ctx context.Context) ([]users.User, error) {
	res, err := a.c.ListUsers(ctx, connect.NewRequest(&authv1.ListUsersRequest{}))
	if err != nil {
		return nil, err
	}
	out := make([]users.User, 0, len(res.Msg.GetUsers()))
	for _, m := range res.Msg.GetUsers() {
		out = append(out, userFromMsg(m))
	}
	return out, nil
}

func newMigrateCmd() *cobra.Command {
	var dsn string
	cmd := &cobra.Command{
		Use: "migrate", Short: "Apply the Postgres schema migrations of the user directory", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dsn == "" {
				return usageError{errors.New("--database-url is required")}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			pool, err := pgxpool.New(ctx, dsn)
			if err != nil {
				return fmt.Errorf("database-url: %w", err)
			}
			defer pool.Close()
			if err := users.Migrate(ctx, pool); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "migrations applied")
			return nil
		},
	}
	cmd.Flags().StringVar(&dsn, "database-url", os.Getenv("SESSIOND_DATABASE_URL"), "Postgres DSN")
	return cmd
}

func newHashSecretCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "hash-secret",
		Short: "Hash a service client's secret (read from standard input) for the config file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := readPassword(cmd.InOrStdin())
			if err != nil {
				return err
			}
			h, err := password.NewHasher(password.Config{})
			if err != nil {
				return err
			}
			phc, err := h.Hash(s)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), phc)
			return nil
		},
	}
}
