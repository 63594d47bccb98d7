package store

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// IndexOf names the index of the state a read saw while batches are
// applied concurrently: a read that sees a session never names an index
// older than the entry that opened it (an answer taken before the read
// could), and at most the index of the batch being applied.
func TestIndexOfNamesTheStateRead(t *testing.T) {
	s := openTemp(t, "indexof.db")
	now := time.Now()
	const sessions = 300
	var opened [sessions]atomic.Uint64 // the index that opens s<i>
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range sessions {
			c := openCmd(now, fmt.Sprintf("s%d", i), fmt.Sprintf("u%d", i), storev1.Platform_PLATFORM_WEB, fmt.Sprintf("d%d", i), fmt.Sprintf("t%d", i), time.Hour, 2*time.Hour, false)
			c.RequestId = fmt.Sprintf("r%d", i)
			idx := s.AppliedIndex() + 1
			opened[i].Store(idx)
			resp := s.Apply(&raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: mustEncode(t, c)})
			if r, ok := resp.([]byte); !ok {
				t.Errorf("apply s%d: %T %v", i, resp, resp)
				return
			} else if res, err := DecodeResult(r); err != nil || res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
				t.Errorf("apply s%d: %v %v", i, res, err)
				return
			}
		}
	}()
	reads := 0
	for running := true; running; reads++ {
		select {
		case <-done:
			running = false
		default:
		}
		i := reads % sessions
		var found bool
		idx := s.IndexOf(func() {
			_, err := s.Session(fmt.Sprintf("s%d", i), now)
			found = err == nil
		})
		if found && idx < opened[i].Load() {
			t.Fatalf("read %d saw s%d (opened at index %d) but IndexOf named %d", reads, i, opened[i].Load(), idx)
		}
		if applied := s.AppliedIndex(); idx > applied+1 {
			t.Fatalf("read %d: IndexOf named %d, beyond the entry being applied (applied %d)", reads, idx, applied)
		}
	}
	if reads < sessions {
		t.Logf("only %d reads ran alongside the applies", reads)
	}
}
