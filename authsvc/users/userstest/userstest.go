// Package userstest is the conformance suite every users.Directory must
// pass. Run it from an implementation's tests:
//
//	func TestMyDirectory(t *testing.T) {
//		userstest.Run(t, func(t *testing.T) users.Directory { return newEmptyDir(t) })
//	}
package userstest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sessiond/sessiond/authsvc/users"
)

const hashA = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
const hashB = "$argon2id$v=19$m=19456,t=2,p=1$b3RoZXJzYWx0c2FsdA$b3RoZXJoYXNob3RoZXJoYXNob3RoZXJoYXNob3RoZXI"

// Run runs the suite. newDir must return an empty directory, fresh for each
// subtest; it may register cleanups on the t it is given. Subtests do not
// run in parallel.
func Run(t *testing.T, newDir func(t *testing.T) users.Directory) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, d users.Directory)
	}{
		{"Create", testCreate},
		{"CreateInvalid", testCreateInvalid},
		{"DuplicateEmailOtherCase", testDuplicate},
		{"ByEmailCaseInsensitive", testByEmailCase},
		{"UnicodeNormalisation", testUnicode},
		{"SQLMetacharacters", testSQLMeta},
		{"SharedOrganization", testSharedOrg},
		{"SetStatus", testSetStatus},
		{"SetPasswordHash", testSetPasswordHash},
		{"SetRoles", testSetRoles},
		{"SetOrg", testSetOrg},
		{"Delete", testDelete},
		{"List", testList},
		{"NotFound", testNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newDir(t)) })
	}
}

var cmpUser = cmp.Options{cmpopts.EquateEmpty()}

func newUser(email string) users.NewUser {
	return users.NewUser{
		Email: email, PasswordHash: hashA, DisplayName: "Somchai P.",
		OrgName: "Siam Freight", Country: "TH", OrgType: users.OrgCustomer,
		Roles: []string{"shipper"},
	}
}

func mustCreate(t *testing.T, d users.Directory, nu users.NewUser) users.User {
	t.Helper()
	u, err := d.Create(context.Background(), nu)
	if err != nil {
		t.Fatalf("Create(%q): %v", nu.Email, err)
	}
	return u
}

func mustByEmail(t *testing.T, d users.Directory, email string) users.User {
	t.Helper()
	u, err := d.ByEmail(context.Background(), email)
	if err != nil {
		t.Fatalf("ByEmail(%q): %v", email, err)
	}
	return u
}

func mustByID(t *testing.T, d users.Directory, id string) users.User {
	t.Helper()
	u, err := d.ByID(context.Background(), id)
	if err != nil {
		t.Fatalf("ByID(%q): %v", id, err)
	}
	return u
}

