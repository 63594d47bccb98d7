package store

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// opToken returns a valid PutOperatorToken command at now.
func opToken(now time.Time, id, name string) *storev1.Command {
	return &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_PutOperatorToken{PutOperatorToken: &storev1.PutOperatorToken{
		Token: &storev1.OperatorToken{Id: id, Name: name, Scopes: []string{"cluster:read"}, SecretSha256: make([]byte, 32),
			CreatedUnixNano: now.UnixNano(), ExpiresUnixNano: now.Add(time.Hour).UnixNano(), CreatedBy: "operator/alice"}}}}
}

// TestValidateCommandRefusesBadShapes applies commands with one bad field
// each and checks that every one is refused with the code and a message
// naming the field, and that the state did not change.
func TestValidateCommandRefusesBadShapes(t *testing.T) {
	s := openTemp(t, "v.db")
	now := t0
	if res := applyOne(t, s, mustEncode(t, openCmd(now, "s1", "u1", storev1.Platform_PLATFORM_WEB, "d1", "t1", 30*time.Minute, time.Hour, false))); res.GetCode() != 0 {
		t.Fatalf("open s1: %v", res)
	}
	before := stateHash(t, s, false)
	far := now.Add(11 * 365 * 24 * time.Hour).UnixNano()
	withSession := func(f func(*storev1.Session)) *storev1.Command {
		c := openCmd(now, "s2", "u1", storev1.Platform_PLATFORM_IOS, "d2", "t2", 30*time.Minute, time.Hour, false)
		f(c.GetOpenSession().GetSession())
		return c
	}
	withToken := func(f func(*storev1.OperatorToken)) *storev1.Command {
		c := opToken(now, "0123456789abcdef01234567", "ci")
		f(c.GetPutOperatorToken().GetToken())
		return c
	}
	user := func(f func(*storev1.User)) *storev1.Command {
		u := &storev1.User{Id: "u9", EmailKey: "a@b", Email: "a@b", OrgCountry: "TH", Status: storev1.UserStatus_USER_STATUS_ACTIVE}
		f(u)
		return &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_PutUser{PutUser: &storev1.PutUser{User: u}}}
	}
	k32 := make([]byte, 32)
	failures := func(keys [][]byte, window int64) *storev1.Command {
		return &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_RecordLoginFailure{RecordLoginFailure: &storev1.RecordLoginFailure{Keys: keys, WindowNanos: window}}}
	}
	cases := []struct {
		name string
		cmd  *storev1.Command
		code storev1.ErrorCode
		want string
	}{
		{"now in 2223", &storev1.Command{NowUnixNano: 8_000_000_000 * 1e9, Op: &storev1.Command_Purge{Purge: &storev1.Purge{Limit: 1}}}, storev1.ErrorCode_ERROR_CODE_INVALID, "now_unix_nano"},
		{"request id with a space", &storev1.Command{NowUnixNano: now.UnixNano(), RequestId: "a b", Op: &storev1.Command_Purge{Purge: &storev1.Purge{Limit: 1}}}, storev1.ErrorCode_ERROR_CODE_INVALID, "request_id"},
		{"session id with a newline", withSession(func(s *storev1.Session) { s.Id = "s\n2" }), storev1.ErrorCode_ERROR_CODE_INVALID, "session.id"},
		{"user id with a control character", withSession(func(s *storev1.Session) { s.UserId = "u\x01" }), storev1.ErrorCode_ERROR_CODE_INVALID, "session.user_id"},
		{"user agent too long", withSession(func(s *storev1.Session) { s.UserAgent = strings.Repeat("a", 1025) }), storev1.ErrorCode_ERROR_CODE_INVALID, "session.user_agent"},
		{"absolute expiry in 11 years", withSession(func(s *storev1.Session) { s.AbsoluteExpiresUnixNano = far }), storev1.ErrorCode_ERROR_CODE_INVALID, "session.absolute_expires_unix_nano"},
		{"negative created", withSession(func(s *storev1.Session) { s.CreatedUnixNano = -1 }), storev1.ErrorCode_ERROR_CODE_INVALID, "session.created_unix_nano"},
		{"unknown end reason", withSession(func(s *storev1.Session) { s.EndReason = 99 }), storev1.ErrorCode_ERROR_CODE_INVALID, "session.end_reason"},
		{"refresh hash of 3 bytes", &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_RotateRefresh{RotateRefresh: &storev1.RotateRefresh{
			OldIdHash: tokHash("t1"), Next: &storev1.RefreshToken{IdHash: []byte{1, 2, 3}}, GraceNanos: 1}}}, storev1.ErrorCode_ERROR_CODE_INVALID, "next.id_hash"},
		{"grace of a day", &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_RotateRefresh{RotateRefresh: &storev1.RotateRefresh{
			OldIdHash: tokHash("t1"), Next: &storev1.RefreshToken{IdHash: tokHash("t9")}, GraceNanos: int64(24 * time.Hour)}}}, storev1.ErrorCode_ERROR_CODE_INVALID, "grace_nanos"},
		{"end session with an unknown reason", &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_EndSession{EndSession: &storev1.EndSession{SessionId: "s1", Reason: 42}}}, storev1.ErrorCode_ERROR_CODE_INVALID, "reason"},
		{"revocation reason too long", &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_RevokeToken{RevokeToken: &storev1.RevokeToken{Revocation: &storev1.Revocation{
			Jti: "j1", ExpiresUnixNano: now.Add(time.Hour).UnixNano(), Reason: strings.Repeat("r", 65)}}}}, storev1.ErrorCode_ERROR_CODE_INVALID, "revocation.reason"},
		{"signing key with a short public key", &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_PutSigningKey{PutSigningKey: &storev1.PutSigningKey{Key: &storev1.SigningKey{
			Kid: "k1", Algorithm: "ed25519", PublicKey: []byte("short"), ExpiresUnixNano: now.Add(time.Hour).UnixNano()}}}}, storev1.ErrorCode_ERROR_CODE_INVALID, "key.public_key"},
		{"signing key with a huge sealed half", &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_PutSigningKey{PutSigningKey: &storev1.PutSigningKey{Key: &storev1.SigningKey{
			Kid: "k1", EncryptedPrivateKey: make([]byte, 300), ExpiresUnixNano: now.Add(time.Hour).UnixNano()}}}}, storev1.ErrorCode_ERROR_CODE_INVALID, "key.encrypted_private_key"},
		{"user with 65 roles", user(func(u *storev1.User) { u.Roles = make([]string, 65) }), storev1.ErrorCode_ERROR_CODE_INVALID, "user.roles"},
		{"user with a bad country", user(func(u *storev1.User) { u.OrgCountry = "Thailand" }), storev1.ErrorCode_ERROR_CODE_INVALID, "user.org_country"},
		{"user with an unknown status", user(func(u *storev1.User) { u.Status = 7 }), storev1.ErrorCode_ERROR_CODE_INVALID, "user.status"},
		{"user too large", user(func(u *storev1.User) { u.DisplayName = strings.Repeat("x", DefaultMaxRecordSize) }), storev1.ErrorCode_ERROR_CODE_TOO_LARGE, "user record"},
		{"operator token with a short id", withToken(func(o *storev1.OperatorToken) { o.Id = "abc" }), storev1.ErrorCode_ERROR_CODE_INVALID, "token.id"},
		{"operator token with a capital name", withToken(func(o *storev1.OperatorToken) { o.Name = "CI" }), storev1.ErrorCode_ERROR_CODE_INVALID, "token.name"},
		{"operator token without scopes", withToken(func(o *storev1.OperatorToken) { o.Scopes = nil }), storev1.ErrorCode_ERROR_CODE_INVALID, "token.scopes"},
		{"operator token with a repeated scope", withToken(func(o *storev1.OperatorToken) { o.Scopes = []string{"admin", "admin"} }), storev1.ErrorCode_ERROR_CODE_INVALID, "token.scopes"},
		{"operator token with a malformed scope", withToken(func(o *storev1.OperatorToken) { o.Scopes = []string{"Cluster Read"} }), storev1.ErrorCode_ERROR_CODE_INVALID, "token.scopes"},
		{"operator token with a short hash", withToken(func(o *storev1.OperatorToken) { o.SecretSha256 = []byte{1} }), storev1.ErrorCode_ERROR_CODE_INVALID, "token.secret_sha256"},
		{"operator token already expired", withToken(func(o *storev1.OperatorToken) { o.ExpiresUnixNano = now.UnixNano() }), storev1.ErrorCode_ERROR_CODE_INVALID, "token.expires_unix_nano"},
		{"operator token for 11 years", withToken(func(o *storev1.OperatorToken) { o.ExpiresUnixNano = far }), storev1.ErrorCode_ERROR_CODE_INVALID, "token.expires_unix_nano"},
		{"delete operator token with a bad id", &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_DeleteOperatorToken{DeleteOperatorToken: &storev1.DeleteOperatorToken{Id: "../x"}}}, storev1.ErrorCode_ERROR_CODE_INVALID, "id"},
		{"login failure without keys", failures(nil, int64(time.Hour)), storev1.ErrorCode_ERROR_CODE_INVALID, "keys"},
		{"login failure with five keys", failures([][]byte{k32, k32, k32, k32, k32}, int64(time.Hour)), storev1.ErrorCode_ERROR_CODE_INVALID, "keys"},
		{"login failure with a short key", failures([][]byte{k32[:31]}, int64(time.Hour)), storev1.ErrorCode_ERROR_CODE_INVALID, "keys[]"},
		{"login failure with no window", failures([][]byte{k32}, 0), storev1.ErrorCode_ERROR_CODE_INVALID, "window_nanos"},
		{"login failure with a two-day window", failures([][]byte{k32}, int64(48*time.Hour)), storev1.ErrorCode_ERROR_CODE_INVALID, "window_nanos"},
		{"clear login failures with a long key", &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_ClearLoginFailures{ClearLoginFailures: &storev1.ClearLoginFailures{Keys: [][]byte{make([]byte, 33)}}}}, storev1.ErrorCode_ERROR_CODE_INVALID, "keys[]"},
		{"delete user without an id", &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_DeleteUser{DeleteUser: &storev1.DeleteUser{}}}, storev1.ErrorCode_ERROR_CODE_INVALID, "user_id"},
		{"end user sessions with an unknown reason", &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_EndUserSessions{EndUserSessions: &storev1.EndUserSessions{UserId: "u1", Reason: 99, CutoffExpiresUnixNano: now.Add(time.Hour).UnixNano()}}}, storev1.ErrorCode_ERROR_CODE_INVALID, "reason"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := applyOne(t, s, mustEncode(t, c.cmd))
			if res.GetCode() != c.code || !strings.Contains(res.GetMessage(), c.want) {
				t.Errorf("got %v %q, want %v naming %q", res.GetCode(), res.GetMessage(), c.code, c.want)
			}
			if got := stateHash(t, s, false); got != before {
				t.Errorf("state changed by a refused command")
			}
		})
	}
}

