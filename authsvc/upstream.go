package authsvc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/sessiond/sessiond/authsvc/idp"
	"github.com/sessiond/sessiond/authsvc/keys"
	"github.com/sessiond/sessiond/authsvc/users"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	"github.com/sessiond/sessiond/store"
)

// Upstream login: a user signs in with an upstream identity provider
// (authsvc/idp) instead of a password. The flow is stateless between its
// two requests on the nodes' side: BeginUpstreamLogin seals the login's
// secrets (state, nonce, PKCE verifier, where to return) with the KEK into
// a short-lived cookie value that any node can open, so the callback may
// land on another node behind a load balancer; FinishUpstreamLogin spends
// the state once in the replicated store (a replayed callback is refused
// on every node), has the provider verify the user, links the upstream
// identity to a user and opens the session through LoginVerified.

// UpstreamProvider is one configured upstream identity provider.
type UpstreamProvider struct {
	Provider idp.Provider
	// RedirectURL is this provider's callback URL as registered with it:
	// <public url>/auth/callback/<name>.
	RedirectURL string
	Rules       LinkRules
}

// LinkRules say how an upstream identity becomes a user of the directory.
type LinkRules struct {
	// LinkVerifiedEmail links an identity with no link yet to the
	// existing user of the same email, but only when the provider marks
	// the email verified. Off, an email never links anything.
	LinkVerifiedEmail bool
	// Signup creates a user for an identity that links to none.
	Signup bool
	// Org and Country of signed-up users: the value of the claim named
	// OrgClaim (CountryClaim) when present, else Org (Country).
	Org, OrgClaim         string
	Country, CountryClaim string
	// OrgType of signed-up users (default CUSTOMER).
	OrgType users.OrgType
	// Roles of signed-up users: Roles, plus RoleMap[v] for each value v of
	// the claim RolesClaim (a string or a list of strings).
	Roles      []string
	RolesClaim string
	RoleMap    map[string][]string
	// EmailDomain names signed-up users the provider gives no verified
	// email for: <provider>-<hash of subject>@<EmailDomain> (default
	// users.invalid, a reserved domain that receives no mail).
	EmailDomain string
}

// Upstream configures upstream login (Deps.Upstream).
type Upstream struct {
	Providers map[string]UpstreamProvider
	// StateTTL bounds the time between the start of a login and its
	// callback (default 10 minutes, at most an hour).
	StateTTL time.Duration
}

// LinkState is what upstream login reads of the replicated state.
// *store.Store implements it; Deps.State must, when Deps.Upstream is set.
type LinkState interface {
	UpstreamLink(provider, subject string) (*storev1.UpstreamLink, error)
	UpstreamLinks(provider string, f func(*storev1.UpstreamLink) bool) error
}

// Purposes of data sealed with the KEK.
const (
	sealLoginState   = "upstream login state"
	sealRefreshToken = "upstream refresh token"
)

// Bounds of upstream login input.
const (
	maxReturnTo      = 2048
	maxStateCookie   = 4096
	maxCallbackParam = 2048
	defaultStateTTL  = 10 * time.Minute
)

// loginState is what the sealed cookie holds.
type loginState struct {
	Provider string `json:"p"`
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	ReturnTo string `json:"r"`
	Expires  int64  `json:"e"`
	Platform int32  `json:"pl"`
	DeviceID string `json:"d"`
	Force    bool   `json:"f"`
}

// UpstreamStart is how a login starts: where to return, and the session it
// opens (Client is ignored; the callback's counts).
type UpstreamStart struct {
	ReturnTo string
	Session  SessionMeta
}

// UpstreamBegin is where to send the browser, and the cookie to set.
type UpstreamBegin struct {
	AuthURL string
	// Cookie is the sealed login state, to be returned at the callback.
	Cookie  string
	Expires time.Time
}

// UpstreamCallback is what the provider's redirect brought back.
type UpstreamCallback struct {
	Provider string
	// Cookie is the value BeginUpstreamLogin returned.
	Cookie string
	// State, Code, Error and ErrorDescription are the query parameters.
	State, Code, Error, ErrorDescription string
	Client                               Client
}

// UpstreamLogin is a successful upstream login.
type UpstreamLogin struct {
	Tokens   *Tokens
	User     users.User
	ReturnTo string
	// Created says the user was signed up by this login.
	Created bool
}

