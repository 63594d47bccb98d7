//go:build linux

package main

// The clients of TestChaos: workers bound to one node each issue logins,
// revokes and checks at every consistency level on a small rotating set of
// users, and record every operation with its answer in a chaos.History.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	authv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1"
	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
	"github.com/sessiond/sessiond/internal/chaos"
)

const (
	chaosPassword = "chaos-password-0123456789"
	// Client deadlines: a request that takes this long is counted as a hang.
	chaosWriteTimeout = 8 * time.Second
	chaosReadTimeout  = 5 * time.Second
	// chaosWorkersPerNode clients are bound to each member.
	chaosWorkersPerNode = 3
	// chaosActiveUsers users take operations at a time; one is retired
	// after chaosOpsPerUser operations or chaosUnknownPerUser writes of
	// unknown outcome (each stays pending to the end of the history), which
	// bounds porcupine's work per user. chaosReadyUsers wait to replace
	// them, enough for an outage (creating a user is a write too).
	chaosActiveUsers    = 4
	chaosReadyUsers     = 8
	chaosOpsPerUser     = 80
	chaosUnknownPerUser = 3
)

// chaosSlotPlatforms are the platforms of the model's slots.
var chaosSlotPlatforms = [chaos.Slots]authv1.Platform{authv1.Platform_PLATFORM_WEB, authv1.Platform_PLATFORM_IOS, authv1.Platform_PLATFORM_ANDROID}

var chaosLevels = []struct {
	level chaos.Level
	rc    clusterv1.ReadConsistency
}{
	{chaos.Stale, clusterv1.ReadConsistency_READ_CONSISTENCY_STALE},
	{chaos.Default, clusterv1.ReadConsistency_READ_CONSISTENCY_DEFAULT},
	{chaos.Linearizable, clusterv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE},
}

// chaosUser is a user of the built-in directory and the sessions logins
// opened for it.
type chaosUser struct {
	id, email string

	mu       sync.Mutex
	sessions []string
	ops      int
	unknown  int // writes of unknown outcome
}

// count records a write's outcome.
func (u *chaosUser) count(op chaos.Op) {
	if op.Outcome == chaos.Unknown {
		u.mu.Lock()
		u.unknown++
		u.mu.Unlock()
	}
}

func (u *chaosUser) addSession(id string) {
	u.mu.Lock()
	u.sessions = append(u.sessions, id)
	u.mu.Unlock()
}

// pickSession returns one of the user's sessions, usually a recent one
// (more likely live), or "" if it has none.
func (u *chaosUser) pickSession(rng *rand.Rand) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := len(u.sessions)
	switch {
	case n == 0:
		return ""
	case rng.IntN(10) < 7:
		return u.sessions[n-1-rng.IntN(min(n, chaos.Slots+1))]
	}
	return u.sessions[rng.IntN(n)]
}

// chaosWorkload runs the clients and keeps the users.
type chaosWorkload struct {
	c    *chaosCluster
	h    *chaos.History
	seed uint64

	clients  atomic.Int64
	logins   atomic.Int64 // acknowledged logins
	badCreds atomic.Int64 // logins refused as invalid credentials

	mu      sync.Mutex
	active  []*chaosUser
	ready   []*chaosUser
	all     []*chaosUser
	created int
	workers map[string]chan struct{} // node id -> closed to stop its workers
	stopped bool                     // stopAll was called: no new workers
	wg      sync.WaitGroup
}

func newChaosWorkload(c *chaosCluster, h *chaos.History, seed uint64) *chaosWorkload {
	return &chaosWorkload{c: c, h: h, seed: seed, workers: map[string]chan struct{}{}}
}

// users returns every user created.
func (w *chaosWorkload) users() []*chaosUser {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*chaosUser(nil), w.all...)
}

// createUser creates a user through a random member, retrying until ctx
// ends.
func (w *chaosWorkload) createUser(ctx context.Context, rng *rand.Rand) (*chaosUser, error) {
	w.mu.Lock()
	w.created++
	email := fmt.Sprintf("chaos-%d-%d@example.com", w.seed, w.created)
	w.mu.Unlock()
	for {
		ns := w.c.live()
		if len(ns) > 0 {
			n := ns[rng.IntN(len(ns))]
			cctx, cancel := context.WithTimeout(ctx, chaosWriteTimeout)
			res, err := n.users.CreateUser(cctx, connect.NewRequest(&authv1.CreateUserRequest{
				Email: email, Password: chaosPassword, DisplayName: "Chaos", OrgName: "Chaos Monkeys",
				Country: "TH", OrgType: authv1.OrgType_ORG_TYPE_CUSTOMER,
			}))
			cancel()
			if err == nil {
				u := &chaosUser{id: res.Msg.GetUser().GetId(), email: email}
				w.mu.Lock()
				w.all = append(w.all, u)
				w.mu.Unlock()
				return u, nil
			}
			if connect.CodeOf(err) == connect.CodeAlreadyExists {
				// An earlier attempt went through without an answer: use a
				// new address rather than look it up.
				return w.createUser(ctx, rng)
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("creating user %s: %w", email, ctx.Err())
		case <-time.After(200 * time.Millisecond): // retry interval
		}
	}
}

// fillUsers creates users until chaosActiveUsers are active and
// chaosReadyUsers wait; unless once, it then keeps the waiting line full
// until ctx ends.
func (w *chaosWorkload) fillUsers(ctx context.Context, rng *rand.Rand, once bool) error {
	for ctx.Err() == nil {
		w.mu.Lock()
		need := len(w.active) < chaosActiveUsers || len(w.ready) < chaosReadyUsers
		w.mu.Unlock()
		if !need {
			if once {
				return nil
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond): // polling interval
			}
			continue
		}
		u, err := w.createUser(ctx, rng)
		if err != nil {
			return err
		}
		w.mu.Lock()
		if len(w.active) < chaosActiveUsers {
			w.active = append(w.active, u)
		} else {
			w.ready = append(w.ready, u)
		}
		w.mu.Unlock()
	}
	return ctx.Err()
}

