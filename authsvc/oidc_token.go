package authsvc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sessiond/sessiond/authsvc/password"
	"github.com/sessiond/sessiond/authsvc/users"
	"github.com/sessiond/sessiond/clients/go/token"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// TokenRequest is a request to the token endpoint: the form and the
// HTTP Basic credentials, if any.
type TokenRequest struct {
	Form       url.Values
	BasicUser  string
	BasicPass  string
	HasBasic   bool
	HTTPClient Client
}

// TokenResponse is a successful token response (RFC 6749 §5.1, OIDC Core
// §3.1.3.3).
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// OAuth error codes of the token endpoint (RFC 6749 §5.2).
const (
	ErrCodeInvalidRequest       = "invalid_request"
	ErrCodeInvalidClient        = "invalid_client"
	ErrCodeInvalidGrant         = "invalid_grant"
	ErrCodeUnauthorizedClient   = "unauthorized_client"
	ErrCodeUnsupportedGrantType = "unsupported_grant_type"
	ErrCodeInvalidScope         = "invalid_scope"
)

const (
	assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// maxAssertionLife bounds a client assertion's exp - now.
	maxAssertionLife = 5 * time.Minute
	maxAssertionLen  = 8 << 10
	maxCodeLen       = 128
	maxTokenLen      = 4096
)

func oauthErr(code, msg string) *Error {
	k := KindInvalid
	if code == ErrCodeInvalidClient {
		k = KindUnauthenticated
	}
	return newErr(k, code, msg)
}

// Token serves the token endpoint.
func (p *Provider) Token(ctx context.Context, req TokenRequest) (*TokenResponse, error) {
	f := req.Form
	for name, vs := range f {
		if len(vs) > 1 {
			return nil, oauthErr(ErrCodeInvalidRequest, truncate(name, 64)+": given more than once")
		}
		if len(vs[0]) > maxAssertionLen {
			return nil, oauthErr(ErrCodeInvalidRequest, truncate(name, 64)+": too long")
		}
	}
	grant := f.Get("grant_type")
	if grant == "" {
		return nil, oauthErr(ErrCodeInvalidRequest, "grant_type: required")
	}
	client, err := p.authenticateClient(ctx, req)
	if err != nil {
		return nil, err
	}
	switch grant {
	case GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials:
	default:
		return nil, oauthErr(ErrCodeUnsupportedGrantType, "grant_type: want authorization_code, refresh_token or client_credentials")
	}
	if !client.allowsGrant(grant) {
		return nil, oauthErr(ErrCodeUnauthorizedClient, "this client may not use the "+grant+" grant")
	}
	switch grant {
	case GrantAuthorizationCode:
		return p.redeemCode(ctx, client, f, req.HTTPClient)
	case GrantRefreshToken:
		return p.refresh(ctx, client, f, req.HTTPClient)
	default:
		return p.clientCredentials(ctx, client, f)
	}
}

// authenticateClient authenticates the client by its method: HTTP Basic
// with the secret (client_secret_basic), a signed assertion
// (private_key_jwt, RFC 7523 §2.2), or only client_id (a public client).
func (p *Provider) authenticateClient(ctx context.Context, req TokenRequest) (*OIDCClient, error) {
	f := req.Form
	formID := f.Get("client_id")
	bad := oauthErr(ErrCodeInvalidClient, "client authentication failed")
	switch {
	case req.HasBasic:
		if f.Has("client_assertion") || f.Has("client_secret") {
			return nil, oauthErr(ErrCodeInvalidRequest, "use one client authentication method")
		}
		id, err1 := url.QueryUnescape(req.BasicUser)
		secret, err2 := url.QueryUnescape(req.BasicPass)
		if err1 != nil || err2 != nil || (formID != "" && formID != id) {
			return nil, bad
		}
		return p.verifySecret(ctx, id, secret, req.HTTPClient.IP)
	case f.Has("client_assertion") || f.Has("client_assertion_type"):
		if f.Get("client_assertion_type") != assertionType {
			return nil, oauthErr(ErrCodeInvalidRequest, "client_assertion_type: want "+assertionType)
		}
		return p.verifyAssertion(ctx, f.Get("client_assertion"), formID)
	case f.Has("client_secret"):
		return nil, oauthErr(ErrCodeInvalidClient, "client_secret_post is not supported; use HTTP Basic")
	default:
		if formID == "" {
			return nil, oauthErr(ErrCodeInvalidClient, "client_id: required (or authenticate)")
		}
		c, ok := p.Client(formID)
		if !ok || c.AuthMethod != AuthNone {
			return nil, bad
		}
		return c, nil
	}
}

var assertionAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.EdDSA}

// verifyAssertion checks a private_key_jwt client assertion: signed by one
// of the client's keys, iss = sub = client_id, aud naming the token
// endpoint or the issuer, exp in the next five minutes, jti never seen
// before (replicated one-time mark).
func (p *Provider) verifyAssertion(ctx context.Context, raw, formID string) (*OIDCClient, error) {
	bad := func(why string) (*OIDCClient, error) {
		p.s.audit(ctx, "oidc_client_auth_failed", slog.String("method", AuthPrivateKeyJWT), slog.String("why", why))
		return nil, oauthErr(ErrCodeInvalidClient, "client assertion refused: "+why)
	}
	if raw == "" {
		return nil, oauthErr(ErrCodeInvalidRequest, "client_assertion: required")
	}
	tok, err := jwt.ParseSigned(raw, assertionAlgs)
	if err != nil {
		return bad("not a signed JWT")
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return bad("undecodable claims")
	}
	c, ok := p.Client(unverified.Issuer)
	if !ok || c.AuthMethod != AuthPrivateKeyJWT || (formID != "" && formID != c.ID) {
		return bad("unknown client or not a private_key_jwt client")
	}
	var claims jwt.Claims
	verified := false
	for _, k := range c.JWKS.Keys {
		if len(tok.Headers) == 1 && tok.Headers[0].KeyID != "" && k.KeyID != "" && k.KeyID != tok.Headers[0].KeyID {
			continue
		}
		if err := tok.Claims(k.Key, &claims); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return bad("signature does not verify with the client's keys")
	}
	now := p.s.now()
	switch {
	case claims.Issuer != c.ID || claims.Subject != c.ID:
		return bad("iss and sub must be the client_id")
	case !claims.Audience.Contains(p.cfg.TokenEndpoint) && !claims.Audience.Contains(p.s.cfg.Issuer):
		return bad("aud must name the token endpoint or the issuer")
	case claims.Expiry == nil || !now.Before(claims.Expiry.Time()):
		return bad("expired or without exp")
	case claims.Expiry.Time().Sub(now) > maxAssertionLife:
		return bad("exp more than 5 minutes ahead")
	case claims.NotBefore != nil && claims.NotBefore.Time().After(now.Add(time.Minute)):
		return bad("not yet valid")
	case claims.ID == "" || len(claims.ID) > 255:
		return bad("jti required")
	}
	key := sha256.Sum256([]byte("private_key_jwt\x00" + c.ID + "\x00" + claims.ID))
	_, res, err := p.s.propose(ctx, now, &storev1.Command{Op: &storev1.Command_MarkOnce{MarkOnce: &storev1.MarkOnce{
		Key: key[:], ExpiresUnixNano: claims.Expiry.Time().Add(time.Minute).UnixNano()}}})
	if err != nil {
		return nil, err
	}
	if res.GetCode() == storev1.ErrorCode_ERROR_CODE_CONFLICT {
		p.s.alert(alertEvent("client_assertion_replay", c.ID, now))
		return bad("jti already used (replay)")
	}
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		return nil, p.s.resultErr(res)
	}
	return c, nil
}

