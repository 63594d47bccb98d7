package coalesce

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1/sessionv1connect"
)

// echoChecker answers CheckToken with the token it was sent as the reason,
// so a test sees that the request's body arrived whole.
type echoChecker struct {
	sessionv1connect.UnimplementedSessionServiceHandler
}

func (echoChecker) CheckToken(_ context.Context, req *connect.Request[sessionv1.CheckTokenRequest]) (*connect.Response[sessionv1.CheckTokenResponse], error) {
	return connect.NewResponse(&sessionv1.CheckTokenResponse{Active: true, Reason: req.Msg.GetToken()}), nil
}

// countingConn counts the writes to a client's TCP connection: under TLS,
// each is a record sent and a system call.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// writesPerCall makes calls CheckToken calls over HTTP/1.1 and TLS through
// one kept-alive connection, and returns the TCP writes each took, not
// counting the first call (which also shakes hands).
func writesPerCall(t *testing.T, wrap func(http.RoundTripper) http.RoundTripper, calls int) float64 {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(sessionv1connect.NewSessionServiceHandler(echoChecker{}))
	srv := httptest.NewUnstartedServer(mux)
	srv.StartTLS() // HTTP/1.1 only: EnableHTTP2 is off
	t.Cleanup(srv.Close)

	var writes atomic.Int64
	base := srv.Client().Transport.(*http.Transport).Clone()
	dialer := &net.Dialer{}
	base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{Conn: c, writes: &writes}, nil
	}
	hc := &http.Client{Transport: wrap(base)}
	t.Cleanup(hc.CloseIdleConnections)
	client := sessionv1connect.NewSessionServiceClient(hc, srv.URL)

	var before int64
	for i := range calls + 1 {
		if i == 1 {
			before = writes.Load()
		}
		tok := "v4.public." + strings.Repeat("x", 300+i)
		res, err := client.CheckToken(context.Background(), connect.NewRequest(&sessionv1.CheckTokenRequest{Token: tok}))
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if got := res.Msg.GetReason(); got != tok {
			t.Fatalf("call %d: the server got token %q, want %q", i, got, tok)
		}
	}
	return float64(writes.Load()-before) / float64(calls)
}

func TestUnaryCallGoesOutInOneWrite(t *testing.T) {
	if got := writesPerCall(t, Transport, 20); got != 1 {
		t.Errorf("with coalesce.Transport: %.2f writes per call, want 1", got)
	}
	// What the package is for: without it, net/http flushes the headers
	// before it copies connect-go's body.
	if got := writesPerCall(t, func(rt http.RoundTripper) http.RoundTripper { return rt }, 20); got != 2 {
		t.Errorf("plain transport: %.2f writes per call, want 2 (if net/http or connect-go now write once, this package can go)", got)
	}
}

// recorder is a RoundTripper that keeps the request it was given.
type recorder struct{ got *http.Request }

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.got = req
	return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: req}, nil
}

// trackedBody is a request body that is not an in-memory reader of the
// standard library, and remembers being closed.
type trackedBody struct {
	io.Reader
	closed bool
}

func (b *trackedBody) Close() error { b.closed = true; return nil }

func newRequest(t *testing.T, body *trackedBody, length int64) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://node.invalid/x", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length
	return req
}

func TestSmallBodyIsCopiedAndReplayable(t *testing.T) {
	payload := []byte("a small unary message")
	orig := &trackedBody{Reader: bytes.NewReader(payload)}
	req := newRequest(t, orig, int64(len(payload)))
	rec := &recorder{}
	if _, err := Transport(rec).RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if rec.got == req {
		t.Fatal("RoundTrip modified the caller's request instead of a copy")
	}
	if req.Body != orig {
		t.Error("the caller's request lost its body")
	}
	if !orig.closed {
		t.Error("the caller's body was not closed")
	}
	for i := range 2 { // what the transport sends, then what a retry sends
		b := rec.got.Body
		if i == 1 {
			var err error
			if b, err = rec.got.GetBody(); err != nil {
				t.Fatalf("GetBody: %v", err)
			}
		}
		got, err := io.ReadAll(b)
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("body read %d: got %q, %v; want %q", i, got, err, payload)
		}
	}
	if rec.got.ContentLength != int64(len(payload)) {
		t.Errorf("ContentLength %d, want %d", rec.got.ContentLength, len(payload))
	}
}

func TestLargeOrUnknownBodiesPassThrough(t *testing.T) {
	for _, tc := range []struct {
		name   string
		length int64
	}{
		{"larger than MaxBody", MaxBody + 1},
		{"unknown length", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := &trackedBody{Reader: bytes.NewReader(make([]byte, MaxBody+1))}
			req := newRequest(t, orig, tc.length)
			rec := &recorder{}
			if _, err := Transport(rec).RoundTrip(req); err != nil {
				t.Fatal(err)
			}
			if rec.got != req {
				t.Error("the request was copied; want it passed through untouched")
			}
		})
	}
}

func TestShortBodyIsAnError(t *testing.T) {
	orig := &trackedBody{Reader: strings.NewReader("short")}
	req := newRequest(t, orig, 100)
	rec := &recorder{}
	_, err := Transport(rec).RoundTrip(req)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "ContentLength 100") {
		t.Fatalf("got %v, want an unexpected EOF naming ContentLength 100", err)
	}
	if rec.got != nil {
		t.Error("a request with a short body was sent")
	}
	if !orig.closed {
		t.Error("the body was not closed on the error")
	}
}
