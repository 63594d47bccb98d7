package store

import (
	"slices"
	"strings"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	bolt "go.etcd.io/bbolt"
)

// Bounds of an OpenID Connect client registered through the admin API.
const (
	// MaxOIDCClients caps the registered clients of a cluster.
	MaxOIDCClients = 1000
	// MaxOIDCClientURIs caps each list of URIs of a client.
	MaxOIDCClientURIs = 16
	// MaxOIDCClientScopes caps a client's scope list.
	MaxOIDCClientScopes = 16
)

// --- typed transaction ---

func (t *boltTxn) oidcClient(id string) (*storev1.OIDCClient, error) {
	c := new(storev1.OIDCClient)
	ok, err := t.getMsg(iOIDCClients, []byte(id), c)
	if !ok {
		return nil, err
	}
	return c, nil
}

func (t *boltTxn) countOIDCClients() int { return t.b[iOIDCClients].Stats().KeyN }

func (t *boltTxn) putOIDCClient(c *storev1.OIDCClient) error {
	return t.putMsg(iOIDCClients, []byte(c.GetId()), c)
}

func (t *boltTxn) deleteOIDCClient(id string) error {
	return t.b[iOIDCClients].Delete([]byte(id))
}

// --- rules ---

// putOIDCClient implements PutOIDCClient (its shape is checked by
// validateCommand): the id unused and fewer than MaxOIDCClients clients.
func putOIDCClient(t txn, now int64, op *storev1.PutOIDCClient) (*storev1.Result, error) {
	c := op.GetClient()
	old, err := t.oidcClient(c.GetId())
	if err != nil {
		return nil, err
	}
	if old != nil {
		return refuse(storev1.ErrorCode_ERROR_CODE_CONFLICT, "client_id %q is already registered", c.GetId()), nil
	}
	if n := t.countOIDCClients(); n >= MaxOIDCClients {
		return refuse(storev1.ErrorCode_ERROR_CODE_CONFLICT, "the cluster already has %d OpenID Connect clients (the cap); delete some first", n), nil
	}
	if c.GetCreatedUnixNano() == 0 {
		c.CreatedUnixNano = now
	}
	if err := t.putOIDCClient(c); err != nil {
		return nil, err
	}
	return &storev1.Result{}, nil
}

// deleteOIDCClient implements DeleteOIDCClient: NOT_FOUND for an unknown id.
func deleteOIDCClient(t txn, op *storev1.DeleteOIDCClient) (*storev1.Result, error) {
	c, err := t.oidcClient(op.GetId())
	if err != nil {
		return nil, err
	}
	if c == nil {
		return refuse(storev1.ErrorCode_ERROR_CODE_NOT_FOUND, "no such OpenID Connect client"), nil
	}
	if err := t.deleteOIDCClient(op.GetId()); err != nil {
		return nil, err
	}
	return &storev1.Result{}, nil
}

// --- shapes ---

// oidcClient checks a client record's bounds and vocabulary (the URIs'
// schemes are checked by authsvc, which owns the policy).
func (v *shape) oidcClient(c *storev1.OIDCClient) {
	if c == nil {
		v.bad("client is required")
		return
	}
	v.id("client.id", c.GetId(), false)
	v.text("client.name", c.GetName(), maxIDLen)
	switch c.GetAuthMethod() {
	case "none":
		if c.GetSecretHash() != "" {
			v.bad("client.secret_hash: a public client has no secret")
		}
	case "client_secret_basic":
		if !strings.HasPrefix(c.GetSecretHash(), "$argon2id$") || len(c.GetSecretHash()) > maxIDLen {
			v.bad("client.secret_hash: want an argon2id PHC string of at most %d bytes", maxIDLen)
		}
	default:
		v.bad("client.auth_method: want none or client_secret_basic")
	}
	for _, l := range []struct {
		what string
		uris []string
	}{{"client.redirect_uris", c.GetRedirectUris()}, {"client.post_logout_redirect_uris", c.GetPostLogoutRedirectUris()}} {
		if len(l.uris) > MaxOIDCClientURIs {
			v.bad("%s: at most %d", l.what, MaxOIDCClientURIs)
		}
		for _, u := range l.uris {
			v.text(l.what+"[]", u, maxRedirectURILen)
			if u == "" {
				v.bad("%s[] is empty", l.what)
			}
		}
	}
	if len(c.GetGrantTypes()) > 3 {
		v.bad("client.grant_types: at most 3")
	}
	for _, g := range c.GetGrantTypes() {
		if !slices.Contains([]string{"authorization_code", "refresh_token", "client_credentials"}, g) {
			v.bad("client.grant_types: %q: want authorization_code, refresh_token or client_credentials", g)
		}
	}
	if len(c.GetScopes()) > MaxOIDCClientScopes {
		v.bad("client.scopes: at most %d", MaxOIDCClientScopes)
	}
	for _, sc := range c.GetScopes() {
		v.text("client.scopes[]", sc, 64)
	}
	v.time("client.created_unix_nano", c.GetCreatedUnixNano())
}

// --- reads ---

// OIDCClient returns the registered client with id, or ErrNotFound.
func (s *Store) OIDCClient(id string) (*storev1.OIDCClient, error) {
	if id == "" || len(id) > maxIDLen {
		return nil, ErrNotFound
	}
	var out *storev1.OIDCClient
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketOIDCClients).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		c := new(storev1.OIDCClient)
		if err := decode("oidc client", v, c); err != nil {
			return err
		}
		out = c
		return nil
	})
	return out, err
}

// OIDCClients returns every registered client, ordered by id.
func (s *Store) OIDCClients() ([]*storev1.OIDCClient, error) {
	var out []*storev1.OIDCClient
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOIDCClients).ForEach(func(_, v []byte) error {
			c := new(storev1.OIDCClient)
			if err := decode("oidc client", v, c); err != nil {
				return err
			}
			out = append(out, c)
			return nil
		})
	})
	return out, err
}
