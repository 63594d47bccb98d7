package cluster

import "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1/clusterv1connect"

// RefuseApplyBatch makes n's peer port answer ApplyBatch as a node that
// predates it does (HTTP 404: Unimplemented to the caller).
func (n *Node) RefuseApplyBatch(on bool) { n.refuseApplyBatch.Store(on) }

// PeerClientOf returns n's PeerService client of other (mutual TLS with
// n's node certificate, other's certificate checked).
func (n *Node) PeerClientOf(other *Node) clusterv1connect.PeerServiceClient {
	return n.peer(other.RaftAddr(), other.ID())
}

// MaxApplyBatch is the most commands the leader takes in one ApplyBatch.
const MaxApplyBatch = maxApplyBatch

// SnapshotThresholdFor is snapshotThreshold, for the policy's table test.
var SnapshotThresholdFor = snapshotThreshold
