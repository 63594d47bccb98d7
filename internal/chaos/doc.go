// Package chaos holds the parts of sessiond's fault test that do not need
// a sessiond process: a network of Linux network namespaces whose links a
// test can cut (Net), the record of what clients asked and were answered
// (History, Op), the checks run on it afterwards (Check: linearizability
// with porcupine, the DEFAULT staleness bound, states that never existed,
// acknowledged writes lost, per-node regressions, answers' log indexes),
// and the report (Report: the anomalies and the longest unavailability
// per fault type).
//
// The test that drives real processes lives in cmd/sessiond
// (chaos_test.go, `make chaos`); docs/chaos.md explains what it does and
// how to replay a seed.
//
// The operations and their sequential specification (the model the
// histories are checked against), per user:
//
//   - login(user, slot) opens a new session on a platform slot and, since
//     every login is forced, ends the slot's live session (forced_out);
//   - revoke(session) ends one session (admin_revoked), or reports that it
//     had already ended;
//   - revoke-user(user) ends every live session of the user (admin_revoked),
//     reports how many, and sets the user's logout-everywhere cut-off;
//   - check(session) reads whether a session is live, ended (with its
//     reason) or not found;
//   - check-user(user) reads whether the user's cut-off is set.
package chaos