// redeemCode serves grant_type=authorization_code.
func (p *Provider) redeemCode(ctx context.Context, c *OIDCClient, f url.Values, hc Client) (*TokenResponse, error) {
	code, redirect, verifier := f.Get("code"), f.Get("redirect_uri"), f.Get("code_verifier")
	switch {
	case code == "":
		return nil, oauthErr(ErrCodeInvalidRequest, "code: required")
	case len(code) > maxCodeLen:
		return nil, oauthErr(ErrCodeInvalidGrant, "code: unknown, expired or already used")
	case redirect == "":
		return nil, oauthErr(ErrCodeInvalidRequest, "redirect_uri: required")
	case verifier == "":
		return nil, oauthErr(ErrCodeInvalidRequest, "code_verifier: required (PKCE)")
	case !verifierRE.MatchString(verifier):
		return nil, oauthErr(ErrCodeInvalidRequest, "code_verifier: want 43-128 characters of A-Z a-z 0-9 - . _ ~")
	}
	now := p.s.now()
	hash := hashOf(code)
	rec, err := p.s.d.State.AuthCode(hash, now)
	if err != nil {
		// A code issued a moment ago through another node.
		if err := p.s.d.Cluster.Sync(ctx); err != nil {
			return nil, clusterUnavailable("the cluster did not answer a read", err)
		}
		rec, err = p.s.d.State.AuthCode(hash, now)
	}
	invalid := oauthErr(ErrCodeInvalidGrant, "code: unknown, expired or already used")
	if err != nil || rec.GetClientId() != c.ID {
		return nil, invalid
	}
	if rec.GetRedeemedUnixNano() == 0 {
		if rec.GetRedirectUri() != redirect {
			return nil, oauthErr(ErrCodeInvalidGrant, "redirect_uri: differs from the authorization request's")
		}
		if s256(verifier) != rec.GetCodeChallenge() {
			p.s.audit(ctx, "oidc_pkce_mismatch", slog.String("client", c.ID), slog.String("user", rec.GetUserId()))
			return nil, oauthErr(ErrCodeInvalidGrant, "code_verifier: does not match the code challenge")
		}
	}
	u, err := p.s.d.Directory.ByID(ctx, rec.GetUserId())
	switch {
	case errors.Is(err, users.ErrNotFound):
		return nil, invalid
	case err != nil:
		return nil, wrapErr(KindUnavailable, "directory_unavailable", "the user directory is unavailable", err)
	case u.Status != users.StatusActive:
		return nil, oauthErr(ErrCodeInvalidGrant, "the account is suspended")
	}
	signer, err := p.s.keys.signer(now)
	if err != nil {
		return nil, err
	}
	sid, jti := randomID(), randomID()
	absolute := now.Add(p.s.cfg.SessionAbsolute)
	sess := &storev1.Session{
		Id: sid, UserId: u.ID, OrgId: u.Org.ID, Platform: storev1.Platform_PLATFORM_OTHER, DeviceId: "oidc:" + c.ID,
		CreatedUnixNano: now.UnixNano(), LastRefreshedUnixNano: now.UnixNano(),
		IdleExpiresUnixNano: minTime(now.Add(p.s.cfg.SessionIdle), absolute).UnixNano(), AbsoluteExpiresUnixNano: absolute.UnixNano(),
		Region: p.s.cfg.Region, NodeId: p.s.cfg.NodeID, ClientIp: hc.IP, UserAgent: truncate(hc.UserAgent, maxUALen),
		FamilyId: randomID(), RefreshGeneration: 1, Scope: rec.GetScope(), AuthTimeUnixNano: rec.GetAuthTimeUnixNano(),
		ClientId: c.ID, ParentSessionId: rec.GetSessionId(),
	}
	rt := &storev1.RefreshToken{IdHash: token.HashTokenID(jti), IssuedUnixNano: now.UnixNano(),
		ExpiresUnixNano: minTime(now.Add(p.s.cfg.RefreshTTL), absolute).UnixNano(), UserId: u.ID}
	idx, res, err := p.s.propose(ctx, now, &storev1.Command{Op: &storev1.Command_RedeemAuthCode{RedeemAuthCode: &storev1.RedeemAuthCode{
		CodeHash: hash, ClientId: c.ID, Session: &storev1.OpenSession{Session: sess, Refresh: rt}}}})
	if err != nil {
		return nil, err
	}
	switch res.GetCode() {
	case storev1.ErrorCode_ERROR_CODE_UNSPECIFIED:
	case storev1.ErrorCode_ERROR_CODE_REUSE:
		p.s.audit(ctx, "oidc_code_reuse", slog.String("client", c.ID), slog.String("user", u.ID), slog.Any("ended", res.GetEndedSessionIds()))
		p.s.alert(alertEvent("oidc_code_reuse", c.ID, now))
		return nil, invalid
	case storev1.ErrorCode_ERROR_CODE_NOT_FOUND:
		return nil, invalid
	case storev1.ErrorCode_ERROR_CODE_ENDED:
		return nil, oauthErr(ErrCodeInvalidGrant, "the login session has ended")
	default:
		return nil, p.s.resultErr(res)
	}
	opened := res.GetSession()
	pair, err := p.s.signPair(u, opened, jti, now, signer, idx)
	if err != nil {
		return nil, err
	}
	p.s.audit(ctx, "oidc_code_redeemed", slog.String("client", c.ID), slog.String("user", u.ID), slog.String("session", sid))
	return p.tokenResponse(c, u, opened, pair, rec.GetNonce(), now)
}

