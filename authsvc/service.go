// Package authsvc is the auth service: it logs users in against the user
// directory, issues PASETO access tokens and JWT refresh tokens, rotates and
// revokes them, and answers whether a token is still valid. Sessions,
// refresh tokens, revocations and signing keys live in the replicated store;
// the service reaches the cluster only through the small interfaces below.
package authsvc

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sessiond/sessiond/authsvc/keys"
	"github.com/sessiond/sessiond/authsvc/notify"
	"github.com/sessiond/sessiond/authsvc/password"
	"github.com/sessiond/sessiond/authsvc/throttle"
	"github.com/sessiond/sessiond/authsvc/users"
	"github.com/sessiond/sessiond/clients/go/policy"
	"github.com/sessiond/sessiond/clients/go/token"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	"github.com/sessiond/sessiond/store"
)

// Cluster is what the service needs of the cluster: replicate a command
// (from any node; followers forward to the leader) and make a local read
// fresh enough.
type Cluster interface {
	// Propose replicates cmd and returns its log index and the state
	// machine's encoded result.
	Propose(ctx context.Context, cmd []byte) (index uint64, result []byte, err error)
	// IsLeader reports whether this node leads (key rotation runs there).
	IsLeader() bool
	// Sync waits until the local state reflects every write acknowledged
	// before the call (a linearizable read barrier).
	Sync(ctx context.Context) error
}

// State is the local replicated state the service reads. *store.Store
// implements it. Every read takes the time to judge expiry by.
type State interface {
	Session(id string, now time.Time) (*storev1.Session, error)
	UserSessions(userID string, now time.Time) ([]*storev1.Session, error)
	RefreshToken(idHash []byte, now time.Time) (*storev1.RefreshToken, error)
	Revocation(jti string, now time.Time) (*storev1.Revocation, error)
	UserCutoff(userID string, now time.Time) (int64, error)
	SigningKeys(now time.Time) ([]*storev1.SigningKey, error)
	TokenStatus(sessionID, userID, jti string, now time.Time) (store.TokenStatus, error)
	// AuthCode returns an OpenID Provider authorization code record by the
	// SHA-256 of the code.
	AuthCode(hash []byte, now time.Time) (*storev1.AuthCode, error)
	AppliedIndex() uint64
	// IndexOf runs read and returns the applied index of the state it
	// read (read may run more than once).
	IndexOf(read func()) uint64
}

// Config configures the service. Durations must be positive; New checks.
type Config struct {
	Issuer    string
	Audience  string
	AccessTTL time.Duration
	// MaxAccessLifetime bounds the lifetime (exp - iat) of the access
	// tokens this service accepts; zero means DefaultMaxAccessLifetime.
	// New refuses an AccessTTL above it (ErrLifetimeTooLong): the service
	// never issues a token it would refuse.
	MaxAccessLifetime time.Duration
	RefreshTTL        time.Duration
	SessionIdle       time.Duration
	SessionAbsolute   time.Duration
	RefreshGrace      time.Duration
	KeyRotation       time.Duration
	Signup            bool
	JWTAccessTokens   bool
	// Region and NodeID are stamped into the sessions this node opens.
	Region string
	NodeID string
}

