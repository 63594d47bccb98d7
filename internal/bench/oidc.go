package bench

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"

	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1/sessionv1connect"
)

// The OpenID Provider's paths (api/oidcop).
const (
	authorizePath = "/oidc/authorize"
	loginPath     = "/oidc/login"
	consentPath   = "/oidc/consent"
	tokenPath     = "/oidc/token"
	userinfoPath  = "/oidc/userinfo"
	jwksPath      = "/.well-known/jwks.json"
)

// Defaults of the OIDC scenarios: the client `sessiond dev
// --oidc-redirect-uri http://127.0.0.1:1/cb --oidc-backchannel-uri
// http://127.0.0.1:8079/backchannel-logout` registers.
const (
	DefaultOIDCClient         = "dev-app"
	DefaultOIDCRedirectURI    = "http://127.0.0.1:1/cb"
	DefaultOIDCBackchannelURI = "http://127.0.0.1:8079/backchannel-logout"
	DefaultOIDCScope          = "openid email"
)

// OIDCParams configure the code-flow and backchannel scenarios: the
// relying party the load plays.
type OIDCParams struct {
	// ClientID is a registered client of the provider. A client that is
	// not first-party gets the consent page at every authorization, which
	// the load allows (one more round trip, recorded as part of authorize).
	ClientID string
	// ClientSecret, when set, authenticates the client at the token
	// endpoint (client_secret_basic); empty: a public client (none).
	ClientSecret string
	// RedirectURI is registered for the client; nothing listens there (the
	// load reads the code from the authorization response's Location).
	RedirectURI string
	// Scope is asked at every authorization (default "openid email").
	Scope string
	// BackchannelURI is the client's registered backchannel_logout_uri:
	// the backchannel scenario receives logout tokens there.
	BackchannelURI string
	// BackchannelListen is the address the receiver listens on (default
	// the host and port of BackchannelURI).
	BackchannelListen string
}

func (o *OIDCParams) defaults() error {
	if o.ClientID == "" {
		o.ClientID = DefaultOIDCClient
	}
	if o.RedirectURI == "" {
		o.RedirectURI = DefaultOIDCRedirectURI
	}
	if o.Scope == "" {
		o.Scope = DefaultOIDCScope
	}
	if o.BackchannelURI == "" {
		o.BackchannelURI = DefaultOIDCBackchannelURI
	}
	if u, err := url.Parse(o.RedirectURI); err != nil || !u.IsAbs() {
		return fmt.Errorf("oidc-redirect-uri: %q is not an absolute URI", o.RedirectURI)
	}
	if !strings.Contains(" "+o.Scope+" ", " openid ") {
		return fmt.Errorf("oidc-scope: %q lacks openid (the scenarios read the ID token)", o.Scope)
	}
	return nil
}

// oidcBench is the code-flow and backchannel scenarios: every client is a
// browser signed in once (its SSO cookie) and a relying party that
// redeems the codes it gets.
type oidcBench struct {
	p        Params
	o        OIDCParams
	name     string
	setup    *setup
	pool     *pool
	emails   []string
	password string
	clients  []*oidcClient
	recv     *receiver
	probe    time.Duration // how long Prepare waits for the probe's logout token
}

// oidcClient is one load client: a browser (authorize on its node) and
// the relying party's backend (token, userinfo, revoke on the next node,
// as a load balancer would send them).
type oidcClient struct {
	i          int
	hc         *http.Client // no redirect following
	browser    string       // authorize target
	rp         string       // token, userinfo and session calls target
	sess       sessionv1connect.SessionServiceClient
	ssoCookie  *http.Cookie
	csrfCookie *http.Cookie
	sid        string // the SSO session's id (the ID tokens' sid)
	relogin    bool
}

// newOIDC returns the code-flow or backchannel scenario.
func newOIDC(name string, p Params) (*oidcBench, error) {
	o := p.OIDC
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if name == "backchannel" {
		u, err := url.Parse(o.BackchannelURI)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("oidc-backchannel-uri: %q is not an http:// URL", o.BackchannelURI)
		}
		if u.Scheme == "https" && o.BackchannelListen == "" {
			return nil, errors.New("oidc-backchannel-uri: the receiver serves plain HTTP; give an http:// URI or put a TLS proxy in front and set --oidc-backchannel-listen")
		}
		if o.BackchannelListen == "" {
			o.BackchannelListen = u.Host
		}
	}
	return &oidcBench{p: p, o: o, name: name, probe: 15 * time.Second}, nil
}

