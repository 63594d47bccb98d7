// Package authrpc serves sessiond.auth.v1.AuthService over Connect, gRPC and
// gRPC-Web. It is thin: it decodes, calls authsvc, encodes and maps errors.
package authrpc

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sessiond/sessiond/api/rpcerr"
	"github.com/sessiond/sessiond/authsvc"
	authv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1/authv1connect"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// Options configure the handler.
type Options struct {
	// CookieAlways sends refresh tokens as cookies to every client.
	CookieAlways bool
	// Cookie names the refresh cookie and says which pages may present it.
	Cookie Cookie
	// HandlerOptions are passed to the generated handler (interceptors).
	HandlerOptions []connect.HandlerOption
}

type server struct {
	svc  *authsvc.Service
	opts Options
}

// NewHandler returns the path and handler of AuthService. Refresh and
// Logout presenting the refresh cookie from another site's page are
// refused (Cookie.CheckSite).
func NewHandler(svc *authsvc.Service, opts Options) (string, http.Handler) {
	path, h := authv1connect.NewAuthServiceHandler(&server{svc: svc, opts: opts}, opts.HandlerOptions...)
	return path, opts.Cookie.checkSite(h)
}

// ConnectError maps an authsvc error to a Connect error whose message says
// what is wrong and never leaks internals.
func ConnectError(err error) error {
	ce := rpcerr.FromService(err)
	var e *authsvc.Error
	if errors.As(err, &e) && e.Conflict != nil {
		if d, err := connect.NewErrorDetail(ConflictDetail(e.Conflict)); err == nil {
			ce.AddDetail(d)
		}
	}
	return ce
}

// ConflictDetail describes the session that holds a platform.
func ConflictDetail(s *storev1.Session) *authv1.LoginConflict {
	return &authv1.LoginConflict{
		SessionId: s.GetId(), DeviceId: s.GetDeviceId(), Platform: authv1.Platform(s.GetPlatform()),
		Created: timestamppb.New(time.Unix(0, s.GetCreatedUnixNano())), Region: s.GetRegion(),
	}
}

// ClientOf extracts the caller's address and User-Agent.
func ClientOf(peerAddr string, h http.Header) authsvc.Client {
	host, _, err := net.SplitHostPort(peerAddr)
	if err != nil {
		host = peerAddr
	}
	return authsvc.Client{IP: host, UserAgent: h.Get("User-Agent")}
}

