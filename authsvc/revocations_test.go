package authsvc

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func snapshotOf(evs []RevocationEvent, idx uint64) SnapshotFunc {
	return func() ([]RevocationEvent, uint64, error) { return evs, idx, nil }
}

func sessionEvent(idx uint64, id string) RevocationEvent {
	return RevocationEvent{Index: idx, Kind: RevokedSession, ID: id, Expires: time.Unix(1e9, 0)}
}

// recv takes one batch or fails.
func recv(t *testing.T, w *Watch) RevocationBatch {
	t.Helper()
	select {
	case b, ok := <-w.C():
		if !ok {
			t.Fatalf("watch closed: %v", w.Err())
		}
		return b
	case <-time.After(5 * time.Second):
		t.Fatal("no batch within 5s")
	}
	return RevocationBatch{}
}

// A watcher that never reads is dropped with ErrSlowConsumer once its
// bounded queue is full; a watcher that reads is unaffected, and the
// dropped one resumes from its last index.
func TestRevocationsDropSlowConsumer(t *testing.T) {
	h := NewRevocations(100, 4, snapshotOf(nil, 0))
	h.Reset(10)
	slow, _ := h.Subscribe(10)
	fast, _ := h.Subscribe(10)
	if b := recv(t, fast); b.Snapshot || len(b.Events) != 0 || b.Index != 10 {
		t.Fatalf("fast's first batch = %+v, want an empty backlog at 10", b)
	}
	for i := uint64(11); i <= 20; i++ {
		h.Publish(i, []RevocationEvent{sessionEvent(i, "s")})
		if b := recv(t, fast); b.Index != i {
			t.Fatalf("fast got index %d, want %d", b.Index, i)
		}
	}
	n := 0
	for open := true; open; { // drains what was queued, then sees the close
		select {
		case _, open = <-slow.C():
			if open {
				n++
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the slow watcher was not dropped")
		}
	}
	if !errors.Is(slow.Err(), ErrSlowConsumer) {
		t.Fatalf("slow watcher ended with %v, want ErrSlowConsumer", slow.Err())
	}
	if n > 4 {
		t.Errorf("slow watcher held %d batches, want at most its queue of 4", n)
	}
	again, _ := h.Subscribe(15)
	b := recv(t, again)
	if b.Snapshot || len(b.Events) != 5 || b.Events[0].Index != 16 || b.Index != 20 {
		t.Fatalf("resume from 15 = %+v, want events 16..20 without a snapshot", b)
	}
}

// A watcher resuming from before what the hub keeps, from 0, or from the
// future, first gets a snapshot that replaces its set.
func TestRevocationsSnapshotWhenBehindOrAhead(t *testing.T) {
	set := []RevocationEvent{sessionEvent(3, "a"), sessionEvent(7, "b")}
	h := NewRevocations(2, 8, snapshotOf(set, 9))
	h.Reset(5)
	for i := uint64(6); i <= 9; i++ {
		h.Publish(i, []RevocationEvent{sessionEvent(i, "x")})
	}
	for _, from := range []uint64{0, 4, 6, 1000} {
		w, _ := h.Subscribe(from)
		b := recv(t, w)
		if !b.Snapshot || len(b.Events) != 2 || b.Index != 9 {
			t.Errorf("Subscribe(%d) first batch = %+v, want the snapshot of 2 events at 9", from, b)
		}
		w.Close()
	}
	w, _ := h.Subscribe(8) // the ring still holds 8 and 9
	if b := recv(t, w); b.Snapshot || len(b.Events) != 1 || b.Events[0].Index != 9 {
		t.Errorf("Subscribe(8) = %+v, want event 9 from the ring", b)
	}
}

// Once the ring has wrapped several times, a watcher resuming inside it
// gets exactly the newest events in log order, and one resuming before it
// gets a snapshot.
func TestRevocationsRingWraps(t *testing.T) {
	h := NewRevocations(5, 8, snapshotOf(nil, 0))
	h.Reset(0)
	// Two events per index from 1 to 20: the ring keeps 18b, 19a, 19b, 20a, 20b.
	for i := uint64(1); i <= 20; i++ {
		h.Publish(i, []RevocationEvent{sessionEvent(i, "a"), sessionEvent(i, "b")})
	}
	w, _ := h.Subscribe(18)
	b := recv(t, w)
	var got []string
	for _, e := range b.Events {
		got = append(got, fmt.Sprintf("%d%s", e.Index, e.ID))
	}
	if b.Snapshot || b.Index != 20 || strings.Join(got, " ") != "19a 19b 20a 20b" {
		t.Errorf("Subscribe(18) = snapshot %v at %d with %v, want events 19a 19b 20a 20b at 20", b.Snapshot, b.Index, got)
	}
	// 18a was overwritten: resuming from 17 would miss it.
	w, _ = h.Subscribe(17)
	if b := recv(t, w); !b.Snapshot {
		t.Errorf("Subscribe(17) = %+v, want a snapshot (event 18a is gone from the ring)", b)
	}
}

// BenchmarkRevocationsPublishFullRing is the cost of one revocation on a
// node whose ring is full (every node after its first 65,536
// revocations): it must not grow with the ring's size.
func BenchmarkRevocationsPublishFullRing(b *testing.B) {
	for _, capacity := range []int{1 << 10, 1 << 16} {
		b.Run(fmt.Sprint(capacity), func(b *testing.B) {
			h := NewRevocations(capacity, 8, snapshotOf(nil, 0))
			idx := uint64(0)
			for range capacity {
				idx++
				h.Publish(idx, []RevocationEvent{sessionEvent(idx, "s")})
			}
			b.ReportAllocs()
			for b.Loop() {
				idx++
				h.Publish(idx, []RevocationEvent{sessionEvent(idx, "s")})
			}
		})
	}
}

// A hub that keeps no events still serves live watchers, and sends a
// resuming one a snapshot.
func TestRevocationsZeroCapacity(t *testing.T) {
	h := NewRevocations(0, 8, snapshotOf([]RevocationEvent{sessionEvent(2, "a")}, 2))
	h.Reset(0)
	live, _ := h.Subscribe(0)
	if b := recv(t, live); !b.Snapshot {
		t.Fatalf("first batch = %+v, want a snapshot", b)
	}
	h.Publish(2, []RevocationEvent{sessionEvent(2, "a")})
	if b := recv(t, live); b.Snapshot || len(b.Events) != 1 || b.Events[0].ID != "a" {
		t.Errorf("live batch = %+v, want event a", b)
	}
	w, _ := h.Subscribe(1)
	if b := recv(t, w); !b.Snapshot {
		t.Errorf("Subscribe(1) = %+v, want a snapshot (the hub keeps nothing)", b)
	}
}