func testCreate(t *testing.T, d users.Directory) {
	nu := users.NewUser{
		Email: "  Agent.Smith@Customs.GO.TH ", PasswordHash: hashA, DisplayName: " Agent Smith ",
		OrgName: "Thai Customs", Country: "th", OrgType: users.OrgOperator,
		Roles: []string{"customs-agent", "auditor", "customs-agent"},
	}
	u := mustCreate(t, d, nu)
	if u.ID == "" || u.Org.ID == "" {
		t.Fatalf("Create returned ID %q, org ID %q; want both set", u.ID, u.Org.ID)
	}
	if u.CreatedAt.IsZero() {
		t.Errorf("CreatedAt is zero")
	}
	want := users.User{
		ID: u.ID, Email: "agent.smith@customs.go.th", PasswordHash: hashA, DisplayName: "Agent Smith",
		Status: users.StatusActive, Roles: []string{"auditor", "customs-agent"},
		Org:       users.Org{ID: u.Org.ID, Name: "Thai Customs", Country: "TH", Type: users.OrgOperator},
		CreatedAt: u.CreatedAt,
	}
	if diff := cmp.Diff(want, u, cmpUser); diff != "" {
		t.Errorf("Create returned (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(u, mustByID(t, d, u.ID), cmpUser); diff != "" {
		t.Errorf("ByID differs from Create (-create +byid):\n%s", diff)
	}
	if diff := cmp.Diff(u, mustByEmail(t, d, u.Email), cmpUser); diff != "" {
		t.Errorf("ByEmail differs from Create (-create +byemail):\n%s", diff)
	}
	// A user without roles.
	nu2 := newUser("noroles@example.com")
	nu2.Roles = nil
	if u2 := mustCreate(t, d, nu2); len(u2.Roles) != 0 || u2.ID == u.ID {
		t.Errorf("second user: ID %q roles %v; want a new ID and no roles", u2.ID, u2.Roles)
	}
}

func testCreateInvalid(t *testing.T, d users.Directory) {
	ctx := context.Background()
	for _, tc := range []struct {
		field string
		edit  func(*users.NewUser)
	}{
		{"email", func(n *users.NewUser) { n.Email = "" }},
		{"email", func(n *users.NewUser) { n.Email = "no-at-sign.example.com" }},
		{"email", func(n *users.NewUser) { n.Email = "two@at@example.com" }},
		{"email", func(n *users.NewUser) { n.Email = "ctl\x00@example.com" }},
		{"email", func(n *users.NewUser) { n.Email = "bad\xffutf8@example.com" }},
		{"email", func(n *users.NewUser) { n.Email = fmt.Sprintf("%0250d@x.com", 0) }},
		{"password_hash", func(n *users.NewUser) { n.PasswordHash = "" }},
		{"org_name", func(n *users.NewUser) { n.OrgName = "  " }},
		{"country", func(n *users.NewUser) { n.Country = "THA" }},
		{"country", func(n *users.NewUser) { n.Country = "1X" }},
		{"org_type", func(n *users.NewUser) { n.OrgType = "PARTNER" }},
		{"roles", func(n *users.NewUser) { n.Roles = []string{"ok", ""} }},
		{"display_name", func(n *users.NewUser) { n.DisplayName = "bell\a" }},
	} {
		nu := newUser("valid@example.com")
		tc.edit(&nu)
		_, err := d.Create(ctx, nu)
		var fe *users.FieldError
		if !errors.Is(err, users.ErrInvalid) || !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("Create(%+v): got %v, want ErrInvalid on field %q", nu, err, tc.field)
		}
	}
	if _, err := d.ByEmail(ctx, "valid@example.com"); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("after invalid creates, ByEmail: got %v, want ErrNotFound", err)
	}
}

func testDuplicate(t *testing.T, d users.Directory) {
	first := mustCreate(t, d, newUser("dup@example.com"))
	for _, e := range []string{"dup@example.com", "DUP@Example.COM", " Dup@example.com"} {
		if _, err := d.Create(context.Background(), newUser(e)); !errors.Is(err, users.ErrEmailTaken) {
			t.Errorf("Create(%q) after %q: got %v, want ErrEmailTaken", e, first.Email, err)
		}
	}
	all, err := d.List(context.Background())
	if err != nil || len(all) != 1 {
		t.Errorf("List after duplicates: got %d users, err %v; want 1", len(all), err)
	}
}

func testByEmailCase(t *testing.T, d users.Directory) {
	u := mustCreate(t, d, newUser("MiXeD@Example.com"))
	if u.Email != "mixed@example.com" {
		t.Errorf("stored email: got %q, want %q", u.Email, "mixed@example.com")
	}
	for _, e := range []string{"mixed@example.com", "MIXED@EXAMPLE.COM", "\tMixed@Example.Com\n"} {
		if got := mustByEmail(t, d, e); got.ID != u.ID {
			t.Errorf("ByEmail(%q): got user %q, want %q", e, got.ID, u.ID)
		}
	}
}

