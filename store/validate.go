package store

import (
	"regexp"
	"unicode"
	"unicode/utf8"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	"google.golang.org/protobuf/proto"
)

// Shape bounds of commands. validateCommand checks every field of a decoded
// command against them before any rule runs; a command outside them is
// refused (INVALID, or TOO_LARGE for an oversized record) and changes
// nothing. They are generous for what sessiond itself proposes and exist so
// that no log entry, whoever wrote it, can put unbounded or nonsensical
// values into the state.
const (
	// MaxHorizon is how far after the command's now_unix_nano any time in
	// it may lie (ten years).
	MaxHorizon int64 = 10 * 365 * 24 * 3600 * 1e9
	// maxNow is the latest now_unix_nano accepted (2200-01-01T00:00:00Z).
	maxNow int64 = 7258118400 * 1e9
	// maxTextLen bounds names and other human-readable fields.
	maxTextLen = 255
	// maxUserAgentLen bounds a session's recorded User-Agent.
	maxUserAgentLen = 1024
	// maxRoles and maxScopes bound list fields; maxRoleLen each entry.
	maxRoles   = 64
	maxRoleLen = 64
	maxScopes  = 32
	// maxGraceNanos bounds RotateRefresh.grace_nanos (one hour).
	maxGraceNanos int64 = 3600 * 1e9
	// maxThrottleKeys bounds the keys of one login-failure command.
	maxThrottleKeys = 4
	// maxLoginFailureWindow bounds RecordLoginFailure.window_nanos (a day).
	maxLoginFailureWindow int64 = 24 * 3600 * 1e9
)

var (
	// operatorTokenIDRE is an operator token's id: 24 lower-case hex digits.
	operatorTokenIDRE = regexp.MustCompile(`^[0-9a-f]{24}$`)
	// OperatorTokenNameRE is the form of an operator token's name.
	OperatorTokenNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	// ScopeRE is the form of one scope.
	ScopeRE = regexp.MustCompile(`^(\*|[a-z][a-z0-9_-]{0,31}(:[a-z*][a-z0-9_*-]{0,31})?)$`)
	// countryRE is an ISO 3166-1 alpha-2 code.
	countryRE = regexp.MustCompile(`^[A-Z]{2}$`)
)

// idChars is the character set of ids sessiond generates (session,
// family, token and request ids, key ids): URL-safe ASCII. Every command
// checks its ids on every node, so this is a table rather than a regexp
// (which cost 2% of a node's CPU under a write load).
var idChars = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~:+/=@-") {
		t[c] = true
	}
	return t
}()

// isGeneratedID reports whether s is 1 to maxIDLen characters of idChars.
func isGeneratedID(s string) bool {
	if len(s) == 0 || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !idChars[s[i]] {
			return false
		}
	}
	return true
}

// shape collects the first shape violation of a command.
type shape struct {
	now int64
	res *storev1.Result
}

func (v *shape) bad(format string, args ...any) {
	if v.res == nil {
		v.res = refuse(storev1.ErrorCode_ERROR_CODE_INVALID, format, args...)
	}
}

// id checks a generated id (required unless optional).
func (v *shape) id(what, s string, optional bool) {
	if s == "" && optional {
		return
	}
	if !isGeneratedID(s) {
		v.bad("%s: want 1-%d characters of A-Z a-z 0-9 . _ ~ : + / = @ -", what, maxIDLen)
	}
}

// name checks a required external id or key (user, org, e-mail key): 1 to
// 255 bytes of UTF-8 without control characters.
func (v *shape) name(what, s string) {
	if s == "" {
		v.bad("%s is empty", what)
		return
	}
	v.text(what, s, maxIDLen)
}

// text checks an optional human-readable field: at most max bytes of valid
// UTF-8 without control characters (a tab is allowed).
func (v *shape) text(what, s string, max int) {
	if len(s) > max {
		v.bad("%s longer than %d bytes", what, max)
		return
	}
	if !utf8.ValidString(s) {
		v.bad("%s is not valid UTF-8", what)
		return
	}
	for _, r := range s {
		if r != '\t' && unicode.IsControl(r) {
			v.bad("%s contains a control character", what)
			return
		}
	}
}

// time checks a time field: 0 (unset) up to now + MaxHorizon.
func (v *shape) time(what string, t int64) {
	if t < 0 || t > v.now+MaxHorizon {
		v.bad("%s: want 0 to now + 10 years", what)
	}
}

// hash checks a SHA-256 field (exactly 32 bytes, or empty when optional).
func (v *shape) hash(what string, b []byte, optional bool) {
	if len(b) == 0 && optional {
		return
	}
	if len(b) != 32 {
		v.bad("%s must be 32 bytes", what)
	}
}

