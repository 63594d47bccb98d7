package authsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sessiond/sessiond/authsvc/notify"
	"github.com/sessiond/sessiond/authsvc/password"
	"github.com/sessiond/sessiond/authsvc/users"
	"github.com/sessiond/sessiond/clients/go/token"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// Client describes where a request came from.
type Client struct {
	IP        string
	UserAgent string
}

// LoginInput is a login request.
type LoginInput struct {
	Email    string
	Password string
	Platform storev1.Platform
	DeviceID string
	Force    bool
	Client   Client
}

// Tokens is what a login or refresh returns.
type Tokens struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    time.Duration
	SessionID    string
	// Index is the log index of the write (for min_index reads elsewhere).
	Index uint64
}

const (
	maxEmailLen    = 254
	maxPasswordLen = 1024
	maxDeviceIDLen = 128
	maxUALen       = 512
)

// SessionMeta describes the session a login opens: where, on what, and
// whether it may force out another device's session of the same platform.
type SessionMeta struct {
	Platform storev1.Platform
	DeviceID string
	Force    bool
	Client   Client
}

// meta returns the session part of a password login.
func (in LoginInput) meta() SessionMeta {
	return SessionMeta{Platform: in.Platform, DeviceID: in.DeviceID, Force: in.Force, Client: in.Client}
}

func validateLogin(in *LoginInput) error {
	switch {
	case in.Email == "" || len(in.Email) > maxEmailLen:
		return newErr(KindInvalid, "invalid_request", "email: required, at most 254 bytes")
	case in.Password == "" || len(in.Password) > maxPasswordLen:
		return newErr(KindInvalid, "invalid_request", "password: required, at most 1024 bytes")
	}
	m := in.meta()
	if err := validateMeta(&m); err != nil {
		return err
	}
	in.Client = m.Client
	return nil
}

// validateMeta checks a session's description and truncates its user agent.
func validateMeta(in *SessionMeta) error {
	switch {
	case in.Platform <= storev1.Platform_PLATFORM_UNSPECIFIED || in.Platform > storev1.Platform_PLATFORM_OTHER:
		return newErr(KindInvalid, "invalid_request", "platform: want web, windows, mac, android, ios or other")
	case in.DeviceID == "" || len(in.DeviceID) > maxDeviceIDLen || !utf8.ValidString(in.DeviceID):
		return newErr(KindInvalid, "invalid_request", "device_id: required, at most 128 bytes of UTF-8")
	}
	if len(in.Client.UserAgent) > maxUALen {
		in.Client.UserAgent = in.Client.UserAgent[:maxUALen]
	}
	return nil
}

// Login checks the password and opens a session. One live session per
// (user, platform): another device's session makes it fail with
// KindConflict unless in.Force, which ends that session everywhere.
func (s *Service) Login(ctx context.Context, in LoginInput) (*Tokens, error) {
	if err := validateLogin(&in); err != nil {
		return nil, err
	}
	now := s.now()
	u, err := s.authenticate(ctx, in.Email, in.Password, in.Client, now)
	if err != nil {
		return nil, err
	}
	return s.loginVerified(ctx, u, in.meta(), now)
}

// LoginVerified opens a session for u, a user some identity provider has
// verified: the password of the directory (Login), an upstream OpenID
// provider or WeChat (the upstream login), or any provider added later.
// It is the one way into a session: it refuses a user who is not active
// (KindForbidden, account_suspended) and otherwise behaves as Login (one
// live session per user and platform; KindConflict unless meta.Force).
// The caller must have verified u; LoginVerified checks no credential.
func (s *Service) LoginVerified(ctx context.Context, u users.User, meta SessionMeta) (*Tokens, error) {
	if err := validateMeta(&meta); err != nil {
		return nil, err
	}
	return s.loginVerified(ctx, u, meta, s.now())
}

func (s *Service) loginVerified(ctx context.Context, u users.User, meta SessionMeta, now time.Time) (*Tokens, error) {
	if u.ID == "" {
		return nil, s.internal(errors.New("login of a user without an id"))
	}
	if u.Status != users.StatusActive {
		s.audit(ctx, "login_refused_suspended", slog.String("user", u.ID), slog.String("ip", meta.Client.IP))
		return nil, errSuspended
	}
	t, err := s.openSession(ctx, u, meta, now)
	if err == nil {
		s.counts.logins.Add(1)
	}
	return t, err
}

