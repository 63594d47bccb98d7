package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// receiver is the relying party's back-channel logout endpoint (OIDC
// Back-Channel Logout 1.0 §2.5): it verifies each logout token against the
// provider's JWKS and tells the operation waiting for its sid when it
// arrived.
type receiver struct {
	clientID string
	jwksURL  string
	hc       *http.Client
	srv      *http.Server
	done     chan struct{}

	mu      sync.Mutex
	waiting map[string]chan arrival
	stray   int
	iss     string
	keys    jose.JSONWebKeySet
	fetched time.Time
}

// arrival is a logout token's arrival, or why it was refused.
type arrival struct {
	at  time.Time
	err error
}

// startReceiver listens on o.BackchannelListen and serves the path of
// o.BackchannelURI; target is the node whose JWKS verifies the tokens.
func startReceiver(o OIDCParams, s *setup, target string) (*receiver, error) {
	u, _ := url.Parse(o.BackchannelURI)
	hc, _ := s.pool.http(0)
	r := &receiver{clientID: o.ClientID, jwksURL: target + jwksPath, hc: hc, waiting: map[string]chan arrival{}, done: make(chan struct{})}
	if err := r.fetchKeys(context.Background()); err != nil {
		return nil, fmt.Errorf("JWKS of %s: %w", target, err)
	}
	ln, err := net.Listen("tcp", o.BackchannelListen)
	if err != nil {
		return nil, fmt.Errorf("back-channel receiver: listen on %s (from --oidc-backchannel-uri or --oidc-backchannel-listen): %w", o.BackchannelListen, err)
	}
	path := u.Path
	if path == "" {
		path = "/"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+path, r.serve)
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(r.done)
		_ = r.srv.Serve(ln)
	}()
	return r, nil
}

// fetchKeys reads the provider's JWKS.
func (r *receiver) fetchKeys(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.jwksURL, nil)
	if err != nil {
		return err
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", r.jwksURL, resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return fmt.Errorf("GET %s: %w", r.jwksURL, err)
	}
	r.mu.Lock()
	r.keys, r.fetched = set, time.Now()
	r.mu.Unlock()
	return nil
}

// key finds kid, reading the JWKS again (at most once a second) when it is
// unknown: the provider rotates its ID-token keys.
func (r *receiver) key(ctx context.Context, kid string) (jose.JSONWebKey, bool) {
	r.mu.Lock()
	ks := r.keys.Key(kid)
	stale := time.Since(r.fetched) > time.Second
	r.mu.Unlock()
	if len(ks) == 0 && stale && r.fetchKeys(ctx) == nil {
		r.mu.Lock()
		ks = r.keys.Key(kid)
		r.mu.Unlock()
	}
	if len(ks) == 0 {
		return jose.JSONWebKey{}, false
	}
	return ks[0], true
}

// issuer sets the expected iss (the ID tokens'), once.
func (r *receiver) issuer(iss string) {
	r.mu.Lock()
	if r.iss == "" {
		r.iss = iss
	}
	r.mu.Unlock()
}

// logoutClaims are a logout token's claims (§2.4).
type logoutClaims struct {
	jwt.Claims
	SID    string         `json:"sid"`
	Nonce  *string        `json:"nonce"`
	Events map[string]any `json:"events"`
}

// serve is the back-channel logout endpoint: 200 for a valid token, 400
// otherwise (the provider does not retry a 400).
func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	req.Body = http.MaxBytesReader(w, req.Body, 64<<10)
	if err := req.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	claims, err := r.verify(req.Context(), req.PostForm.Get("logout_token"))
	if claims == nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.deliver(claims.SID, arrival{at: at, err: err})
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// verify checks a logout token as a relying party must (§2.6): signature
// by a key of the provider's JWKS, typ logout+jwt, iss, aud, iat/exp,
// the back-channel event, a sid, no nonce. It returns the claims read
// (nil when not even the sid could be read) and what is wrong.
func (r *receiver) verify(ctx context.Context, raw string) (*logoutClaims, error) {
	invalid := func(format string, args ...any) error {
		return Failf("logout_token_invalid", format, args...)
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA, jose.PS256})
	if err != nil || len(tok.Headers) != 1 {
		return nil, invalid("not a signed JWT")
	}
	var c logoutClaims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil || c.SID == "" {
		return nil, invalid("no sid")
	}
	h := tok.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "logout+jwt" {
		return &c, invalid("typ %q, want logout+jwt", typ)
	}
	k, ok := r.key(ctx, h.KeyID)
	if !ok {
		return &c, invalid("unknown key %q", h.KeyID)
	}
	c = logoutClaims{}
	if err := tok.Claims(k, &c); err != nil {
		return nil, invalid("signature: %v", err)
	}
	r.mu.Lock()
	iss := r.iss
	r.mu.Unlock()
	exp := jwt.Expected{AnyAudience: jwt.Audience{r.clientID}, Time: time.Now()}
	if iss != "" {
		exp.Issuer = iss
	}
	if err := c.ValidateWithLeeway(exp, time.Minute); err != nil {
		return &c, invalid("%v", err)
	}
	if _, ok := c.Events[backchannelEvent]; !ok {
		return &c, invalid("no %s event", backchannelEvent)
	}
	if c.Nonce != nil {
		return &c, invalid("a nonce (forbidden in logout tokens)")
	}
	if c.IssuedAt == nil || c.Expiry == nil || c.ID == "" {
		return &c, invalid("iat, exp and jti are required")
	}
	return &c, nil
}

// deliver hands an arrival to the operation waiting for sid.
func (r *receiver) deliver(sid string, a arrival) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch, ok := r.waiting[sid]
	if !ok {
		r.stray++
		return
	}
	ch <- a
	delete(r.waiting, sid)
}

// expect registers a sid whose client session the caller is about to end.
func (r *receiver) expect(sid string) <-chan arrival {
	ch := make(chan arrival, 1)
	r.mu.Lock()
	r.waiting[sid] = ch
	r.mu.Unlock()
	return ch
}

func (r *receiver) forget(sid string) {
	r.mu.Lock()
	delete(r.waiting, sid)
	r.mu.Unlock()
}

// close stops the receiver and returns how many tokens arrived that no
// operation waited for.
func (r *receiver) close() int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = r.srv.Close()
	}
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stray
}
