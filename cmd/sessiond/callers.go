package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"connectrpc.com/grpcreflect"

	"github.com/sessiond/sessiond/api/callerauth"
	"github.com/sessiond/sessiond/api/clusterrpc"
	"github.com/sessiond/sessiond/api/gateway"
	"github.com/sessiond/sessiond/api/operatorrpc"
	"github.com/sessiond/sessiond/authsvc/callers"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1/authv1connect"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1/clusterv1connect"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/operator/v1/operatorv1connect"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1/sessionv1connect"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/pki"
)

// Caller modes of auth.callers.{check,watch,metrics,reflection}.
const (
	callerOpen          = "open"
	callerAuthenticated = "authenticated"
)

// CallersConfig says who may call what (auth.callers). Operator and admin
// calls always need a credential; these settings open or close the rest.
type CallersConfig struct {
	// Check is who may call CheckToken, CheckSession, IsRevoked and the
	// gateway checks (GET /gateway/check, Envoy ext_authz):
	// "authenticated" (default: a service client, a certificate or an
	// operator token with the check scope) or "open" (anyone).
	Check string `yaml:"check"`
	// Watch is who may call WatchRevocations (scope watch).
	Watch string `yaml:"watch"`
	// Metrics is who may GET /metrics (scope metrics).
	Metrics string `yaml:"metrics"`
	// Reflection is who may use gRPC server reflection (scope reflection).
	Reflection string `yaml:"reflection"`
	// MaxWatchStreams caps the revocation watch streams of this node
	// (default 4096); MaxWatchStreamsPerClient those of one client, a
	// principal or, when watch is open, a source address (default 16).
	MaxWatchStreams          int `yaml:"max_watch_streams"`
	MaxWatchStreamsPerClient int `yaml:"max_watch_streams_per_client"`
	// OperatorSocket is the Unix socket through which whoever can open it
	// (file permissions: the data dir is 0700) acts as operator "local"
	// with every scope: the root of authority on a node's own host, e.g.
	// to create the first operator token. Default <data-dir>/operator.sock;
	// "off" disables it.
	OperatorSocket string `yaml:"operator_socket"`
}

func defaultCallers() CallersConfig {
	return CallersConfig{Check: callerAuthenticated, Watch: callerAuthenticated, Metrics: callerAuthenticated,
		Reflection: callerAuthenticated, MaxWatchStreams: 4096, MaxWatchStreamsPerClient: 16}
}

// validate reports every bad auth.callers setting.
func (c CallersConfig) validate() []error {
	var errs []error
	for _, m := range []struct{ name, v string }{{"check", c.Check}, {"watch", c.Watch}, {"metrics", c.Metrics}, {"reflection", c.Reflection}} {
		if m.v != callerOpen && m.v != callerAuthenticated {
			errs = append(errs, fmt.Errorf("auth.callers.%s %q: want open or authenticated", m.name, m.v))
		}
	}
	if c.MaxWatchStreams < 0 || c.MaxWatchStreamsPerClient < 0 {
		errs = append(errs, errors.New("auth.callers.max_watch_streams and max_watch_streams_per_client: must not be negative (0: no cap)"))
	}
	return errs
}

