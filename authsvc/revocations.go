package authsvc

import (
	"errors"
	"sync"
	"time"

	"github.com/sessiond/sessiond/store"
)

// RevocationKind says what a revocation event revokes.
type RevocationKind int

// The kinds of revocation events.
const (
	// RevokedSession: a session ended; every token of it is invalid.
	RevokedSession RevocationKind = iota + 1
	// RevokedUser: every token of a user issued before NotBefore is invalid.
	RevokedUser
	// RevokedToken: one token id is invalid.
	RevokedToken
)

// RevocationEvent is one revocation or session end, at the log index of the
// command that caused it.
type RevocationEvent struct {
	Index     uint64
	Kind      RevocationKind
	ID        string
	NotBefore time.Time // RevokedUser only
	Expires   time.Time // when no token it affects can still be valid
	Reason    string
}

// RevocationBatch is what a watcher receives: either a snapshot that
// replaces its whole set, or the events after its last index.
type RevocationBatch struct {
	Snapshot bool
	Events   []RevocationEvent
	// Index is the applied index the batch brings the watcher up to.
	Index uint64
}

// ErrSlowConsumer ends a watch whose receiver fell too far behind; it must
// reconnect from its last index (and will be resynced if need be).
var ErrSlowConsumer = errors.New("watch dropped: the receiver fell behind; reconnect from its last index")

// SnapshotFunc reads the full current revocation set and the applied index
// it reflects, in one consistent read.
type SnapshotFunc func() ([]RevocationEvent, uint64, error)

// Revocations fans revocation events out to watchers. It keeps the latest
// events in a bounded ring so a watcher that reconnects resumes where it
// stopped; one whose index is older than the ring first gets a snapshot.
// Every watcher has a bounded queue: one that does not read is dropped
// with ErrSlowConsumer instead of holding memory.
type Revocations struct {
	snapshot SnapshotFunc
	capacity int
	queue    int

	mu     sync.Mutex
	ring   eventRing // the latest events, at most capacity
	floor  uint64    // events with index <= floor may be missing from ring
	last   uint64    // highest index published
	watchs map[*Watch]struct{}
}

// eventRing is a circular buffer of the latest events, oldest first: a
// full ring overwrites its oldest event in place, so publishing costs the
// same with 10 events held as with 65,536.
type eventRing struct {
	buf  []RevocationEvent // allocated up to the capacity as events come
	head int               // index in buf of the oldest event once buf is full
}

// push appends e; when the ring is full it overwrites the oldest event and
// returns it (evicted is true). A ring of capacity 0 evicts e at once.
func (r *eventRing) push(e RevocationEvent, capacity int) (old RevocationEvent, evicted bool) {
	if capacity <= 0 {
		return e, true
	}
	if len(r.buf) < capacity {
		r.buf = append(r.buf, e)
		return RevocationEvent{}, false
	}
	old, r.buf[r.head] = r.buf[r.head], e
	r.head = (r.head + 1) % len(r.buf)
	return old, true
}

// after returns the events with an index above from, oldest first.
func (r *eventRing) after(from uint64) []RevocationEvent {
	var out []RevocationEvent
	for i := range r.buf {
		if e := r.buf[(r.head+i)%len(r.buf)]; e.Index > from {
			out = append(out, e)
		}
	}
	return out
}

// NewRevocations returns a hub keeping up to capacity events, with queue
// batches buffered per watcher.
func NewRevocations(capacity, queue int, snapshot SnapshotFunc) *Revocations {
	return &Revocations{snapshot: snapshot, capacity: capacity, queue: queue, watchs: map[*Watch]struct{}{}}
}

// Watch is one watcher's subscription.
type Watch struct {
	h   *Revocations
	c   chan RevocationBatch
	err error
}

// C delivers batches; it is closed when the watch ends (see Err).
func (w *Watch) C() <-chan RevocationBatch { return w.c }

// Err says why C was closed.
func (w *Watch) Err() error {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	return w.err
}

