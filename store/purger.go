package store

import (
	"context"
	"time"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// Proposer replicates a command through Raft. cluster's node implements it.
type Proposer interface {
	// IsLeader reports whether this node currently leads the cluster.
	IsLeader() bool
	// Propose replicates cmd and returns the FSM's response bytes once it is
	// applied, or an error (not leader, timeout, ctx done, FSM failure).
	Propose(ctx context.Context, cmd []byte) ([]byte, error)
}

// Purger rate bounds: consecutive Purge proposals of one round are spaced by
// interval/10, clamped to [minPurgeGap, maxPurgeGap].
const (
	minPurgeGap = time.Millisecond
	maxPurgeGap = time.Second
)

// RunPurger deletes expired records through the log until ctx is done.
// Every interval, if p.IsLeader() and HasExpired(now()), it proposes Purge
// commands of limit records (stamped with now()) until a result says more
// is false, waiting interval/10 (clamped to 1 ms..1 s) between proposals so
// the log is never flooded. It stops a round at the first error or
// refusal, or when leadership is lost. It blocks; run it in a goroutine.
func (s *Store) RunPurger(ctx context.Context, p Proposer, interval time.Duration, limit uint32, now func() time.Time) {
	if interval <= 0 {
		interval = time.Minute
	}
	gap := min(max(interval/10, minPurgeGap), maxPurgeGap)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for first := true; ; first = false {
			if !first {
				t := time.NewTimer(gap)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			if !p.IsLeader() || !s.HasExpired(now()) {
				break
			}
			if !s.purgeOnce(ctx, p, limit, now) {
				break
			}
		}
	}
}

// purgeOnce proposes one Purge and reports whether more expired records
// remain.
func (s *Store) purgeOnce(ctx context.Context, p Proposer, limit uint32, now func() time.Time) bool {
	cmd, err := EncodeCommand(&storev1.Command{
		NowUnixNano: now().UnixNano(),
		Op:          &storev1.Command_Purge{Purge: &storev1.Purge{Limit: limit}},
	})
	if err != nil {
		s.log.Error("purger: encode", "error", err)
		return false
	}
	resp, err := p.Propose(ctx, cmd)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("purger: propose failed", "error", err)
		}
		return false
	}
	res, err := DecodeResult(resp)
	if err != nil {
		s.log.Error("purger: bad response", "error", err)
		return false
	}
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		s.log.Warn("purger: purge refused", "code", res.GetCode().String(), "message", res.GetMessage())
		return false
	}
	return res.GetMore()
}
