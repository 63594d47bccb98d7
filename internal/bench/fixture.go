package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"

	authv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1/authv1connect"
)

// MaxBatch is the most users or sessions one Preload call creates (the
// server's limit, store.MaxBulkLoad).
const MaxBatch = 256

// MaxKeptIDs bounds the preloaded session ids the tool keeps in memory to
// pick from (about 50 MB); beyond it, a uniform sample is kept.
const MaxKeptIDs = 1 << 20

// setup prepares sessiond scenarios: it creates users and sessions through
// the operator API, over its own HTTP client (no connection limit), so
// that preparing does not disturb the load clients' connections.
type setup struct {
	conn  Conn
	pool  *pool
	runID string
	log   io.Writer
}

func newSetup(c Conn, log io.Writer) (*setup, error) {
	if log == nil {
		log = io.Discard
	}
	p, err := newPool(c, 1)
	if err != nil {
		return nil, err
	}
	hc, err := c.HTTPClient(0)
	if err != nil {
		return nil, err
	}
	p.clients = []*http.Client{hc}
	return &setup{conn: c, pool: p, runID: randomToken(6), log: log}, nil
}

// randomToken returns n random bytes, base64url.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *setup) target(k int) string {
	_, t := s.pool.http(k)
	return t
}

func (s *setup) preloader(k int) authv1connect.PreloadServiceClient {
	hc, t := s.pool.http(k)
	return authv1connect.NewPreloadServiceClient(hc, t, s.pool.operator()...)
}

// email is the address of this run's user i.
func (s *setup) email(prefix string, i int) string {
	return fmt.Sprintf("bench-%s-%s%d@bench.example.com", strings.ToLower(s.runID), prefix, i)
}

// createUsers creates n users of this run sharing one random password:
// through Preload (one hash, 256 users a call), or, when the cluster keeps
// users in Postgres, one CreateUser call each.
func (s *setup) createUsers(ctx context.Context, n int) (emails []string, password string, err error) {
	password = randomToken(18)
	for i := range n {
		emails = append(emails, s.email("u", i))
	}
	_, _, err = s.load(ctx, int64(n), "u", password, 4, nil)
	var ce *connect.Error
	if errors.As(err, &ce) && ce.Code() == connect.CodeInvalidArgument && strings.Contains(ce.Message(), "Postgres") {
		fmt.Fprintf(s.log, "users live in Postgres: creating %d users one by one\n", n)
		return emails, password, s.createOneByOne(ctx, emails, password)
	}
	return emails, password, err
}

func (s *setup) createOneByOne(ctx context.Context, emails []string, password string) error {
	hc, t := s.pool.http(0)
	admin := authv1connect.NewUserAdminServiceClient(hc, t, s.pool.operator()...)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, e := range emails {
		g.Go(func() error {
			return retrySetup(gctx, func() error {
				_, err := admin.CreateUser(gctx, connect.NewRequest(&authv1.CreateUserRequest{
					Email: e, Password: password, DisplayName: "Bench user", OrgName: "Bench", Country: "ZZ",
					OrgType: authv1.OrgType_ORG_TYPE_CUSTOMER,
				}))
				return err
			})
		})
	}
	return g.Wait()
}

// retrySetup calls f until it succeeds, fails with another code than
// RESOURCE_EXHAUSTED (a node busy hashing passwords) or UNAVAILABLE (no
// leader or no signing key yet), or ctx ends.
func retrySetup(ctx context.Context, f func() error) error {
	for {
		err := f()
		if c := connect.CodeOf(err); err == nil || (c != connect.CodeResourceExhausted && c != connect.CodeUnavailable) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// loaded collects what a bulk load created.
type loaded struct {
	mu    sync.Mutex
	ids   []string
	seen  int64
	index uint64
	rng   *mrand.Rand
	keep  int
}

// add keeps ids, up to keep of them, as a uniform sample of all added
// (reservoir sampling).
func (l *loaded) add(ids []string, index uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.index = max(l.index, index)
	for _, id := range ids {
		l.seen++
		switch {
		case len(l.ids) < l.keep:
			l.ids = append(l.ids, id)
		default:
			if j := l.rng.Int64N(l.seen); j < int64(l.keep) {
				l.ids[j] = id
			}
		}
	}
}

// load opens total sessions, in calls of MaxBatch spread over the
// targets, concurrency calls at a time. With a password each session is
// of a new user s.email(prefix, i) with that password; without, of a user
// without a directory record. It returns at most MaxKeptIDs session ids
// (a uniform sample) and the highest log index written. progress, if set,
// is called with the sessions created so far.
func (s *setup) load(ctx context.Context, total int64, prefix, password string, concurrency int, progress func(int64)) ([]string, uint64, error) {
	keep := int(min(total, MaxKeptIDs))
	out := &loaded{keep: keep, rng: mrand.New(mrand.NewPCG(1, 2))}
	var created atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(concurrency, 1))
	for k, off := 0, int64(0); off < total; k, off = k+1, off+MaxBatch {
		size := min(int64(MaxBatch), total-off)
		req := &authv1.PreloadRequest{}
		if password != "" {
			req.Password = password
			for i := off; i < off+size; i++ {
				req.Emails = append(req.Emails, s.email(prefix, int(i)))
			}
		} else {
			req.Sessions = uint32(size)
		}
		cl := s.preloader(k)
		g.Go(func() error {
			var resp *connect.Response[authv1.PreloadResponse]
			err := retrySetup(gctx, func() (err error) {
				resp, err = cl.Preload(gctx, connect.NewRequest(req))
				return err
			})
			if err != nil {
				return fmt.Errorf("preload through %s: %w", s.target(k), err)
			}
			out.add(resp.Msg.GetSessionIds(), resp.Msg.GetIndex())
			c := created.Add(size)
			if progress != nil {
				progress(c)
			}
			return nil
		})
	}
	err := g.Wait()
	return out.ids, out.index, err
}

// PreloadResult is a bulk load's outcome.
type PreloadResult struct {
	Summary PreloadSummary
	// IDs are up to MaxKeptIDs of the opened sessions (a uniform sample).
	IDs []string
	// Index is the highest log index the load wrote.
	Index uint64
}

// Preload opens n sessions on the cluster through the operator bulk-load
// API (256 per replicated command), spread over c's targets with
// concurrency calls in flight; withUsers also creates one built-in
// directory user per session. Progress, if set, gets a line every second.
func Preload(ctx context.Context, c Conn, n int64, withUsers bool, concurrency int, progress io.Writer) (*PreloadResult, error) {
	if n <= 0 {
		return nil, errors.New("preload: n must be positive")
	}
	s, err := newSetup(c, progress)
	if err != nil {
		return nil, err
	}
	defer s.pool.close()
	password := ""
	if withUsers {
		password = randomToken(18)
	}
	start := time.Now()
	var last atomic.Int64
	stop := func() {}
	if progress != nil {
		stop = every(time.Second, func(now time.Time) {
			c := last.Load()
			fmt.Fprintf(progress, "[%6.1fs] preload: %d of %d sessions, %.0f/s\n", now.Sub(start).Seconds(), c, n, perSecond(c, now.Sub(start)))
		})
	}
	ids, idx, err := s.load(ctx, n, "p", password, concurrency, func(c int64) { last.Store(c) })
	stop()
	if err != nil {
		return nil, err
	}
	el := time.Since(start)
	sum := PreloadSummary{Sessions: n, Seconds: el.Seconds(), PerSecond: perSecond(n, el)}
	if withUsers {
		sum.Users = n
	}
	return &PreloadResult{Summary: sum, IDs: ids, Index: idx}, nil
}
