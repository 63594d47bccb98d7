package authsvc

import (
	"context"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// Bounds of authorization request parameters.
const (
	maxStateLen     = 512
	maxNonceLen     = 512
	maxScopeLen     = 1024
	maxLoginHintLen = 254
	maxParamLen     = 2048
	maxAuthzParams  = 32
)

// pkceRE is a PKCE code challenge (S256: 43 base64url characters) and
// verifierRE a code verifier (RFC 7636 §4.1).
var (
	challengeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	verifierRE  = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)
)

// AuthorizeRequest is a validated authorization request (OIDC Core §3.1.2.1
// with PKCE S256 required).
type AuthorizeRequest struct {
	Client        *OIDCClient
	RedirectURI   string
	State         string
	Nonce         string
	Scope         string
	CodeChallenge string
	// Prompt holds the prompt values (none, login, consent).
	Prompt map[string]bool
	// MaxAge is max_age in seconds, or -1 when absent.
	MaxAge    int64
	LoginHint string
}

// AuthorizeError is a refused authorization request. With RedirectURI set
// it is sent back to the client (RFC 6749 §4.1.2.1); without, the client
// or its redirect URI could not be trusted and the user sees an error page.
type AuthorizeError struct {
	Code        string
	Description string
	RedirectURI string
	State       string
}

func (e *AuthorizeError) Error() string { return e.Code + ": " + e.Description }

// Location is where a redirectable error sends the browser, with iss (RFC
// 9207); "" when it must not be redirected.
func (e *AuthorizeError) Location(issuer string) string {
	if e.RedirectURI == "" {
		return ""
	}
	q := url.Values{"error": {e.Code}, "error_description": {e.Description}, "iss": {issuer}}
	if e.State != "" {
		q.Set("state", e.State)
	}
	return appendQuery(e.RedirectURI, q)
}

func appendQuery(base string, q url.Values) string {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + q.Encode()
}

// single returns the one value of name in q: "" when absent, and an error
// description when it is repeated, too long or not valid UTF-8 text.
func single(q url.Values, name string, max int) (string, string) {
	vs := q[name]
	switch {
	case len(vs) == 0:
		return "", ""
	case len(vs) > 1:
		return "", name + ": given more than once"
	case len(vs[0]) > max:
		return "", name + ": longer than " + strconv.Itoa(max) + " bytes"
	case !printable(vs[0]):
		return "", name + ": not printable text"
	}
	return vs[0], ""
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return false
		}
	}
	return true
}

// ParseAuthorize validates an authorization request's parameters. The
// client and the redirect URI are checked first: when either is missing,
// repeated, unknown or unregistered, the error carries no redirect URI.
func (p *Provider) ParseAuthorize(q url.Values) (*AuthorizeRequest, *AuthorizeError) {
	local := func(desc string) *AuthorizeError { return &AuthorizeError{Code: "invalid_request", Description: desc} }
	if len(q) > maxAuthzParams {
		return nil, local("too many parameters")
	}
	clientID, bad := single(q, "client_id", 255)
	if bad != "" {
		return nil, local(bad)
	}
	if clientID == "" {
		return nil, local("client_id: required")
	}
	client, ok := p.Client(clientID)
	if !ok {
		return nil, &AuthorizeError{Code: "invalid_client", Description: "client_id: no such client"}
	}
	redirect, bad := single(q, "redirect_uri", maxParamLen)
	if bad != "" {
		return nil, local(bad)
	}
	if redirect == "" {
		return nil, local("redirect_uri: required")
	}
	if !slices.Contains(client.RedirectURIs, redirect) {
		return nil, local("redirect_uri: not registered for this client (exact match required)")
	}
	state, bad := single(q, "state", maxStateLen)
	if bad != "" {
		return nil, &AuthorizeError{Code: "invalid_request", Description: bad, RedirectURI: redirect}
	}
	fail := func(code, desc string) (*AuthorizeRequest, *AuthorizeError) {
		return nil, &AuthorizeError{Code: code, Description: desc, RedirectURI: redirect, State: state}
	}
	r := &AuthorizeRequest{Client: client, RedirectURI: redirect, State: state, MaxAge: -1, Prompt: map[string]bool{}}
	for name := range q {
		switch name {
		case "client_id", "redirect_uri", "state", "response_type", "scope", "nonce", "code_challenge",
			"code_challenge_method", "prompt", "max_age", "login_hint", "response_mode", "ui_locales", "display", "claims_locales", "acr_values", "id_token_hint":
			if _, bad := single(q, name, maxParamLen); bad != "" {
				return fail("invalid_request", bad)
			}
		case "request":
			return fail("request_not_supported", "request objects are not supported")
		case "request_uri":
			return fail("request_uri_not_supported", "request_uri is not supported")
		}
	}
	rt, _ := single(q, "response_type", maxParamLen)
	switch rt {
	case "":
		return fail("invalid_request", "response_type: required")
	case "code":
	default:
		return fail("unsupported_response_type", "response_type: only code is supported")
	}
	if !client.allowsGrant(GrantAuthorizationCode) {
		return fail("unauthorized_client", "this client may not use the authorization code grant")
	}
	if rm, _ := single(q, "response_mode", maxParamLen); rm != "" && rm != "query" {
		return fail("invalid_request", "response_mode: only query is supported")
	}
	scope, _ := single(q, "scope", maxScopeLen)
	if len(q.Get("scope")) > maxScopeLen {
		return fail("invalid_request", "scope: longer than "+strconv.Itoa(maxScopeLen)+" bytes")
	}
	scopes := strings.Fields(scope)
	if !slices.Contains(scopes, "openid") {
		return fail("invalid_scope", "scope: must include openid")
	}
	for _, sc := range scopes {
		if !client.allowsScope(sc) {
			return fail("invalid_scope", "scope: "+truncate(sc, 64)+" is not allowed for this client")
		}
	}
	slices.Sort(scopes)
	r.Scope = strings.Join(slices.Compact(scopes), " ")
	if r.Nonce, _ = single(q, "nonce", maxNonceLen); len(q.Get("nonce")) > maxNonceLen {
		return fail("invalid_request", "nonce: longer than "+strconv.Itoa(maxNonceLen)+" bytes")
	}
	cc, _ := single(q, "code_challenge", maxParamLen)
	method, _ := single(q, "code_challenge_method", maxParamLen)
	switch {
	case cc == "":
		return fail("invalid_request", "code_challenge: required (PKCE S256)")
	case method != "S256":
		return fail("invalid_request", "code_challenge_method: must be S256")
	case !challengeRE.MatchString(cc):
		return fail("invalid_request", "code_challenge: want 43 base64url characters")
	}
	r.CodeChallenge = cc
	if pr, _ := single(q, "prompt", maxParamLen); pr != "" {
		for _, v := range strings.Fields(pr) {
			switch v {
			case "none", "login", "consent", "select_account":
				r.Prompt[v] = true
			default:
				return fail("invalid_request", "prompt: "+truncate(v, 32)+" is not none, login, consent or select_account")
			}
		}
		if r.Prompt["none"] && len(r.Prompt) > 1 {
			return fail("invalid_request", "prompt: none cannot be combined")
		}
	}
	if ma, _ := single(q, "max_age", maxParamLen); ma != "" {
		n, err := strconv.ParseInt(ma, 10, 64)
		if err != nil || n < 0 || n > 1<<31 {
			return fail("invalid_request", "max_age: want a non-negative number of seconds")
		}
		r.MaxAge = n
	}
	r.LoginHint, _ = single(q, "login_hint", maxLoginHintLen)
	if len(q.Get("login_hint")) > maxLoginHintLen {
		r.LoginHint = ""
	}
	return r, nil
}