func (s *Service) upstreamProvider(name string) (UpstreamProvider, error) {
	if s.d.Upstream != nil {
		if p, ok := s.d.Upstream.Providers[name]; ok {
			return p, nil
		}
	}
	return UpstreamProvider{}, newErr(KindNotFound, "unknown_provider", "no identity provider is configured under this name")
}

// UpstreamProviders returns the names of the configured providers, sorted
// (for a login page's "sign in with" links to /auth/login/{name}).
func (s *Service) UpstreamProviders() []string {
	var out []string
	if s.d.Upstream != nil {
		for n := range s.d.Upstream.Providers {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func (s *Service) stateTTL() time.Duration {
	if s.d.Upstream == nil || s.d.Upstream.StateTTL <= 0 {
		return defaultStateTTL
	}
	return min(s.d.Upstream.StateTTL, time.Hour)
}

// BeginUpstreamLogin starts a login with provider: it makes the state,
// nonce and PKCE verifier, seals them with returnTo (which the caller has
// checked) and the session to open into the cookie value and returns the provider's authorization
// URL.
func (s *Service) BeginUpstreamLogin(ctx context.Context, provider string, in UpstreamStart) (*UpstreamBegin, error) {
	p, err := s.upstreamProvider(provider)
	if err != nil {
		return nil, err
	}
	if len(in.ReturnTo) > maxReturnTo {
		return nil, newErr(KindInvalid, "invalid_request", "return_to: at most 2048 bytes")
	}
	if err := validateMeta(&in.Session); err != nil {
		return nil, err
	}
	exp := s.now().Add(s.stateTTL())
	st := loginState{Provider: provider, State: randomID(), Nonce: randomID(), Verifier: randomID() + randomID(),
		ReturnTo: in.ReturnTo, Expires: exp.UnixNano(),
		Platform: int32(in.Session.Platform), DeviceID: in.Session.DeviceID, Force: in.Session.Force}
	raw, err := json.Marshal(st)
	if err != nil {
		return nil, s.internal(err)
	}
	sealed, err := keys.SealData(s.d.KEK, sealLoginState, raw, []byte(provider))
	if err != nil {
		return nil, s.internal(err)
	}
	u, err := p.Provider.AuthURL(ctx, idp.AuthRequest{State: st.State, Nonce: st.Nonce, Verifier: st.Verifier, RedirectURL: p.RedirectURL})
	if err != nil {
		return nil, s.upstreamErr(ctx, provider, "start", err)
	}
	s.audit(ctx, "upstream_login_started", slog.String("provider", provider))
	return &UpstreamBegin{AuthURL: u, Cookie: base64.RawURLEncoding.EncodeToString(sealed), Expires: exp}, nil
}

// openLoginState opens and checks the cookie of a callback.
func (s *Service) openLoginState(in UpstreamCallback, now time.Time) (*loginState, error) {
	bad := func(why string) error {
		return newErr(KindInvalid, "login_state_invalid", why+"; start the login again")
	}
	if in.Cookie == "" {
		return nil, bad("the login state cookie is missing (cookies blocked, another browser, or the login was started elsewhere)")
	}
	if len(in.Cookie) > maxStateCookie {
		return nil, bad("the login state cookie is too long")
	}
	sealed, err := base64.RawURLEncoding.DecodeString(in.Cookie)
	if err != nil {
		return nil, bad("the login state cookie is malformed")
	}
	raw, err := keys.OpenData(s.d.KEK, sealLoginState, sealed, []byte(in.Provider))
	if err != nil {
		return nil, bad("the login state cookie does not open (tampered, or made for another provider)")
	}
	var st loginState
	if err := json.Unmarshal(raw, &st); err != nil || st.Provider != in.Provider {
		return nil, bad("the login state cookie is malformed")
	}
	if now.UnixNano() >= st.Expires {
		return nil, bad("the login took too long")
	}
	if in.State == "" || subtle.ConstantTimeCompare([]byte(in.State), []byte(st.State)) != 1 {
		return nil, bad("the state the provider returned is not this browser's login")
	}
	return &st, nil
}

// FinishUpstreamLogin completes a login at the provider's callback: the
// cookie must open and hold the callback's state, which is then spent in
// the replicated store (a second callback with it is refused on any node);
// an error answer of the provider (error=access_denied, ...) ends the
// login; the provider redeems the code and verifies the user; the
// identity is linked to a user (see LinkRules) and a session opened
// through LoginVerified. Every refusal is audited and opens nothing.
func (s *Service) FinishUpstreamLogin(ctx context.Context, in UpstreamCallback) (*UpstreamLogin, error) {
	p, err := s.upstreamProvider(in.Provider)
	if err != nil {
		return nil, err
	}
	for _, v := range []string{in.State, in.Code, in.Error, in.ErrorDescription} {
		if len(v) > maxCallbackParam {
			return nil, newErr(KindInvalid, "invalid_request", "a callback parameter is longer than 2048 bytes")
		}
	}
	now := s.now()
	// Each callback may cost a replicated write (the spent state) and a
	// call to the provider: the throttle's local rate per address and
	// provider bounds them (no write of its own), and an address already
	// delayed for failed passwords waits here too.
	tkey := "upstream:" + in.Provider
	if s.d.Throttle != nil {
		wait, ok, err := s.d.Throttle.Check(tkey, in.Client.IP, now)
		if err != nil {
			s.d.Logger.Warn("upstream login throttle unreadable; callback refused", "err", err)
		}
		if !ok {
			s.audit(ctx, "upstream_login_throttled", slog.String("provider", in.Provider), slog.String("ip", in.Client.IP))
			return nil, &Error{Kind: KindThrottled, Code: "too_many_attempts", Message: "too many sign-in callbacks from this address; retry later", RetryAfter: wait}
		}
	}
	st, err := s.openLoginState(in, now)
	if err != nil {
		s.audit(ctx, "upstream_login_refused", slog.String("provider", in.Provider), slog.String("why", err.Error()), slog.String("ip", in.Client.IP))
		return nil, err
	}
	if err := s.spendState(ctx, st, now); err != nil {
		s.audit(ctx, "upstream_login_refused", slog.String("provider", in.Provider), slog.String("why", err.Error()), slog.String("ip", in.Client.IP))
		return nil, err
	}
	if in.Error != "" {
		msg := "the identity provider refused the login (" + printableASCII(in.Error, 64) + ")"
		if d := printableASCII(in.ErrorDescription, 200); d != "" {
			msg += ": " + d
		}
		s.audit(ctx, "upstream_login_refused", slog.String("provider", in.Provider), slog.String("why", msg), slog.String("ip", in.Client.IP))
		return nil, newErr(KindForbidden, idp.CodeDenied, msg)
	}
	if in.Code == "" {
		return nil, newErr(KindInvalid, "invalid_request", "the callback has neither a code nor an error")
	}
	g, err := p.Provider.Exchange(ctx, idp.AuthRequest{State: st.State, Nonce: st.Nonce, Verifier: st.Verifier, RedirectURL: p.RedirectURL}, in.Code)
	if err != nil {
		return nil, s.upstreamErr(ctx, in.Provider, "callback", err)
	}
	id := g.Identity
	if id.Subject == "" || len(id.Subject) > 255 || id.Provider != in.Provider {
		return nil, s.upstreamErr(ctx, in.Provider, "callback", &idp.Error{Code: idp.CodeInvalidToken, Message: "the provider named no usable subject"})
	}
	u, created, old, err := s.resolveUpstream(ctx, p.Rules, id)
	if err != nil {
		s.audit(ctx, "upstream_login_refused", slog.String("provider", in.Provider), slog.String("why", err.Error()), slog.String("ip", in.Client.IP))
		return nil, err
	}
	if err := s.putLink(ctx, id.Provider, id.Subject, u.ID, g.RefreshToken, old, now); err != nil {
		return nil, err
	}
	meta := SessionMeta{Platform: storev1.Platform(st.Platform), DeviceID: st.DeviceID, Force: st.Force, Client: in.Client}
	if err := validateMeta(&meta); err != nil {
		return nil, err
	}
	tok, err := s.loginVerified(ctx, u, meta, s.now())
	if err != nil {
		return nil, err
	}
	if s.d.Throttle != nil {
		if err := s.d.Throttle.Success(ctx, tkey, in.Client.IP, now); err != nil {
			s.d.Logger.Warn("upstream login throttle not cleared", "err", err)
		}
	}
	s.audit(ctx, "upstream_login", slog.String("provider", in.Provider), slog.String("user", u.ID),
		slog.String("session", tok.SessionID), slog.Bool("signup", created), slog.Bool("offline", g.RefreshToken != ""))
	return &UpstreamLogin{Tokens: tok, User: u, ReturnTo: st.ReturnTo, Created: created}, nil
}

// spendState records the state as used, cluster-wide.
func (s *Service) spendState(ctx context.Context, st *loginState, now time.Time) error {
	h := sha256.Sum256([]byte(st.Provider + "\x00" + st.State))
	_, res, err := s.propose(ctx, now, &storev1.Command{Op: &storev1.Command_ConsumeUpstreamState{ConsumeUpstreamState: &storev1.ConsumeUpstreamState{
		State: &storev1.UpstreamState{StateHash: h[:], ExpiresUnixNano: st.Expires}}}})
	switch {
	case err != nil:
		return err
	case res.GetCode() == storev1.ErrorCode_ERROR_CODE_CONFLICT:
		return newErr(KindInvalid, "login_state_replayed", "this login was already completed (a replayed callback); start the login again")
	case res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED:
		return s.resultErr(res)
	}
	return nil
}

// upstreamErr maps and audits a provider failure.
func (s *Service) upstreamErr(ctx context.Context, provider, step string, err error) error {
	var ie *idp.Error
	if !errors.As(err, &ie) {
		return s.internal(err)
	}
	s.audit(ctx, "upstream_login_failed", slog.String("provider", provider), slog.String("step", step),
		slog.String("code", ie.Code), slog.String("why", ie.Message))
	if ie.Code == idp.CodeUnavailable {
		return wrapErr(KindUnavailable, ie.Code, ie.Message, err)
	}
	return wrapErr(KindUnauthenticated, ie.Code, ie.Message, err)
}

func (s *Service) linkState() (LinkState, error) {
	ls, ok := s.d.State.(LinkState)
	if !ok {
		return nil, s.internal(errors.New("the state does not keep upstream links"))
	}
	return ls, nil
}

// resolveUpstream finds or creates the user of an upstream identity: its
// link, else (LinkVerifiedEmail, and a verified email) the user of that
// email, else (Signup) a new user. It also returns the existing link.
func (s *Service) resolveUpstream(ctx context.Context, r LinkRules, id idp.Identity) (users.User, bool, *storev1.UpstreamLink, error) {
	ls, err := s.linkState()
	if err != nil {
		return users.User{}, false, nil, err
	}
	l, err := ls.UpstreamLink(id.Provider, id.Subject)
	if errors.Is(err, store.ErrNotFound) && s.d.Cluster.Sync(ctx) == nil {
		l, err = ls.UpstreamLink(id.Provider, id.Subject)
	}
	switch {
	case err == nil:
		u, err := s.d.Directory.ByID(ctx, l.GetUserId())
		if errors.Is(err, users.ErrNotFound) {
			return users.User{}, false, nil, newErr(KindForbidden, "account_gone", "the account linked to this identity was deleted")
		}
		if err != nil {
			return users.User{}, false, nil, directoryErr(err)
		}
		return u, false, l, nil
	case !errors.Is(err, store.ErrNotFound):
		return users.User{}, false, nil, s.internal(err)
	}
	if r.LinkVerifiedEmail && id.EmailVerified && id.Email != "" {
		u, err := s.d.Directory.ByEmail(ctx, id.Email)
		switch {
		case err == nil:
			s.audit(ctx, "upstream_linked_by_email", slog.String("provider", id.Provider), slog.String("user", u.ID))
			return u, false, nil, nil
		case !errors.Is(err, users.ErrNotFound) && !errors.Is(err, users.ErrInvalid):
			return users.User{}, false, nil, directoryErr(err)
		}
	}
	if !r.Signup {
		return users.User{}, false, nil, newErr(KindForbidden, "not_linked", "no account is linked to this "+id.Provider+" identity, and signing up through it is off")
	}
	u, err := s.signupUpstream(ctx, r, id)
	if err != nil {
		return users.User{}, false, nil, err
	}
	return u, true, nil, nil
}

// signupUpstream creates the user of an identity per the rules. The user
// gets an unusable random password: it logs in through the provider (or
// after a password reset).
func (s *Service) signupUpstream(ctx context.Context, r LinkRules, id idp.Identity) (users.User, error) {
	email := id.Email
	if !id.EmailVerified || email == "" {
		dom := r.EmailDomain
		if dom == "" {
			dom = "users.invalid"
		}
		h := sha256.Sum256([]byte(id.Subject))
		email = id.Provider + "-" + hex.EncodeToString(h[:8]) + "@" + dom
	}
	org := claimString(id.Claims, r.OrgClaim, r.Org)
	country := strings.ToUpper(claimString(id.Claims, r.CountryClaim, r.Country))
	roles := append([]string(nil), r.Roles...)
	for _, v := range claimStrings(id.Claims, r.RolesClaim) {
		roles = append(roles, r.RoleMap[v]...)
	}
	typ := r.OrgType
	if typ == "" {
		typ = users.OrgCustomer
	}
	name := id.Name
	if name == "" {
		name = email
	}
	u, err := s.CreateUser(ctx, NewUserInput{Email: email, Password: randomID() + randomID() + "!aA1", DisplayName: truncate(name, 128),
		OrgName: org, Country: country, OrgType: typ, Roles: roles})
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Code == "email_taken" {
			return users.User{}, newErr(KindConflict, "email_taken", "an account with this email exists but is not linked to this "+id.Provider+
				" identity; log in with that account (linking by email needs a verified email and the provider's link_verified_email)")
		}
		return users.User{}, err
	}
	s.audit(ctx, "upstream_signup", slog.String("provider", id.Provider), slog.String("user", u.ID))
	return u, nil
}

// putLink writes the link of (provider, subject) to userID after a login,
// with the new refresh token sealed; without one (Google gives one only at
// consent) the old link's token, when still valid, is kept.
func (s *Service) putLink(ctx context.Context, provider, subject, userID, refresh string, old *storev1.UpstreamLink, now time.Time) error {
	l := &storev1.UpstreamLink{Provider: provider, Subject: subject, UserId: userID,
		CreatedUnixNano: now.UnixNano(), UpdatedUnixNano: now.UnixNano(), ValidatedUnixNano: now.UnixNano()}
	if refresh == "" && old != nil && old.GetRevokedUnixNano() == 0 {
		l.SealedRefreshToken = old.GetSealedRefreshToken()
	}
	if refresh != "" {
		sealed, err := keys.SealData(s.d.KEK, sealRefreshToken, []byte(refresh), linkAAD(provider, subject))
		if err != nil {
			return s.internal(err)
		}
		l.SealedRefreshToken = sealed
	}
	return s.writeLink(ctx, l, true, now)
}

func (s *Service) writeLink(ctx context.Context, l *storev1.UpstreamLink, create bool, now time.Time) error {
	_, res, err := s.propose(ctx, now, &storev1.Command{Op: &storev1.Command_PutUpstreamLink{PutUpstreamLink: &storev1.PutUpstreamLink{Link: l, Create: create}}})
	switch {
	case err != nil:
		return err
	case res.GetCode() == storev1.ErrorCode_ERROR_CODE_CONFLICT:
		return newErr(KindConflict, "linked_elsewhere", "this upstream identity is linked to another account")
	case res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED:
		return s.resultErr(res)
	}
	return nil
}

func linkAAD(provider, subject string) []byte {
	return []byte(fmt.Sprintf("%d:%s:%s", len(provider), provider, subject))
}

// claimString returns the string claim name, else def.
func claimString(claims map[string]any, name, def string) string {
	if name != "" {
		if v, ok := claims[name].(string); ok && v != "" {
			return truncate(v, 128)
		}
	}
	return def
}

// claimStrings returns the claim name as a list of strings.
func claimStrings(claims map[string]any, name string) []string {
	if name == "" {
		return nil
	}
	switch v := claims[name].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v[:min(len(v), 100)] {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// printableASCII keeps a provider's error text fit for a page and a log.
func printableASCII(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= n {
			break
		}
		if r < unicode.MaxASCII && unicode.IsPrint(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}