// authenticate verifies the credentials, throttling failures cluster-wide
// per account+IP, per IP and per account (authsvc/throttle). An unknown
// email costs the same as a wrong password and gets the same answer.
func (s *Service) authenticate(ctx context.Context, email, pw string, c Client, now time.Time) (users.User, error) {
	// Throttle by the normalised address, so the NFC and NFD spellings of
	// one email share a counter; a malformed one is throttled as given.
	account, err := users.NormalizeEmail(email)
	if err != nil {
		account = strings.ToLower(strings.TrimSpace(email))
	}
	if s.d.Throttle != nil {
		wait, ok, err := s.d.Throttle.Check(account, c.IP, now)
		if err != nil {
			s.d.Logger.Warn("login throttle unreadable; attempt refused", "err", err)
		}
		if !ok {
			s.audit(ctx, "login_throttled", slog.String("ip", c.IP))
			return users.User{}, &Error{Kind: KindThrottled, Code: "too_many_attempts",
				Message: "too many failed logins; retry later", RetryAfter: wait}
		}
	}
	u, err := s.d.Directory.ByEmail(ctx, email)
	var ok, rehash bool
	switch {
	case errors.Is(err, users.ErrNotFound) || errors.Is(err, users.ErrInvalid):
		_, err = s.d.Hasher.VerifyDummy(pw)
	case err != nil:
		return users.User{}, wrapErr(KindUnavailable, "directory_unavailable", "the user directory is unavailable", err)
	default:
		ok, rehash, err = s.d.Hasher.Verify(pw, u.PasswordHash)
	}
	if errors.Is(err, password.ErrBusy) {
		return users.User{}, &Error{Kind: KindThrottled, Code: "busy", Message: "too many logins in progress; retry", RetryAfter: time.Second}
	}
	if err != nil && !errors.Is(err, password.ErrMismatch) {
		s.d.Logger.Error("password verification failed", "err", err, "user", u.ID)
	}
	if !ok {
		if s.d.Throttle != nil {
			delayed, err := s.d.Throttle.Failure(ctx, account, c.IP, now)
			if err != nil {
				s.d.Logger.Warn("login failure not recorded by the throttle", "err", err)
			}
			if delayed {
				s.audit(ctx, "login_delayed", slog.String("user", u.ID), slog.String("ip", c.IP))
				s.alert(notify.Event{Kind: notify.KindLockout, UserID: u.ID, Email: account, IP: c.IP, At: now})
			}
		}
		s.audit(ctx, "login_failed", slog.String("user", u.ID), slog.String("ip", c.IP))
		s.alert(notify.Event{Kind: "login_failed", UserID: u.ID, Email: account, IP: c.IP, At: now})
		return users.User{}, errInvalidCredentials
	}
	if s.d.Throttle != nil {
		if err := s.d.Throttle.Success(ctx, account, c.IP, now); err != nil {
			s.d.Logger.Warn("login throttle not cleared", "err", err)
		}
	}
	if u.Status != users.StatusActive {
		s.audit(ctx, "login_refused_suspended", slog.String("user", u.ID), slog.String("ip", c.IP))
		return users.User{}, errSuspended
	}
	if rehash {
		if h, err := s.d.Hasher.Hash(pw); err == nil {
			if err := s.d.Directory.SetPasswordHash(ctx, u.ID, h); err != nil {
				s.d.Logger.Warn("password rehash failed", "user", u.ID, "err", err)
			}
		}
	}
	return u, nil
}

// openSession replicates a new session for u and signs its tokens.
func (s *Service) openSession(ctx context.Context, u users.User, in SessionMeta, now time.Time) (*Tokens, error) {
	signer, err := s.keys.signer(now)
	if err != nil {
		return nil, err
	}
	sid, fam, jti := sortableID(now), randomID(), randomID()
	absolute := now.Add(s.cfg.SessionAbsolute)
	idle := minTime(now.Add(s.cfg.SessionIdle), absolute)
	refreshExp := minTime(now.Add(s.cfg.RefreshTTL), absolute)
	sess := &storev1.Session{
		Id: sid, UserId: u.ID, OrgId: u.Org.ID, Platform: in.Platform, DeviceId: in.DeviceID,
		CreatedUnixNano: now.UnixNano(), LastRefreshedUnixNano: now.UnixNano(),
		IdleExpiresUnixNano: idle.UnixNano(), AbsoluteExpiresUnixNano: absolute.UnixNano(),
		Region: s.cfg.Region, NodeId: s.cfg.NodeID, ClientIp: in.Client.IP, UserAgent: in.Client.UserAgent,
		FamilyId: fam, RefreshGeneration: 1,
	}
	rt := &storev1.RefreshToken{
		IdHash: token.HashTokenID(jti), SessionId: sid, FamilyId: fam, Generation: 1,
		IssuedUnixNano: now.UnixNano(), ExpiresUnixNano: refreshExp.UnixNano(), UserId: u.ID,
	}
	idx, res, err := s.propose(ctx, now, &storev1.Command{Op: &storev1.Command_OpenSession{
		OpenSession: &storev1.OpenSession{Session: sess, Refresh: rt, Force: in.Force},
	}})
	if err != nil {
		return nil, err
	}
	switch res.GetCode() {
	case storev1.ErrorCode_ERROR_CODE_UNSPECIFIED:
	case storev1.ErrorCode_ERROR_CODE_ENDED:
		// A cut-off (an account change, logout everywhere) was set after
		// this login read the directory.
		s.audit(ctx, "login_raced_account_change", slog.String("user", u.ID))
		return nil, newErr(KindUnauthenticated, "account_changed", "the account changed while logging in; log in again")
	case storev1.ErrorCode_ERROR_CODE_CONFLICT:
		s.audit(ctx, "login_conflict", slog.String("user", u.ID), slog.String("session", res.GetSession().GetId()))
		return nil, &Error{Kind: KindConflict, Code: "session_exists",
			Message: "another device is logged in on this platform; log in with force to end it", Conflict: res.GetSession()}
	default:
		return nil, s.resultErr(res)
	}
	for _, ended := range res.GetEndedSessionIds() {
		s.audit(ctx, "forced_login", slog.String("user", u.ID), slog.String("session", sid), slog.String("ended_session", ended))
		s.alert(notify.Event{Kind: "forced_login", UserID: u.ID, SessionID: ended, IP: in.Client.IP, At: now})
	}
	s.audit(ctx, "login", slog.String("user", u.ID), slog.String("session", sid),
		slog.String("platform", in.Platform.String()), slog.String("ip", in.Client.IP))
	return s.signPair(u, sess, jti, now, signer, idx)
}

