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
//     the FSM must skip entries whose index it has already applied. An FSM
//     with an AppliedIndex() uint64 method (the index it recorded with its
//     last applied entry) tells the node where it stands after a restart.
//   - An FSM that batches (raft.BatchingFSM) is group-committed: the node
//     gives it, in one ApplyBatch, every batch Raft committed while the
//     previous ApplyBatch ran (one transaction and fsync for all of them),
//     and acknowledges a write once the ApplyBatch holding it returned.
//   - Every command given to Propose carries a request id the FSM applies
//     once: Propose may send a command again within its bound (a leader
//     replaced or unreachable while it was forwarded, leadership lost
//     while committing).
//
// Writes and DEFAULT or LINEARIZABLE reads are bounded by the caller's
// deadline and Config.RequestTimeout; past it they fail with an
// *UnavailableError saying why. Reads obtain read indexes in rounds shared
// between concurrent reads (see ReadBarrier).
//
// A Node is one Raft member (Open, Bootstrap, Apply, membership changes,
// ReadIndex, ReadBarrier) and owns all node-to-node traffic, on one peer
// address per node:
//
//   - one TLS listener, mutual TLS with node certificates of the cluster CA
//     (PeerTLS; cluster/pki makes them), ALPN picking the protocol: Raft
//     (through a raft.StreamLayer whose inbound RPCs must name the node the
//     certificate names), PeerService (HTTP/2: forwarded writes and
//     read-index requests, joins, relayed operator calls), or a join probe;
//   - the peer client: Propose and linearizable reads on a follower reach
//     the leader Raft reports, whose certificate must name it (writes
//     forwarded concurrently share ApplyBatch calls, see ForwardStats);
//     Join, Remove, HandOff and Status relay operator calls the same way;
//   - joining (JoinCluster) and the leader's check of a newcomer (a TLS
//     handshake at its address naming its id) before it becomes a member;
//   - the cluster id, generated at Bootstrap and stored in node.json,
//     carried in the Raft preamble, every peer call and gossip metadata.
//
// Gossip is the memberlist side (always encrypted unless explicitly
// insecure): it publishes each node's region, API and peer addresses and
// cluster id, and ignores members of another cluster. KeepPeers lets a
// restarted node find gossip again.
package cluster
