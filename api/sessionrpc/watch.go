package sessionrpc

import (
	"context"
	"errors"
	"net"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sessiond/sessiond/api/rpcerr"
	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/callers"
	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
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
//
// What a watcher receives is scoped: session ids, token ids and user
// cut-offs (the user id and the time, which a verifier needs to refuse a
// token whose sub it reads) with their expiries; the end or revocation
// reason only with the watch:details scope. Streams are capped per client
// and in total (Options.Streams); a refused stream ends with
// RESOURCE_EXHAUSTED naming the cap.
func (s *server) WatchRevocations(ctx context.Context, req *connect.Request[sessionv1.WatchRevocationsRequest], stream *connect.ServerStream[sessionv1.WatchRevocationsResponse]) error {
	p, ok := callers.FromContext(ctx)
	if !ok {
		p = callers.Anonymous
	}
	if s.opts.Streams != nil {
		release, err := s.opts.Streams.Acquire(callers.ClientKey(p, peerIP(req.Peer().Addr)))
		if err != nil {
			return rpcerr.FromCaller(err)
		}
		defer release()
	}
	details := p.Has(callers.ScopeWatchDetails) && p.Kind != callers.KindAnonymous
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
			if err := sendBatch(stream, b, details); err != nil {
				return err
			}
			sent = b.Index
		}
	}
}

func sendBatch(stream *connect.ServerStream[sessionv1.WatchRevocationsResponse], b authsvc.RevocationBatch, details bool) error {
	evs := b.Events
	first := true
	for first || len(evs) > 0 {
		n := min(len(evs), maxEventsPerMessage)
		msg := &sessionv1.WatchRevocationsResponse{Snapshot: b.Snapshot && first, Index: b.Index, Events: make([]*sessionv1.RevocationEvent, 0, n)}
		for _, e := range evs[:n] {
			msg.Events = append(msg.Events, eventMsg(e, details))
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
		evs, first = evs[n:], false
	}
	return nil
}

// eventMsg converts an event; the reason only with details.
func eventMsg(e authsvc.RevocationEvent, details bool) *sessionv1.RevocationEvent {
	m := &sessionv1.RevocationEvent{Index: e.Index, Expires: timestamppb.New(e.Expires)}
	if details {
		m.Reason = e.Reason
	}
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

// peerIP is the host of a peer address.
func peerIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