// signPair signs an access and a refresh token issued at iat. Signing is
// deterministic, so the same inputs give the same tokens (used to answer a
// refresh retry within the grace window with the same pair).
func (s *Service) signPair(u users.User, sess *storev1.Session, refreshJTI string, iat time.Time, sg signer, idx uint64) (*Tokens, error) {
	refreshExp := minTime(iat.Add(s.cfg.RefreshTTL), time.Unix(0, sess.GetAbsoluteExpiresUnixNano()))
	access := token.AccessClaims{
		Issuer: s.cfg.Issuer, Subject: u.ID, Audience: s.cfg.Audience,
		IssuedAt: iat, NotBefore: iat, Expiration: iat.Add(s.cfg.AccessTTL),
		TokenID: derivedID("access", refreshJTI), SessionID: sess.GetId(),
		OrgID: u.Org.ID, OrgType: string(u.Org.Type), Country: u.Org.Country, Roles: u.Roles,
		Platform: platformName(sess.GetPlatform()),
	}
	var at string
	var err error
	if s.cfg.JWTAccessTokens {
		at, err = token.SignAccessJWT(access, sg.kid, sg.priv)
	} else {
		at, err = sg.access.Sign(access)
	}
	if err != nil {
		return nil, s.internal(err)
	}
	rt, err := token.SignRefresh(token.RefreshClaims{
		Issuer: s.cfg.Issuer, Audience: s.cfg.Issuer, Subject: u.ID, TokenID: refreshJTI,
		SessionID: sess.GetId(), Family: sess.GetFamilyId(), IssuedAt: iat, Expiration: refreshExp,
	}, sg.kid, sg.priv)
	if err != nil {
		return nil, s.internal(err)
	}
	return &Tokens{AccessToken: at, RefreshToken: rt, ExpiresIn: s.cfg.AccessTTL, SessionID: sess.GetId(), Index: idx}, nil
}

// resultErr maps a refusal of the state machine to a service error.
func (s *Service) resultErr(res *storev1.Result) error {
	switch res.GetCode() {
	case storev1.ErrorCode_ERROR_CODE_NOT_FOUND:
		return newErr(KindNotFound, "not_found", res.GetMessage())
	case storev1.ErrorCode_ERROR_CODE_ENDED:
		return errSessionEnded
	case storev1.ErrorCode_ERROR_CODE_REUSE:
		return errRefreshReuse
	case storev1.ErrorCode_ERROR_CODE_CONFLICT:
		return newErr(KindConflict, "conflict", res.GetMessage())
	case storev1.ErrorCode_ERROR_CODE_INVALID, storev1.ErrorCode_ERROR_CODE_TOO_LARGE:
		return newErr(KindInvalid, "invalid_request", res.GetMessage())
	default:
		return s.internal(fmt.Errorf("unexpected state machine answer %s: %s", res.GetCode(), res.GetMessage()))
	}
}

// platformName is the lower-case platform name used in token claims.
func platformName(p storev1.Platform) string {
	return strings.ToLower(strings.TrimPrefix(p.String(), "PLATFORM_"))
}

// ParsePlatform parses a platform name (web, windows, mac, android, ios,
// other), case-insensitively.
func ParsePlatform(name string) (storev1.Platform, bool) {
	v, ok := storev1.Platform_value["PLATFORM_"+strings.ToUpper(name)]
	if !ok || v == 0 {
		return 0, false
	}
	return storev1.Platform(v), true
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