func testUnicode(t *testing.T, d users.Directory) {
	const nfc = "jos\u00e9@example.com"  // é precomposed
	const nfd = "jose\u0301@example.com" // e + combining acute
	u := mustCreate(t, d, newUser(nfd))
	if u.Email != nfc {
		t.Errorf("stored email: got %q, want NFC %q", u.Email, nfc)
	}
	for _, e := range []string{nfc, nfd, "JOS\u00c9@EXAMPLE.COM", "JOSE\u0301@example.com"} {
		if got := mustByEmail(t, d, e); got.ID != u.ID {
			t.Errorf("ByEmail(%q): got user %q, want %q", e, got.ID, u.ID)
		}
	}
	if _, err := d.Create(context.Background(), newUser(nfc)); !errors.Is(err, users.ErrEmailTaken) {
		t.Errorf("Create(NFC) after Create(NFD): got %v, want ErrEmailTaken", err)
	}
	// Other scripts round-trip unchanged.
	thai := "สมชาย@ตัวอย่าง.ไทย"
	v := mustCreate(t, d, newUser(thai))
	if got := mustByEmail(t, d, thai); got.ID != v.ID || got.Email != thai {
		t.Errorf("ByEmail(%q): got %q %q, want %q %q", thai, got.ID, got.Email, v.ID, thai)
	}
}

func testSQLMeta(t *testing.T, d users.Directory) {
	ctx := context.Background()
	victim := mustCreate(t, d, newUser("victim@example.com"))
	evil := []string{
		"o'brien@example.com",
		"x'or'1'='1@example.com",
		"a';drop/**/table/**/user_account;--@example.com",
		`back\slash"quote@example.com`,
		"$1$2@example.com",
	}
	nu := newUser("")
	nu.OrgName = "O'Reilly; DROP TABLE organization; --"
	for _, e := range evil {
		nu.Email = e
		u := mustCreate(t, d, nu)
		if u.Email != e || u.Org.Name != nu.OrgName {
			t.Errorf("Create(%q): stored email %q org %q", e, u.Email, u.Org.Name)
		}
		if got := mustByEmail(t, d, e); got.ID != u.ID {
			t.Errorf("ByEmail(%q): got user %q, want %q", e, got.ID, u.ID)
		}
	}
	// LIKE wildcards match nothing but themselves.
	for _, e := range []string{"%@example.com", "_ictim@example.com", "victim@%"} {
		if _, err := d.ByEmail(ctx, e); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("ByEmail(%q): got %v, want ErrNotFound", e, err)
		}
	}
	all, err := d.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if got, want := len(all), len(evil)+1; got != want {
		t.Errorf("List: got %d users, want %d", got, want)
	}
	if got := mustByID(t, d, victim.ID); got.Email != victim.Email {
		t.Errorf("victim: got %q, want %q", got.Email, victim.Email)
	}
}

func testSharedOrg(t *testing.T, d users.Directory) {
	a := mustCreate(t, d, newUser("a@siam.example"))
	b := mustCreate(t, d, newUser("b@siam.example"))
	if a.Org != b.Org {
		t.Errorf("same org name: got orgs %+v and %+v, want the same", a.Org, b.Org)
	}
	other := newUser("c@other.example")
	other.OrgName = "Other Co"
	if c := mustCreate(t, d, other); c.Org.ID == a.Org.ID {
		t.Errorf("different org names share org ID %q", c.Org.ID)
	}
	// Joining an existing organisation under another type is refused:
	// a signup must not become an OPERATOR by naming an operator's org.
	esc := newUser("d@siam.example")
	esc.OrgType = users.OrgOperator
	var fe *users.FieldError
	if _, err := d.Create(context.Background(), esc); !errors.As(err, &fe) || fe.Field != "org_name" {
		t.Errorf("Create into existing org with another type: got %v, want ErrInvalid on org_name", err)
	}
	if _, err := d.ByEmail(context.Background(), esc.Email); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("refused user was stored: ByEmail got %v, want ErrNotFound", err)
	}
}

