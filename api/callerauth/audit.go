package callerauth

import (
	"context"
	"log/slog"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sessiond/sessiond/authsvc/callers"
)

// auditedFields are the request fields an audit line may show: ids, names
// and flags, never a password, secret or token (a field not listed is left
// out whatever it holds).
var auditedFields = map[protoreflect.Name]bool{
	"node_id": true, "target_node_id": true, "raft_addr": true, "api_addr": true, "gossip_addr": true,
	"voter": true, "force": true, "email": true, "user_id": true, "session_id": true, "name": true,
	"scopes": true, "ttl": true, "id_or_name": true, "suspended": true, "roles": true, "org_name": true,
	"org_type": true, "country": true,
}

// Audit returns a Connect interceptor that logs, for every unary call to a
// route whose rule has Audit, who made it (the principal), what it asked
// (the request's audited fields) and the outcome (the error code or "ok").
func Audit(routes Routes, log *slog.Logger) connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if req.Spec().IsClient {
				return next(ctx, req)
			}
			rule, ok := routes.Lookup(req.Spec().Procedure)
			if !ok || !rule.Audit {
				return next(ctx, req)
			}
			resp, err := next(ctx, req)
			p, _ := callers.FromContext(ctx)
			outcome := "ok"
			if err != nil {
				outcome = connect.CodeOf(err).String()
			}
			attrs := []slog.Attr{slog.String("event", "operator_action"), slog.String("principal", p.ID()),
				slog.String("method", string(p.Method)), slog.String("procedure", req.Spec().Procedure), slog.String("outcome", outcome)}
			if m, ok := req.Any().(proto.Message); ok {
				attrs = append(attrs, slog.String("request", auditFields(m)))
			}
			log.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
			return resp, err
		}
	})
}

// auditFields renders the audited fields of m as "name=value ...".
func auditFields(m proto.Message) string {
	var b strings.Builder
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if !auditedFields[fd.Name()] {
			return true
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(string(fd.Name()))
		b.WriteByte('=')
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(l.Get(i).String())
			}
		case fd.Message() != nil:
			b.WriteString(strings.TrimSpace(v.Message().Interface().(interface{ String() string }).String()))
		default:
			b.WriteString(v.String())
		}
		return true
	})
	return b.String()
}