// Bearer returns the bearer token of an Authorization header.
func Bearer(h http.Header) string {
	v := h.Get("Authorization")
	if len(v) > 7 && strings.EqualFold(v[:7], "Bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return ""
}

func (s *server) pair(t *authsvc.Tokens, cookie bool, h http.Header) *authv1.TokenPair {
	p := &authv1.TokenPair{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, TokenType: "Bearer",
		ExpiresIn: int64(t.ExpiresIn / time.Second), SessionId: t.SessionID, Index: t.Index}
	if cookie {
		s.opts.Cookie.Set(h, t.RefreshToken, s.svc.RefreshTTL())
		p.RefreshToken = ""
	}
	return p
}

func (s *server) Login(ctx context.Context, req *connect.Request[authv1.LoginRequest]) (*connect.Response[authv1.LoginResponse], error) {
	m := req.Msg
	t, err := s.svc.Login(ctx, authsvc.LoginInput{
		Email: m.GetEmail(), Password: m.GetPassword(), Platform: storev1.Platform(m.GetPlatform()),
		DeviceID: m.GetDeviceId(), Force: m.GetForce(), Client: ClientOf(req.Peer().Addr, req.Header()),
	})
	if err != nil {
		return nil, ConnectError(err)
	}
	res := connect.NewResponse(&authv1.LoginResponse{})
	res.Msg.Tokens = s.pair(t, s.opts.CookieAlways || m.GetRefreshCookie(), res.Header())
	return res, nil
}

func (s *server) Signup(ctx context.Context, req *connect.Request[authv1.SignupRequest]) (*connect.Response[authv1.SignupResponse], error) {
	m := req.Msg
	t, err := s.svc.Signup(ctx, authsvc.SignupInput{
		Email: m.GetEmail(), Password: m.GetPassword(), DisplayName: m.GetDisplayName(), OrgName: m.GetOrgName(),
		Country: m.GetCountry(), Platform: storev1.Platform(m.GetPlatform()), DeviceID: m.GetDeviceId(),
		Client: ClientOf(req.Peer().Addr, req.Header()),
	})
	if err != nil {
		return nil, ConnectError(err)
	}
	res := connect.NewResponse(&authv1.SignupResponse{})
	res.Msg.Tokens = s.pair(t, s.opts.CookieAlways, res.Header())
	return res, nil
}

func (s *server) Refresh(ctx context.Context, req *connect.Request[authv1.RefreshRequest]) (*connect.Response[authv1.RefreshResponse], error) {
	rt, fromCookie := req.Msg.GetRefreshToken(), false
	if rt == "" {
		rt, fromCookie = s.opts.Cookie.Value(req.Header()), true
	}
	t, err := s.svc.Refresh(ctx, rt, ClientOf(req.Peer().Addr, req.Header()))
	if err != nil {
		return nil, ConnectError(err)
	}
	res := connect.NewResponse(&authv1.RefreshResponse{})
	res.Msg.Tokens = s.pair(t, s.opts.CookieAlways || fromCookie, res.Header())
	return res, nil
}

func (s *server) Logout(ctx context.Context, req *connect.Request[authv1.LogoutRequest]) (*connect.Response[authv1.LogoutResponse], error) {
	rt := req.Msg.GetRefreshToken()
	if rt == "" {
		rt = s.opts.Cookie.Value(req.Header())
	}
	if _, err := s.svc.Logout(ctx, Bearer(req.Header()), rt); err != nil {
		return nil, ConnectError(err)
	}
	res := connect.NewResponse(&authv1.LogoutResponse{})
	s.opts.Cookie.Set(res.Header(), "", 0)
	return res, nil
}

func (s *server) LogoutAll(ctx context.Context, req *connect.Request[authv1.LogoutAllRequest]) (*connect.Response[authv1.LogoutAllResponse], error) {
	n, _, err := s.svc.LogoutAll(ctx, Bearer(req.Header()))
	if err != nil {
		return nil, ConnectError(err)
	}
	return connect.NewResponse(&authv1.LogoutAllResponse{Ended: uint32(n)}), nil
}

func (s *server) ListSessions(ctx context.Context, req *connect.Request[authv1.ListSessionsRequest]) (*connect.Response[authv1.ListSessionsResponse], error) {
	list, err := s.svc.ListSessions(ctx, Bearer(req.Header()))
	if err != nil {
		return nil, ConnectError(err)
	}
	out := &authv1.ListSessionsResponse{}
	for _, v := range list {
		ss := v.Session
		out.Sessions = append(out.Sessions, &authv1.Session{
			SessionId: ss.GetId(), Platform: authv1.Platform(ss.GetPlatform()), DeviceId: ss.GetDeviceId(),
			Region: ss.GetRegion(), Created: timestamppb.New(time.Unix(0, ss.GetCreatedUnixNano())),
			LastRefreshed: timestamppb.New(time.Unix(0, ss.GetLastRefreshedUnixNano())), Current: v.Current,
			ClientIp: ss.GetClientIp(), UserAgent: ss.GetUserAgent(),
		})
	}
	return connect.NewResponse(out), nil
}

func (s *server) EndSession(ctx context.Context, req *connect.Request[authv1.EndSessionRequest]) (*connect.Response[authv1.EndSessionResponse], error) {
	if err := s.svc.EndOwnSession(ctx, Bearer(req.Header()), req.Msg.GetSessionId()); err != nil {
		return nil, ConnectError(err)
	}
	return connect.NewResponse(&authv1.EndSessionResponse{}), nil
}

func (s *server) Authorize(ctx context.Context, req *connect.Request[authv1.AuthorizeRequest]) (*connect.Response[authv1.AuthorizeResponse], error) {
	tok := req.Msg.GetToken()
	if tok == "" {
		tok = Bearer(req.Header())
	}
	d, err := s.svc.Authorize(ctx, tok, req.Msg.GetAction(), req.Msg.GetResource())
	if err != nil {
		return nil, ConnectError(err)
	}
	return connect.NewResponse(&authv1.AuthorizeResponse{Allowed: d.Allowed, Reason: d.Reason}), nil
}
