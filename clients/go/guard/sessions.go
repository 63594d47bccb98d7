package guard

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sessiond/sessiond/clients/go/checkreason"
	"github.com/sessiond/sessiond/clients/go/token"
)

// RefreshCookie is the name of the cookie that carries a browser's refresh
// token (HttpOnly, Secure, SameSite=Strict; sessiond scopes it to /auth)
// when sessiond's API is plaintext; over TLS it is HostRefreshCookie.
const RefreshCookie = "sessiond_refresh"

// HostRefreshCookie is the refresh cookie's name when sessiond's API is
// served over TLS (the __Host- prefix: Path=/, no Domain, set only by that
// host).
const HostRefreshCookie = "__Host-" + RefreshCookie

// Session is the session a long-lived connection (a WebSocket) runs on,
// from the access token or the refresh token that authenticated it.
type Session struct {
	// UserID is the user (sub).
	UserID string
	// SessionID is the session (sid).
	SessionID string
	// TokenID is the access token's id (jti); empty for a refresh token.
	TokenID string
	// IssuedAt is the token's iat: a user cut-off after it ends the
	// connection.
	IssuedAt time.Time
	// Access is the access token's claims; nil when a refresh token
	// authenticated.
	Access *token.AccessClaims
}

// SessionOf returns the session of verified access token claims.
func SessionOf(c *token.AccessClaims) Session {
	return Session{UserID: c.Subject, SessionID: c.SessionID, TokenID: c.TokenID, IssuedAt: c.IssuedAt, Access: c}
}

// claims returns the claims revSet.revoked reads.
func (s Session) claims() *token.AccessClaims {
	return &token.AccessClaims{Subject: s.UserID, SessionID: s.SessionID, TokenID: s.TokenID, IssuedAt: s.IssuedAt}
}

// CheckRefresh verifies a refresh token locally (signature against the
// published keys, issuer, expiry, purpose) and checks its session against
// the revocation set: the same answer Check gives for an access token. It
// cannot see whether the token was already spent by a rotation (only the
// cluster knows): a spent token of a live session passes. Prefer access
// tokens; the refresh cookie lets a browser page that holds no access token
// authenticate a WebSocket on the cookie's path.
func (g *Guard) CheckRefresh(ctx context.Context, raw string) (*token.RefreshClaims, error) {
	now := g.now()
	if raw == "" {
		return nil, &AuthError{Reason: checkreason.MissingToken, Err: fmt.Errorf("%w: empty", token.ErrMalformed)}
	}
	if len(raw) > token.MaxTokenSize {
		return nil, &AuthError{Reason: checkreason.Malformed, Err: fmt.Errorf("%w: %d bytes, above %d", token.ErrMalformed, len(raw), token.MaxTokenSize)}
	}
	verify := func() (*token.RefreshClaims, error) {
		lookup := func(kid string) (ed25519.PublicKey, bool) {
			pk, ok := g.keys.lookup(kid, now.UnixNano())
			return pk.pub, ok
		}
		return token.VerifyRefresh(raw, lookup, token.Expectation{Issuer: g.cfg.Issuer, Audience: g.cfg.Issuer, Now: now, Leeway: g.cfg.Leeway})
	}
	c, err := verify()
	if errors.Is(err, token.ErrUnknownKey) && g.refreshKeys(ctx, now, false) == nil {
		c, err = verify()
	}
	if err != nil {
		return nil, tokenError(err)
	}
	if !g.fresh(now) {
		return nil, g.staleError(now, nil)
	}
	s := Session{UserID: c.Subject, SessionID: c.SessionID, IssuedAt: c.IssuedAt}
	if ae := g.revs.revoked(s.claims()); ae != nil {
		return nil, ae
	}
	return c, nil
}

// Authenticate finds the session of an HTTP request: a bearer access token
// (Authorization header, or the token offered as a WebSocket subprotocol
// "sessiond.token.<token>", since browsers cannot set headers on an
// upgrade), else the refresh cookie. The error is an *AuthError
// (ErrUnauthenticated) or wraps ErrStale.
func (g *Guard) Authenticate(r *http.Request) (Session, error) {
	if raw := RequestToken(r); raw != "" {
		c, err := g.Check(r.Context(), raw)
		if err != nil {
			return Session{}, err
		}
		return SessionOf(c), nil
	}
	ck, err := r.Cookie(HostRefreshCookie)
	if err != nil || ck.Value == "" {
		ck, err = r.Cookie(RefreshCookie)
	}
	if err == nil && ck.Value != "" {
		c, err := g.CheckRefresh(r.Context(), ck.Value)
		if err != nil {
			return Session{}, err
		}
		return Session{UserID: c.Subject, SessionID: c.SessionID, IssuedAt: c.IssuedAt}, nil
	}
	return Session{}, &AuthError{Reason: checkreason.MissingToken, Err: fmt.Errorf("%w: no bearer token, token subprotocol or refresh cookie", token.ErrMalformed)}
}

// TokenSubprotocolPrefix prefixes the access token offered as a WebSocket
// subprotocol: new WebSocket(url, ["sessiond.v1", "sessiond.token." + token]).
const TokenSubprotocolPrefix = "sessiond.token."

// RequestToken returns the bearer access token of r: the Authorization
// header, else a subprotocol with TokenSubprotocolPrefix.
func RequestToken(r *http.Request) string {
	if t := BearerToken(r.Header.Get("Authorization")); t != "" {
		return t
	}
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(h, ",") {
			if t, ok := strings.CutPrefix(strings.TrimSpace(p), TokenSubprotocolPrefix); ok && t != "" {
				return t
			}
		}
	}
	return ""
}

// WatchSession returns a channel that receives, once, why s ended (an
// *AuthError: SessionEnded with its EndReason, LoggedOutAll, Revoked) as
// soon as the revocation stream brings the news; it is closed without a
// value when the Guard closes. stop releases the watch. A session already
// ended is reported at once.
func (g *Guard) WatchSession(s Session) (ended <-chan *AuthError, stop func()) {
	w := &sessionWatch{c: s.claims(), ch: make(chan *AuthError, 1)}
	if ae := g.revs.revoked(w.c); ae != nil {
		w.ch <- ae
		return w.ch, func() {}
	}
	g.watches.add(w)
	// An event applied between the check and add is caught here.
	if ae := g.revs.revoked(w.c); ae != nil && g.watches.remove(w) {
		w.ch <- ae
	}
	return w.ch, func() { g.watches.remove(w) }
}

// sessionWatch is one WatchSession.
type sessionWatch struct {
	c  *token.AccessClaims
	ch chan *AuthError
}

// sessionWatches are the open WatchSession calls.
type sessionWatches struct {
	mu     sync.Mutex
	m      map[*sessionWatch]struct{}
	closed bool
}

func (ws *sessionWatches) add(w *sessionWatch) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed {
		close(w.ch)
		return
	}
	if ws.m == nil {
		ws.m = map[*sessionWatch]struct{}{}
	}
	ws.m[w] = struct{}{}
}

// remove reports whether w was still watched.
func (ws *sessionWatches) remove(w *sessionWatch) bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	_, ok := ws.m[w]
	delete(ws.m, w)
	return ok
}

// notify reports every watched session the set now revokes.
func (ws *sessionWatches) notify(r *revSet) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for w := range ws.m {
		if ae := r.revoked(w.c); ae != nil {
			w.ch <- ae
			delete(ws.m, w)
		}
	}
}

// close ends every watch without a value.
func (ws *sessionWatches) close() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.closed = true
	for w := range ws.m {
		close(w.ch)
		delete(ws.m, w)
	}
}
