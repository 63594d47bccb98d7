package authrpc

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/callers"
	authv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1"
)

// OIDCClients registers the OpenID Provider's clients; *authsvc.Provider
// implements it.
type OIDCClients interface {
	CreateClient(ctx context.Context, by callers.Principal, in authsvc.NewOIDCClient) (string, *authsvc.OIDCClient, error)
	ListClients(ctx context.Context) ([]*authsvc.OIDCClient, error)
	DeleteClient(ctx context.Context, by callers.Principal, id string) error
}

var errOIDCOff = connect.NewError(connect.CodeFailedPrecondition, errors.New("the OpenID Provider is off (auth.oidc.enabled)"))

func oidcClientMsg(c *authsvc.OIDCClient) *authv1.OIDCClient {
	return &authv1.OIDCClient{ClientId: c.ID, Name: c.Name, Confidential: c.AuthMethod != authsvc.AuthNone,
		RedirectUris: c.RedirectURIs, PostLogoutRedirectUris: c.PostLogoutRedirectURIs, GrantTypes: c.GrantTypes,
		Scopes: c.Scopes, FirstParty: c.FirstParty}
}

func (a *admin) CreateOIDCClient(ctx context.Context, req *connect.Request[authv1.CreateOIDCClientRequest]) (*connect.Response[authv1.CreateOIDCClientResponse], error) {
	if a.clients == nil {
		return nil, errOIDCOff
	}
	by, _ := callers.FromContext(ctx)
	m := req.Msg.GetClient()
	secret, c, err := a.clients.CreateClient(ctx, by, authsvc.NewOIDCClient{
		ID: m.GetClientId(), Name: m.GetName(), Confidential: m.GetConfidential(), RedirectURIs: m.GetRedirectUris(),
		PostLogoutRedirectURIs: m.GetPostLogoutRedirectUris(), GrantTypes: m.GetGrantTypes(), Scopes: m.GetScopes(),
		FirstParty: m.GetFirstParty(),
	})
	if err != nil {
		return nil, ConnectError(err)
	}
	return connect.NewResponse(&authv1.CreateOIDCClientResponse{Client: oidcClientMsg(c), ClientSecret: secret}), nil
}

func (a *admin) ListOIDCClients(ctx context.Context, _ *connect.Request[authv1.ListOIDCClientsRequest]) (*connect.Response[authv1.ListOIDCClientsResponse], error) {
	if a.clients == nil {
		return nil, errOIDCOff
	}
	list, err := a.clients.ListClients(ctx)
	if err != nil {
		return nil, ConnectError(err)
	}
	out := &authv1.ListOIDCClientsResponse{}
	for _, c := range list {
		out.Clients = append(out.Clients, oidcClientMsg(c))
	}
	return connect.NewResponse(out), nil
}

func (a *admin) DeleteOIDCClient(ctx context.Context, req *connect.Request[authv1.DeleteOIDCClientRequest]) (*connect.Response[authv1.DeleteOIDCClientResponse], error) {
	if a.clients == nil {
		return nil, errOIDCOff
	}
	by, _ := callers.FromContext(ctx)
	if err := a.clients.DeleteClient(ctx, by, req.Msg.GetClientId()); err != nil {
		return nil, ConnectError(err)
	}
	return connect.NewResponse(&authv1.DeleteOIDCClientResponse{}), nil
}
