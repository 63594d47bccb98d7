package authsvc

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/sessiond/sessiond/authsvc/callers"
	"github.com/sessiond/sessiond/authsvc/password"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	"github.com/sessiond/sessiond/store"
)

// Clients registered through the admin API are replicated records
// (store.PutOIDCClient); the YAML config's clients are not stored. A lookup
// asks the config first (its clients are read-only and win), then the
// local state.

// OIDCClientState is the part of the local state that holds registered
// clients; *store.Store implements it.
type OIDCClientState interface {
	OIDCClient(id string) (*storev1.OIDCClient, error)
	OIDCClients() ([]*storev1.OIDCClient, error)
}

// NewOIDCClient is what an administrator registers.
type NewOIDCClient struct {
	// ID is the client_id (the form of the config's).
	ID string
	// Name is shown on the login and consent pages (at most 255 bytes).
	Name string
	// Confidential clients authenticate with a generated secret
	// (client_secret_basic); public ones (none) use PKCE alone.
	Confidential bool
	// RedirectURIs, PostLogoutRedirectURIs: absolute https (or loopback
	// http, or a reverse-domain private scheme), no fragment; at most
	// store.MaxOIDCClientURIs each.
	RedirectURIs, PostLogoutRedirectURIs []string
	// GrantTypes: authorization_code, refresh_token, client_credentials
	// (confidential only); empty means the first two.
	GrantTypes []string
	// Scopes the client may ask for; empty means every known scope.
	Scopes []string
	// FirstParty clients skip the consent page.
	FirstParty bool
}

func invalidField(field, format string, args ...any) error {
	return newErr(KindInvalid, "invalid_request", field+": "+fmt.Sprintf(format, args...))
}

// check validates in and returns the client it describes (without secret).
func (p *Provider) checkNewClient(in NewOIDCClient) (*OIDCClient, error) {
	if !clientIDRE.MatchString(in.ID) {
		return nil, invalidField("client_id", "want 1-255 characters of A-Z a-z 0-9 . _ ~ : + / = @ -")
	}
	if len(in.Name) > 255 || strings.ContainsFunc(in.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, invalidField("name", "want at most 255 bytes without control characters")
	}
	for _, l := range []struct {
		field string
		uris  []string
	}{{"redirect_uris", in.RedirectURIs}, {"post_logout_redirect_uris", in.PostLogoutRedirectURIs}} {
		if len(l.uris) > store.MaxOIDCClientURIs {
			return nil, invalidField(l.field, "at most %d URIs", store.MaxOIDCClientURIs)
		}
		for i, u := range l.uris {
			if err := checkClientURI(u); err != nil {
				return nil, invalidField(fmt.Sprintf("%s[%d]", l.field, i), "%v", err)
			}
		}
	}
	if len(in.GrantTypes) > 3 {
		return nil, invalidField("grant_types", "at most 3")
	}
	for _, g := range in.GrantTypes {
		if g != GrantAuthorizationCode && g != GrantRefreshToken && g != GrantClientCredentials {
			return nil, invalidField("grant_types", "%q: want authorization_code, refresh_token or client_credentials", truncate(g, 64))
		}
	}
	if len(in.Scopes) > store.MaxOIDCClientScopes {
		return nil, invalidField("scopes", "at most %d", store.MaxOIDCClientScopes)
	}
	for _, sc := range in.Scopes {
		if !slices.Contains(knownScopes, sc) {
			return nil, invalidField("scopes", "%q: want one of %s", truncate(sc, 64), strings.Join(knownScopes, " "))
		}
	}
	c := &OIDCClient{ID: in.ID, Name: in.Name, AuthMethod: AuthNone, RedirectURIs: in.RedirectURIs,
		PostLogoutRedirectURIs: in.PostLogoutRedirectURIs, GrantTypes: in.GrantTypes, Scopes: in.Scopes,
		FirstParty: in.FirstParty, IDTokenAlg: AlgRS256}
	if in.Confidential {
		c.AuthMethod = AuthClientSecretBasic
	} else if slices.Contains(in.GrantTypes, GrantClientCredentials) {
		return nil, invalidField("grant_types", "a public client cannot use client_credentials")
	}
	if c.allowsGrant(GrantAuthorizationCode) && len(c.RedirectURIs) == 0 {
		return nil, invalidField("redirect_uris", "the authorization_code grant needs at least one")
	}
	if _, ok := p.clients[in.ID]; ok {
		return nil, newErr(KindConflict, "conflict", "client_id: "+in.ID+" is a client of the configuration")
	}
	return c, nil
}