func testSetStatus(t *testing.T, d users.Directory) {
	ctx := context.Background()
	u := mustCreate(t, d, newUser("status@example.com"))
	other := mustCreate(t, d, newUser("bystander@example.com"))
	if err := d.SetStatus(ctx, u.ID, users.StatusSuspended); err != nil {
		t.Fatalf("SetStatus(SUSPENDED): %v", err)
	}
	if got := mustByEmail(t, d, u.Email).Status; got != users.StatusSuspended {
		t.Errorf("after suspend: got %s, want SUSPENDED", got)
	}
	if got := mustByID(t, d, other.ID).Status; got != users.StatusActive {
		t.Errorf("bystander: got %s, want ACTIVE", got)
	}
	if err := d.SetStatus(ctx, u.ID, users.StatusActive); err != nil {
		t.Fatalf("SetStatus(ACTIVE): %v", err)
	}
	if got := mustByID(t, d, u.ID).Status; got != users.StatusActive {
		t.Errorf("after reactivate: got %s, want ACTIVE", got)
	}
	if err := d.SetStatus(ctx, u.ID, "DELETED"); !errors.Is(err, users.ErrInvalid) {
		t.Errorf("SetStatus(DELETED): got %v, want ErrInvalid", err)
	}
	if err := d.SetStatus(ctx, "987654321", users.StatusSuspended); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("SetStatus(unknown id): got %v, want ErrNotFound", err)
	}
}

func testSetRoles(t *testing.T, d users.Directory) {
	ctx := context.Background()
	u := mustCreate(t, d, newUser("roles@example.com"))
	if err := d.SetRoles(ctx, u.ID, []string{" viewer", "admin", "viewer"}); err != nil {
		t.Fatalf("SetRoles: %v", err)
	}
	if got, want := mustByID(t, d, u.ID).Roles, []string{"admin", "viewer"}; !cmp.Equal(got, want) {
		t.Errorf("roles after SetRoles: got %v, want %v (trimmed, de-duplicated, sorted)", got, want)
	}
	if err := d.SetRoles(ctx, u.ID, nil); err != nil {
		t.Fatalf("SetRoles(nil): %v", err)
	}
	if got := mustByEmail(t, d, u.Email).Roles; len(got) != 0 {
		t.Errorf("roles after clearing: %v, want none", got)
	}
	if err := d.SetRoles(ctx, u.ID, []string{"has space"}); !errors.Is(err, users.ErrInvalid) {
		t.Errorf("SetRoles(bad role): got %v, want ErrInvalid", err)
	}
	if err := d.SetRoles(ctx, "987654321", []string{"x"}); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("SetRoles(unknown id): got %v, want ErrNotFound", err)
	}
}

func testSetOrg(t *testing.T, d users.Directory) {
	ctx := context.Background()
	u := mustCreate(t, d, newUser("mover@example.com"))
	before := mustByID(t, d, u.ID).Org
	if err := d.SetOrg(ctx, u.ID, users.NewOrg{Name: " Brand New Org ", Country: "kr", Type: users.OrgCustomer}); err != nil {
		t.Fatalf("SetOrg: %v", err)
	}
	after := mustByEmail(t, d, u.Email).Org
	if after.Name != "Brand New Org" || after.Country != "KR" || after.Type != users.OrgCustomer || after.ID == before.ID {
		t.Errorf("org after SetOrg: %+v (before %+v), want Brand New Org, KR, CUSTOMER, another id", after, before)
	}
	// Back to the first organisation, which keeps its id.
	if err := d.SetOrg(ctx, u.ID, users.NewOrg{Name: before.Name, Country: before.Country, Type: before.Type}); err != nil {
		t.Fatalf("SetOrg back: %v", err)
	}
	if got := mustByID(t, d, u.ID).Org; got.ID != before.ID {
		t.Errorf("org id after moving back: %s, want %s", got.ID, before.ID)
	}
	if err := d.SetOrg(ctx, u.ID, users.NewOrg{Name: before.Name, Country: "JP", Type: before.Type}); !errors.Is(err, users.ErrInvalid) {
		t.Errorf("SetOrg to an existing org with another country: got %v, want ErrInvalid", err)
	}
	if err := d.SetOrg(ctx, u.ID, users.NewOrg{Name: "X", Country: "Thailand", Type: users.OrgCustomer}); !errors.Is(err, users.ErrInvalid) {
		t.Errorf("SetOrg with a bad country: got %v, want ErrInvalid", err)
	}
	if err := d.SetOrg(ctx, "987654321", users.NewOrg{Name: "X", Country: "TH", Type: users.OrgCustomer}); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("SetOrg(unknown id): got %v, want ErrNotFound", err)
	}
}

