package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"connectrpc.com/connect"
)

// ErrExhausted is returned by an operation whose scenario has run out of
// material (a pool of sessions to revoke): the run ends there, and the
// summary covers the time until then.
var ErrExhausted = errors.New("bench: the scenario ran out of prepared material")

// Failure is an operation that completed but did not do what the scenario
// expects (a check answering inactive for a live session, an HTTP status
// other than 200). Code names it in the summary's errors by code.
type Failure struct {
	Code    string
	Message string
}

// Error returns "code: message".
func (f *Failure) Error() string { return f.Code + ": " + f.Message }

// Failf returns a *Failure with a formatted message.
func Failf(code, format string, args ...any) *Failure {
	return &Failure{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode classifies err for the errors-by-code count: a *Failure's
// code; a Connect error's code ("unavailable", "resource_exhausted", ...);
// "deadline_exceeded" and "canceled" for contexts; "transport" for a
// network error; else "other".
func ErrorCode(err error) string {
	var f *Failure
	var ce *connect.Error
	var ne net.Error
	switch {
	case errors.As(err, &f):
		return f.Code
	case errors.As(err, &ce):
		return ce.Code().String()
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return "transport"
	default:
		return "other"
	}
}