// Prepare creates a user per client, signs every client's browser in
// through the login page and, for backchannel, starts the logout-token
// receiver and checks with one probe that the client's logout tokens
// reach it.
func (s *oidcBench) Prepare(ctx context.Context, n int) error {
	var err error
	if s.setup, err = newSetup(s.p.Conn, s.p.Log); err != nil {
		return err
	}
	if s.pool, err = newPool(s.p.Conn, n); err != nil {
		return err
	}
	targets := s.p.Conn.Targets
	for i := range n {
		hc, t := s.pool.http(i)
		rp := strings.TrimRight(targets[(i+1)%len(targets)], "/")
		s.clients = append(s.clients, &oidcClient{
			i: i, browser: t, rp: rp,
			hc:   &http.Client{Transport: hc.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
			sess: sessionv1connect.NewSessionServiceClient(hc, rp, s.pool.service()...),
		})
	}
	if s.name == "backchannel" {
		if s.recv, err = startReceiver(s.o, s.setup, strings.TrimRight(targets[0], "/")); err != nil {
			return err
		}
	}
	fmt.Fprintf(s.setup.log, "preparing: %d users\n", n)
	if s.emails, s.password, err = s.setup.createUsers(ctx, n); err != nil {
		return fmt.Errorf("create users: %w", err)
	}
	fmt.Fprintf(s.setup.log, "preparing: %d browser sign-ins through %s\n", n, loginPath)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, c := range s.clients {
		g.Go(func() error {
			return retryBusy(gctx, func() error { return s.signIn(gctx, c) })
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("sign the browsers in: %w", err)
	}
	if s.recv != nil {
		if err := s.probeBackchannel(ctx); err != nil {
			return err
		}
	}
	return nil
}

// retryBusy calls f until it succeeds, fails otherwise than busy (HTTP 429
// or 503: a node hashing passwords, no leader yet), or ctx ends.
func retryBusy(ctx context.Context, f func() error) error {
	for {
		err := f()
		if c := ErrorCode(err); err == nil || !strings.HasSuffix(c, "http_429") && !strings.HasSuffix(c, "http_503") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// probeBackchannel ends one client session before the clock starts and
// waits for its logout token, so that a client registered without the
// receiver's URI fails Prepare with a clear message instead of every
// operation timing out.
func (s *oidcBench) probeBackchannel(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.probe)
	defer cancel()
	c := s.clients[0]
	_, err := retryOp(ctx, func() (Outcome, error) { return s.doBackchannel(ctx, c) })
	if ErrorCode(err) == "backchannel_timeout" {
		return fmt.Errorf("no logout token reached %s within %s of a client session's end: register client %s with backchannel_logout_uri %s (sessiond dev --oidc-backchannel-uri %s), and make sure the cluster's leader can reach this host",
			s.o.BackchannelURI, s.probe, s.o.ClientID, s.o.BackchannelURI, s.o.BackchannelURI)
	}
	if err != nil {
		return fmt.Errorf("probe the back channel: %w", err)
	}
	return nil
}

// retryOp retries an operation refused as busy (see retryBusy).
func retryOp(ctx context.Context, f func() (Outcome, error)) (out Outcome, err error) {
	err = retryBusy(ctx, func() error {
		out, err = f()
		return err
	})
	return out, err
}

// Op returns client i's operation.
func (s *oidcBench) Op(i int) Op {
	c := s.clients[i]
	if s.name == "backchannel" {
		return func(ctx context.Context) (Outcome, error) { return s.doBackchannel(ctx, c) }
	}
	return func(ctx context.Context) (Outcome, error) { return s.doCodeFlow(ctx, c) }
}

// Close stops the receiver and drops idle connections.
func (s *oidcBench) Close() error {
	if s.recv != nil {
		if n := s.recv.close(); n > 0 {
			fmt.Fprintf(s.setup.log, "note: %d logout tokens arrived that no operation waited for (operations cut short by the end of the run, or timed out)\n", n)
		}
	}
	if s.pool != nil {
		s.pool.close()
	}
	if s.setup != nil {
		s.setup.pool.close()
	}
	return nil
}

// --- the browser: sign-in and authorization ---

// Fields of the provider's login form (api/oidcop/templates/login.html).
var (
	csrfFieldRE    = regexp.MustCompile(`name="csrf" value="([^"]*)"`)
	requestFieldRE = regexp.MustCompile(`name="request" value="([^"]*)"`)
	pageErrorRE    = regexp.MustCompile(`class="error">([^<]*)<`)
)

// flowParams are one authorization request's secrets.
type flowParams struct {
	verifier, state, nonce string
}

func newFlowParams() flowParams {
	return flowParams{verifier: randomToken(32), state: randomToken(12), nonce: randomToken(12)}
}

// authorizeURL is the authorization request of client c with PKCE S256.
func (s *oidcBench) authorizeURL(target string, f flowParams) string {
	sum := sha256.Sum256([]byte(f.verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {s.o.ClientID}, "redirect_uri": {s.o.RedirectURI},
		"scope": {s.o.Scope}, "state": {f.state}, "nonce": {f.nonce},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	return target + authorizePath + "?" + q.Encode()
}

// signIn signs client c's browser in as its user through the login page
// (as a person would: the authorization request shows the page, its form
// posts the password) and keeps the SSO cookie.
func (s *oidcBench) signIn(ctx context.Context, c *oidcClient) error {
	f := newFlowParams()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.authorizeURL(c.browser, f), nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	page, err := readBody(resp)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return Failf("signin_http_"+strconv.Itoa(resp.StatusCode), "GET %s: %s: %s", authorizePath, resp.Status, pageMessage(page, resp))
	}
	csrf, request := field(csrfFieldRE, page), field(requestFieldRE, page)
	var csrfCookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if strings.HasSuffix(ck.Name, "sessiond_csrf") {
			csrfCookie = ck
		}
	}
	if csrf == "" || request == "" || csrfCookie == nil {
		return Failf("signin_no_login_page", "GET %s answered no login form (is the provider on, and the client and redirect URI registered?): %s",
			authorizePath, pageMessage(page, resp))
	}
	form := url.Values{"csrf": {csrf}, "request": {request}, "email": {s.emails[c.i]}, "password": {s.password}}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, c.browser+loginPath, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	c.csrfCookie = &http.Cookie{Name: csrfCookie.Name, Value: csrfCookie.Value}
	req.AddCookie(c.csrfCookie)
	resp, err = c.hc.Do(req)
	if err != nil {
		return err
	}
	page, err = readBody(resp)
	if err != nil {
		return err
	}
	// A client that needs consent shows the consent page now: the browser
	// is signed in all the same (its code is not needed).
	consenting := resp.StatusCode == http.StatusOK && strings.Contains(page, `name="decision"`)
	if resp.StatusCode != http.StatusSeeOther && !consenting {
		return Failf("signin_http_"+strconv.Itoa(resp.StatusCode), "POST %s: %s: %s", loginPath, resp.Status, pageMessage(page, resp))
	}
	c.ssoCookie = nil
	for _, ck := range resp.Cookies() {
		if strings.HasSuffix(ck.Name, "sessiond_sso") && ck.Value != "" {
			c.ssoCookie = &http.Cookie{Name: ck.Name, Value: ck.Value}
		}
	}
	if c.ssoCookie == nil {
		return Failf("signin_no_cookie", "POST %s set no SSO cookie", loginPath)
	}
	c.relogin, c.sid = false, ""
	return nil
}

// pageMessage is a refusal's reason: the error a page shows, or the
// response's first bytes.
func pageMessage(page string, resp *http.Response) string {
	if m := field(pageErrorRE, page); m != "" {
		return m
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		return "redirected to " + loc
	}
	return truncate(strings.TrimSpace(page), 200)
}

func field(re *regexp.Regexp, page string) string {
	m := re.FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// readBody reads and closes a response body of at most 1 MB.
func readBody(resp *http.Response) (string, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return string(b), err
}

// authorize asks for a code with the browser's SSO cookie and reads it
// from the redirect. A client that is not first-party gets the consent
// page, which the browser allows (one more round trip, as a person's).
func (s *oidcBench) authorize(ctx context.Context, c *oidcClient, f flowParams) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.authorizeURL(c.browser, f), nil)
	if err != nil {
		return "", err
	}
	req.AddCookie(c.ssoCookie)
	if c.csrfCookie != nil {
		req.AddCookie(c.csrfCookie)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", err
	}
	page, err := readBody(resp)
	if err != nil {
		return "", err
	}
	if resp.StatusCode == http.StatusOK && strings.Contains(page, `name="decision"`) {
		if resp, page, err = s.consent(ctx, c, resp, page); err != nil {
			return "", err
		}
	}
	if resp.StatusCode == http.StatusOK {
		// The login page: the SSO session is gone.
		c.relogin = true
		return "", Failf("authorize_login_page", "GET %s answered the login page instead of a code (the SSO session ended): %s",
			authorizePath, pageMessage(page, resp))
	}
	loc, err := resp.Location()
	if err != nil {
		return "", Failf("authorize_http_"+strconv.Itoa(resp.StatusCode), "GET %s: %s: %s", authorizePath, resp.Status, pageMessage(page, resp))
	}
	q := loc.Query()
	if e := q.Get("error"); e != "" {
		return "", Failf("authorize_"+e, "GET %s: %s", authorizePath, q.Get("error_description"))
	}
	if q.Get("state") != f.state || q.Get("code") == "" {
		return "", Failf("authorize_bad_redirect", "GET %s redirected to %s: want the code and this request's state", authorizePath, loc.Redacted())
	}
	return q.Get("code"), nil
}

// consent allows the access a consent page asks for, with the page's
// CSRF token and cookie.
func (s *oidcBench) consent(ctx context.Context, c *oidcClient, page *http.Response, body string) (*http.Response, string, error) {
	for _, ck := range page.Cookies() {
		if strings.HasSuffix(ck.Name, "sessiond_csrf") {
			c.csrfCookie = &http.Cookie{Name: ck.Name, Value: ck.Value}
		}
	}
	csrf, request := field(csrfFieldRE, body), field(requestFieldRE, body)
	if csrf == "" || request == "" || c.csrfCookie == nil {
		return nil, "", Failf("consent_no_form", "GET %s answered a consent page without its form", authorizePath)
	}
	form := url.Values{"csrf": {csrf}, "request": {request}, "decision": {"allow"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.browser+consentPath, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(c.ssoCookie)
	req.AddCookie(c.csrfCookie)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, "", err
	}
	out, err := readBody(resp)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusSeeOther {
		return nil, "", Failf("consent_http_"+strconv.Itoa(resp.StatusCode), "POST %s: %s: %s", consentPath, resp.Status, pageMessage(out, resp))
	}
	return resp, out, nil
}

// --- the relying party: token and userinfo ---

// tokenResponse is the token endpoint's answer.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	IDToken     string `json:"id_token"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// redeem exchanges a code at the token endpoint (client_secret_basic or
// none, with the PKCE verifier) and checks the ID token's nonce.
func (s *oidcBench) redeem(ctx context.Context, c *oidcClient, f flowParams, code string) (*tokenResponse, idClaims, error) {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {s.o.RedirectURI}, "code_verifier": {f.verifier}}
	if s.o.ClientSecret == "" {
		form.Set("client_id", s.o.ClientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.rp+tokenPath, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, idClaims{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if s.o.ClientSecret != "" {
		// RFC 6749 §2.3.1: both form-encoded before Basic.
		req.SetBasicAuth(url.QueryEscape(s.o.ClientID), url.QueryEscape(s.o.ClientSecret))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, idClaims{}, err
	}
	body, err := readBody(resp)
	if err != nil {
		return nil, idClaims{}, err
	}
	var tr tokenResponse
	_ = json.Unmarshal([]byte(body), &tr)
	if resp.StatusCode != http.StatusOK {
		code := "token_http_" + strconv.Itoa(resp.StatusCode)
		if tr.Error != "" {
			code = "token_" + tr.Error
		}
		return nil, idClaims{}, Failf(code, "POST %s: %s: %s", tokenPath, resp.Status, tr.Description)
	}
	if tr.AccessToken == "" || tr.IDToken == "" {
		return nil, idClaims{}, Failf("token_incomplete", "POST %s answered no access or ID token", tokenPath)
	}
	idc, err := unverifiedClaims(tr.IDToken)
	if err != nil {
		return nil, idClaims{}, Failf("token_bad_id_token", "POST %s: ID token: %v", tokenPath, err)
	}
	if idc.Nonce != f.nonce || idc.SID == "" {
		return nil, idClaims{}, Failf("token_bad_id_token", "POST %s: the ID token's nonce differs from the request's, or it has no sid", tokenPath)
	}
	return &tr, idc, nil
}

// idClaims are the ID token claims the scenarios read.
type idClaims struct {
	Issuer string `json:"iss"`
	Nonce  string `json:"nonce"`
	SID    string `json:"sid"`
}

// unverifiedClaims decodes a JWT's claims without checking its signature
// (the token came straight from the token endpoint over the client's own
// connection, as OIDC Core §3.1.3.7 allows).
func unverifiedClaims(jwt string) (idClaims, error) {
	var c idClaims
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return c, errors.New("not a compact JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(raw, &c)
}

// userinfo reads the user's claims with the access token.
func (s *oidcBench) userinfo(ctx context.Context, c *oidcClient, access string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.rp+userinfoPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	body, err := readBody(resp)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return Failf("userinfo_http_"+strconv.Itoa(resp.StatusCode), "GET %s: %s: %s", userinfoPath, resp.Status, truncate(body, 200))
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal([]byte(body), &claims) != nil || claims.Sub == "" {
		return Failf("userinfo_no_sub", "GET %s answered no sub", userinfoPath)
	}
	return nil
}

// flow runs authorize and token (and userinfo when asked), recording each
// step's latency as a kind of its own. A browser whose SSO session was
// lost signs in again first.
func (s *oidcBench) flow(ctx context.Context, c *oidcClient, withUserinfo bool) (*tokenResponse, idClaims, []Sample, error) {
	if c.relogin {
		if err := s.signIn(ctx, c); err != nil {
			return nil, idClaims{}, nil, err
		}
	}
	f := newFlowParams()
	t0 := time.Now()
	code, err := s.authorize(ctx, c, f)
	if err != nil {
		return nil, idClaims{}, nil, err
	}
	t1 := time.Now()
	tr, idc, err := s.redeem(ctx, c, f, code)
	if err != nil {
		return nil, idClaims{}, nil, err
	}
	t2 := time.Now()
	samples := []Sample{{Kind: "authorize", Latency: t1.Sub(t0)}, {Kind: "token", Latency: t2.Sub(t1)}}
	if withUserinfo {
		if err := s.userinfo(ctx, c, tr.AccessToken); err != nil {
			return nil, idClaims{}, nil, err
		}
		samples = append(samples, Sample{Kind: "userinfo", Latency: time.Since(t2)})
	}
	return tr, idc, samples, nil
}

// doCodeFlow is one full code flow: authorize, token, userinfo.
func (s *oidcBench) doCodeFlow(ctx context.Context, c *oidcClient) (Outcome, error) {
	_, _, samples, err := s.flow(ctx, c, true)
	if err != nil {
		return Outcome{}, err
	}
	return Outcome{Also: samples}, nil
}

// doBackchannel opens a client session through a code flow, ends it with
// RevokeSession on the relying party's node, and waits for its logout
// token at the receiver. The latency is from the revoke's acknowledgement
// to the token's arrival (0 when the token was faster than the
// acknowledgement); the code flow, the revoke call, and the time from
// sending the revoke to the token's arrival are recorded as kinds
// "code-flow", "revoke" and "revoke-to-token".
func (s *oidcBench) doBackchannel(ctx context.Context, c *oidcClient) (Outcome, error) {
	t0 := time.Now()
	tr, idc, _, err := s.flow(ctx, c, false)
	if err != nil {
		return Outcome{}, err
	}
	flowTook := time.Since(t0)
	if c.sid == "" {
		c.sid = idc.SID
		s.recv.issuer(idc.Issuer)
	}
	if idc.SID != c.sid {
		return Outcome{}, Failf("sid_changed", "the ID token's sid %s is not the browser session's %s", idc.SID, c.sid)
	}
	chk, err := c.sess.CheckToken(ctx, connect.NewRequest(&sessionv1.CheckTokenRequest{Token: tr.AccessToken}))
	if err != nil {
		return Outcome{}, err
	}
	id := chk.Msg.GetClaims().GetSessionId()
	if !chk.Msg.GetActive() || id == "" {
		return Outcome{}, Failf("inactive", "CheckToken of a fresh client session's access token: %s", chk.Msg.GetReason())
	}
	arrived := s.recv.expect(c.sid)
	t1 := time.Now()
	if _, err := c.sess.RevokeSession(ctx, connect.NewRequest(&sessionv1.RevokeSessionRequest{SessionId: id})); err != nil {
		s.recv.forget(c.sid)
		return Outcome{}, err
	}
	ack := time.Now()
	select {
	case a := <-arrived:
		if a.err != nil {
			return Outcome{}, a.err
		}
		return Outcome{Timed: true, Latency: max(a.at.Sub(ack), 0), Also: []Sample{
			{Kind: "code-flow", Latency: flowTook}, {Kind: "revoke", Latency: ack.Sub(t1)}, {Kind: "revoke-to-token", Latency: a.at.Sub(t1)}}}, nil
	case <-ctx.Done():
		s.recv.forget(c.sid)
		// A late token must not be taken for the next session's: the next
		// operation signs in again (a new SSO session, a new sid).
		c.relogin = true
		return Outcome{}, Failf("backchannel_timeout", "no logout token for sid %s at %s before the operation's deadline", c.sid, s.o.BackchannelURI)
	}
}
