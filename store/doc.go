// Package store is sessiond's replicated state machine: a hashicorp/raft FSM
// (and BatchingFSM) that keeps sessions, refresh tokens, revocations, user
// cut-offs, signing keys and built-in directory users in a bbolt file.
//
// Every change arrives as a Raft log entry whose data is a proto-encoded
// storev1.Command. Applying a command is deterministic: it uses only the
// command (whose now_unix_nano the proposer stamped) and the current state,
// never the clock, randomness or map iteration order, so two stores fed the
// same log hold byte-identical records.
//
// Apply's response for a command entry is always a []byte holding the
// deterministic encoding of a storev1.Result (decode it with DecodeResult),
// except when bbolt itself fails: then it is an error, and the store becomes
// unusable (see Store.Err).
//
// Reads take the caller's notion of now and treat every record past its
// expiry as absent, whether or not a Purge command has deleted it yet.
//
// The bucket layout is described in DESIGN.md beside this file.
package store