// tokenResponse adds the ID token to a signed pair.
func (p *Provider) tokenResponse(c *OIDCClient, u users.User, sess *storev1.Session, pair *Tokens, nonce string, now time.Time) (*TokenResponse, error) {
	out := &TokenResponse{AccessToken: pair.AccessToken, TokenType: "Bearer", ExpiresIn: int64(pair.ExpiresIn / time.Second), Scope: sess.GetScope()}
	if c.allowsGrant(GrantRefreshToken) {
		out.RefreshToken = pair.RefreshToken
	}
	if slices.Contains(strings.Fields(sess.GetScope()), "openid") {
		idt, err := p.signIDToken(c, u, sess, pair.AccessToken, nonce, now)
		if err != nil {
			return nil, err
		}
		out.IDToken = idt
	}
	return out, nil
}

// signIDToken signs an ID token (OIDC Core §2) with the client's algorithm.
func (p *Provider) signIDToken(c *OIDCClient, u users.User, sess *storev1.Session, accessToken, nonce string, now time.Time) (string, error) {
	k, err := p.keys.signer(c.IDTokenAlg, now)
	if err != nil {
		return "", err
	}
	claims := map[string]any{
		"iss": p.s.cfg.Issuer, "sub": u.ID, "aud": c.ID, "azp": c.ID,
		"iat": now.Unix(), "exp": now.Add(p.cfg.IDTokenTTL).Unix(),
		"auth_time": time.Unix(0, sess.GetAuthTimeUnixNano()).Unix(),
		"sid":       sess.GetParentSessionId(),
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	if accessToken != "" {
		claims["at_hash"] = halfHash(accessToken)
	}
	for k, v := range userClaims(u, sess.GetScope()) {
		claims[k] = v
	}
	return p.sign(k, "JWT", claims)
}

func (p *Provider) sign(k oidcKey, typ string, claims any) (string, error) {
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.alg), Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		return "", p.s.internal(err)
	}
	out, err := jwt.Signed(sg).Claims(claims).Serialize()
	if err != nil {
		return "", p.s.internal(err)
	}
	return out, nil
}

// halfHash is at_hash for RS256 and ES256 (both SHA-256): the left half
// of the hash, base64url (OIDC Core §3.1.3.6).
func halfHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(h[:16])
}

// userClaims are the claims the scope grants (OIDC Core §5.4 and the
// project's org, country and roles).
func userClaims(u users.User, scope string) map[string]any {
	out := map[string]any{}
	for _, sc := range strings.Fields(scope) {
		switch sc {
		case "profile":
			if u.DisplayName != "" {
				out["name"] = u.DisplayName
			}
		case "email":
			out["email"] = u.Email
		case "org":
			out["org_id"], out["org_name"], out["org_type"] = u.Org.ID, u.Org.Name, string(u.Org.Type)
		case "country":
			out["country"] = u.Org.Country
		case "roles":
			roles := u.Roles
			if roles == nil {
				roles = []string{}
			}
			out["roles"] = roles
		}
	}
	return out
}

// refresh serves grant_type=refresh_token: the service's rotation with
// reuse detection, for a refresh token of a session issued to this client.
func (p *Provider) refresh(ctx context.Context, c *OIDCClient, f url.Values, hc Client) (*TokenResponse, error) {
	raw := f.Get("refresh_token")
	if raw == "" {
		return nil, oauthErr(ErrCodeInvalidRequest, "refresh_token: required")
	}
	if len(raw) > maxTokenLen {
		return nil, oauthErr(ErrCodeInvalidGrant, "refresh_token: not valid")
	}
	if sc := f.Get("scope"); sc != "" {
		return nil, oauthErr(ErrCodeInvalidScope, "scope: a refresh keeps the granted scope; omit it")
	}
	pair, sess, u, err := p.s.refresh(ctx, raw, hc, c.ID)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && (e.Kind == KindUnauthenticated || e.Kind == KindNotFound || e.Kind == KindForbidden) {
			return nil, oauthErr(ErrCodeInvalidGrant, "refresh_token: "+e.Message)
		}
		return nil, err
	}
	return p.tokenResponse(c, u, sess, pair, "", p.s.now())
}

