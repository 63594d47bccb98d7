package clusterrpc

import (
	"fmt"

	"github.com/sessiond/sessiond/cluster"
	clusterv1 "github.com/sessiond/sessiond/proto/gen/sessiond/cluster/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ReadOptionsFromProto converts the wire ReadOptions (nil means defaults).
// An unknown consistency value or a negative max_staleness is an error
// wrapping cluster.ErrInvalidArgument.
func ReadOptionsFromProto(p *clusterv1.ReadOptions) (cluster.ReadOptions, error) {
	var o cluster.ReadOptions
	if p == nil {
		return o, nil
	}
	switch p.GetConsistency() {
	case clusterv1.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED, clusterv1.ReadConsistency_READ_CONSISTENCY_DEFAULT:
		o.Consistency = cluster.ConsistencyDefault
	case clusterv1.ReadConsistency_READ_CONSISTENCY_STALE:
		o.Consistency = cluster.ConsistencyStale
	case clusterv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE:
		o.Consistency = cluster.ConsistencyLinearizable
	default:
		return o, fmt.Errorf("%w: unknown read consistency %d", cluster.ErrInvalidArgument, p.GetConsistency())
	}
	if ms := p.GetMaxStaleness(); ms != nil {
		if err := ms.CheckValid(); err != nil {
			return o, fmt.Errorf("%w: max_staleness: %v", cluster.ErrInvalidArgument, err)
		}
		if d := ms.AsDuration(); d < 0 {
			return o, fmt.Errorf("%w: max_staleness %s is negative", cluster.ErrInvalidArgument, d)
		} else {
			o.MaxStaleness = d
		}
	}
	o.MinIndex = p.GetMinIndex()
	return o, nil
}

// ReadOptionsToProto converts Go ReadOptions to the wire form.
func ReadOptionsToProto(o cluster.ReadOptions) *clusterv1.ReadOptions {
	p := &clusterv1.ReadOptions{MinIndex: o.MinIndex}
	switch o.Consistency {
	case cluster.ConsistencyStale:
		p.Consistency = clusterv1.ReadConsistency_READ_CONSISTENCY_STALE
	case cluster.ConsistencyLinearizable:
		p.Consistency = clusterv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE
	default:
		p.Consistency = clusterv1.ReadConsistency_READ_CONSISTENCY_DEFAULT
	}
	if o.MaxStaleness > 0 {
		p.MaxStaleness = durationpb.New(o.MaxStaleness)
	}
	return p
}
