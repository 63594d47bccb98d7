package cluster

import (
	"fmt"

	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ReadOptionsFromProto converts the wire ReadOptions of the API (nil means defaults).
// An unknown consistency value or a negative max_staleness is an error
// wrapping ErrInvalidArgument.
func ReadOptionsFromProto(p *clusterv1.ReadOptions) (ReadOptions, error) {
	var o ReadOptions
	if p == nil {
		return o, nil
	}
	switch p.GetConsistency() {
	case clusterv1.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED, clusterv1.ReadConsistency_READ_CONSISTENCY_DEFAULT:
		o.Consistency = ConsistencyDefault
	case clusterv1.ReadConsistency_READ_CONSISTENCY_STALE:
		o.Consistency = ConsistencyStale
	case clusterv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE:
		o.Consistency = ConsistencyLinearizable
	default:
		return o, fmt.Errorf("%w: unknown read consistency %d", ErrInvalidArgument, p.GetConsistency())
	}
	if ms := p.GetMaxStaleness(); ms != nil {
		if err := ms.CheckValid(); err != nil {
			return o, fmt.Errorf("%w: max_staleness: %v", ErrInvalidArgument, err)
		}
		if d := ms.AsDuration(); d < 0 {
			return o, fmt.Errorf("%w: max_staleness %s is negative", ErrInvalidArgument, d)
		} else {
			o.MaxStaleness = d
		}
	}
	o.MinIndex = p.GetMinIndex()
	return o, nil
}

// ReadOptionsToProto converts Go ReadOptions to the wire form.
func ReadOptionsToProto(o ReadOptions) *clusterv1.ReadOptions {
	p := &clusterv1.ReadOptions{MinIndex: o.MinIndex}
	switch o.Consistency {
	case ConsistencyStale:
		p.Consistency = clusterv1.ReadConsistency_READ_CONSISTENCY_STALE
	case ConsistencyLinearizable:
		p.Consistency = clusterv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE
	default:
		p.Consistency = clusterv1.ReadConsistency_READ_CONSISTENCY_DEFAULT
	}
	if o.MaxStaleness > 0 {
		p.MaxStaleness = durationpb.New(o.MaxStaleness)
	}
	return p
}
