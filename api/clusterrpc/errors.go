package clusterrpc

import (
	"github.com/sessiond/sessiond/cluster"
)

// NotLeaderMetaKey is the error-metadata key set on Unavailable errors that
// mean "this node is not the leader, nothing was done" (cluster's).
const NotLeaderMetaKey = cluster.NotLeaderMetaKey

// ToConnectError maps a cluster error to a Connect error (see
// cluster.ToConnectError, the one mapping).
func ToConnectError(err error) error { return cluster.ToConnectError(err) }