// TestOperatorTokenRules covers the rules of PutOperatorToken and
// DeleteOperatorToken: unique live names, NOT_FOUND on delete of an unknown
// token, expiry and purge.
func TestOperatorTokenRules(t *testing.T) {
	s := openTemp(t, "ops.db")
	now := t0
	apply := func(c *storev1.Command) *storev1.Result { return applyOne(t, s, mustEncode(t, c)) }
	if res := apply(opToken(now, "0123456789abcdef01234567", "ci")); res.GetCode() != 0 {
		t.Fatalf("put ci: got %v %q, want OK", res.GetCode(), res.GetMessage())
	}
	if res := apply(opToken(now, "aaaaaaaaaaaaaaaaaaaaaaaa", "ci")); res.GetCode() != storev1.ErrorCode_ERROR_CODE_CONFLICT {
		t.Errorf("second live token named ci: got %v, want CONFLICT", res.GetCode())
	}
	if res := apply(opToken(now, "0123456789abcdef01234567", "other")); res.GetCode() != storev1.ErrorCode_ERROR_CODE_CONFLICT {
		t.Errorf("reused id: got %v, want CONFLICT", res.GetCode())
	}
	got, err := s.OperatorToken("0123456789abcdef01234567", now)
	if err != nil || got.GetName() != "ci" {
		t.Fatalf("OperatorToken: got %v, %v; want ci", got, err)
	}
	if _, err := s.OperatorToken("0123456789abcdef01234567", now.Add(time.Hour)); err != ErrNotFound {
		t.Errorf("OperatorToken after expiry: got %v, want ErrNotFound", err)
	}
	del := &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_DeleteOperatorToken{DeleteOperatorToken: &storev1.DeleteOperatorToken{Id: "0123456789abcdef01234567"}}}
	if res := apply(del); res.GetCode() != 0 {
		t.Fatalf("delete: got %v %q, want OK", res.GetCode(), res.GetMessage())
	}
	if _, err := s.OperatorToken("0123456789abcdef01234567", now); err != ErrNotFound {
		t.Errorf("OperatorToken after delete (it was read before): got %v, want ErrNotFound", err)
	}
	if res := apply(del); res.GetCode() != storev1.ErrorCode_ERROR_CODE_NOT_FOUND {
		t.Errorf("second delete: got %v, want NOT_FOUND", res.GetCode())
	}
	if list, _ := s.OperatorTokens(now); len(list) != 0 {
		t.Errorf("tokens after delete: got %d, want 0", len(list))
	}
	// A name is free again once its token expired, and the purge removes
	// the expired record.
	later := now.Add(2 * time.Hour)
	if res := apply(opToken(now, "bbbbbbbbbbbbbbbbbbbbbbbb", "deploy")); res.GetCode() != 0 {
		t.Fatal(res)
	}
	if res := apply(opToken(later, "cccccccccccccccccccccccc", "deploy")); res.GetCode() != 0 {
		t.Errorf("name of an expired token: got %v %q, want OK", res.GetCode(), res.GetMessage())
	}
	res := apply(&storev1.Command{NowUnixNano: later.UnixNano(), Op: &storev1.Command_Purge{Purge: &storev1.Purge{Limit: 100}}})
	if res.GetPurged() == 0 {
		t.Errorf("purge: got %d purged, want the expired token", res.GetPurged())
	}
	if list, _ := s.OperatorTokens(later); len(list) != 1 || list[0].GetId() != "cccccccccccccccccccccccc" {
		t.Errorf("tokens after purge: got %v, want only the new deploy token", list)
	}
}

