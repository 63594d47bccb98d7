package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sessiond/sessiond/clients/go/checkreason"

	"connectrpc.com/connect"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/status"
)

// AuthorizationServiceName is Envoy's external authorization service.
const AuthorizationServiceName = "envoy.service.auth.v3.Authorization"

// AuthorizationCheckProcedure is its one procedure, served over gRPC (and
// Connect and gRPC-Web) on the API port.
const AuthorizationCheckProcedure = "/" + AuthorizationServiceName + "/Check"

// NewAuthorizationHandler returns the path and handler of Envoy's
// ext_authz gRPC service (envoy.service.auth.v3.Authorization/Check),
// built with Connect on Envoy's generated message types: the gRPC
// protocol over HTTP/2 that Envoy's grpc_service speaks.
//
// An active token is OK with an OkHttpResponse setting the identity
// headers (lower-case, overwriting what the client sent) and removing
// those it does not set; an inactive or missing one is UNAUTHENTICATED
// with a DeniedHttpResponse of 401, WWW-Authenticate, x-sessiond-reason
// and a JSON body, as GET /gateway/check answers. The context extensions
// action and resource (Envoy's per-route check_settings), like the query
// parameters of /gateway/check, make an active token also need the
// policy's permission: PERMISSION_DENIED with a 403 when it is refused. A
// CheckRequest without attributes.request.http is INVALID_ARGUMENT; a node
// that cannot vouch for its state answers UNAVAILABLE (Envoy's
// status_on_error, failing closed unless failure_mode_allow).
func NewAuthorizationHandler(c Checker, rb Barrier, opts Options) (string, http.Handler) {
	return newDoor(c, rb, opts).authorizationHandler()
}

func (d *door) authorizationHandler() (string, http.Handler) {
	a := &extAuthz{d}
	opts := append([]connect.HandlerOption{connect.WithIdempotency(connect.IdempotencyNoSideEffects)}, d.opts.HandlerOptions...)
	// After the caller's options: a server-wide read limit is smaller
	// than Envoy's header blocks.
	opts = append(opts, connect.WithReadMaxBytes(MaxCheckRequestBytes))
	return AuthorizationCheckProcedure, connect.NewUnaryHandler(AuthorizationCheckProcedure, a.check, opts...)
}

// MaxCheckRequestBytes bounds an ext_authz CheckRequest: room for Envoy's
// largest header block (96 KiB) and a request body an ext_authz filter
// may be told to send (with_request_body, which this check never reads:
// leave it off). A larger one is RESOURCE_EXHAUSTED.
const MaxCheckRequestBytes = 1 << 20

type extAuthz struct{ *door }

func (a *extAuthz) check(ctx context.Context, req *connect.Request[authv3.CheckRequest]) (*connect.Response[authv3.CheckResponse], error) {
	hr := req.Msg.GetAttributes().GetRequest().GetHttp()
	if hr == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("attributes.request.http: required (the HTTP request to check)"))
	}
	ext := req.Msg.GetAttributes().GetContextExtensions()
	perm, err := parsePermission(ext["action"], ext["resource"])
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("attributes.context_extensions: %w", err))
	}
	auth, n := envoyHeader(hr, "authorization")
	var v verdict
	switch n {
	case 0:
	case 1:
		if v, err = a.door.check(ctx, auth, perm); err != nil {
			return nil, connect.NewError(connect.CodeUnavailable, err)
		}
	default:
		v = verdict{reason: checkreason.String(checkreason.Malformed)}
	}
	if v.denied != "" {
		b, _ := json.Marshal(map[string]string{"error": "permission_denied", "message": v.denied})
		return connect.NewResponse(&authv3.CheckResponse{
			Status: &status.Status{Code: int32(code.Code_PERMISSION_DENIED), Message: v.denied},
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
				Status: &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden}, Body: string(b) + "\n",
				Headers: []*corev3.HeaderValueOption{header("cache-control", "no-store"), header("content-type", "application/json")},
			}},
		}), nil
	}
	if v.claims != nil {
		ok := &authv3.OkHttpResponse{}
		for i, val := range identity(v.claims) {
			name := strings.ToLower(IdentityHeaders[i])
			if val == "" {
				// Envoy drops empty values: remove the client's instead.
				ok.HeadersToRemove = append(ok.HeadersToRemove, name)
				continue
			}
			ok.Headers = append(ok.Headers, header(name, val))
		}
		return connect.NewResponse(&authv3.CheckResponse{
			Status:       &status.Status{Code: int32(code.Code_OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
		}), nil
	}
	body := map[string]string{"error": "unauthenticated", "message": v.message()}
	hdrs := []*corev3.HeaderValueOption{header("www-authenticate", v.challenge()),
		header("cache-control", "no-store"), header("content-type", "application/json")}
	if v.reason != "" {
		body["error"], body["reason"] = "invalid_token", v.reason
		hdrs = append(hdrs, header(strings.ToLower(HeaderReason), v.reason))
	}
	if v.endReason != "" {
		body["end_reason"] = v.endReason
		hdrs = append(hdrs, header(strings.ToLower(HeaderEnd), v.endReason))
	}
	b, _ := json.Marshal(body)
	return connect.NewResponse(&authv3.CheckResponse{
		Status: &status.Status{Code: int32(code.Code_UNAUTHENTICATED), Message: v.message()},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized}, Headers: hdrs, Body: string(b) + "\n",
		}},
	}), nil
}

func header(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
}

// envoyHeader returns the value of the lower-case header name and how many
// times it occurs: from header_map when Envoy sends it (encode_raw_headers),
// else from the headers map, where Envoy joins repeated headers with ",".
func envoyHeader(hr *authv3.AttributeContext_HttpRequest, name string) (string, int) {
	if hm := hr.GetHeaderMap(); hm != nil {
		val, n := "", 0
		for _, h := range hm.GetHeaders() {
			if strings.EqualFold(h.GetKey(), name) {
				n++
				val = h.GetValue()
				if len(h.GetRawValue()) > 0 {
					val = string(h.GetRawValue())
				}
			}
		}
		return val, n
	}
	val, ok := hr.GetHeaders()[name]
	if !ok {
		return "", 0
	}
	return val, 1
}
