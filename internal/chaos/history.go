package chaos

import (
	"slices"
	"sync"
	"time"
)

// Kind is what an operation does (see the package doc for its semantics).
type Kind string

// The operations of the fault test.
const (
	KindLogin      Kind = "login"
	KindRevoke     Kind = "revoke"
	KindRevokeUser Kind = "revoke-user"
	KindCheck      Kind = "check"
	KindCheckUser  Kind = "check-user"
)

// IsWrite reports whether operations of kind k change the state.
func (k Kind) IsWrite() bool { return k == KindLogin || k == KindRevoke || k == KindRevokeUser }

// Level is a read's consistency; writes have none.
type Level string

// The read consistency levels.
const (
	Stale        Level = "stale"
	Default      Level = "default"
	Linearizable Level = "linearizable"
)

// Outcome says what is known of an operation's effect.
type Outcome int

// Outcomes.
const (
	// OK: the operation returned an answer.
	OK Outcome = iota
	// Failed: the operation certainly had no effect (refused before
	// anything was proposed, or never sent).
	Failed
	// Unknown: the operation may or may not have taken effect (a timeout, a
	// lost connection, an unavailable cluster after the request was sent).
	Unknown
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Failed:
		return "failed"
	default:
		return "unknown"
	}
}

// Reasons a check or a revoke may answer besides an end reason.
const (
	// ReasonNotFound: the session does not exist (check, revoke).
	ReasonNotFound = "not_found"
	// ReasonAlreadyEnded: a revoke found the session already ended.
	ReasonAlreadyEnded = "already_ended"
	// ReasonAdminRevoked and ReasonForcedOut are the end reasons the
	// test's operations cause.
	ReasonAdminRevoked = "admin_revoked"
	ReasonForcedOut    = "forced_out"
)

// Slots is the number of platform slots a user's sessions use (one live
// session per user and slot).
const Slots = 3

// Op is one operation of the history, with its answer.
type Op struct {
	// ID is the operation's position in the history (set by History).
	ID int `json:"id"`
	// Client is the issuing client (one client runs one operation at a time).
	Client int `json:"client"`
	// Node is the node asked.
	Node string `json:"node"`
	// Kind is what was asked; Level the consistency of a read.
	Kind  Kind  `json:"kind"`
	Level Level `json:"level,omitempty"`
	// User is the user the operation concerns (the unit of partitioning).
	User string `json:"user"`
	// Slot is the platform slot of a login (0 <= Slot < Slots).
	Slot int `json:"slot,omitempty"`
	// Session is the session a login opened (when OK) or that a revoke or
	// check names.
	Session string `json:"session,omitempty"`
	// Call and Return are when the operation was invoked and when its
	// answer arrived, since the run's start (Return is meaningless when the
	// outcome is Unknown: the effect may happen any time after Call).
	Call   time.Duration `json:"call"`
	Return time.Duration `json:"return"`
	// Outcome is what is known of the effect.
	Outcome Outcome `json:"outcome"`
	// Active is a check's answer: the session is live.
	Active bool `json:"active,omitempty"`
	// Reason is a check's reason when not active (not_found or the end
	// reason), or a revoke's refusal (already_ended, not_found).
	Reason string `json:"reason,omitempty"`
	// Revoked is a check-user's answer: the user's cut-off is set.
	Revoked bool `json:"revoked,omitempty"`
	// Ended is a revoke-user's answer: how many sessions it ended.
	Ended int `json:"ended,omitempty"`
	// Index is the log index of a write or the applied index a read
	// reflects, as answered.
	Index uint64 `json:"index,omitempty"`
	// Err is the error of a failed or unknown operation.
	Err string `json:"err,omitempty"`
	// Final marks the reads of the final verification (after every node
	// was killed and restarted).
	Final bool `json:"final,omitempty"`
}

// History records operations from concurrent clients. Times are measured
// from its creation on one monotonic clock.
type History struct {
	start time.Time

	mu  sync.Mutex
	ops []Op
}

// NewHistory starts a history now.
func NewHistory() *History { return &History{start: time.Now()} }

// Start is the moment times are measured from.
func (h *History) Start() time.Time { return h.start }

// Now is the time since the start.
func (h *History) Now() time.Duration { return time.Since(h.start) }

// Add records a completed operation and returns its ID.
func (h *History) Add(op Op) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	op.ID = len(h.ops)
	h.ops = append(h.ops, op)
	return op.ID
}

// Ops returns a copy of the operations recorded so far, in the order they
// completed.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}
