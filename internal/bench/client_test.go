package bench

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestHTTPVersions talks to a TLS server trusted through --ca-file and
// wants HTTP/1.1 or HTTP/2 as asked, and one connection per HTTP client.
func TestHTTPVersions(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strconv.Itoa(r.ProtoMajor)))
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		http string
		want int
	}{{"1.1", 1}, {"2", 2}} {
		conn := Conn{Targets: []string{srv.URL}, HTTP: c.http, CACert: ca, Conns: 2}
		hcs, targets, err := HTTPClients(conn, 4)
		if err != nil {
			t.Fatal(err)
		}
		if hcs[0] != hcs[2] || hcs[0] == hcs[1] || targets[3] != srv.URL {
			t.Errorf("--conns 2 over 4 clients: want clients 0 and 2 to share an HTTP client, 0 and 1 not")
		}
		if err := getOK(t.Context(), hcs[0], srv.URL); err != nil {
			t.Fatalf("--http %s: %v", c.http, err)
		}
		resp, err := hcs[1].Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ProtoMajor != c.want {
			t.Errorf("--http %s: got HTTP/%d, want HTTP/%d", c.http, resp.ProtoMajor, c.want)
		}
		resp.Body.Close()
	}
	if _, _, err := HTTPClients(Conn{Targets: []string{srv.URL}, CACert: "/nonexistent"}, 1); err == nil {
		t.Error("a missing --ca-file file: got nil, want an error")
	}
	if err := (Conn{Targets: []string{srv.URL}, Protocol: "grpc", HTTP: "1.1"}).Validate(); err == nil {
		t.Error("grpc over HTTP/1.1: got nil, want an error")
	}
}
