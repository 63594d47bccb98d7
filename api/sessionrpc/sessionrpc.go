// Package sessionrpc serves sessiond.session.v1.SessionService: the checks
// services make on every request, answered from the node's local state at
// the consistency the caller asks for, the admin revocations, and the
// revocation stream the SDK keeps its local set current with.
package sessionrpc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sessiond/sessiond/api/rpcerr"
	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/callers"
	"github.com/sessiond/sessiond/clients/go/checkreason"
	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1/sessionv1connect"
	"github.com/sessiond/sessiond/cluster"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// Barrier makes local state fresh enough for a read; *cluster.Node
// implements it.
type Barrier interface {
	ReadBarrier(ctx context.Context, opts cluster.ReadOptions) (uint64, error)
}

// Streams caps revocation watch streams; *callers.StreamCaps implements
// it. Acquire returns a *callers.Error naming the cap that is full.
type Streams interface {
	Acquire(client string) (release func(), err error)
}

// Options configure the handler.
type Options struct {
	// Streams, if set, caps WatchRevocations streams per client and in
	// total.
	Streams Streams
	// Heartbeat is how often an idle watch gets an empty message carrying
	// the applied index (default 1s), so receivers know how fresh they are.
	Heartbeat time.Duration
	// Done, when closed, ends every open watch stream with UNAVAILABLE (the
	// node is shutting down), so receivers reconnect to another node
	// instead of holding a stream that an http.Server.Shutdown would wait
	// on forever. Nil means never.
	Done <-chan struct{}
	// HandlerOptions are passed to the generated handler.
	HandlerOptions []connect.HandlerOption
}

type server struct {
	svc  *authsvc.Service
	rb   Barrier
	hub  *authsvc.Revocations
	opts Options
}

// NewHandler returns the path and handler of SessionService.
func NewHandler(svc *authsvc.Service, rb Barrier, hub *authsvc.Revocations, opts Options) (string, http.Handler) {
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = time.Second
	}
	return sessionv1connect.NewSessionServiceHandler(&server{svc: svc, rb: rb, hub: hub, opts: opts}, opts.HandlerOptions...)
}

// maxTokenLen bounds tokens before any work.
const maxTokenLen = 8 << 10

// barrier applies the read options and maps failures to Connect codes.
func (s *server) barrier(ctx context.Context, o *clusterv1.ReadOptions) (uint64, error) {
	opts, err := cluster.ReadOptionsFromProto(o)
	if err != nil {
		return 0, connect.NewError(connect.CodeInvalidArgument, err)
	}
	idx, err := s.rb.ReadBarrier(ctx, opts)
	if err != nil {
		return 0, BarrierError(err)
	}
	return idx, nil
}

// BarrierError maps a read-barrier failure: too stale is
// FAILED_PRECONDITION naming the lag, a bad option INVALID_ARGUMENT,
// deadlines and cancellations keep their codes, and anything else
// (no leader, the leader unreachable for a read index) is UNAVAILABLE: the
// caller may retry elsewhere.
func BarrierError(err error) error {
	var stale *cluster.StaleError
	switch {
	case errors.As(err, &stale):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, cluster.ErrInvalidArgument):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	}
	return connect.NewError(connect.CodeUnavailable, err)
}

