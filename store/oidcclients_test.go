package store

import (
	"errors"
	"strings"
	"testing"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	"google.golang.org/protobuf/proto"
)

func putClientCmd(c *storev1.OIDCClient) *storev1.Command {
	return &storev1.Command{NowUnixNano: t0.UnixNano(), Op: &storev1.Command_PutOidcClient{PutOidcClient: &storev1.PutOIDCClient{Client: c}}}
}

func delClientCmd(id string) *storev1.Command {
	return &storev1.Command{NowUnixNano: t0.UnixNano(), Op: &storev1.Command_DeleteOidcClient{DeleteOidcClient: &storev1.DeleteOIDCClient{Id: id}}}
}

func goodClient() *storev1.OIDCClient {
	return &storev1.OIDCClient{Id: "shop", Name: "Shop", AuthMethod: "client_secret_basic",
		SecretHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA", RedirectUris: []string{"https://shop.example/cb"}}
}

// A client is registered once (a second put of its id is CONFLICT), read
// back, listed, deleted (a second delete is NOT_FOUND).
func TestOIDCClientRules(t *testing.T) {
	s := openTemp(t, "clients.db")
	if res := applyOne(t, s, mustEncode(t, putClientCmd(goodClient()))); res.GetCode() != 0 {
		t.Fatalf("put: got %v, want success", res)
	}
	if res := applyOne(t, s, mustEncode(t, putClientCmd(goodClient()))); res.GetCode() != storev1.ErrorCode_ERROR_CODE_CONFLICT {
		t.Fatalf("second put: got %v, want CONFLICT", res)
	}
	c, err := s.OIDCClient("shop")
	if err != nil || c.GetCreatedUnixNano() != t0.UnixNano() || c.GetRedirectUris()[0] != "https://shop.example/cb" {
		t.Fatalf("OIDCClient: got %v, %v", c, err)
	}
	if l, err := s.OIDCClients(); err != nil || len(l) != 1 {
		t.Fatalf("OIDCClients: got %d, %v; want 1", len(l), err)
	}
	if res := applyOne(t, s, mustEncode(t, delClientCmd("shop"))); res.GetCode() != 0 {
		t.Fatalf("delete: got %v, want success", res)
	}
	if res := applyOne(t, s, mustEncode(t, delClientCmd("shop"))); res.GetCode() != storev1.ErrorCode_ERROR_CODE_NOT_FOUND {
		t.Fatalf("second delete: got %v, want NOT_FOUND", res)
	}
	if _, err := s.OIDCClient("shop"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OIDCClient after delete: got %v, want ErrNotFound", err)
	}
}

// Out-of-bounds clients are refused INVALID naming the field, and change
// nothing.
func TestOIDCClientInvalid(t *testing.T) {
	s := openTemp(t, "clients.db")
	before := stateHash(t, s, false)
	many := make([]string, MaxOIDCClientURIs+1)
	for i := range many {
		many[i] = "https://a.example/cb"
	}
	for _, c := range []struct {
		name string
		edit func(c *storev1.OIDCClient)
		want string
	}{
		{"bad id", func(c *storev1.OIDCClient) { c.Id = "a b" }, "client.id"},
		{"plain secret", func(c *storev1.OIDCClient) { c.SecretHash = "hunter2" }, "client.secret_hash"},
		{"public with secret", func(c *storev1.OIDCClient) { c.AuthMethod = "none" }, "client.secret_hash"},
		{"unknown method", func(c *storev1.OIDCClient) { c.AuthMethod = "tls_client_auth" }, "client.auth_method"},
		{"too many URIs", func(c *storev1.OIDCClient) { c.RedirectUris = many }, "client.redirect_uris"},
		{"long URI", func(c *storev1.OIDCClient) {
			c.RedirectUris = []string{"https://a.example/" + strings.Repeat("x", 2048)}
		}, "client.redirect_uris"},
		{"unknown grant", func(c *storev1.OIDCClient) { c.GrantTypes = []string{"password"} }, "client.grant_types"},
	} {
		cl := proto.CloneOf(goodClient())
		c.edit(cl)
		res := applyOne(t, s, mustEncode(t, putClientCmd(cl)))
		if res.GetCode() != storev1.ErrorCode_ERROR_CODE_INVALID || !strings.Contains(res.GetMessage(), c.want) {
			t.Errorf("%s: got %v, want INVALID naming %q", c.name, res, c.want)
		}
	}
	if res := applyOne(t, s, mustEncode(t, delClientCmd(""))); res.GetCode() != storev1.ErrorCode_ERROR_CODE_INVALID {
		t.Errorf("delete of empty id: got %v, want INVALID", res)
	}
	if after := stateHash(t, s, false); after != before {
		t.Error("refused commands changed the state")
	}
}
