package authsvc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sessiond/sessiond/store"
)

// --- RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) ---

// EndSessionRequest is a validated logout request.
type EndSessionRequest struct {
	// Client is the client named by id_token_hint or client_id (nil when
	// neither was given).
	Client *OIDCClient
	// PostLogoutRedirectURI is registered for Client ("" when absent).
	PostLogoutRedirectURI string
	State                 string
	// HintSessionID is the sid of a valid id_token_hint ("" without one).
	HintSessionID string
}

// ParseEndSession validates a logout request: an id_token_hint must be an
// ID token this provider signed (it may have expired); a
// post_logout_redirect_uri must be registered, exactly, for the client the
// hint or client_id names. Errors are never redirected.
func (p *Provider) ParseEndSession(q url.Values) (*EndSessionRequest, error) {
	bad := func(msg string) error { return newErr(KindInvalid, "invalid_request", msg) }
	for name, vs := range q {
		if len(vs) > 1 {
			return nil, bad(truncate(name, 64) + ": given more than once")
		}
		if len(vs[0]) > maxTokenLen {
			return nil, bad(truncate(name, 64) + ": too long")
		}
	}
	r := &EndSessionRequest{State: q.Get("state")}
	if len(r.State) > maxStateLen {
		return nil, bad("state: longer than 512 bytes")
	}
	clientID := q.Get("client_id")
	if hint := q.Get("id_token_hint"); hint != "" {
		aud, sid, err := p.verifyOwnIDToken(hint)
		if err != nil {
			return nil, bad("id_token_hint: not an ID token of this provider")
		}
		if clientID != "" && clientID != aud {
			return nil, bad("client_id: differs from the id_token_hint's audience")
		}
		clientID, r.HintSessionID = aud, sid
	}
	if clientID != "" {
		c, ok := p.Client(clientID)
		if !ok {
			return nil, bad("client_id: no such client")
		}
		r.Client = c
	}
	if u := q.Get("post_logout_redirect_uri"); u != "" {
		if r.Client == nil {
			return nil, bad("post_logout_redirect_uri: needs id_token_hint or client_id")
		}
		if !slices.Contains(r.Client.PostLogoutRedirectURIs, u) {
			return nil, bad("post_logout_redirect_uri: not registered for this client (exact match required)")
		}
		r.PostLogoutRedirectURI = u
	}
	return r, nil
}

// Location is where the browser goes after the logout ("" for the
// provider's own page).
func (r *EndSessionRequest) Location() string {
	if r.PostLogoutRedirectURI == "" {
		return ""
	}
	if r.State == "" {
		return r.PostLogoutRedirectURI
	}
	return appendQuery(r.PostLogoutRedirectURI, url.Values{"state": {r.State}})
}

// verifyOwnIDToken checks the signature and issuer of an ID token this
// provider signed, whatever its expiry, and returns its aud and sid.
func (p *Provider) verifyOwnIDToken(raw string) (aud, sid string, err error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil || len(tok.Headers) != 1 {
		return "", "", fmt.Errorf("not a signed JWT")
	}
	k, ok := p.keys.public(tok.Headers[0].KeyID)
	if !ok {
		return "", "", fmt.Errorf("unknown key")
	}
	var c struct {
		jwt.Claims
		SID string `json:"sid"`
	}
	if err := tok.Claims(k.pub, &c); err != nil {
		return "", "", err
	}
	if c.Issuer != p.s.cfg.Issuer || len(c.Audience) != 1 {
		return "", "", fmt.Errorf("wrong issuer or audience")
	}
	return c.Audience[0], c.SID, nil
}

// --- OpenID Connect Back-Channel Logout 1.0 ---

const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// backchannel delivers logout tokens. The store reports every ended
// session on every node (SessionsEnded); only the leader enqueues, so the
// cluster delivers once. Deliveries in flight when leadership moves are
// lost (the new leader only sees sessions that end after it leads).
type backchannel struct {
	p      *Provider
	q      chan string
	client *http.Client
}

