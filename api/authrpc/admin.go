package authrpc

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sessiond/sessiond/api/rpcerr"
	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/callers"
	"github.com/sessiond/sessiond/authsvc/users"
	authv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1/authv1connect"
	"net/http"
)

type admin struct {
	svc     *authsvc.Service
	clients OIDCClients
}

// NewAdminHandler returns the path and handler of UserAdminService. Every
// call needs a principal with the admin scope in its context (put the
// caller-authentication middleware, api/callerauth, in front); without
// one the handler refuses. clients serves the OpenID Connect client
// procedures; nil (the provider is off) answers them FAILED_PRECONDITION.
func NewAdminHandler(svc *authsvc.Service, clients OIDCClients, opts ...connect.HandlerOption) (string, http.Handler) {
	opts = append([]connect.HandlerOption{connect.WithInterceptors(requireAdmin)}, opts...)
	return authv1connect.NewUserAdminServiceHandler(&admin{svc: svc, clients: clients}, opts...)
}

// requireAdmin refuses calls whose principal lacks the admin scope.
var requireAdmin = connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if err := callers.Require(ctx, callers.ScopeAdmin); err != nil {
			return nil, rpcerr.FromCaller(err)
		}
		return next(ctx, req)
	}
})

var orgTypes = map[authv1.OrgType]users.OrgType{
	authv1.OrgType_ORG_TYPE_CUSTOMER: users.OrgCustomer,
	authv1.OrgType_ORG_TYPE_SUPPLIER: users.OrgSupplier,
	authv1.OrgType_ORG_TYPE_OPERATOR: users.OrgOperator,
}

func userMsg(u users.User) *authv1.User {
	var t authv1.OrgType
	for k, v := range orgTypes {
		if v == u.Org.Type {
			t = k
		}
	}
	return &authv1.User{
		Id: u.ID, Email: u.Email, DisplayName: u.DisplayName, Suspended: u.Status == users.StatusSuspended,
		Roles: u.Roles, OrgName: u.Org.Name, Country: u.Org.Country, OrgType: t,
		Created: timestamppb.New(u.CreatedAt.Truncate(time.Microsecond)),
	}
}

func (a *admin) CreateUser(ctx context.Context, req *connect.Request[authv1.CreateUserRequest]) (*connect.Response[authv1.CreateUserResponse], error) {
	m := req.Msg
	t, ok := orgTypes[m.GetOrgType()]
	if !ok {
		return nil, connect.NewError(connect.CodeInvalidArgument, errInvalid("org_type: want CUSTOMER, SUPPLIER or OPERATOR"))
	}
	u, err := a.svc.CreateUser(ctx, authsvc.NewUserInput{
		Email: m.GetEmail(), Password: m.GetPassword(), DisplayName: m.GetDisplayName(), OrgName: m.GetOrgName(),
		Country: m.GetCountry(), OrgType: t, Roles: m.GetRoles(),
	})
	if err != nil {
		return nil, ConnectError(err)
	}
	return connect.NewResponse(&authv1.CreateUserResponse{User: userMsg(u)}), nil
}

func (a *admin) SetUserStatus(ctx context.Context, req *connect.Request[authv1.SetUserStatusRequest]) (*connect.Response[authv1.SetUserStatusResponse], error) {
	st := users.StatusActive
	if req.Msg.GetSuspended() {
		st = users.StatusSuspended
	}
	if err := a.svc.SetUserStatus(ctx, req.Msg.GetEmail(), st); err != nil {
		return nil, ConnectError(err)
	}
	return connect.NewResponse(&authv1.SetUserStatusResponse{}), nil
}

func (a *admin) SetUserRoles(ctx context.Context, req *connect.Request[authv1.SetUserRolesRequest]) (*connect.Response[authv1.SetUserRolesResponse], error) {
	if err := a.svc.SetUserRoles(ctx, req.Msg.GetEmail(), req.Msg.GetRoles()); err != nil {
		return nil, ConnectError(err)
	}
	return connect.NewResponse(&authv1.SetUserRolesResponse{}), nil
}

func (a *admin) SetUserOrg(ctx context.Context, req *connect.Request[authv1.SetUserOrgRequest]) (*connect.Response[authv1.SetUserOrgResponse], error) {
	err := a.svc.SetUserOrg(ctx, req.Msg.GetEmail(), users.NewOrg{
		Name: req.Msg.GetOrgName(), Country: req.Msg.GetCountry(), Type: orgTypes[req.Msg.GetOrgType()],
	})
	if err != nil {
		return nil, ConnectError(err)
	}
	return connect.NewResponse(&authv1.SetUserOrgResponse{}), nil
}

func (a *admin) DeleteUser(ctx context.Context, req *connect.Request[authv1.DeleteUserRequest]) (*connect.Response[authv1.DeleteUserResponse], error) {
	if err := a.svc.DeleteUser(ctx, req.Msg.GetEmail()); err != nil {
		return nil, ConnectError(err)
	}
	return connect.NewResponse(&authv1.DeleteUserResponse{}), nil
}

func (a *admin) SetUserPassword(ctx context.Context, req *connect.Request[authv1.SetUserPasswordRequest]) (*connect.Response[authv1.SetUserPasswordResponse], error) {
	if err := a.svc.SetUserPassword(ctx, req.Msg.GetEmail(), req.Msg.GetPassword()); err != nil {
		return nil, ConnectError(err)
	}
	return connect.NewResponse(&authv1.SetUserPasswordResponse{}), nil
}

func (a *admin) ListUsers(ctx context.Context, req *connect.Request[authv1.ListUsersRequest]) (*connect.Response[authv1.ListUsersResponse], error) {
	var list []users.User
	var total int
	var err error
	if q, limit := req.Msg.GetQuery(), req.Msg.GetLimit(); q != "" || limit != 0 {
		if limit > authsvc.MaxSearchLimit {
			return nil, connect.NewError(connect.CodeInvalidArgument, errInvalid("limit: at most 500"))
		}
		list, total, err = a.svc.SearchUsers(ctx, q, int(limit))
	} else {
		list, err = a.svc.ListUsers(ctx)
		total = len(list)
	}
	if err != nil {
		return nil, ConnectError(err)
	}
	out := &authv1.ListUsersResponse{Total: uint32(total)}
	for _, u := range list {
		out.Users = append(out.Users, userMsg(u))
	}
	return connect.NewResponse(out), nil
}

type errInvalid string

func (e errInvalid) Error() string { return string(e) }