// CreateClient registers a client for by (an administrator). For a
// confidential client it returns the generated secret: shown once, only
// its argon2id hash is stored.
func (p *Provider) CreateClient(ctx context.Context, by callers.Principal, in NewOIDCClient) (string, *OIDCClient, error) {
	c, err := p.checkNewClient(in)
	if err != nil {
		return "", nil, err
	}
	secret := ""
	if in.Confidential {
		var b [32]byte
		_, _ = rand.Read(b[:])
		secret = base64.RawURLEncoding.EncodeToString(b[:])
		h, err := p.s.d.Hasher.Hash(secret)
		if errors.Is(err, password.ErrBusy) {
			return "", nil, &Error{Kind: KindThrottled, Code: "busy", Message: "too many requests in progress; retry"}
		}
		if err != nil {
			return "", nil, p.s.internal(err)
		}
		c.SecretHash = h
	}
	rec := &storev1.OIDCClient{Id: c.ID, Name: c.Name, AuthMethod: c.AuthMethod, SecretHash: c.SecretHash,
		RedirectUris: c.RedirectURIs, PostLogoutRedirectUris: c.PostLogoutRedirectURIs, GrantTypes: c.GrantTypes,
		Scopes: c.Scopes, FirstParty: c.FirstParty}
	_, res, err := p.s.propose(ctx, p.s.now(), &storev1.Command{Op: &storev1.Command_PutOidcClient{PutOidcClient: &storev1.PutOIDCClient{Client: rec}}})
	if err != nil {
		return "", nil, err
	}
	switch res.GetCode() {
	case storev1.ErrorCode_ERROR_CODE_UNSPECIFIED:
	case storev1.ErrorCode_ERROR_CODE_CONFLICT:
		return "", nil, newErr(KindConflict, "conflict", res.GetMessage())
	default:
		return "", nil, p.s.resultErr(res)
	}
	p.s.audit(ctx, "oidc_client_created", slog.String("by", by.String()), slog.String("client", c.ID),
		slog.String("auth_method", c.AuthMethod), slog.String("redirect_uris", strings.Join(c.RedirectURIs, " ")))
	out := *c
	out.SecretHash = ""
	return secret, &out, nil
}

// ListClients lists the registered clients (not the config's), as of every
// write acknowledged before the call, without their secret hashes.
func (p *Provider) ListClients(ctx context.Context) ([]*OIDCClient, error) {
	st, ok := p.s.d.State.(OIDCClientState)
	if !ok {
		return nil, newErr(KindUnavailable, "unavailable", "this node keeps no OpenID Connect clients")
	}
	if err := p.s.d.Cluster.Sync(ctx); err != nil {
		return nil, clusterUnavailable("cannot reach the leader for a consistent read", err)
	}
	list, err := st.OIDCClients()
	if err != nil {
		return nil, p.s.internal(err)
	}
	out := make([]*OIDCClient, 0, len(list))
	for _, r := range list {
		c := clientFromRecord(r)
		c.SecretHash = ""
		out = append(out, c)
	}
	return out, nil
}

// DeleteClient removes a registered client: its codes and tokens are
// refused from then on. A client of the configuration cannot be deleted.
func (p *Provider) DeleteClient(ctx context.Context, by callers.Principal, id string) error {
	if !clientIDRE.MatchString(id) {
		return invalidField("client_id", "want 1-255 characters of A-Z a-z 0-9 . _ ~ : + / = @ -")
	}
	if _, ok := p.clients[id]; ok {
		return newErr(KindForbidden, "forbidden", "client_id: "+id+" is a client of the configuration; edit the configuration")
	}
	_, res, err := p.s.propose(ctx, p.s.now(), &storev1.Command{Op: &storev1.Command_DeleteOidcClient{DeleteOidcClient: &storev1.DeleteOIDCClient{Id: id}}})
	if err != nil {
		return err
	}
	switch res.GetCode() {
	case storev1.ErrorCode_ERROR_CODE_UNSPECIFIED:
	case storev1.ErrorCode_ERROR_CODE_NOT_FOUND:
		return newErr(KindNotFound, "not_found", "no registered client has this client_id")
	default:
		return p.s.resultErr(res)
	}
	p.s.audit(ctx, "oidc_client_deleted", slog.String("by", by.String()), slog.String("client", id))
	return nil
}

// Client returns a client of the configuration or, failing that, a
// registered one.
func (p *Provider) Client(id string) (*OIDCClient, bool) {
	if c, ok := p.clients[id]; ok {
		return c, true
	}
	st, ok := p.s.d.State.(OIDCClientState)
	if !ok || !clientIDRE.MatchString(id) {
		return nil, false
	}
	r, err := st.OIDCClient(id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			p.s.d.Logger.Warn("oidc client unreadable", "client", id, "err", err)
		}
		return nil, false
	}
	return clientFromRecord(r), true
}

func clientFromRecord(r *storev1.OIDCClient) *OIDCClient {
	return &OIDCClient{ID: r.GetId(), Name: r.GetName(), AuthMethod: r.GetAuthMethod(), SecretHash: r.GetSecretHash(),
		RedirectURIs: r.GetRedirectUris(), PostLogoutRedirectURIs: r.GetPostLogoutRedirectUris(),
		GrantTypes: r.GetGrantTypes(), Scopes: r.GetScopes(), FirstParty: r.GetFirstParty(), IDTokenAlg: AlgRS256}
}
