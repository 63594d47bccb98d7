// Package httplimit bounds every request of the API before anything else
// looks at it: the size of its body and how long the body and the answer
// may take. It is HTTP middleware, the outermost layer of the node's
// handler (limits, then caller authentication, then the routes):
//
//   - a request whose Content-Length exceeds its route's limit is refused
//     at once, before one byte of the body is read: 413 with a JSON error
//     naming the limit, or RESOURCE_EXHAUSTED in the Connect, gRPC or
//     gRPC-Web protocol for an RPC. On HTTP/1.1 the connection is closed
//     after the answer, so the rest of the body is never read;
//   - a body without a length (chunked, HTTP/2, gRPC) is read through
//     http.MaxBytesReader: reading past the limit fails with
//     *http.MaxBytesError;
//   - a unary request's body must arrive within ReadTimeout of the request
//     (http.ResponseController.SetReadDeadline: a client sending one byte
//     every few seconds is cut), and its answer must be written within
//     WriteTimeout. Routes marked Stream (WatchRevocations, a snapshot,
//     a CPU profile) get no write deadline; routes marked Duplex (gRPC
//     reflection) no read deadline either.
//
// Connect handlers should also get connect.WithReadMaxBytes with the same
// limit: it bounds a message after decompression, which the wire limit
// here cannot.
package httplimit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"
)

// CodeTooLarge is the error code of a refused oversized body.
const CodeTooLarge = "request_too_large"

// Defaults of Config.
const (
	DefaultMaxBodyBytes = 64 << 10
	DefaultReadTimeout  = 10 * time.Second
	DefaultWriteTimeout = 30 * time.Second
)

// Route is the limits of one route; zero values take the Config's.
type Route struct {
	// MaxBodyBytes bounds the request body (0: Config.MaxBodyBytes).
	MaxBodyBytes int64
	// Stream marks a route whose answer lasts (a server stream, a
	// profile): it gets no write deadline. Its request body still has the
	// read deadline until it has been read to its end.
	Stream bool
	// Duplex marks a route whose client keeps sending (a bidirectional
	// stream): it gets no read deadline either.
	Duplex bool
}

// Config is the limits of every route.
type Config struct {
	// MaxBodyBytes bounds a request body on routes without their own
	// limit (0: DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// ReadTimeout is how long after the request's headers its body may
	// take to arrive (0: DefaultReadTimeout; negative: none).
	ReadTimeout time.Duration
	// WriteTimeout is how long after the request's headers a unary answer
	// may take to be written (0: DefaultWriteTimeout; negative: none).
	WriteTimeout time.Duration
	// Routes maps an exact path, or a prefix ending in "/" covering every
	// path below it without a rule of its own, to its limits.
	Routes map[string]Route
}

// lookup returns the route of path with the defaults filled in.
func (c *Config) lookup(path string) Route {
	r, ok := c.Routes[path]
	if !ok {
		best := ""
		for k, v := range c.Routes {
			if strings.HasSuffix(k, "/") && strings.HasPrefix(path, k) && len(k) > len(best) {
				best, r = k, v
			}
		}
	}
	if r.MaxBodyBytes <= 0 {
		r.MaxBodyBytes = c.MaxBodyBytes
	}
	return r
}

func (c Config) normalized() Config {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	return c
}

// Handler applies the limits in front of next.
type Handler struct {
	cfg  Config
	errw *connect.ErrorWriter
	next http.Handler
}

// New returns the middleware in front of next.
func New(cfg Config, next http.Handler) *Handler {
	return &Handler{cfg: cfg.normalized(), errw: connect.NewErrorWriter(), next: next}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	route := h.cfg.lookup(r.URL.Path)
	if r.ContentLength > route.MaxBodyBytes {
		h.tooLarge(w, r, route.MaxBodyBytes)
		return
	}
	rc := http.NewResponseController(w)
	now := time.Now()
	// Set or clear: on HTTP/1.1 a deadline of the previous request on the
	// same connection would still hold.
	var writeBy time.Time
	if h.cfg.WriteTimeout > 0 && !route.Stream && !route.Duplex {
		writeBy = now.Add(h.cfg.WriteTimeout)
	}
	_ = rc.SetWriteDeadline(writeBy)
	if r.Body == nil || r.Body == http.NoBody {
		h.next.ServeHTTP(w, r)
		return
	}
	body := io.ReadCloser(http.MaxBytesReader(w, r.Body, route.MaxBodyBytes))
	if h.cfg.ReadTimeout > 0 && !route.Duplex {
		// The deadline covers the body only: it is lifted once the body
		// has been read to its end, so that a handler working longer
		// than ReadTimeout after reading it (a linearizable read, a
		// password hash under load) keeps its request.
		if rc.SetReadDeadline(now.Add(h.cfg.ReadTimeout)) == nil {
			body = &deadlineBody{ReadCloser: body, rc: rc, timeout: h.cfg.ReadTimeout, deadline: now.Add(h.cfg.ReadTimeout)}
		}
	}
	r.Body = body
	h.next.ServeHTTP(w, r)
}

// tooLarge refuses a request whose declared body exceeds limit, without
// reading it.
func (h *Handler) tooLarge(w http.ResponseWriter, r *http.Request, limit int64) {
	msg := fmt.Sprintf("the request body is %d bytes; %.128s accepts at most %d bytes", r.ContentLength, r.URL.Path, limit)
	if r.ProtoMajor == 1 {
		// Close the connection after the answer instead of reading the
		// rest of the body to reuse it.
		w.Header().Set("Connection", "close")
	}
	if isProcedure(r.URL.Path) && h.errw.IsSupported(r) {
		_ = h.errw.Write(w, r, connect.NewError(connect.CodeResourceExhausted, errors.New(msg)))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": CodeTooLarge, "message": msg})
}

// isProcedure reports whether path names an RPC ("/pkg.Service/Method").
func isProcedure(path string) bool {
	svc, method, ok := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return ok && strings.Contains(svc, ".") && method != "" && !strings.Contains(method, "/")
}

// TimeoutError is the error of a body that did not arrive within the read
// timeout; errors.Is(err, os.ErrDeadlineExceeded) holds.
type TimeoutError struct {
	// Timeout is the read timeout.
	Timeout time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("the request body did not arrive within %s", e.Timeout)
}

// Unwrap returns os.ErrDeadlineExceeded.
func (e *TimeoutError) Unwrap() error { return os.ErrDeadlineExceeded }

// deadlineBody lifts the read deadline once the body is read to its end,
// and names the timeout when it passes.
type deadlineBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	timeout  time.Duration
	deadline time.Time
	done     bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		if !b.done {
			b.done = true
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	case errors.Is(err, os.ErrDeadlineExceeded), !b.done && !time.Now().Before(b.deadline):
		// Whatever the layers below made of it (a cut HTTP/1.1 body can
		// read as io.ErrUnexpectedEOF).
		err = &TimeoutError{Timeout: b.timeout}
	}
	return n, err
}
