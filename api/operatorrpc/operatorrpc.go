// Package operatorrpc serves sessiond.operator.v1.OperatorService: named,
// scoped operator tokens (create, list, revoke) and WhoAmI. Callers are
// authenticated in front of it (api/callerauth); token management needs
// the tokens scope, and a caller grants only scopes it holds itself.
package operatorrpc

import (
	"context"
	"errors"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sessiond/sessiond/api/rpcerr"
	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/auditlog"
	"github.com/sessiond/sessiond/authsvc/callers"
	operatorv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/operator/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/operator/v1/operatorv1connect"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// Scopes is the scope each procedure needs ("" : any authenticated caller).
var Scopes = map[string]string{
	operatorv1connect.OperatorServiceCreateTokenProcedure: callers.ScopeTokens,
	operatorv1connect.OperatorServiceListTokensProcedure:  callers.ScopeTokens,
	operatorv1connect.OperatorServiceRevokeTokenProcedure: callers.ScopeTokens,
	operatorv1connect.OperatorServiceWhoAmIProcedure:      "",
	// The console's keyring and audit views.
	operatorv1connect.OperatorServiceListSigningKeysProcedure:  callers.ScopeAdmin,
	operatorv1connect.OperatorServiceRotateSigningKeyProcedure: callers.ScopeAdmin,
	operatorv1connect.OperatorServiceQueryAuditProcedure:       callers.ScopeAdmin,
	operatorv1connect.OperatorServiceMetricsProcedure:          callers.ScopeMetrics,
}

// Reads are the procedures that change nothing: not worth an audit line
// each (the console polls some of them).
var Reads = map[string]bool{
	operatorv1connect.OperatorServiceListTokensProcedure:      true,
	operatorv1connect.OperatorServiceWhoAmIProcedure:          true,
	operatorv1connect.OperatorServiceListSigningKeysProcedure: true,
	operatorv1connect.OperatorServiceQueryAuditProcedure:      true,
	operatorv1connect.OperatorServiceMetricsProcedure:         true,
}

// Keys is what the handler needs of the auth service's keyring.
type Keys interface {
	SigningKeys() ([]authsvc.SigningKey, error)
	RotateSigningKey(ctx context.Context, by string) (string, uint64, error)
}

// Nodes answers from the nodes' own recent activity: audit queries (this
// node's events, or every reachable node's with cluster) and the charts'
// series by region, each with the ids of the nodes that did not answer.
type Nodes interface {
	QueryAudit(ctx context.Context, q auditlog.Query, cluster bool) ([]auditlog.Event, []string, error)
	Charts(ctx context.Context) (step time.Duration, series []Series, unreachable []string)
}

// Series is one chart line (see MetricsSeries in operator.proto).
type Series struct {
	Name, Title, Unit, Region string
	Points                    []float64
}

// Service is everything the handler serves.
type Service interface {
	Tokens
	Keys
}

// Tokens is what the handler needs of the auth service.
type Tokens interface {
	CreateOperatorToken(ctx context.Context, by callers.Principal, name string, scopes []string, ttl time.Duration) (string, *storev1.OperatorToken, error)
	ListOperatorTokens(ctx context.Context) ([]*storev1.OperatorToken, error)
	RevokeOperatorToken(ctx context.Context, by callers.Principal, idOrName string) (string, uint64, error)
}

type server struct {
	svc   Service
	audit Nodes
}

// NewHandler returns the path and handler of OperatorService; nodes may be
// nil (QueryAudit and Metrics are then UNIMPLEMENTED).
func NewHandler(svc Service, nodes Nodes, opts ...connect.HandlerOption) (string, http.Handler) {
	return operatorv1connect.NewOperatorServiceHandler(&server{svc: svc, audit: nodes}, opts...)
}

// caller returns the request's principal when it holds the procedure's
// scope (a second guard behind the middleware).
func caller(ctx context.Context, procedure string) (callers.Principal, error) {
	if err := callers.Require(ctx, Scopes[procedure]); err != nil {
		return callers.Principal{}, rpcerr.FromCaller(err)
	}
	p, _ := callers.FromContext(ctx)
	return p, nil
}

func info(o *storev1.OperatorToken) *operatorv1.TokenInfo {
	return &operatorv1.TokenInfo{
		Id: o.GetId(), Name: o.GetName(), Scopes: o.GetScopes(), CreatedBy: o.GetCreatedBy(),
		Created: timestamppb.New(time.Unix(0, o.GetCreatedUnixNano())), Expires: timestamppb.New(time.Unix(0, o.GetExpiresUnixNano())),
	}
}

func (s *server) CreateToken(ctx context.Context, req *connect.Request[operatorv1.CreateTokenRequest]) (*connect.Response[operatorv1.CreateTokenResponse], error) {
	p, err := caller(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	var ttl time.Duration
	if d := req.Msg.GetTtl(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() <= 0 {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("ttl: want a positive duration"))
		}
		ttl = d.AsDuration()
	}
	tok, rec, err := s.svc.CreateOperatorToken(ctx, p, req.Msg.GetName(), req.Msg.GetScopes(), ttl)
	if err != nil {
		return nil, rpcerr.FromService(err)
	}
	return connect.NewResponse(&operatorv1.CreateTokenResponse{Token: tok, Info: info(rec)}), nil
}

func (s *server) ListTokens(ctx context.Context, req *connect.Request[operatorv1.ListTokensRequest]) (*connect.Response[operatorv1.ListTokensResponse], error) {
	if _, err := caller(ctx, req.Spec().Procedure); err != nil {
		return nil, err
	}
	list, err := s.svc.ListOperatorTokens(ctx)
	if err != nil {
		return nil, rpcerr.FromService(err)
	}
	out := &operatorv1.ListTokensResponse{}
	for _, o := range list {
		out.Tokens = append(out.Tokens, info(o))
	}
	return connect.NewResponse(out), nil
}

func (s *server) RevokeToken(ctx context.Context, req *connect.Request[operatorv1.RevokeTokenRequest]) (*connect.Response[operatorv1.RevokeTokenResponse], error) {
	p, err := caller(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	if n := len(req.Msg.GetIdOrName()); n == 0 || n > 64 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("id_or_name: required, at most 64 characters"))
	}
	id, idx, err := s.svc.RevokeOperatorToken(ctx, p, req.Msg.GetIdOrName())
	if err != nil {
		return nil, rpcerr.FromService(err)
	}
	return connect.NewResponse(&operatorv1.RevokeTokenResponse{Id: id, Index: idx}), nil
}