// Deps are the service's collaborators.
type Deps struct {
	Cluster   Cluster
	State     State
	Directory users.Directory
	Hasher    *password.Hasher
	KEK       keys.KEK
	Policy    *policy.Policy
	Throttle  *throttle.Limiter
	Notifier  *notify.Dispatcher // may be nil
	// OnTokenError, if set, is told of every token a client presented
	// that was refused (an invalid, expired or reused refresh token), with
	// the client's address and the refusal's code, for the alerts on
	// repeated token errors from one source. It must not block.
	OnTokenError func(ip, code string)
	// Upstream are the upstream identity providers (upstream.go); nil:
	// none. State must then also implement LinkState.
	Upstream *Upstream
	Logger   *slog.Logger // audit events go here
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service implements the auth flows. It is safe for concurrent use.
type Service struct {
	cfg  Config
	d    Deps
	now  func() time.Time
	keys *keyCache
	ver  *verifier
	// counts are this node's successful logins and refreshes (Counts).
	counts struct{ logins, refreshes atomic.Uint64 }
}

// DefaultMaxAccessLifetime is Config.MaxAccessLifetime when zero: the
// longest AccessTTL New accepts.
const DefaultMaxAccessLifetime = 30 * time.Minute

// ErrLifetimeTooLong is returned (wrapped) by New for a configuration that
// would issue access tokens longer-lived than it accepts, and is the cause
// of a check's ReasonLifetimeTooLong.
var ErrLifetimeTooLong = token.ErrLifetimeTooLong

// New returns a service.
func New(cfg Config, d Deps) (*Service, error) {
	if cfg.MaxAccessLifetime == 0 {
		cfg.MaxAccessLifetime = DefaultMaxAccessLifetime
	}
	switch {
	case cfg.MaxAccessLifetime < 0:
		return nil, fmt.Errorf("authsvc: max access lifetime %s: want > 0", cfg.MaxAccessLifetime)
	case cfg.AccessTTL > cfg.MaxAccessLifetime:
		return nil, fmt.Errorf("authsvc: access TTL %s exceeds the max access lifetime %s: %w", cfg.AccessTTL, cfg.MaxAccessLifetime, ErrLifetimeTooLong)
	case cfg.Issuer == "" || cfg.Audience == "":
		return nil, fmt.Errorf("authsvc: issuer and audience are required")
	case cfg.AccessTTL <= 0 || cfg.AccessTTL > 30*time.Minute:
		return nil, fmt.Errorf("authsvc: access TTL %s: want (0, 30m]", cfg.AccessTTL)
	case cfg.RefreshTTL <= 0 || cfg.SessionIdle <= 0 || cfg.SessionAbsolute < cfg.SessionIdle:
		return nil, fmt.Errorf("authsvc: refresh TTL, idle and absolute session lifetimes must be positive, idle <= absolute")
	case d.Cluster == nil || d.State == nil || d.Directory == nil || d.Hasher == nil:
		return nil, fmt.Errorf("authsvc: cluster, state, directory and hasher are required")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Policy == nil {
		d.Policy = &policy.Policy{}
	}
	s := &Service{cfg: cfg, d: d, now: d.Now}
	s.keys = newKeyCache(d.State, d.KEK, d.Logger, func(kid, why string) {
		s.alert(notify.Event{Kind: notify.KindUntrustedKey, Detail: "signing key " + kid + " refused: " + why, At: s.now()})
	})
	s.ver = newVerifier(s, 1<<16)
	return s, nil
}

// propose replicates one command stamped with now and a fresh request id
// and returns the decoded result.
func (s *Service) propose(ctx context.Context, now time.Time, cmd *storev1.Command) (uint64, *storev1.Result, error) {
	idx, res, err := proposeCommand(ctx, s.d.Cluster, now, cmd)
	var pe *proposeError
	switch {
	case err == nil:
		return idx, res, nil
	case !errors.As(err, &pe):
		return 0, nil, s.internal(err)
	case pe.encode:
		return 0, nil, wrapErr(KindInvalid, "invalid_request", "the request cannot be encoded", pe.err)
	default:
		return 0, nil, clusterUnavailable("the cluster did not accept the write", pe.err)
	}
}

// proposeError is an encoding failure (encode) or the cluster's refusal of
// a write, as proposeCommand returns them.
type proposeError struct {
	encode bool
	err    error
}

func (e *proposeError) Error() string { return e.err.Error() }
func (e *proposeError) Unwrap() error { return e.err }

// proposeCommand stamps cmd with now and a request id (unless it has one),
// replicates it through c and decodes the state machine's result: the one
// write path of the service, the built-in directory and the throttle store.
// The index is that of the entry that applied cmd: the first one when the
// cluster retried the write and the log holds it twice.
// An encoding failure or a refused write is a *proposeError; a result that
// does not decode is returned as is.
func proposeCommand(ctx context.Context, c Cluster, now time.Time, cmd *storev1.Command) (uint64, *storev1.Result, error) {
	cmd.NowUnixNano = now.UnixNano()
	if cmd.RequestId == "" {
		cmd.RequestId = sortableID(now)
	}
	raw, err := store.EncodeCommand(cmd)
	if err != nil {
		return 0, nil, &proposeError{encode: true, err: err}
	}
	idx, out, err := c.Propose(ctx, raw)
	if err != nil {
		return 0, nil, &proposeError{err: err}
	}
	res, err := store.DecodeResult(out)
	if err != nil {
		return 0, nil, err
	}
	if i := res.GetIndex(); i != 0 {
		// The entry that applied the command: earlier than idx when the
		// cluster retried the write and the repeat was deduplicated.
		idx = i
	}
	return idx, res, nil
}

// clusterUnavailable is the error of a write or consistent read the
// cluster did not serve: msg, then why when the cluster says (no leader
// since when, how many voters it reaches: an error with a Reason method,
// as cluster.UnavailableError), then "retry".
func clusterUnavailable(msg string, err error) *Error {
	var why interface {
		error
		Reason() string
	}
	if errors.As(err, &why) {
		msg += ": " + why.Reason()
	}
	return wrapErr(KindUnavailable, "cluster_unavailable", msg+"; retry", err)
}

// audit writes one structured audit event. It never logs secrets.
func (s *Service) audit(ctx context.Context, event string, attrs ...slog.Attr) {
	attrs = append(attrs, slog.String("event", event), slog.String("node", s.cfg.NodeID), slog.String("region", s.cfg.Region))
	s.d.Logger.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
}

// alert sends a security event to the notifiers without blocking.
func (s *Service) alert(ev notify.Event) {
	if s.d.Notifier == nil {
		return
	}
	ev.Region, ev.Node = s.cfg.Region, s.cfg.NodeID
	s.d.Notifier.Dispatch(ev)
}

// randomID returns 128 random bits, base64url without padding.
// sortableID returns a new id that sorts by its time: now in nanoseconds
// (8 bytes, big-endian) and 80 random bits, in base32 with the extended hex
// alphabet (order-preserving), 29 characters. Records keyed by such ids are
// inserted at the end of their bbolt bucket, so the commands of one
// transaction share its last pages instead of each dirtying a page of its
// own, as random keys do. The creation time it shows is no secret (the
// session's tokens carry it too).
func sortableID(now time.Time) string {
	var b [18]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	if _, err := rand.Read(b[8:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the kernel's RNG does not fail
	}
	return sortableEncoding.EncodeToString(b[:])
}

var sortableEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

func randomID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the kernel's RNG does not fail
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}