// FuzzApplyCommand applies arbitrary bytes as a log entry: the store never
// panics, and a refused command (INVALID, TOO_LARGE, UNKNOWN_COMMAND)
// changes nothing.
func FuzzApplyCommand(f *testing.F) {
	now := t0
	for _, c := range []*storev1.Command{
		openCmd(now, "s1", "u1", storev1.Platform_PLATFORM_WEB, "d1", "t1", 30*time.Minute, time.Hour, false),
		opToken(now, "0123456789abcdef01234567", "ci"),
		{NowUnixNano: now.UnixNano(), Op: &storev1.Command_Purge{Purge: &storev1.Purge{Limit: 10}}},
		{NowUnixNano: now.UnixNano(), Op: &storev1.Command_EndUserSessions{EndUserSessions: &storev1.EndUserSessions{UserId: "u1", Reason: 6, CutoffExpiresUnixNano: now.Add(time.Hour).UnixNano()}}},
		{NowUnixNano: now.UnixNano(), Op: &storev1.Command_PutUser{PutUser: &storev1.PutUser{User: &storev1.User{Id: "u1", EmailKey: "a@b", Roles: []string{"x"}}}}},
	} {
		b, err := EncodeCommand(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xff, 0x01})
	s := openTemp(f, "fuzz.db")
	f.Fuzz(func(t *testing.T, data []byte) {
		before := stateHash(t, s, false)
		res := applyOne(t, s, data)
		if malformed(res.GetCode()) && stateHash(t, s, false) != before {
			t.Errorf("refused command (%v %q) changed the state", res.GetCode(), res.GetMessage())
		}
	})
}

