// Package rpcerr maps the auth service's errors to Connect errors and HTTP
// statuses, once for every door: the kind picks the code, the message says
// what is wrong and never leaks internals, and a throttled error carries
// Retry-After.
package rpcerr

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/authsvc"
	"github.com/sessiond/sessiond/authsvc/callers"
)

// codes maps each kind of service error to its Connect code.
var codes = map[authsvc.Kind]connect.Code{
	authsvc.KindInvalid:         connect.CodeInvalidArgument,
	authsvc.KindUnauthenticated: connect.CodeUnauthenticated,
	authsvc.KindForbidden:       connect.CodePermissionDenied,
	authsvc.KindNotFound:        connect.CodeNotFound,
	authsvc.KindConflict:        connect.CodeAlreadyExists,
	authsvc.KindThrottled:       connect.CodeResourceExhausted,
	authsvc.KindUnavailable:     connect.CodeUnavailable,
}

// statuses maps each kind of service error to its HTTP status, for the
// doors that answer plain HTTP (JSON routes, HTML pages).
var statuses = map[authsvc.Kind]int{
	authsvc.KindInvalid:         http.StatusBadRequest,
	authsvc.KindUnauthenticated: http.StatusUnauthorized,
	authsvc.KindForbidden:       http.StatusForbidden,
	authsvc.KindNotFound:        http.StatusNotFound,
	authsvc.KindConflict:        http.StatusConflict,
	authsvc.KindThrottled:       http.StatusTooManyRequests,
	authsvc.KindUnavailable:     http.StatusServiceUnavailable,
}

// HTTPStatus returns the HTTP status of an authsvc error's kind, and 500
// for an internal error or anything that is not an *authsvc.Error.
func HTTPStatus(err error) int {
	var e *authsvc.Error
	if !errors.As(err, &e) {
		return http.StatusInternalServerError
	}
	if st, ok := statuses[e.Kind]; ok {
		return st
	}
	return http.StatusInternalServerError
}

// FromService returns the Connect error of an authsvc error: its kind's
// code and "<code>: <message>"; anything else is INTERNAL "internal error".
func FromService(err error) *connect.Error {
	var e *authsvc.Error
	if !errors.As(err, &e) {
		return connect.NewError(connect.CodeInternal, errors.New("internal error"))
	}
	code, ok := codes[e.Kind]
	if !ok {
		return connect.NewError(connect.CodeInternal, errors.New("internal error"))
	}
	ce := connect.NewError(code, errors.New(e.Code+": "+e.Message))
	if e.RetryAfter > 0 {
		ce.Meta().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	return ce
}

// callerCodes maps each caller refusal to its Connect code.
var callerCodes = map[callers.Code]connect.Code{
	callers.CodeUnauthenticated: connect.CodeUnauthenticated,
	callers.CodeForbidden:       connect.CodePermissionDenied,
	callers.CodeThrottled:       connect.CodeResourceExhausted,
	callers.CodeUnavailable:     connect.CodeUnavailable,
	callers.CodeInvalid:         connect.CodeInvalidArgument,
}

// FromCaller returns the Connect error of a caller refusal
// (authsvc/callers.Error), keeping its message; anything else is
// UNAUTHENTICATED.
func FromCaller(err error) *connect.Error {
	var ce *callers.Error
	if !errors.As(err, &ce) {
		return connect.NewError(connect.CodeUnauthenticated, err)
	}
	code, ok := callerCodes[ce.Code]
	if !ok {
		code = connect.CodeUnauthenticated
	}
	e := connect.NewError(code, errors.New(ce.Message))
	if ce.RetryAfter > 0 {
		e.Meta().Set("Retry-After", strconv.Itoa(int((ce.RetryAfter+time.Second-1)/time.Second)))
	}
	return e
}
