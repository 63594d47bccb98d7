// Package wsguard authenticates WebSocket upgrades with sessiond's tokens and
// closes each socket the moment its session ends.
//
// A socket is authenticated like a REST call, by the same Guard: the
// access token in the Authorization header (non-browser clients) or offered
// as a subprotocol, since browsers cannot set headers on an upgrade:
//
//	new WebSocket(url, ["sessiond.v1", "sessiond.token." + accessToken])
//
// or, when the page holds no access token, the refresh cookie (sent only to
// paths within its Path). A refused upgrade is answered like a refused REST
// call (401 naming the check reason, 503 when the revocation state is stale)
// and never becomes a socket.
//
// The socket then lives as long as its session, not its access token: the
// Guard's revocation stream (WatchRevocations) reports the session's end and
// the socket is closed at once with a close code saying why:
//
//	4001 session_ended        logout, expiry, or an end the watcher may not see (no watch:details scope)
//	4002 forced_out           a forced login on another device of the same platform
//	4003 refresh_reuse        a spent refresh token was presented again: the session is presumed stolen
//	4004 logged_out_everywhere the user logged out everywhere
//	4005 revoked              an operator or service revoked the session or the token, the account was
//	                          suspended or changed (password, roles, organisation, deleted) or refused
//	                          upstream, or the OpenID Connect code that opened the session was used twice
//	4006 replaced             the same device logged in again
//	1001 going_away           the server is shutting down (the Guard closed)
//
// The close reason is "<check reason>" or "<check reason>: <end reason>"
// (check reasons are sessiond.session.v1.CheckReason's wire strings), such as
// "session_ended: forced_out". Telling 4001 apart from 4002..4006 needs the
// watch:details scope on the Guard's credentials.
package wsguard

import (
	"context"
	"errors"
	"net/http"

	"github.com/coder/websocket"

	"github.com/sessiond/sessiond/clients/go/checkreason"
	"github.com/sessiond/sessiond/clients/go/guard"
)

// Subprotocol is the subprotocol the server selects; clients offer it with
// their token subprotocol (guard.TokenSubprotocolPrefix + token).
const Subprotocol = "sessiond.v1"

// Close codes, in the private-use range: one per way a session ends.
const (
	// CodeSessionEnded: the session ended (logout, expiry) or ended for a
	// reason the watcher was not told.
	CodeSessionEnded websocket.StatusCode = 4001
	// CodeForcedOut: a forced login on another device of the same platform.
	CodeForcedOut websocket.StatusCode = 4002
	// CodeRefreshReuse: refresh token reuse was detected; the session is
	// presumed stolen.
	CodeRefreshReuse websocket.StatusCode = 4003
	// CodeLoggedOutEverywhere: the user logged out of every session.
	CodeLoggedOutEverywhere websocket.StatusCode = 4004
	// CodeRevoked: an operator or service revoked the session or the token,
	// or suspended the user.
	CodeRevoked websocket.StatusCode = 4005
	// CodeReplaced: the same device logged in again.
	CodeReplaced websocket.StatusCode = 4006
)

// ErrGuardClosed is the cause of a serve context when the Guard closed.
var ErrGuardClosed = errors.New("wsguard: guard closed")

// CloseFor returns the close code and reason for a session's end.
func CloseFor(ae *guard.AuthError) (websocket.StatusCode, string) {
	reason := ae.WireReason()
	if ae.EndReason != "" {
		reason += ": " + ae.EndReason
	}
	switch ae.EndReason {
	case "forced_out":
		return CodeForcedOut, reason
	case "refresh_reuse":
		return CodeRefreshReuse, reason
	case "admin_revoked", "account_suspended", "account_changed", "upstream_revoked", "code_reuse":
		return CodeRevoked, reason
	case "replaced":
		return CodeReplaced, reason
	case "logout_all":
		return CodeLoggedOutEverywhere, reason
	}
	switch ae.Reason {
	case checkreason.LoggedOutAll:
		return CodeLoggedOutEverywhere, reason
	case checkreason.Revoked, checkreason.AccountSuspended, checkreason.AccountChanged, checkreason.UpstreamRevoked:
		return CodeRevoked, reason
	}
	return CodeSessionEnded, reason
}

// Conn is an accepted socket on a live session.
type Conn struct {
	*websocket.Conn
	// Session is the session the socket runs on.
	Session guard.Session
}

// Options configure Handler.
type Options struct {
	// Accept are coder/websocket's accept options (OriginPatterns for
	// cross-origin pages, compression, ...). Subprotocol is added to its
	// Subprotocols.
	Accept websocket.AcceptOptions
}

// Handler authenticates each upgrade with g (which must be started),
// accepts it and calls serve with a context that ends when the session ends
// (the socket is first closed with CloseFor's code; the context's cause is
// the *guard.AuthError), when the Guard closes (closed with 1001; cause
// ErrGuardClosed) or when the request ends. serve should read the socket
// with that context (a Read returns the close once the session ended). When serve returns, the socket is closed with
// 1000 unless it already was.
func Handler(g *guard.Guard, opts *Options, serve func(ctx context.Context, c *Conn)) http.Handler {
	var ao websocket.AcceptOptions
	if opts != nil {
		ao = opts.Accept
	}
	ao.Subprotocols = append(append([]string(nil), ao.Subprotocols...), Subprotocol)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := g.Authenticate(r)
		if err != nil {
			g.WriteError(w, err)
			return
		}
		accept := ao
		ws, err := websocket.Accept(w, r, &accept)
		if err != nil {
			return // Accept answered the request
		}
		ended, stop := g.WatchSession(s)
		defer stop()
		ctx, cancel := context.WithCancelCause(r.Context())
		defer cancel(nil)
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			select {
			case ae, ok := <-ended:
				// Close first: coder/websocket drops the connection without
				// a close frame when a Read's context is cancelled.
				if !ok {
					_ = ws.Close(websocket.StatusGoingAway, "server shutting down")
					cancel(ErrGuardClosed)
					return
				}
				code, reason := CloseFor(ae)
				_ = ws.Close(code, reason)
				cancel(ae)
			case <-ctx.Done():
			}
		}()
		serve(ctx, &Conn{Conn: ws, Session: s})
		cancel(nil)
		<-closed
		_ = ws.Close(websocket.StatusNormalClosure, "")
	})
}