// throttleKeys checks the keys of a login-failure command: 1 to
// maxThrottleKeys SHA-256 hashes.
func (v *shape) throttleKeys(keys [][]byte) {
	if len(keys) == 0 || len(keys) > maxThrottleKeys {
		v.bad("keys: want 1 to %d", maxThrottleKeys)
		return
	}
	for _, k := range keys {
		v.hash("keys[]", k, false)
	}
}

// size refuses a record larger than the limit (TOO_LARGE).
func (v *shape) size(what string, m proto.Message, lim limits) {
	if v.res == nil && m != nil {
		v.res = tooLarge(what, m, lim)
	}
}

// validateCommand checks the shape of every field of cmd; nil means it may
// be applied. It reads nothing from the state.
func validateCommand(cmd *storev1.Command, lim limits) *storev1.Result {
	v := &shape{now: cmd.GetNowUnixNano()}
	if v.now <= 0 || v.now > maxNow {
		v.bad("now_unix_nano must be positive and before 2200")
		return v.res
	}
	v.id("request_id", cmd.GetRequestId(), true)
	switch op := cmd.GetOp().(type) {
	case *storev1.Command_OpenSession:
		v.size("session", op.OpenSession.GetSession(), lim)
		v.size("refresh token", op.OpenSession.GetRefresh(), lim)
		if s := op.OpenSession.GetSession(); s != nil {
			v.session(s)
		}
		if r := op.OpenSession.GetRefresh(); r != nil {
			v.refresh("refresh", r)
		}
	case *storev1.Command_RotateRefresh:
		o := op.RotateRefresh
		v.size("refresh token", o.GetNext(), lim)
		v.hash("old_id_hash", o.GetOldIdHash(), false)
		if o.GetNext() != nil {
			v.refresh("next", o.GetNext())
		}
		v.time("idle_expires_unix_nano", o.GetIdleExpiresUnixNano())
		if g := o.GetGraceNanos(); g < 0 || g > maxGraceNanos {
			v.bad("grace_nanos: want 0 to 1h")
		}
	case *storev1.Command_EndSession:
		v.id("session_id", op.EndSession.GetSessionId(), false)
		v.reason(op.EndSession.GetReason())
	case *storev1.Command_EndUserSessions:
		v.name("user_id", op.EndUserSessions.GetUserId())
		v.reason(op.EndUserSessions.GetReason())
		v.time("cutoff_expires_unix_nano", op.EndUserSessions.GetCutoffExpiresUnixNano())
	case *storev1.Command_RevokeToken:
		r := op.RevokeToken.GetRevocation()
		v.size("revocation", r, lim)
		if r != nil {
			v.id("revocation.jti", r.GetJti(), false)
			v.time("revocation.revoked_unix_nano", r.GetRevokedUnixNano())
			v.time("revocation.expires_unix_nano", r.GetExpiresUnixNano())
			v.text("revocation.reason", r.GetReason(), 64)
		}
	case *storev1.Command_PutSigningKey:
		k := op.PutSigningKey.GetKey()
		v.size("signing key", k, lim)
		if k != nil {
			v.signingKey(k)
		}
	case *storev1.Command_PutUser:
		u := op.PutUser.GetUser()
		v.size("user", u, lim)
		if u != nil {
			v.user(u)
		}
	case *storev1.Command_Purge:
	case *storev1.Command_BulkLoad:
		us, ss := op.BulkLoad.GetUsers(), op.BulkLoad.GetSessions()
		if len(us) > MaxBulkLoad || len(ss) > MaxBulkLoad {
			v.bad("bulk load of %d users and %d sessions: at most %d of each", len(us), len(ss), MaxBulkLoad)
			break
		}
		for _, u := range us {
			v.size("user", u, lim)
			v.user(u)
		}
		for _, o := range ss {
			v.size("session", o.GetSession(), lim)
			v.size("refresh token", o.GetRefresh(), lim)
			if o.GetSession() != nil {
				v.session(o.GetSession())
			}
			if o.GetRefresh() != nil {
				v.refresh("refresh", o.GetRefresh())
			}
		}
	case *storev1.Command_PutOperatorToken:
		o := op.PutOperatorToken.GetToken()
		v.size("operator token", o, lim)
		if o == nil {
			v.bad("token is required")
			break
		}
		v.operatorToken(o)
	case *storev1.Command_RecordLoginFailure:
		v.throttleKeys(op.RecordLoginFailure.GetKeys())
		if w := op.RecordLoginFailure.GetWindowNanos(); w <= 0 || w > maxLoginFailureWindow {
			v.bad("window_nanos: want more than 0, at most one day")
		}
	case *storev1.Command_ClearLoginFailures:
		v.throttleKeys(op.ClearLoginFailures.GetKeys())
	case *storev1.Command_DeleteUser:
		v.name("user_id", op.DeleteUser.GetUserId())
	case *storev1.Command_ClaimAlert:
		v.hash("key", op.ClaimAlert.GetKey(), false)
		v.name("node_id", op.ClaimAlert.GetNodeId())
		if w := op.ClaimAlert.GetWindowNanos(); w <= 0 || w > maxAlertClaimWindow {
			v.bad("window_nanos: want more than 0, at most 7 days")
		}
	case *storev1.Command_PutUpstreamLink:
		v.size("upstream link", op.PutUpstreamLink.GetLink(), lim)
		v.upstreamLink(op.PutUpstreamLink.GetLink())
	case *storev1.Command_ConsumeUpstreamState:
		v.upstreamState(op.ConsumeUpstreamState.GetState())
	case *storev1.Command_DeleteOperatorToken:
		if !operatorTokenIDRE.MatchString(op.DeleteOperatorToken.GetId()) {
			v.bad("id: want 24 lower-case hex digits")
		}
	case *storev1.Command_PutOidcClient:
		v.size("oidc client", op.PutOidcClient.GetClient(), lim)
		v.oidcClient(op.PutOidcClient.GetClient())
	case *storev1.Command_DeleteOidcClient:
		v.id("id", op.DeleteOidcClient.GetId(), false)
	case *storev1.Command_PutAuthCode:
		v.size("authorization code", op.PutAuthCode.GetCode(), lim)
		v.authCode(op.PutAuthCode.GetCode())
	case *storev1.Command_RedeemAuthCode:
		o := op.RedeemAuthCode
		v.hash("code_hash", o.GetCodeHash(), false)
		v.id("client_id", o.GetClientId(), false)
		if o.GetSession().GetSession() == nil || o.GetSession().GetRefresh() == nil {
			v.bad("session: a session and its refresh token are required")
			break
		}
		v.size("session", o.GetSession().GetSession(), lim)
		v.size("refresh token", o.GetSession().GetRefresh(), lim)
		v.session(o.GetSession().GetSession())
		v.refresh("refresh", o.GetSession().GetRefresh())
	case *storev1.Command_MarkOnce:
		v.hash("key", op.MarkOnce.GetKey(), false)
		v.time("expires_unix_nano", op.MarkOnce.GetExpiresUnixNano())
		if op.MarkOnce.GetExpiresUnixNano()-v.now > MaxOnceMarkLife {
			v.bad("expires_unix_nano: at most one day after now")
		}
	}
	return v.res
}

