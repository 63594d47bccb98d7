package httplimit_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/api/httplimit"
)

// slowBody yields one byte per tick until stop is closed.
type slowBody struct {
	tick time.Duration
	stop chan struct{}
}

func (b *slowBody) Read(p []byte) (int, error) {
	select {
	case <-b.stop:
		return 0, io.EOF
	case <-time.After(b.tick):
	}
	p[0] = ' '
	return 1, nil
}

// server serves h behind the limits over HTTP/1.1 and HTTP/2 (TLS).
func server(t *testing.T, cfg httplimit.Config, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(httplimit.New(cfg, h))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// TestReadDeadlineLiftedAfterBody: a handler that reads its body and then
// works longer than the read timeout keeps its context and answers, on
// HTTP/1.1 and HTTP/2 (on HTTP/1.1 a passed read deadline would cancel
// the request's context once the server waits for the next request).
func TestReadDeadlineLiftedAfterBody(t *testing.T) {
	cfg := httplimit.Config{ReadTimeout: 200 * time.Millisecond, WriteTimeout: 10 * time.Second}
	srv := server(t, cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case <-r.Context().Done():
			http.Error(w, "context cancelled after the body was read", http.StatusInternalServerError)
			return
		case <-time.After(4 * cfg.ReadTimeout): // work longer than the read timeout
		}
		_, _ = io.WriteString(w, "done")
	}))
	for _, h2 := range []bool{false, true} {
		c := srv.Client()
		if !h2 {
			tc := c.Transport.(*http.Transport).TLSClientConfig.Clone()
			tc.NextProtos = []string{"http/1.1"}
			c = &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		}
		res, err := c.Post(srv.URL+"/x", "text/plain", strings.NewReader("body"))
		if err != nil {
			t.Fatalf("h2=%t: %v", h2, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || string(b) != "done" || (res.ProtoMajor == 2) != h2 {
			t.Errorf("h2=%t: HTTP/%d %d %q, want 200 done", h2, res.ProtoMajor, res.StatusCode, b)
		}
	}
}

// TestSlowBodyCut: over HTTP/2 a body trickling in slower than the read
// timeout fails with a *TimeoutError naming it, and the connection serves
// the next request; a Duplex route has no read deadline.
func TestSlowBodyCut(t *testing.T) {
	cfg := httplimit.Config{ReadTimeout: 300 * time.Millisecond, Routes: map[string]httplimit.Route{"/duplex": {Duplex: true}}}
	srv := server(t, cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 1)
		for n := 0; n < 8; n++ { // eight bytes, then answer
			if _, err := r.Body.Read(buf); err != nil {
				var te *httplimit.TimeoutError
				if !errors.As(err, &te) || !errors.Is(err, os.ErrDeadlineExceeded) || te.Timeout != cfg.ReadTimeout {
					http.Error(w, "unexpected error: "+err.Error(), http.StatusInternalServerError)
					return
				}
				http.Error(w, err.Error(), http.StatusRequestTimeout)
				return
			}
		}
		_, _ = io.WriteString(w, "read 8 bytes")
	}))
	c := srv.Client()
	for _, tc := range []struct {
		path   string
		status int
	}{{"/unary", http.StatusRequestTimeout}, {"/duplex", http.StatusOK}, {"/unary", http.StatusRequestTimeout}} {
		body := &slowBody{tick: 100 * time.Millisecond, stop: make(chan struct{})}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+tc.path, body)
		res, err := c.Do(req)
		close(body.stop)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.ProtoMajor != 2 || res.StatusCode != tc.status {
			t.Errorf("%s: HTTP/%d %d %q, want HTTP/2 %d", tc.path, res.ProtoMajor, res.StatusCode, bytes.TrimSpace(b), tc.status)
		}
	}
}