func testDelete(t *testing.T, d users.Directory) {
	ctx := context.Background()
	u := mustCreate(t, d, newUser("gone@example.com"))
	other := mustCreate(t, d, newUser("stays@example.com"))
	if err := d.Delete(ctx, u.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := d.ByEmail(ctx, u.Email); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("ByEmail after Delete: got %v, want ErrNotFound", err)
	}
	if _, err := d.ByID(ctx, u.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("ByID after Delete: got %v, want ErrNotFound", err)
	}
	mustByID(t, d, other.ID)
	if err := d.Delete(ctx, u.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("Delete twice: got %v, want ErrNotFound", err)
	}
	// The email is free again.
	mustCreate(t, d, newUser("gone@example.com"))
}

func testSetPasswordHash(t *testing.T, d users.Directory) {
	ctx := context.Background()
	u := mustCreate(t, d, newUser("pw@example.com"))
	other := mustCreate(t, d, newUser("pw2@example.com"))
	if err := d.SetPasswordHash(ctx, u.ID, hashB); err != nil {
		t.Fatalf("SetPasswordHash: %v", err)
	}
	if got := mustByEmail(t, d, u.Email).PasswordHash; got != hashB {
		t.Errorf("after SetPasswordHash: got %q, want %q", got, hashB)
	}
	if got := mustByID(t, d, other.ID).PasswordHash; got != hashA {
		t.Errorf("bystander hash: got %q, want %q", got, hashA)
	}
	if err := d.SetPasswordHash(ctx, u.ID, ""); !errors.Is(err, users.ErrInvalid) {
		t.Errorf("SetPasswordHash(empty): got %v, want ErrInvalid", err)
	}
	if err := d.SetPasswordHash(ctx, "987654321", hashB); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("SetPasswordHash(unknown id): got %v, want ErrNotFound", err)
	}
}

func testList(t *testing.T, d users.Directory) {
	ctx := context.Background()
	if all, err := d.List(ctx); err != nil || len(all) != 0 {
		t.Fatalf("List of empty directory: got %d users, err %v; want none", len(all), err)
	}
	var want []users.User
	for i, e := range []string{"first@example.com", "second@example.com", "third@example.com"} {
		nu := newUser(e)
		nu.Roles = append(nu.Roles, fmt.Sprintf("role-%d", i))
		want = append(want, mustCreate(t, d, nu))
	}
	got, err := d.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if diff := cmp.Diff(want, got, cmpUser); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

func testNotFound(t *testing.T, d users.Directory) {
	ctx := context.Background()
	u := mustCreate(t, d, newUser("exists@example.com"))
	if _, err := d.ByEmail(ctx, "missing@example.com"); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("ByEmail(missing): got %v, want ErrNotFound", err)
	}
	if _, err := d.ByEmail(ctx, "not an email"); !errors.Is(err, users.ErrInvalid) {
		t.Errorf("ByEmail(malformed): got %v, want ErrInvalid", err)
	}
	for _, id := range []string{"987654321", "", "abc", "1 OR 1=1", "-1", "0", u.ID + "0", "99999999999999999999999"} {
		if _, err := d.ByID(ctx, id); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("ByID(%q): got %v, want ErrNotFound", id, err)
		}
	}
}