func (v *shape) reason(r storev1.EndReason) {
	if !validReason(r) {
		v.bad("reason %v is invalid", r)
	}
}

func (v *shape) session(s *storev1.Session) {
	v.id("session.id", s.GetId(), false)
	v.name("session.user_id", s.GetUserId())
	v.text("session.org_id", s.GetOrgId(), maxIDLen)
	if !validPlatform(s.GetPlatform()) {
		v.bad("session.platform %v is invalid", s.GetPlatform())
	}
	if s.GetDeviceId() == "" {
		v.bad("session.device_id is empty")
	}
	v.text("session.device_id", s.GetDeviceId(), maxIDLen)
	v.text("session.region", s.GetRegion(), maxTextLen)
	v.text("session.node_id", s.GetNodeId(), maxTextLen)
	v.text("session.client_ip", s.GetClientIp(), 64)
	v.text("session.user_agent", s.GetUserAgent(), maxUserAgentLen)
	v.id("session.ended_by_session_id", s.GetEndedBySessionId(), true)
	v.id("session.family_id", s.GetFamilyId(), true)
	v.hash("session.current_refresh_id_hash", s.GetCurrentRefreshIdHash(), true)
	v.oidcSession(s)
	if r := s.GetEndReason(); r != storev1.EndReason_END_REASON_UNSPECIFIED && !validReason(r) {
		v.bad("session.end_reason %v is invalid", r)
	}
	for _, f := range []struct {
		what string
		t    int64
	}{
		{"session.created_unix_nano", s.GetCreatedUnixNano()}, {"session.last_refreshed_unix_nano", s.GetLastRefreshedUnixNano()},
		{"session.idle_expires_unix_nano", s.GetIdleExpiresUnixNano()}, {"session.absolute_expires_unix_nano", s.GetAbsoluteExpiresUnixNano()},
		{"session.ended_unix_nano", s.GetEndedUnixNano()}, {"session.not_before_unix_nano", s.GetNotBeforeUnixNano()},
	} {
		v.time(f.what, f.t)
	}
}