func newBackchannel(p *Provider) *backchannel {
	hc := p.cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if p.cfg.BackchannelMaxElapsed == 0 {
		p.cfg.BackchannelMaxElapsed = 5 * time.Minute
	}
	return &backchannel{p: p, q: make(chan string, 4096), client: hc}
}

// SessionsEnded tells the provider of the store's changes (after their
// batch committed). On the leader it queues a logout token for each ended
// client session whose client registered a back-channel logout URI;
// elsewhere it does nothing. The service's own sessions never take a
// place in the queue, so that a flood of ordinary logouts cannot crowd
// out a client's logout token while a slow endpoint holds the workers.
// It never blocks.
func (p *Provider) SessionsEnded(changes []store.Change) {
	if len(changes) == 0 || !p.s.d.Cluster.IsLeader() {
		return
	}
	for _, c := range changes {
		if c.Kind != store.ChangeSessionEnded || c.ClientID == "" {
			continue
		}
		if cl, ok := p.Client(c.ClientID); !ok || cl.BackchannelLogoutURI == "" {
			continue
		}
		select {
		case p.bc.q <- c.ID:
		default:
			p.s.d.Logger.Error("back-channel logout queue full; logout token not sent", "session", c.ID, "client", c.ClientID)
		}
	}
}

// RunBackchannel delivers queued logout tokens with workers workers until
// ctx is done.
func (p *Provider) RunBackchannel(ctx context.Context, workers int) {
	if workers <= 0 {
		workers = 4
	}
	done := make(chan struct{})
	for range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-ctx.Done():
					return
				case id := <-p.bc.q:
					p.deliverLogout(ctx, id)
				}
			}
		}()
	}
	for range workers {
		<-done
	}
}

func (p *Provider) deliverLogout(ctx context.Context, sessionID string) {
	sess, err := p.s.d.State.Session(sessionID, p.s.now())
	if err != nil || sess.GetClientId() == "" {
		return
	}
	c, ok := p.Client(sess.GetClientId())
	if !ok || c.BackchannelLogoutURI == "" {
		return
	}
	attempts := 0
	start := time.Now()
	_, err = backoff.Retry(ctx, func() (struct{}, error) {
		attempts++
		now := p.s.now()
		k, err := p.keys.signer(c.IDTokenAlg, now)
		if err != nil {
			return struct{}{}, err
		}
		lt, err := p.sign(k, "logout+jwt", map[string]any{
			"iss": p.s.cfg.Issuer, "aud": c.ID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(), "jti": randomID(),
			"sub": sess.GetUserId(), "sid": sess.GetParentSessionId(), "events": map[string]any{backchannelEvent: map[string]any{}},
		})
		if err != nil {
			return struct{}{}, backoff.Permanent(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(rctx, http.MethodPost, c.BackchannelLogoutURI, strings.NewReader(url.Values{"logout_token": {lt}}.Encode()))
		if err != nil {
			return struct{}{}, backoff.Permanent(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := p.bc.client.Do(req)
		if err != nil {
			return struct{}{}, err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNoContent:
			return struct{}{}, nil
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
			return struct{}{}, fmt.Errorf("status %d", resp.StatusCode)
		default:
			return struct{}{}, backoff.Permanent(fmt.Errorf("status %d", resp.StatusCode))
		}
	}, backoff.WithBackOff(backoff.NewExponentialBackOff()), backoff.WithMaxElapsedTime(p.cfg.BackchannelMaxElapsed))
	attrs := []slog.Attr{slog.String("client", c.ID), slog.String("session", sessionID), slog.String("sid", sess.GetParentSessionId()),
		slog.String("user", sess.GetUserId()), slog.Int("attempts", attempts), slog.Duration("took", time.Since(start))}
	if err != nil {
		p.s.audit(ctx, "backchannel_logout_failed", append(attrs, slog.String("err", err.Error()))...)
		return
	}
	p.s.audit(ctx, "backchannel_logout_delivered", attrs...)
}