// pickUser returns an active user, retiring one that has taken its share
// of operations (or of unknown outcomes) when a fresh one is waiting.
func (w *chaosWorkload) pickUser(rng *rand.Rand) *chaosUser {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := rng.IntN(len(w.active))
	u := w.active[i]
	u.mu.Lock()
	u.ops++
	retire := u.ops >= chaosOpsPerUser || u.unknown >= chaosUnknownPerUser
	u.mu.Unlock()
	if retire && len(w.ready) > 0 {
		w.active[i], w.ready = w.ready[0], w.ready[1:]
	}
	return u
}

// startWorkers starts the clients bound to node n (unless stopAll was
// called).
func (w *chaosWorkload) startWorkers(n *chaosNode) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.workers[n.id]; ok || w.stopped {
		return
	}
	stop := make(chan struct{})
	w.workers[n.id] = stop
	for range chaosWorkersPerNode {
		id := int(w.clients.Add(1)) - 1
		rng := rand.New(rand.NewPCG(w.seed, uint64(id)))
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				op := w.randomOp(id, n, rng)
				// Think time: keeps a 2-core machine from saturating; longer
				// when the node is down.
				pause := time.Duration(5+rng.IntN(20)) * time.Millisecond
				switch {
				case op.Outcome == chaos.Failed && strings.Contains(op.Err, "connection refused"):
					pause = 100 * time.Millisecond
				case op.Outcome == chaos.Unknown:
					// Back off as a client would before retrying; it also
					// keeps writes of unknown outcome, which porcupine must
					// place, few.
					pause = 300 * time.Millisecond
				}
				time.Sleep(pause)
			}
		}()
	}
}

// stopWorkers stops the clients bound to node id (they finish their
// operation in flight).
func (w *chaosWorkload) stopWorkers(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if stop, ok := w.workers[id]; ok {
		close(stop)
		delete(w.workers, id)
	}
}

// stopAll stops every client and waits for them; no client starts after.
func (w *chaosWorkload) stopAll() {
	w.mu.Lock()
	w.stopped = true
	for id, stop := range w.workers {
		close(stop)
		delete(w.workers, id)
	}
	w.mu.Unlock()
	w.wg.Wait()
}

// randomOp runs one operation: 12% logins, 8% revokes, 2% revoke-user,
// 60% session checks and 18% user checks, reads at a random level.
func (w *chaosWorkload) randomOp(client int, n *chaosNode, rng *rand.Rand) chaos.Op {
	u := w.pickUser(rng)
	lvl := chaosLevels[rng.IntN(len(chaosLevels))]
	p := rng.IntN(100)
	sid := u.pickSession(rng)
	switch {
	case p < 12 || sid == "":
		return w.login(client, n, u, rng.IntN(chaos.Slots), fmt.Sprintf("dev-%d-%d", client, rng.Uint32()))
	case p < 20:
		return w.revoke(client, n, u, sid)
	case p < 22:
		return w.revokeUser(client, n, u)
	case p < 82:
		return w.check(client, n, u, sid, lvl.level, lvl.rc, false)
	}
	return w.checkUser(client, n, u, lvl.level, lvl.rc, false)
}

// finish records op with the outcome of err.
func (w *chaosWorkload) finish(op chaos.Op, err error) chaos.Op {
	op.Return = w.h.Now()
	if err != nil {
		op.Outcome = chaosOutcome(err, op.Kind.IsWrite())
		op.Err = err.Error()
		if len(op.Err) > 200 {
			op.Err = op.Err[:200]
		}
	}
	op.ID = w.h.Add(op)
	return op
}

