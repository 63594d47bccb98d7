// Package coalesce sends a small HTTP/1.1 request in one write: its headers
// and its body together, one TLS record and one system call instead of two.
//
// Go's HTTP/1.1 transport flushes a request's headers before it copies the
// body, unless the body is one of the standard library's in-memory readers
// (*bytes.Reader, *bytes.Buffer, *strings.Reader; golang/go#22088). A
// Connect unary call carries its message in a reader of connect-go's own
// (its payloadCloser), so every call through net/http costs two writes:
// two system calls and two TLS records on the client, two records to
// decrypt on the server, often two TCP segments. For a service checking
// tokens with sessiond, the call is that small request.
//
// Transport copies a body of known length up to MaxBody into memory and
// hands the transport a *bytes.Reader over it (with GetBody, so a request
// the transport retries on a fresh connection sends the same bytes). Every
// other request passes through untouched. Over HTTP/2 it changes nothing
// but the copy.
//
//	hc := &http.Client{Transport: coalesce.Transport(http.DefaultTransport)}
//	client := sessionv1connect.NewSessionServiceClient(hc, "https://node-1:8443")
package coalesce

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
)

// MaxBody is the largest body Transport copies: the default write buffer of
// net/http's transport (4 KiB). A larger body does not fit in one write with
// its headers anyway.
const MaxBody = 4 << 10

// Transport returns a RoundTripper that sends each request through base,
// with a body of known length up to MaxBody (a Connect unary call's
// message) copied into memory first, so that base writes it together with
// the headers. base is typically an *http.Transport; CloseIdleConnections
// reaches it.
func Transport(base http.RoundTripper) http.RoundTripper {
	return &transport{base: base}
}

type transport struct{ base http.RoundTripper }

// RoundTrip implements http.RoundTripper. It does not modify req: a copied
// body goes out on a shallow copy of it. As the contract of RoundTrip asks,
// req's body is closed, on errors too.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	n := req.ContentLength
	if req.Body == nil || req.Body == http.NoBody || n <= 0 || n > MaxBody {
		return t.base.RoundTrip(req)
	}
	body := make([]byte, n)
	_, err := io.ReadFull(req.Body, body)
	req.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("coalesce: request body shorter than its ContentLength %d: %w", n, err)
	}
	out := req.WithContext(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return t.base.RoundTrip(out)
}

// CloseIdleConnections closes base's idle connections, if it has any
// (http.Client.CloseIdleConnections calls it).
func (t *transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