func (s *server) WhoAmI(ctx context.Context, req *connect.Request[operatorv1.WhoAmIRequest]) (*connect.Response[operatorv1.WhoAmIResponse], error) {
	p, err := caller(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&operatorv1.WhoAmIResponse{Kind: string(p.Kind), Name: p.Name, Method: string(p.Method), Scopes: p.Scopes, TokenId: p.TokenID}), nil
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func (s *server) ListSigningKeys(ctx context.Context, req *connect.Request[operatorv1.ListSigningKeysRequest]) (*connect.Response[operatorv1.ListSigningKeysResponse], error) {
	if _, err := caller(ctx, req.Spec().Procedure); err != nil {
		return nil, err
	}
	list, err := s.svc.SigningKeys()
	if err != nil {
		return nil, rpcerr.FromService(err)
	}
	out := &operatorv1.ListSigningKeysResponse{}
	for _, k := range list {
		out.Keys = append(out.Keys, &operatorv1.SigningKey{Kid: k.Kid, State: string(k.State), Created: ts(k.Created),
			Activates: ts(k.Activates), Retires: ts(k.Retires), Expires: ts(k.Expires)})
	}
	return connect.NewResponse(out), nil
}

func (s *server) RotateSigningKey(ctx context.Context, req *connect.Request[operatorv1.RotateSigningKeyRequest]) (*connect.Response[operatorv1.RotateSigningKeyResponse], error) {
	p, err := caller(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	kid, idx, err := s.svc.RotateSigningKey(ctx, p.ID())
	if err != nil {
		return nil, rpcerr.FromService(err)
	}
	return connect.NewResponse(&operatorv1.RotateSigningKeyResponse{Kid: kid, Index: idx}), nil
}

// Bounds of QueryAudit.
const (
	defaultAuditLimit = 200
	maxAuditLimit     = 2000
	maxAuditFilter    = 254
)

func (s *server) QueryAudit(ctx context.Context, req *connect.Request[operatorv1.QueryAuditRequest]) (*connect.Response[operatorv1.QueryAuditResponse], error) {
	if _, err := caller(ctx, req.Spec().Procedure); err != nil {
		return nil, err
	}
	if s.audit == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("this node keeps no audit events"))
	}
	m := req.Msg
	switch {
	case len(m.GetUser()) > maxAuditFilter || len(m.GetType()) > maxAuditFilter:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("user, type: at most 254 bytes each"))
	case m.GetLimit() > maxAuditLimit:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("limit: at most 2000"))
	}
	q := auditlog.Query{User: m.GetUser(), Type: m.GetType(), Limit: int(m.GetLimit())}
	if q.Limit == 0 {
		q.Limit = defaultAuditLimit
	}
	if m.Since != nil {
		q.Since = m.GetSince().AsTime()
	}
	if m.Until != nil {
		q.Until = m.GetUntil().AsTime()
	}
	events, missing, err := s.audit.QueryAudit(ctx, q, m.GetCluster())
	if err != nil {
		return nil, rpcerr.FromService(err)
	}
	out := &operatorv1.QueryAuditResponse{Unreachable: missing}
	for _, e := range events {
		out.Events = append(out.Events, &operatorv1.AuditEvent{Time: timestamppb.New(e.Time), Node: e.Node, Region: e.Region,
			Type: e.Type, Principal: e.Principal, User: e.User, Attrs: e.Attrs})
	}
	return connect.NewResponse(out), nil
}

func (s *server) Metrics(ctx context.Context, req *connect.Request[operatorv1.MetricsRequest]) (*connect.Response[operatorv1.MetricsResponse], error) {
	if _, err := caller(ctx, req.Spec().Procedure); err != nil {
		return nil, err
	}
	if s.audit == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("this node keeps no samples"))
	}
	step, series, missing := s.audit.Charts(ctx)
	out := &operatorv1.MetricsResponse{StepSeconds: uint32(step / time.Second), Unreachable: missing}
	for _, l := range series {
		out.Series = append(out.Series, &operatorv1.MetricsSeries{Name: l.Name, Title: l.Title, Unit: l.Unit, Region: l.Region, Points: l.Points})
	}
	return connect.NewResponse(out), nil
}