// chaosOutcome classifies an error: Failed when the request certainly
// changed nothing (never sent, or refused before any write), else Unknown.
// Reads change nothing either way; a failed read is Failed.
func chaosOutcome(err error, write bool) chaos.Outcome {
	if !write {
		return chaos.Failed
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return chaos.Failed
	}
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument, connect.CodeUnauthenticated, connect.CodePermissionDenied,
		connect.CodeResourceExhausted, connect.CodeAlreadyExists, connect.CodeFailedPrecondition:
		return chaos.Failed
	case connect.CodeUnavailable:
		// authsvc's code prefix: the directory lookup before any write.
		var ce *connect.Error
		if errors.As(err, &ce) && strings.HasPrefix(ce.Message(), "directory_unavailable:") {
			return chaos.Failed
		}
	}
	return chaos.Unknown
}

func (w *chaosWorkload) login(client int, n *chaosNode, u *chaosUser, slot int, device string) chaos.Op {
	op := chaos.Op{Client: client, Node: n.id, Kind: chaos.KindLogin, User: u.id, Slot: slot, Call: w.h.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), chaosWriteTimeout)
	defer cancel()
	res, err := n.auth.Login(ctx, connect.NewRequest(&authv1.LoginRequest{
		Email: u.email, Password: chaosPassword, Platform: chaosSlotPlatforms[slot], DeviceId: device, Force: true,
	}))
	if err == nil {
		op.Session, op.Index = res.Msg.GetTokens().GetSessionId(), res.Msg.GetTokens().GetIndex()
	} else if connect.CodeOf(err) == connect.CodeUnauthenticated {
		w.badCreds.Add(1)
	}
	op = w.finish(op, err)
	if op.Outcome == chaos.OK {
		u.addSession(op.Session)
		w.logins.Add(1)
	}
	u.count(op)
	return op
}

func (w *chaosWorkload) revoke(client int, n *chaosNode, u *chaosUser, sid string) chaos.Op {
	op := chaos.Op{Client: client, Node: n.id, Kind: chaos.KindRevoke, User: u.id, Session: sid, Call: w.h.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), chaosWriteTimeout)
	defer cancel()
	res, err := n.session.RevokeSession(ctx, connect.NewRequest(&sessionv1.RevokeSessionRequest{SessionId: sid}))
	var ce *connect.Error
	switch {
	case err == nil:
		op.Index = res.Msg.GetIndex()
	case errors.As(err, &ce) && ce.Code() == connect.CodeUnauthenticated && strings.HasPrefix(ce.Message(), "session_ended:"):
		op.Reason, err = chaos.ReasonAlreadyEnded, nil // a refusal: no index
	case errors.As(err, &ce) && ce.Code() == connect.CodeNotFound:
		op.Reason, err = chaos.ReasonNotFound, nil
	}
	op = w.finish(op, err)
	u.count(op)
	return op
}

func (w *chaosWorkload) revokeUser(client int, n *chaosNode, u *chaosUser) chaos.Op {
	op := chaos.Op{Client: client, Node: n.id, Kind: chaos.KindRevokeUser, User: u.id, Call: w.h.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), chaosWriteTimeout)
	defer cancel()
	res, err := n.session.RevokeUserSessions(ctx, connect.NewRequest(&sessionv1.RevokeUserSessionsRequest{UserId: u.id}))
	if err == nil {
		op.Ended, op.Index = int(res.Msg.GetEnded()), res.Msg.GetIndex()
	}
	op = w.finish(op, err)
	u.count(op)
	return op
}

func (w *chaosWorkload) check(client int, n *chaosNode, u *chaosUser, sid string, lvl chaos.Level, rc clusterv1.ReadConsistency, final bool) chaos.Op {
	op := chaos.Op{Client: client, Node: n.id, Kind: chaos.KindCheck, Level: lvl, User: u.id, Session: sid, Final: final, Call: w.h.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), chaosReadTimeout)
	defer cancel()
	res, err := n.session.CheckSession(ctx, connect.NewRequest(&sessionv1.CheckSessionRequest{
		SessionId: sid, Read: &clusterv1.ReadOptions{Consistency: rc},
	}))
	if err == nil {
		op.Active, op.Reason, op.Index = res.Msg.GetActive(), res.Msg.GetReason(), res.Msg.GetIndex()
	}
	return w.finish(op, err)
}

func (w *chaosWorkload) checkUser(client int, n *chaosNode, u *chaosUser, lvl chaos.Level, rc clusterv1.ReadConsistency, final bool) chaos.Op {
	op := chaos.Op{Client: client, Node: n.id, Kind: chaos.KindCheckUser, Level: lvl, User: u.id, Final: final, Call: w.h.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), chaosReadTimeout)
	defer cancel()
	res, err := n.session.IsRevoked(ctx, connect.NewRequest(&sessionv1.IsRevokedRequest{
		Subject: &sessionv1.IsRevokedRequest_UserId{UserId: u.id}, Read: &clusterv1.ReadOptions{Consistency: rc},
	}))
	if err == nil {
		op.Revoked, op.Index = res.Msg.GetRevoked(), res.Msg.GetIndex()
	}
	return w.finish(op, err)
}