// callerRoutes is who may call what: every Connect procedure of the
// operator and service APIs, /oauth2/*, /metrics and reflection. Paths not
// listed (the user routes, health, discovery) need no caller credential.
// The operator console (/console/, api/console) logs its users in itself
// and calls these procedures as principal user/<email> with its roles'
// scopes: the rules below apply to it unchanged.
// The upstream login routes (GET /auth/login/{provider}, GET
// /auth/callback/{provider}: browser navigations, upstreamlogin) are such
// user routes: the browser's sealed state cookie and the provider's
// verified answer authenticate them, never a caller credential.
func (n *node) callerRoutes() callerauth.Routes {
	c := n.cfg.Auth.Callers
	rs := callerauth.Routes{}
	deny := func(service string) { rs["/"+service+"/"] = callerauth.Rule{Deny: true} }
	for proc, scope := range clusterrpc.Scopes {
		rs[proc] = callerauth.Rule{Scope: scope, Audit: scope != callers.ScopeClusterRead}
	}
	deny(clusterv1connect.ClusterServiceName)
	for proc, scope := range operatorrpc.Scopes {
		rs[proc] = callerauth.Rule{Scope: scope, Audit: scope != "" && !operatorrpc.Reads[proc]}
	}
	deny(operatorv1connect.OperatorServiceName)
	rs["/"+authv1connect.UserAdminServiceName+"/"] = callerauth.Rule{Scope: callers.ScopeAdmin, Audit: true}
	rs["/"+authv1connect.PreloadServiceName+"/"] = callerauth.Rule{Scope: callers.ScopeAdmin, Audit: true}
	// The OpenID Provider's client registry (issue 11): admin, audited.
	for _, p := range []string{authv1connect.UserAdminServiceCreateOIDCClientProcedure, authv1connect.UserAdminServiceListOIDCClientsProcedure,
		authv1connect.UserAdminServiceDeleteOIDCClientProcedure} {
		rs[p] = callerauth.Rule{Scope: callers.ScopeAdmin, Audit: true}
	}
	for _, p := range []string{sessionv1connect.SessionServiceGetSessionProcedure, sessionv1connect.SessionServiceListSessionsProcedure} {
		rs[p] = callerauth.Rule{Scope: callers.ScopeAdmin}
	}
	for _, p := range []string{sessionv1connect.SessionServiceRevokeSessionProcedure, sessionv1connect.SessionServiceRevokeUserSessionsProcedure} {
		rs[p] = callerauth.Rule{Scope: callers.ScopeAdmin, Audit: true}
	}
	for _, p := range []string{sessionv1connect.SessionServiceCheckTokenProcedure, sessionv1connect.SessionServiceCheckSessionProcedure, sessionv1connect.SessionServiceIsRevokedProcedure} {
		rs[p] = callerauth.Rule{Scope: callers.ScopeCheck, Open: c.Check == callerOpen}
	}
	// Gateways: the forward-auth route reads the gateway's own credential
	// from X-Sessiond-Authorization (Authorization holds the user's token);
	// ext_authz is an ordinary gRPC call.
	rs[gateway.CheckPath] = callerauth.Rule{Scope: callers.ScopeCheck, Open: c.Check == callerOpen, CredentialHeader: gateway.CredentialHeader}
	rs[gateway.AuthorizationCheckProcedure] = callerauth.Rule{Scope: callers.ScopeCheck, Open: c.Check == callerOpen}
	deny(gateway.AuthorizationServiceName)
	rs[sessionv1connect.SessionServiceWatchRevocationsProcedure] = callerauth.Rule{Scope: callers.ScopeWatch, Open: c.Watch == callerOpen}
	deny(sessionv1connect.SessionServiceName)
	rs["/oauth2/introspect"] = callerauth.Rule{Scope: callers.ScopeIntrospect, OAuthClient: true}
	rs["/oauth2/revoke"] = callerauth.Rule{Scope: callers.ScopeRevoke, OAuthClient: true}
	rs["/metrics"] = callerauth.Rule{Scope: callers.ScopeMetrics, Open: c.Metrics == callerOpen}
	rs[operatorRoutePrefix] = operatorRouteRule
	for _, svc := range []string{grpcreflect.ReflectV1ServiceName, grpcreflect.ReflectV1AlphaServiceName} {
		rs["/"+svc+"/"] = callerauth.Rule{Scope: callers.ScopeReflection, Open: c.Reflection == callerOpen}
	}
	return rs
}

// newAuthenticator builds the node's caller authenticator. Client
// certificates reach it verified by the API's TLS layer (api_tls: the
// client CA, by default the cluster CA) and must name an identity of the
// cluster's trust domain (tls.trust_domain).
func (n *node) newAuthenticator() *callers.Authenticator {
	clients := make([]callers.ServiceClient, 0, len(n.cfg.Auth.ServiceClients))
	for _, c := range n.cfg.Auth.ServiceClients {
		clients = append(clients, callers.ServiceClient{ID: c.ID, SecretHash: c.SecretHash, Scopes: c.Scopes})
	}
	return callers.NewAuthenticator(callers.Config{
		TrustDomain: n.cfg.TLS.TrustDomain,
		CertIdentity: func(c *x509.Certificate) (callers.CertIdentity, error) {
			id, err := pki.IdentityFromCert(c)
			return callers.CertIdentity{TrustDomain: id.TrustDomain, Kind: string(id.Kind), Name: id.Name}, err
		},
		Clients: clients, Hasher: n.hasher, Throttle: n.limiter, Tokens: n.st,
		Sync: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err := n.raft.ReadBarrier(ctx, cluster.ReadOptions{Consistency: cluster.ConsistencyLinearizable})
			return err
		},
		Logger: n.auditLog(),
	})
}

// operatorSocketPath is where the local operator socket listens ("" off).
func (c *Config) operatorSocketPath() string {
	switch p := c.Auth.Callers.OperatorSocket; p {
	case "off":
		return ""
	case "":
		return filepath.Join(c.DataDir, "operator.sock")
	default:
		return p
	}
}

// localOperator is the principal of the local operator socket's callers.
var localOperator = callers.Principal{Kind: callers.KindOperator, Name: "local", Method: callers.MethodLocalSocket, Scopes: []string{callers.ScopeAll}}

// serveOperatorSocket serves h on the local operator socket, its callers
// acting as operator "local". The socket is mode 0600 in the node's data
// dir (0700): only the node's own user (and root) can connect.
func (n *node) serveOperatorSocket(h http.Handler) error {
	path := n.cfg.operatorSocketPath()
	if path == "" {
		return nil
	}
	if len(path) > 100 && n.cfg.Auth.Callers.OperatorSocket == "" {
		// Unix socket paths are limited to about 104 bytes.
		n.log.Warn("no local operator socket: the data dir's path is too long for one; set auth.callers.operator_socket", "path", path)
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("operator socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("operator socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return fmt.Errorf("operator socket %s: %w", path, err)
	}
	n.opsrv = &http.Server{Handler: callerauth.WithPrincipal(localOperator, h), ReadHeaderTimeout: 10 * time.Second}
	n.go_(func(context.Context) {
		if err := n.opsrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("operator socket stopped", "err", err)
		}
	})
	return nil
}
