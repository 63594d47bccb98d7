package store

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// memSink is a raft.SnapshotSink into memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Close() error  { m.closed = true; return nil }
func (m *memSink) Cancel() error { m.cancelled = true; return nil }

func persist(t testing.TB, s *Store) []byte {
	t.Helper()
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed=%v cancelled=%v, want closed only", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	a := openTemp(t, "a.db")
	logs := randomLog(t, 7, 1500)
	applyInBatches(t, a, logs[:1000], []int{64})
	want := stateHash(t, a, true)

	// Persist runs while Apply goes on; the snapshot is the state at
	// Snapshot() time.
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1000; i < len(logs); i += 16 {
			a.ApplyBatch(logs[i:min(i+16, len(logs))])
		}
	}()
	perr := snap.Persist(&sink)
	wg.Wait()
	snap.Release()
	if perr != nil {
		t.Fatal(perr)
	}
	if stateHash(t, a, true) == want {
		t.Fatalf("applying 500 more entries did not change the state; test proves nothing")
	}

	b := openTemp(t, "b.db")
	if err := b.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := stateHash(t, b, true); got != want {
		t.Fatalf("restored state hash %s, want %s", got, want)
	}
	if got := b.AppliedIndex(); got != 1000 {
		t.Fatalf("restored AppliedIndex = %d, want 1000", got)
	}
	// The restored store keeps applying where the snapshot left off and
	// ends where the original did.
	applyInBatches(t, b, logs, []int{200})
	if got, want := stateHash(t, b, true), stateHash(t, a, true); got != want {
		t.Fatalf("after catching up, hash %s, want %s", got, want)
	}
}

func TestRestoreRefusesDamagedSnapshots(t *testing.T) {
	src := openTemp(t, "src.db")
	applyInBatches(t, src, randomLog(t, 3, 600), []int{50})
	good := persist(t, src)

	dst := openTemp(t, "dst.db")
	c := openCmd(t0, "keep", "u1", storev1.Platform_PLATFORM_WEB, "d1", "tk", time.Hour, 2*time.Hour, false)
	applyOne(t, dst, mustEncode(t, c))
	before := stateHash(t, dst, true)
	idx := dst.AppliedIndex()

	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x10
	badHeader := bytes.Clone(good)
	badHeader[0] = 'X'
	cases := map[string][]byte{
		"truncated":        good[:len(good)-100],
		"truncated header": good[:10],
		"no trailer":       good[:len(good)-32],
		"bit flip":         flipped,
		"bad magic":        badHeader,
		"trailing bytes":   append(bytes.Clone(good), 0),
		"empty":            nil,
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			err := dst.Restore(io.NopCloser(bytes.NewReader(data)))
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Restore error = %v, want ErrBadSnapshot", err)
			}
			if got := stateHash(t, dst, true); got != before {
				t.Fatalf("state hash changed after a refused restore")
			}
			if got := dst.AppliedIndex(); got != idx {
				t.Fatalf("AppliedIndex = %d, want %d", got, idx)
			}
			if s, err := dst.Session("keep", t0); err != nil || s.GetId() != "keep" {
				t.Fatalf("Session(keep) = %v, %v after a refused restore", s, err)
			}
		})
	}
	// And the good one still restores.
	if err := dst.Restore(io.NopCloser(bytes.NewReader(good))); err != nil {
		t.Fatalf("Restore(good): %v", err)
	}
	if got, want := stateHash(t, dst, true), stateHash(t, src, true); got != want {
		t.Fatalf("hash after good restore %s, want %s", got, want)
	}
	if _, err := dst.Session("keep", t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Session(keep) after restore: err = %v, want ErrNotFound (old state discarded)", err)
	}
}

// Readers running during Restore never see a closed database.
func TestReadsDuringRestore(t *testing.T) {
	src := openTemp(t, "src.db")
	c := openCmd(t0, "s1", "u1", storev1.Platform_PLATFORM_WEB, "d1", "t1", time.Hour, 2*time.Hour, false)
	applyOne(t, src, mustEncode(t, c))
	snap := persist(t, src)

	dst := openTemp(t, "dst.db")
	applyOne(t, dst, mustEncode(t, c))
	stop := make(chan struct{})
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := dst.Session("s1", t0); err != nil {
					errs <- err
					return
				}
				dst.HasExpired(t0)
			}
		}()
	}
	for range 5 {
		if err := dst.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
			t.Fatalf("Restore: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("read during restore: %v", err)
	}
	// Apply works on the restored database.
	res := applyOne(t, dst, mustEncode(t, &storev1.Command{NowUnixNano: t0.UnixNano(),
		Op: &storev1.Command_EndSession{EndSession: &storev1.EndSession{SessionId: "s1", Reason: storev1.EndReason_END_REASON_LOGOUT}}}))
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		t.Fatalf("EndSession after restore: %v", res)
	}
}