// Close ends the watch.
func (w *Watch) Close() {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	w.h.drop(w, nil)
}

// drop removes w; callers hold mu.
func (h *Revocations) drop(w *Watch, err error) {
	if _, ok := h.watchs[w]; !ok {
		return
	}
	delete(h.watchs, w)
	w.err = err
	close(w.c)
}

// Publish records events applied up to index and sends them to watchers.
// The state machine calls it in log order after each committed batch;
// index advances even when events is empty.
func (h *Revocations) Publish(index uint64, events []RevocationEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if index <= h.last {
		return
	}
	h.last = index
	for _, e := range events {
		if old, evicted := h.ring.push(e, h.capacity); evicted {
			h.floor = old.Index
		}
	}
	b := RevocationBatch{Events: events, Index: index}
	for w := range h.watchs {
		select {
		case w.c <- b:
		default:
			h.drop(w, ErrSlowConsumer)
		}
	}
}

// Reset forgets the ring after the state was replaced (a snapshot
// install): every watcher is resynced with a snapshot.
func (h *Revocations) Reset(index uint64) {
	h.mu.Lock()
	h.ring, h.floor, h.last = eventRing{}, index, index
	ws := make([]*Watch, 0, len(h.watchs))
	for w := range h.watchs {
		ws = append(ws, w)
	}
	h.mu.Unlock()
	for _, w := range ws {
		h.resync(w)
	}
}

// resync sends w a fresh snapshot, or drops it if it cannot take one.
func (h *Revocations) resync(w *Watch) {
	evs, idx, err := h.snapshot()
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.watchs[w]; !ok {
		return
	}
	if err != nil {
		h.drop(w, err)
		return
	}
	select {
	case w.c <- RevocationBatch{Snapshot: true, Events: evs, Index: idx}:
	default:
		h.drop(w, ErrSlowConsumer)
	}
}

// Subscribe starts a watch of the events after from. If the hub no longer
// holds every event after from (or from is 0, or from is ahead of the
// hub: a watcher of another cluster or a restored node), the first batch is
// a snapshot; then come the events after it, live.
func (h *Revocations) Subscribe(from uint64) (*Watch, error) {
	w := &Watch{h: h, c: make(chan RevocationBatch, max(h.queue, 2))}
	h.mu.Lock()
	needSnapshot := from == 0 || from < h.floor || from > h.last
	if !needSnapshot {
		w.c <- RevocationBatch{Events: h.ring.after(from), Index: h.last}
	}
	h.watchs[w] = struct{}{}
	h.mu.Unlock()
	if needSnapshot {
		h.resync(w)
	}
	return w, nil
}

// LastIndex is the highest index published.
func (h *Revocations) LastIndex() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// EventsFromChanges converts the store's change notifications.
func EventsFromChanges(changes []store.Change) []RevocationEvent {
	if len(changes) == 0 {
		return nil
	}
	out := make([]RevocationEvent, 0, len(changes))
	for _, c := range changes {
		e := RevocationEvent{Index: c.Index, ID: c.ID, Expires: time.Unix(0, c.ExpiresUnixNano), Reason: c.Reason}
		switch c.Kind {
		case store.ChangeSessionEnded:
			e.Kind = RevokedSession
		case store.ChangeUserCutoff:
			e.Kind, e.NotBefore = RevokedUser, time.Unix(0, c.NotBeforeUnixNano)
		case store.ChangeTokenRevoked:
			e.Kind = RevokedToken
		default:
			continue
		}
		out = append(out, e)
	}
	return out
}

// StoreSnapshot returns a SnapshotFunc reading the revocation set of st.
func StoreSnapshot(st interface {
	RevocationSet(time.Time) ([]store.Change, uint64, error)
}) SnapshotFunc {
	return func() ([]RevocationEvent, uint64, error) {
		ch, idx, err := st.RevocationSet(time.Now())
		if err != nil {
			return nil, 0, err
		}
		return EventsFromChanges(ch), idx, nil
	}
}