// clientCredentials serves grant_type=client_credentials: an RFC 9068 JWT
// access token for the client itself (no user, no session), signed with
// the provider's RS256 key and verifiable with the JWKS.
func (p *Provider) clientCredentials(ctx context.Context, c *OIDCClient, f url.Values) (*TokenResponse, error) {
	scopes := strings.Fields(f.Get("scope"))
	for _, sc := range scopes {
		if sc == "openid" || !c.allowsScope(sc) {
			return nil, oauthErr(ErrCodeInvalidScope, "scope: "+truncate(sc, 64)+" is not allowed for this client")
		}
	}
	now := p.s.now()
	k, err := p.keys.signer(AlgRS256, now)
	if err != nil {
		return nil, err
	}
	claims := map[string]any{"iss": p.s.cfg.Issuer, "sub": c.ID, "client_id": c.ID, "aud": p.s.cfg.Audience,
		"iat": now.Unix(), "exp": now.Add(p.s.cfg.AccessTTL).Unix(), "jti": randomID()}
	if len(scopes) > 0 {
		claims["scope"] = strings.Join(scopes, " ")
	}
	at, err := p.sign(k, "at+jwt", claims)
	if err != nil {
		return nil, err
	}
	p.s.audit(ctx, "oidc_client_credentials", slog.String("client", c.ID))
	return &TokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(p.s.cfg.AccessTTL / time.Second), Scope: strings.Join(scopes, " ")}, nil
}

// UserInfo answers the userinfo endpoint for an access token of a client
// session (OIDC Core §5.3): sub and the claims its scope grants.
//
// It reads after a linearizable barrier: a logout acknowledged anywhere
// is seen here, whichever node answers.
func (p *Provider) UserInfo(ctx context.Context, bearer string) (map[string]any, error) {
	if err := p.s.d.Cluster.Sync(ctx); err != nil {
		return nil, clusterUnavailable("the cluster did not answer a read", err)
	}
	cl, err := p.s.Authenticate(ctx, bearer)
	if err != nil {
		return nil, err
	}
	sess, err := p.s.d.State.Session(cl.SessionID, p.s.now())
	if err != nil || sess.GetClientId() == "" || !slices.Contains(strings.Fields(sess.GetScope()), "openid") {
		return nil, newErr(KindForbidden, "insufficient_scope", "the access token was not issued with the openid scope")
	}
	u, err := p.s.d.Directory.ByID(ctx, cl.Subject)
	if err != nil {
		return nil, newErr(KindUnauthenticated, "invalid_token", "the user no longer exists")
	}
	out := userClaims(u, sess.GetScope())
	out["sub"] = u.ID
	return out, nil
}

// verifySecret checks a client_secret_basic secret: argon2id (an unknown
// client costs the same), throttled per client and address cluster-wide
// like passwords; a secret verified before is recognised by its SHA-256
// without argon2id, so a flood of wrong secrets cannot lock the real
// client out.
func (p *Provider) verifySecret(ctx context.Context, id, secret, ip string) (*OIDCClient, error) {
	bad := oauthErr(ErrCodeInvalidClient, "client authentication failed")
	c, ok := p.Client(id)
	hash := ""
	if ok && c.AuthMethod == AuthClientSecretBasic {
		hash = c.SecretHash
	}
	sum := sha256.Sum256([]byte(secret))
	if prev, seen := p.verified.Load(id + "\x00" + hash); hash != "" && seen && subtle.ConstantTimeCompare(prev.([]byte), sum[:]) == 1 {
		return c, nil
	}
	now := p.s.now()
	account := "oidc-client\x00" + id
	if t := p.s.d.Throttle; t != nil {
		wait, allowed, err := t.Check(account, ip, now)
		if err != nil {
			p.s.d.Logger.Warn("client secret throttle unreadable; attempt refused", "err", err)
		}
		if !allowed {
			return nil, &Error{Kind: KindThrottled, Code: "too_many_attempts", Message: "too many failed attempts for this client or address; retry later", RetryAfter: wait}
		}
	}
	var match bool
	var err error
	if hash == "" {
		_, err = p.s.d.Hasher.VerifyDummy(secret)
	} else {
		match, _, err = p.s.d.Hasher.Verify(secret, hash)
	}
	if errors.Is(err, password.ErrBusy) {
		return nil, &Error{Kind: KindThrottled, Code: "busy", Message: "too many requests in progress; retry", RetryAfter: time.Second}
	}
	if !match {
		if t := p.s.d.Throttle; t != nil {
			if _, err := t.Failure(ctx, account, ip, now); err != nil {
				p.s.d.Logger.Warn("client secret failure not recorded by the throttle", "err", err)
			}
		}
		p.s.audit(ctx, "oidc_client_auth_failed", slog.String("client", truncate(id, 64)), slog.String("method", AuthClientSecretBasic), slog.String("ip", ip))
		return nil, bad
	}
	if t := p.s.d.Throttle; t != nil {
		if err := t.Success(ctx, account, ip, now); err != nil {
			p.s.d.Logger.Warn("client secret throttle not cleared", "err", err)
		}
	}
	p.verified.Store(id+"\x00"+hash, sum[:])
	return c, nil
}
