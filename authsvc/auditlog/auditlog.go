// Package auditlog keeps a node's recent audit events in memory so that
// they can be queried (the operator console's Audit page, the
// OperatorService QueryAudit call): a ring bounded in event count and in
// bytes, fed by a slog.Handler that sits beside the audit logger's own
// handler, so every audit line the node writes is also kept.
//
// Why a per-node ring and not replicated records: audit events are written
// on the paths that must stay cheap (every failed login, every refused
// caller), many are produced by unauthenticated traffic, and the log lines
// are already shipped to durable storage by whoever runs the node. A
// replicated record per event would put an attacker's failed logins on the
// Raft log. The ring answers "what happened lately" on every node; a
// cluster-wide query asks each node for its own (cluster.Node.AskAll). A
// restart empties a node's ring; the log lines remain the durable record.
package auditlog

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Event is one audit event.
type Event struct {
	Time time.Time `json:"time"`
	// Node and Region are where it was logged.
	Node   string `json:"node"`
	Region string `json:"region"`
	// Type is the event attribute ("login_failed", "operator_action").
	Type string `json:"type"`
	// Principal is who acted, when the event names one.
	Principal string `json:"principal,omitempty"`
	// User is the user concerned (the "user", "user_id" or "email"
	// attribute), if any.
	User string `json:"user,omitempty"`
	// Attrs are the other attributes, as strings.
	Attrs map[string]string `json:"attrs,omitempty"`
}

// Bounds of one event: longer values are cut, further attributes dropped.
const (
	maxAttrs    = 24
	maxValueLen = 256
)

func (e *Event) size() int {
	n := 64 + len(e.Node) + len(e.Region) + len(e.Type) + len(e.Principal) + len(e.User)
	for k, v := range e.Attrs {
		n += len(k) + len(v) + 16
	}
	return n
}

// Ring holds the latest events within a count and a byte budget, oldest
// dropped first. It is safe for concurrent use. Adding is O(1): the events
// sit in a circular buffer, so a busy node's audit trail costs no copying
// (a slice shifted on every event cost a write path 9% of the leader's CPU).
type Ring struct {
	node, region       string
	maxEvents, maxSize int

	mu   sync.Mutex
	buf  []Event // circular; grows up to maxEvents
	head int     // index of the oldest event
	n    int     // events held
	size int
	// dropped counts the events evicted so far.
	dropped uint64
}

// New returns a ring of node (in region) holding at most maxEvents events
// and maxBytes bytes (approximate: keys and values).
func New(node, region string, maxEvents, maxBytes int) *Ring {
	if maxEvents <= 0 {
		maxEvents = 1
	}
	return &Ring{node: node, region: region, maxEvents: maxEvents, maxSize: maxBytes}
}

// at returns the i-th held event, 0 the oldest.
func (r *Ring) at(i int) *Event { return &r.buf[(r.head+i)%len(r.buf)] }

// Add keeps e, evicting the oldest events beyond the bounds.
func (r *Ring) Add(e Event) {
	e.Node, e.Region = r.node, r.region
	sz := e.size()
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.n > 0 && (r.n >= r.maxEvents || (r.size+sz > r.maxSize)) {
		r.size -= r.at(0).size()
		*r.at(0) = Event{}
		r.head = (r.head + 1) % len(r.buf)
		r.n--
		r.dropped++
	}
	if r.n == len(r.buf) { // full buffer below maxEvents: grow, oldest first
		grown := make([]Event, min(max(2*len(r.buf), 64), r.maxEvents))
		for i := range r.n {
			grown[i] = *r.at(i)
		}
		r.buf, r.head = grown, 0
	}
	*r.at(r.n) = e
	r.n++
	r.size += sz
}

// Len returns how many events the ring holds and how many it has dropped.
func (r *Ring) Len() (held int, dropped uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n, r.dropped
}

// Query filters events; zero fields do not filter.
type Query struct {
	// User keeps events whose principal or user contains it
	// (case-insensitive).
	User string `json:"user,omitempty"`
	// Type keeps events of that type.
	Type string `json:"type,omitempty"`
	// Since (inclusive) and Until (exclusive) bound the time.
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
	// Limit is the most events returned (0: all).
	Limit int `json:"limit,omitempty"`
}

// Match reports whether e passes q's filters.
func (q Query) Match(e *Event) bool {
	switch {
	case q.Type != "" && e.Type != q.Type:
		return false
	case !q.Since.IsZero() && e.Time.Before(q.Since):
		return false
	case !q.Until.IsZero() && !e.Time.Before(q.Until):
		return false
	case q.User != "":
		u := strings.ToLower(q.User)
		return strings.Contains(strings.ToLower(e.User), u) || strings.Contains(strings.ToLower(e.Principal), u)
	}
	return true
}

// Query returns the matching events, newest first.
func (r *Ring) Query(q Query) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for i := r.n - 1; i >= 0; i-- {
		if q.Limit > 0 && len(out) >= q.Limit {
			break
		}
		if e := r.at(i); q.Match(e) {
			out = append(out, *e)
		}
	}
	return out
}

// Merge merges per-node answers (each newest first) into one list, newest
// first, at most limit long (0: all).
func Merge(limit int, lists ...[]Event) []Event {
	var out []Event
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.SortStableFunc(out, func(a, b Event) int { return b.Time.Compare(a.Time) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Handler returns a slog.Handler that passes every record to next and
// keeps, in r, those whose message is "audit" (the audit logger's lines).
func (r *Ring) Handler(next slog.Handler) slog.Handler { return &handler{r: r, next: next} }

type handler struct {
	r     *Ring
	next  slog.Handler
	attrs []slog.Attr
	group string
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.next.Enabled(ctx, l)
}

func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Message == "audit" && h.group == "" {
		e := Event{Time: rec.Time, Attrs: map[string]string{}}
		add := func(a slog.Attr) bool {
			v := a.Value.Resolve().String()
			if len(v) > maxValueLen {
				v = v[:maxValueLen]
			}
			switch a.Key {
			case "event":
				e.Type = v
			case "principal":
				e.Principal = v
			case "user", "user_id", "email":
				if e.User == "" {
					e.User = v
				}
				e.Attrs[a.Key] = v
			case "component", "node", "region":
			default:
				if len(e.Attrs) < maxAttrs {
					e.Attrs[a.Key] = v
				}
			}
			return true
		}
		for _, a := range h.attrs {
			add(a)
		}
		rec.Attrs(add)
		if e.Principal == "" && e.Attrs["by"] != "" {
			e.Principal = e.Attrs["by"]
		}
		h.r.Add(e)
	}
	if h.next.Enabled(ctx, rec.Level) {
		return h.next.Handle(ctx, rec)
	}
	return nil
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &handler{r: h.r, next: h.next.WithAttrs(as), attrs: append(slices.Clip(h.attrs), as...), group: h.group}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{r: h.r, next: h.next.WithGroup(name), attrs: h.attrs, group: h.group + name + "."}
}
