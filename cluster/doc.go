// Package cluster replicates opaque []byte commands through Raft
// (github.com/hashicorp/raft) into any raft.FSM, and tracks cluster
// membership through gossip (github.com/hashicorp/memberlist).
//
// The package knows nothing about what the commands mean. Its contract with
// the FSM is:
//
//   - Apply (or ApplyBatch) returns, for each command, either a []byte (an
//     encoded result, possibly nil) or an error value. Any other response type
//     is reported to the proposer as an error.
//   - The FSM is persistent: the node opens Raft with NoSnapshotRestoreOnStart,
//     so after a restart Raft replays the log from the last snapshot's index;
//     the FSM must skip entries whose index it has already applied.
//
// A Node is one Raft member (Open, Bootstrap, Apply, membership changes,
// ReadIndex, ReadBarrier). Gossip is the memberlist side: it publishes each
// node's region, API and Raft addresses so that followers can forward writes
// and linearizable reads to the leader's API address (see Forwarder and
// Node.Propose).
package cluster
