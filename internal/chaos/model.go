package chaos

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"
)

// unknownSession stands, in a slot, for a session opened by a login whose
// answer was lost: it exists, but no client knows its id.
const unknownSession = "?"

// userState is the model's state of one user. It is a comparable value:
// ended is a canonical encoding of the ended sessions.
type userState struct {
	live   [Slots]string // per slot: "", a session id or unknownSession
	ended  string        // sorted "id=reason\n" lines
	cutoff bool          // a revoke-user took effect
}

// endReason returns the reason s ended with, if it ended.
func (s userState) endReason(id string) (string, bool) {
	for line := range strings.Lines(s.ended) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		if k == id {
			return v, true
		}
	}
	return "", false
}

// liveSlot returns the slot holding session id live, or -1.
func (s userState) liveSlot(id string) int {
	for i, v := range s.live {
		if v == id && id != "" {
			return i
		}
	}
	return -1
}

// end returns s with slot i's live session ended for reason.
func (s userState) end(i int, reason string) userState {
	id := s.live[i]
	s.live[i] = ""
	if id == "" || id == unknownSession {
		return s
	}
	lines := strings.Split(strings.TrimSuffix(s.ended, "\n"), "\n")
	if s.ended == "" {
		lines = nil
	}
	lines = append(lines, id+"="+reason)
	sort.Strings(lines)
	s.ended = strings.Join(lines, "\n") + "\n"
	return s
}

func (s userState) String() string {
	return fmt.Sprintf("live=%q ended=%q cutoff=%t", s.live, strings.ReplaceAll(strings.TrimSuffix(s.ended, "\n"), "\n", ","), s.cutoff)
}

// step returns the states the system may be in after op from s (none if op's
// answer is impossible in s). An operation with an Unknown outcome may or
// may not have taken effect.
func step(s userState, op *Op) []userState {
	switch op.Kind {
	case KindLogin:
		if op.Slot < 0 || op.Slot >= Slots {
			return nil
		}
		next := s.end(op.Slot, ReasonForcedOut)
		if op.Outcome == Unknown {
			next.live[op.Slot] = unknownSession
			return []userState{s, next}
		}
		next.live[op.Slot] = op.Session
		return []userState{next}
	case KindRevoke:
		slot := s.liveSlot(op.Session)
		_, ended := s.endReason(op.Session)
		switch {
		case op.Outcome == Unknown:
			if slot >= 0 {
				return []userState{s, s.end(slot, ReasonAdminRevoked)}
			}
			return []userState{s}
		case op.Reason == "" && slot >= 0:
			return []userState{s.end(slot, ReasonAdminRevoked)}
		case op.Reason == ReasonAlreadyEnded && ended:
			return []userState{s}
		case op.Reason == ReasonNotFound && slot < 0 && !ended:
			return []userState{s}
		}
		return nil
	case KindRevokeUser:
		next, n := s, 0
		for i, v := range s.live {
			if v != "" {
				n++
				next = next.end(i, ReasonAdminRevoked)
			}
		}
		next.cutoff = true
		if op.Outcome == Unknown {
			return []userState{s, next}
		}
		if op.Ended != n {
			return nil
		}
		return []userState{next}
	case KindCheck:
		reason, ended := s.endReason(op.Session)
		switch {
		case op.Active:
			if s.liveSlot(op.Session) >= 0 {
				return []userState{s}
			}
		case op.Reason == ReasonNotFound:
			if s.liveSlot(op.Session) < 0 && !ended {
				return []userState{s}
			}
		case ended && op.Reason == reason:
			return []userState{s}
		}
		return nil
	case KindCheckUser:
		if op.Revoked == s.cutoff {
			return []userState{s}
		}
		return nil
	}
	return nil
}

// Model is the porcupine model of one user's operations: each Operation's
// Input and Output are the same *Op. Histories are partitioned by user by
// the caller (Check checks each user on its own).
func Model() porcupine.Model {
	return (&porcupine.NondeterministicModel{
		Init: func() []any { return []any{userState{}} },
		Step: func(state, input, _ any) []any {
			var out []any
			for _, s := range step(state.(userState), input.(*Op)) {
				out = append(out, s)
			}
			return out
		},
		Hash: func(state any) uint64 {
			s := state.(userState)
			h := fnv.New64a()
			for _, v := range s.live {
				h.Write([]byte(v))
				h.Write([]byte{0})
			}
			h.Write([]byte(s.ended))
			if s.cutoff {
				h.Write([]byte{1})
			}
			return h.Sum64()
		},
		DescribeOperation: func(input, _ any) string { return describe(input.(*Op)) },
		DescribeState:     func(state any) string { return state.(userState).String() },
	}).ToModel()
}

// describe renders an operation and its answer in one line.
func describe(op *Op) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d c%d %s", op.ID, op.Client, op.Kind)
	if op.Level != "" {
		fmt.Fprintf(&b, "/%s", op.Level)
	}
	switch op.Kind {
	case KindLogin:
		fmt.Fprintf(&b, "(%s slot %d)", op.User, op.Slot)
	case KindRevoke, KindCheck:
		fmt.Fprintf(&b, "(%s)", op.Session)
	default:
		fmt.Fprintf(&b, "(%s)", op.User)
	}
	fmt.Fprintf(&b, " on %s -> ", op.Node)
	switch {
	case op.Outcome != OK:
		fmt.Fprintf(&b, "%s: %s", op.Outcome, op.Err)
	case op.Kind == KindLogin:
		b.WriteString(op.Session)
	case op.Kind == KindCheck && op.Active:
		b.WriteString("active")
	case op.Kind == KindCheck, op.Kind == KindRevoke:
		if op.Reason == "" {
			b.WriteString("ok")
		}
		b.WriteString(op.Reason)
	case op.Kind == KindCheckUser:
		fmt.Fprintf(&b, "revoked=%t", op.Revoked)
	case op.Kind == KindRevokeUser:
		fmt.Fprintf(&b, "ended %d", op.Ended)
	}
	if op.Outcome == OK {
		fmt.Fprintf(&b, " @%d", op.Index)
	}
	fmt.Fprintf(&b, " [%s, %s]", op.Call.Round(100_000), op.Return.Round(100_000))
	return b.String()
}