func (s *server) CheckToken(ctx context.Context, req *connect.Request[sessionv1.CheckTokenRequest]) (*connect.Response[sessionv1.CheckTokenResponse], error) {
	tok := req.Msg.GetToken()
	if tok == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("token: required"))
	}
	if len(tok) > maxTokenLen {
		return connect.NewResponse(&sessionv1.CheckTokenResponse{Reason: checkreason.String(checkreason.Malformed)}), nil
	}
	if _, err := s.barrier(ctx, req.Msg.GetRead()); err != nil {
		return nil, err
	}
	chk := s.svc.CheckToken(tok)
	if chk.Reason == checkreason.SessionNotFound && req.Msg.GetRead().GetConsistency() != clusterv1.ReadConsistency_READ_CONSISTENCY_STALE {
		// A session this node has not applied yet may have been opened
		// moments ago elsewhere: one read-index settles it.
		if _, err := s.rb.ReadBarrier(ctx, cluster.ReadOptions{Consistency: cluster.ConsistencyLinearizable}); err == nil {
			chk = s.svc.CheckToken(tok)
		}
	}
	out := &sessionv1.CheckTokenResponse{Active: chk.Active, Reason: checkreason.String(chk.Reason), Index: chk.Index}
	if chk.EndReason != storev1.EndReason_END_REASON_UNSPECIFIED {
		out.EndReason = endReason(chk.EndReason)
	}
	if c := chk.Claims; c != nil {
		out.Claims = &sessionv1.Claims{
			Subject: c.Subject, SessionId: c.SessionID, TokenId: c.TokenID, Issuer: c.Issuer, Audience: c.Audience,
			IssuedAt: timestamppb.New(c.IssuedAt), ExpiresAt: timestamppb.New(c.Expiration),
			OrgId: c.OrgID, OrgType: c.OrgType, Country: c.Country, Roles: c.Roles, Platform: c.Platform,
		}
	}
	return connect.NewResponse(out), nil
}

func endReason(r storev1.EndReason) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "END_REASON_"))
}

func requireID(name, v string) error {
	if v == "" || len(v) > 256 {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: required, at most 256 bytes", name))
	}
	return nil
}

func (s *server) CheckSession(ctx context.Context, req *connect.Request[sessionv1.CheckSessionRequest]) (*connect.Response[sessionv1.CheckSessionResponse], error) {
	if err := requireID("session_id", req.Msg.GetSessionId()); err != nil {
		return nil, err
	}
	if _, err := s.barrier(ctx, req.Msg.GetRead()); err != nil {
		return nil, err
	}
	var active bool
	var reason string
	idx := s.svc.IndexOf(func() { active, reason = s.svc.CheckSession(req.Msg.GetSessionId()) })
	return connect.NewResponse(&sessionv1.CheckSessionResponse{Active: active, Reason: reason, Index: idx}), nil
}

func (s *server) IsRevoked(ctx context.Context, req *connect.Request[sessionv1.IsRevokedRequest]) (*connect.Response[sessionv1.IsRevokedResponse], error) {
	var q authsvc.RevocationQuery
	switch sub := req.Msg.GetSubject().(type) {
	case *sessionv1.IsRevokedRequest_Jti:
		q = authsvc.RevocationQuery{Kind: authsvc.RevokedToken, ID: sub.Jti}
	case *sessionv1.IsRevokedRequest_SessionId:
		q = authsvc.RevocationQuery{Kind: authsvc.RevokedSession, ID: sub.SessionId}
	case *sessionv1.IsRevokedRequest_UserId:
		q = authsvc.RevocationQuery{Kind: authsvc.RevokedUser, ID: sub.UserId}
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("set one of jti, session_id or user_id"))
	}
	if err := requireID("id", q.ID); err != nil {
		return nil, err
	}
	if _, err := s.barrier(ctx, req.Msg.GetRead()); err != nil {
		return nil, err
	}
	var revoked bool
	var since time.Time
	idx := s.svc.IndexOf(func() { revoked, since = s.svc.IsRevoked(q) })
	out := &sessionv1.IsRevokedResponse{Revoked: revoked, Index: idx}
	if !since.IsZero() {
		out.Since = timestamppb.New(since)
	}
	return connect.NewResponse(out), nil
}

// admin refuses callers without the admin scope (the middleware already
// did; this guards a handler mounted without it).
func admin(ctx context.Context) error {
	if err := callers.Require(ctx, callers.ScopeAdmin); err != nil {
		return rpcerr.FromCaller(err)
	}
	return nil
}