// TestOperatorTokenForgottenByRestore: a token read (and kept in memory)
// before a restore from a state without it no longer authenticates.
func TestOperatorTokenForgottenByRestore(t *testing.T) {
	empty := openTemp(t, "empty.db")
	snap, err := empty.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	s := openTemp(t, "ops.db")
	if res := applyOne(t, s, mustEncode(t, opToken(t0, "0123456789abcdef01234567", "ci"))); res.GetCode() != 0 {
		t.Fatalf("put: got %v %q, want OK", res.GetCode(), res.GetMessage())
	}
	if _, err := s.OperatorToken("0123456789abcdef01234567", t0); err != nil {
		t.Fatalf("OperatorToken before the restore: %v", err)
	}
	if err := s.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if _, err := s.OperatorToken("0123456789abcdef01234567", t0); err != ErrNotFound {
		t.Errorf("OperatorToken after restoring a state without it: got %v, want ErrNotFound", err)
	}
}

// generatedIDSpec is the documented form of a generated id; isGeneratedID
// must accept exactly what it matches.
var generatedIDSpec = regexp.MustCompile(`^[A-Za-z0-9._~:+/=@-]{1,255}$`)

func FuzzIsGeneratedID(f *testing.F) {
	for _, s := range []string{"", "a", "01JBZ7Q9K2M4N6P8R0T2V4X6Z8", "id with space", "é", "a\x00b",
		strings.Repeat("x", 255), strings.Repeat("x", 256), "key:2026-12/ab+c=d@e~f_g.h-i", "[", "`", "{", "\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isGeneratedID(s), generatedIDSpec.MatchString(s); got != want {
			t.Fatalf("isGeneratedID(%q) = %v, the documented form says %v", s, got, want)
		}
	})
}