// NeedsLogin reports whether the request needs the user to authenticate
// (again) given the SSO session sso (nil: none): no session, prompt=login,
// or max_age exceeded.
func (p *Provider) NeedsLogin(r *AuthorizeRequest, sso *storev1.Session) bool {
	if sso == nil || r.Prompt["login"] {
		return true
	}
	if r.MaxAge >= 0 {
		auth := time.Unix(0, sso.GetAuthTimeUnixNano())
		return p.s.now().Sub(auth) > time.Duration(r.MaxAge)*time.Second
	}
	return false
}

// NeedsConsent reports whether the user must consent: third-party clients
// always, first-party clients only with prompt=consent.
func (p *Provider) NeedsConsent(r *AuthorizeRequest) bool {
	return !r.Client.FirstParty || r.Prompt["consent"]
}

// IssueCode records a one-time authorization code for r under the live SSO
// session sso and returns the client redirect carrying it.
func (p *Provider) IssueCode(ctx context.Context, r *AuthorizeRequest, sso *storev1.Session) (string, error) {
	now := p.s.now()
	code := randomID() + randomID()
	rec := &storev1.AuthCode{
		CodeHash: hashOf(code), ClientId: r.Client.ID, SessionId: sso.GetId(), UserId: sso.GetUserId(),
		RedirectUri: r.RedirectURI, CodeChallenge: r.CodeChallenge, Nonce: r.Nonce, Scope: r.Scope,
		IssuedUnixNano: now.UnixNano(), ExpiresUnixNano: now.Add(p.cfg.CodeTTL).UnixNano(),
		RecordExpiresUnixNano: now.Add(p.s.cfg.AccessTTL + p.cfg.CodeTTL + time.Hour).UnixNano(),
		AuthTimeUnixNano:      sso.GetAuthTimeUnixNano(),
	}
	_, res, err := p.s.propose(ctx, now, &storev1.Command{Op: &storev1.Command_PutAuthCode{PutAuthCode: &storev1.PutAuthCode{Code: rec}}})
	if err != nil {
		return "", err
	}
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		return "", p.s.resultErr(res)
	}
	p.s.audit(ctx, "oidc_code_issued", slog.String("client", r.Client.ID), slog.String("user", sso.GetUserId()), slog.String("session", sso.GetId()))
	q := url.Values{"code": {code}, "iss": {p.s.cfg.Issuer}}
	if r.State != "" {
		q.Set("state", r.State)
	}
	return appendQuery(r.RedirectURI, q), nil
}

// Deny returns the redirect of a user's refusal (access_denied).
func (p *Provider) Deny(r *AuthorizeRequest) string {
	return (&AuthorizeError{Code: "access_denied", Description: "the user denied the request", RedirectURI: r.RedirectURI, State: r.State}).Location(p.s.cfg.Issuer)
}
