package rpcerr

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/authsvc"
)

func TestEveryKindHasOneAnswer(t *testing.T) {
	for _, c := range []struct {
		kind   authsvc.Kind
		status int
		code   connect.Code
	}{
		{authsvc.KindInvalid, http.StatusBadRequest, connect.CodeInvalidArgument},
		{authsvc.KindUnauthenticated, http.StatusUnauthorized, connect.CodeUnauthenticated},
		{authsvc.KindForbidden, http.StatusForbidden, connect.CodePermissionDenied},
		{authsvc.KindNotFound, http.StatusNotFound, connect.CodeNotFound},
		{authsvc.KindConflict, http.StatusConflict, connect.CodeAlreadyExists},
		{authsvc.KindThrottled, http.StatusTooManyRequests, connect.CodeResourceExhausted},
		{authsvc.KindUnavailable, http.StatusServiceUnavailable, connect.CodeUnavailable},
		{authsvc.KindInternal, http.StatusInternalServerError, connect.CodeInternal},
	} {
		// Wrapped, as doors receive them.
		err := fmt.Errorf("door: %w", &authsvc.Error{Kind: c.kind, Code: "some_code", Message: "what is wrong"})
		if got := HTTPStatus(err); got != c.status {
			t.Errorf("HTTPStatus(kind %d): got %d, exp %d", c.kind, got, c.status)
		}
		if got := FromService(err).Code(); got != c.code {
			t.Errorf("FromService(kind %d): got %s, exp %s", c.kind, got, c.code)
		}
	}
	plain := errors.New("dial tcp: connection refused")
	if got := HTTPStatus(plain); got != http.StatusInternalServerError {
		t.Errorf("HTTPStatus(plain error): got %d, exp 500", got)
	}
	if ce := FromService(plain); ce.Code() != connect.CodeInternal || ce.Message() != "internal error" {
		t.Errorf("FromService(plain error): got %s %q, exp internal \"internal error\"", ce.Code(), ce.Message())
	}
}