func (v *shape) refresh(what string, r *storev1.RefreshToken) {
	v.hash(what+".id_hash", r.GetIdHash(), false)
	v.id(what+".session_id", r.GetSessionId(), true)
	v.id(what+".family_id", r.GetFamilyId(), true)
	v.text(what+".user_id", r.GetUserId(), maxIDLen)
	v.hash(what+".replaced_by_hash", r.GetReplacedByHash(), true)
	v.time(what+".issued_unix_nano", r.GetIssuedUnixNano())
	v.time(what+".expires_unix_nano", r.GetExpiresUnixNano())
	v.time(what+".used_unix_nano", r.GetUsedUnixNano())
}

func (v *shape) signingKey(k *storev1.SigningKey) {
	v.id("key.kid", k.GetKid(), false)
	v.text("key.algorithm", k.GetAlgorithm(), 32)
	v.text("key.purpose", k.GetPurpose(), 32)
	if k.GetAlgorithm() == "ed25519" && len(k.GetPublicKey()) != 32 {
		v.bad("key.public_key: an ed25519 key is 32 bytes")
	}
	maxPub, maxSealed := 128, 256
	if k.GetAlgorithm() == "rs256" { // the OpenID Provider's RSA keys (DER)
		maxPub, maxSealed = 1024, 4096
	}
	if len(k.GetPublicKey()) > maxPub {
		v.bad("key.public_key longer than %d bytes", maxPub)
	}
	if len(k.GetEncryptedPrivateKey()) > maxSealed {
		v.bad("key.encrypted_private_key longer than %d bytes", maxSealed)
	}
	v.time("key.created_unix_nano", k.GetCreatedUnixNano())
	v.time("key.activates_unix_nano", k.GetActivatesUnixNano())
	v.time("key.retires_unix_nano", k.GetRetiresUnixNano())
	v.time("key.expires_unix_nano", k.GetExpiresUnixNano())
}

func (v *shape) user(u *storev1.User) {
	v.name("user.id", u.GetId())
	v.name("user.email_key", u.GetEmailKey())
	v.text("user.email", u.GetEmail(), 320)
	v.text("user.password_hash", u.GetPasswordHash(), 1024)
	v.text("user.display_name", u.GetDisplayName(), maxTextLen)
	if st := u.GetStatus(); st < 0 || st > storev1.UserStatus_USER_STATUS_SUSPENDED {
		v.bad("user.status %v is invalid", st)
	}
	if len(u.GetRoles()) > maxRoles {
		v.bad("user.roles: more than %d", maxRoles)
	}
	for _, r := range u.GetRoles() {
		if r == "" {
			v.bad("user.roles: an empty role")
		}
		v.text("user.roles", r, maxRoleLen)
	}
	v.text("user.org_id", u.GetOrgId(), maxIDLen)
	v.text("user.org_name", u.GetOrgName(), maxTextLen)
	if c := u.GetOrgCountry(); c != "" && !countryRE.MatchString(c) {
		v.bad("user.org_country %q: want two upper-case letters", c)
	}
	if t := u.GetOrgType(); t < 0 || t > storev1.OrgType_ORG_TYPE_OPERATOR {
		v.bad("user.org_type %v is invalid", t)
	}
	v.time("user.created_unix_nano", u.GetCreatedUnixNano())
}

func (v *shape) operatorToken(o *storev1.OperatorToken) {
	if !operatorTokenIDRE.MatchString(o.GetId()) {
		v.bad("token.id: want 24 lower-case hex digits")
	}
	if !OperatorTokenNameRE.MatchString(o.GetName()) {
		v.bad("token.name %q: want 1-64 of a-z 0-9 . _ - starting with a letter or digit", o.GetName())
	}
	if n := len(o.GetScopes()); n == 0 || n > maxScopes {
		v.bad("token.scopes: want 1 to %d", maxScopes)
	}
	seen := map[string]bool{}
	for _, s := range o.GetScopes() {
		if !ScopeRE.MatchString(s) || seen[s] {
			v.bad("token.scopes: %q is malformed or repeated", s)
		}
		seen[s] = true
	}
	v.hash("token.secret_sha256", o.GetSecretSha256(), false)
	v.text("token.created_by", o.GetCreatedBy(), maxTextLen)
	v.time("token.created_unix_nano", o.GetCreatedUnixNano())
	v.time("token.expires_unix_nano", o.GetExpiresUnixNano())
	if o.GetExpiresUnixNano() <= v.now {
		v.bad("token.expires_unix_nano must be after now")
	}
}
