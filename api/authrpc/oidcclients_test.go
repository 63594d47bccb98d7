package authrpc_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/api/authrpc"
	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/authsvctest"
	"github.com/sessiond/sessiond/authsvc/callers"
	authv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1/authv1connect"
)

// TestOIDCClientProcedures: over Connect, an admin registers a confidential
// client and gets its secret once; the listing carries no secret; a bad
// redirect URI is INVALID_ARGUMENT naming the field and registers nothing;
// a caller without the admin scope is refused; with the provider off the
// procedures answer FAILED_PRECONDITION.
func TestOIDCClientProcedures(t *testing.T) {
	env := authsvctest.New(t, authsvctest.Options{})
	p, err := authsvc.NewProvider(env.Svc, authsvc.ProviderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	serve := func(clients authrpc.OIDCClients, scopes ...string) authv1connect.UserAdminServiceClient {
		path, h := authrpc.NewAdminHandler(env.Svc, clients)
		mux := http.NewServeMux()
		mux.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			pr := callers.Principal{Kind: callers.KindOperator, Name: "alice", Scopes: scopes}
			h.ServeHTTP(w, r.WithContext(callers.NewContext(r.Context(), pr)))
		}))
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		return authv1connect.NewUserAdminServiceClient(srv.Client(), srv.URL)
	}
	ctx := context.Background()
	admin := serve(p, callers.ScopeAdmin)
	create := func(c authv1connect.UserAdminServiceClient, m *authv1.OIDCClient) (*authv1.CreateOIDCClientResponse, error) {
		res, err := c.CreateOIDCClient(ctx, connect.NewRequest(&authv1.CreateOIDCClientRequest{Client: m}))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	}

	_, err = create(admin, &authv1.OIDCClient{ClientId: "shop", Confidential: true, RedirectUris: []string{"https://shop.example/cb", "https://shop.example/x#frag"}})
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "redirect_uris[1]") {
		t.Errorf("a redirect URI with a fragment: %v, want INVALID_ARGUMENT naming redirect_uris[1]", err)
	}
	res, err := create(admin, &authv1.OIDCClient{ClientId: "shop", Confidential: true, RedirectUris: []string{"https://shop.example/cb"}})
	if err != nil || len(res.GetClientSecret()) < 40 || !res.GetClient().GetConfidential() {
		t.Fatalf("CreateOIDCClient: %v, %v; want a confidential client and its secret", res, err)
	}
	list, err := admin.ListOIDCClients(ctx, connect.NewRequest(&authv1.ListOIDCClientsRequest{}))
	if err != nil || len(list.Msg.GetClients()) != 1 || strings.Contains(list.Msg.String(), "argon2") || strings.Contains(list.Msg.String(), res.GetClientSecret()) {
		t.Errorf("ListOIDCClients: %v, %v; want shop alone, without secret or hash", list, err)
	}
	if _, err := create(serve(p, callers.ScopeCheck), &authv1.OIDCClient{ClientId: "evil", RedirectUris: []string{"https://evil.example/cb"}}); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("CreateOIDCClient without the admin scope: %v, want PERMISSION_DENIED", err)
	}
	if _, err := admin.DeleteOIDCClient(ctx, connect.NewRequest(&authv1.DeleteOIDCClientRequest{ClientId: "shop"})); err != nil {
		t.Errorf("DeleteOIDCClient: %v", err)
	}
	if _, err := admin.DeleteOIDCClient(ctx, connect.NewRequest(&authv1.DeleteOIDCClientRequest{ClientId: "shop"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("second DeleteOIDCClient: %v, want NOT_FOUND", err)
	}
	if _, err := serve(nil, callers.ScopeAdmin).ListOIDCClients(ctx, connect.NewRequest(&authv1.ListOIDCClientsRequest{})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("ListOIDCClients with the provider off: %v, want FAILED_PRECONDITION", err)
	}
}
