package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// localProposer applies proposals straight to a store, as a one-node
// cluster would.
type localProposer struct {
	s        *Store
	leader   atomic.Bool
	mu       sync.Mutex
	proposed []*storev1.Command
	leaderQs atomic.Int64
}

func (p *localProposer) IsLeader() bool { p.leaderQs.Add(1); return p.leader.Load() }

func (p *localProposer) Propose(_ context.Context, cmd []byte) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := new(storev1.Command)
	if err := protoUnmarshal(cmd, c); err != nil {
		return nil, err
	}
	p.proposed = append(p.proposed, c)
	resp := p.s.Apply(&raft.Log{Index: p.s.AppliedIndex() + 1, Term: 1, Type: raft.LogCommand, Data: cmd})
	if err, ok := resp.(error); ok {
		return nil, err
	}
	b, ok := resp.([]byte)
	if !ok {
		return nil, errors.New("unexpected response")
	}
	return b, nil
}

func (p *localProposer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.proposed)
}

func TestPurgerDeletesExpiredRecordsInBatchesWhileLeader(t *testing.T) {
	s := openTemp(t, "s.db")
	for i := range 10 {
		c := &storev1.Command{NowUnixNano: t0.UnixNano(), Op: &storev1.Command_RevokeToken{RevokeToken: &storev1.RevokeToken{
			Revocation: &storev1.Revocation{Jti: string(rune('a' + i)), ExpiresUnixNano: t0.Add(time.Minute).UnixNano()}}}}
		applyOne(t, s, mustEncode(t, c))
	}
	later := t0.Add(2 * time.Minute)
	var clock atomic.Int64
	clock.Store(later.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }

	p := &localProposer{s: s}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.RunPurger(ctx, p, 5*time.Millisecond, 3, now)
	}()

	// A follower proposes nothing.
	waitFor(t, 5*time.Second, func() bool { return p.leaderQs.Load() >= 3 })
	if n := p.count(); n != 0 {
		t.Fatalf("non-leader proposed %d commands, want 0", n)
	}
	if !s.HasExpired(later) {
		t.Fatalf("HasExpired = false with 10 expired revocations")
	}

	p.leader.Store(true)
	waitFor(t, 5*time.Second, func() bool { return !s.HasExpired(later) })
	cancel()
	<-done

	// 10 records, limit 3: exactly 4 proposals (3+3+3+1), each stamped by
	// the injected clock, none once nothing had expired.
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.proposed) != 4 {
		t.Fatalf("proposed %d purge commands, want 4", len(p.proposed))
	}
	for _, c := range p.proposed {
		if c.GetPurge().GetLimit() != 3 || c.GetNowUnixNano() != later.UnixNano() {
			t.Fatalf("proposed %v, want Purge{limit:3} stamped %d", c, later.UnixNano())
		}
	}
	if _, err := s.Revocation("a", t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Revocation(a) at t0 after purge: err = %v, want ErrNotFound (record deleted)", err)
	}
}