func sessionMsg(ss *storev1.Session) *sessionv1.Session {
	ts := func(n int64) *timestamppb.Timestamp {
		if n == 0 {
			return nil
		}
		return timestamppb.New(time.Unix(0, n))
	}
	out := &sessionv1.Session{
		Id: ss.GetId(), UserId: ss.GetUserId(), Platform: strings.ToLower(strings.TrimPrefix(ss.GetPlatform().String(), "PLATFORM_")),
		DeviceId: ss.GetDeviceId(), Region: ss.GetRegion(), NodeId: ss.GetNodeId(),
		Created: ts(ss.GetCreatedUnixNano()), LastRefreshed: ts(ss.GetLastRefreshedUnixNano()),
		IdleExpires: ts(ss.GetIdleExpiresUnixNano()), AbsoluteExpires: ts(ss.GetAbsoluteExpiresUnixNano()),
		Ended: ts(ss.GetEndedUnixNano()), ClientIp: ss.GetClientIp(), UserAgent: ss.GetUserAgent(),
	}
	if ss.GetEndReason() != storev1.EndReason_END_REASON_UNSPECIFIED {
		out.EndReason = endReason(ss.GetEndReason())
	}
	return out
}

func (s *server) GetSession(ctx context.Context, req *connect.Request[sessionv1.GetSessionRequest]) (*connect.Response[sessionv1.GetSessionResponse], error) {
	if err := admin(ctx); err != nil {
		return nil, err
	}
	if err := requireID("session_id", req.Msg.GetSessionId()); err != nil {
		return nil, err
	}
	if _, err := s.barrier(ctx, req.Msg.GetRead()); err != nil {
		return nil, err
	}
	ss, ok := s.svc.GetSession(req.Msg.GetSessionId())
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no such session (or it has expired)"))
	}
	return connect.NewResponse(&sessionv1.GetSessionResponse{Session: sessionMsg(ss)}), nil
}

func (s *server) ListSessions(ctx context.Context, req *connect.Request[sessionv1.ListSessionsRequest]) (*connect.Response[sessionv1.ListSessionsResponse], error) {
	if err := admin(ctx); err != nil {
		return nil, err
	}
	if err := requireID("user_id", req.Msg.GetUserId()); err != nil {
		return nil, err
	}
	if _, err := s.barrier(ctx, req.Msg.GetRead()); err != nil {
		return nil, err
	}
	list, err := s.svc.UserSessions(req.Msg.GetUserId())
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, errors.New("internal error"))
	}
	out := &sessionv1.ListSessionsResponse{}
	for _, ss := range list {
		out.Sessions = append(out.Sessions, sessionMsg(ss))
	}
	return connect.NewResponse(out), nil
}

func (s *server) RevokeSession(ctx context.Context, req *connect.Request[sessionv1.RevokeSessionRequest]) (*connect.Response[sessionv1.RevokeSessionResponse], error) {
	if err := admin(ctx); err != nil {
		return nil, err
	}
	if err := requireID("session_id", req.Msg.GetSessionId()); err != nil {
		return nil, err
	}
	idx, err := s.svc.EndSessionAs(ctx, "", req.Msg.GetSessionId(), storev1.EndReason_END_REASON_ADMIN_REVOKED)
	if err != nil {
		return nil, rpcerr.FromService(err)
	}
	return connect.NewResponse(&sessionv1.RevokeSessionResponse{Index: idx}), nil
}

func (s *server) RevokeUserSessions(ctx context.Context, req *connect.Request[sessionv1.RevokeUserSessionsRequest]) (*connect.Response[sessionv1.RevokeUserSessionsResponse], error) {
	if err := admin(ctx); err != nil {
		return nil, err
	}
	if err := requireID("user_id", req.Msg.GetUserId()); err != nil {
		return nil, err
	}
	n, idx, err := s.svc.EndUserSessions(ctx, req.Msg.GetUserId(), storev1.EndReason_END_REASON_ADMIN_REVOKED)
	if err != nil {
		return nil, rpcerr.FromService(err)
	}
	return connect.NewResponse(&sessionv1.RevokeUserSessionsResponse{Ended: uint32(n), Index: idx}), nil
}
