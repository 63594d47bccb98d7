package authsvc

import (
	"context"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/authsvc/throttle"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// FailureState is the part of the replicated store the throttle reads.
// *store.Store implements it.
type FailureState interface {
	LoginFailures(key []byte, now time.Time) (uint32, time.Time, error)
}

// throttleStore keeps the throttle's failure counts in the replicated
// store: counts are read locally and written through Raft
// (RecordLoginFailure, ClearLoginFailures), so every node sees every
// node's failures.
type throttleStore struct {
	c   Cluster
	st  FailureState
	now func() time.Time
}

// NewThrottleStore returns a throttle.Store over the replicated store: the
// login throttle of every node (and the service-client secret throttle of
// api/callerauth) built on it counts failures cluster-wide.
func NewThrottleStore(c Cluster, st FailureState) throttle.Store {
	return &throttleStore{c: c, st: st, now: time.Now}
}

func (t *throttleStore) Failures(k throttle.Key, now time.Time) (uint32, time.Time, error) {
	return t.st.LoginFailures(k[:], now)
}

func (t *throttleStore) RecordFailure(ctx context.Context, keys []throttle.Key, window time.Duration) error {
	return t.propose(ctx, &storev1.Command{Op: &storev1.Command_RecordLoginFailure{RecordLoginFailure: &storev1.RecordLoginFailure{
		Keys: rawKeys(keys), WindowNanos: int64(window),
	}}})
}

func (t *throttleStore) ClearFailures(ctx context.Context, keys []throttle.Key) error {
	return t.propose(ctx, &storev1.Command{Op: &storev1.Command_ClearLoginFailures{ClearLoginFailures: &storev1.ClearLoginFailures{
		Keys: rawKeys(keys),
	}}})
}

func (t *throttleStore) propose(ctx context.Context, cmd *storev1.Command) error {
	_, res, err := proposeCommand(ctx, t.c, t.now(), cmd)
	if err != nil {
		return fmt.Errorf("throttle store: %w", err)
	}
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		return fmt.Errorf("throttle store: refused: %s: %s", res.GetCode(), res.GetMessage())
	}
	return nil
}

func rawKeys(keys []throttle.Key) [][]byte {
	out := make([][]byte, len(keys))
	for i := range keys {
		out[i] = keys[i][:]
	}
	return out
}
