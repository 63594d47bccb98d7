package authrpc

import (
	"context"
	"net/http"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/authsvc"
	authv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1/authv1connect"
)

// MaxPreloadRequest bounds a Preload request: 256 addresses of at most 254
// bytes and a password of at most 1 KiB fit.
const MaxPreloadRequest = 80 << 10

type preload struct{ svc *authsvc.Service }

// NewPreloadHandler returns the path and handler of PreloadService, the
// operator-only bulk load (authsvc.Service.Preload). As for
// NewAdminHandler, every call needs a principal with the admin scope in
// its context (api/callerauth in front); without one it refuses.
func NewPreloadHandler(svc *authsvc.Service, opts ...connect.HandlerOption) (string, http.Handler) {
	opts = append([]connect.HandlerOption{connect.WithInterceptors(requireAdmin)}, opts...)
	opts = append(opts, connect.WithReadMaxBytes(MaxPreloadRequest))
	return authv1connect.NewPreloadServiceHandler(&preload{svc: svc}, opts...)
}

func (p *preload) Preload(ctx context.Context, req *connect.Request[authv1.PreloadRequest]) (*connect.Response[authv1.PreloadResponse], error) {
	m := req.Msg
	out, err := p.svc.Preload(ctx, authsvc.PreloadInput{Emails: m.GetEmails(), Password: m.GetPassword(), Sessions: int(m.GetSessions())})
	if err != nil {
		return nil, ConnectError(err)
	}
	return connect.NewResponse(&authv1.PreloadResponse{SessionIds: out.SessionIDs, UserIds: out.UserIDs, Index: out.Index}), nil
}
