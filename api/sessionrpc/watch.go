package sessionrpc

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sessiond/sessiond/authsvc"
	sessionv1 "github.com/sessiond/sessiond/proto/gen/sessiond/session/v1"
)

// errNodeStopping ends watch streams when the node shuts down.
var errNodeStopping = errors.New("node shutting down; reconnect to another node from the last index")

// maxEventsPerMessage bounds one stream message (a snapshot is split).
const maxEventsPerMessage = 4096

// WatchRevocations streams revocations after from_index, then live. A
// snapshot (snapshot=true on the first message of it) replaces the
// receiver's set; it is split into messages of at most maxEventsPerMessage
// events, only the first marked snapshot. Idle streams get a heartbeat
// message with the applied index every Options.Heartbeat.
func (s *server) WatchRevocations(ctx context.Context, req *connect.Request[sessionv1.WatchRevocationsRequest], stream *connect.ServerStream[sessionv1.WatchRevocationsResponse]) error {
	w, err := s.hub.Subscribe(req.Msg.GetFromIndex())
	if err != nil {
		return connect.NewError(connect.CodeUnavailable, err)
	}
	defer w.Close()
	tick := time.NewTicker(s.opts.Heartbeat)
	defer tick.Stop()
	sent := req.Msg.GetFromIndex()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.opts.Done:
			return connect.NewError(connect.CodeUnavailable, errNodeStopping)
		case <-tick.C:
			if last := s.hub.LastIndex(); last >= sent {
				if err := stream.Send(&sessionv1.WatchRevocationsResponse{Index: last}); err != nil {
					return err
				}
				sent = last
			}
		case b, ok := <-w.C():
			if !ok {
				if errors.Is(w.Err(), authsvc.ErrSlowConsumer) {
					return connect.NewError(connect.CodeResourceExhausted, w.Err())
				}
				if err := w.Err(); err != nil {
					return connect.NewError(connect.CodeUnavailable, err)
				}
				return nil
			}
			if err := sendBatch(stream, b); err != nil {
				return err
			}
			sent = b.Index
		}
	}
}

func sendBatch(stream *connect.ServerStream[sessionv1.WatchRevocationsResponse], b authsvc.RevocationBatch) error {
	evs := b.Events
	first := true
	for first || len(evs) > 0 {
		n := min(len(evs), maxEventsPerMessage)
		msg := &sessionv1.WatchRevocationsResponse{Snapshot: b.Snapshot && first, Index: b.Index, Events: make([]*sessionv1.RevocationEvent, 0, n)}
		for _, e := range evs[:n] {
			msg.Events = append(msg.Events, eventMsg(e))
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
		evs, first = evs[n:], false
	}
	return nil
}

func eventMsg(e authsvc.RevocationEvent) *sessionv1.RevocationEvent {
	m := &sessionv1.RevocationEvent{Index: e.Index, Reason: e.Reason, Expires: timestamppb.New(e.Expires)}
	switch e.Kind {
	case authsvc.RevokedSession:
		m.Subject = &sessionv1.RevocationEvent_SessionId{SessionId: e.ID}
	case authsvc.RevokedUser:
		m.Subject = &sessionv1.RevocationEvent_UserId{UserId: e.ID}
		m.NotBefore = timestamppb.New(e.NotBefore)
	case authsvc.RevokedToken:
		m.Subject = &sessionv1.RevocationEvent_Jti{Jti: e.ID}
	}
	return m
}
