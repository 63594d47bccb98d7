package console

import (
	"bytes"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPageBudget: a page (index.html with its script and style sheet) stays
// under 200 KB, and references nothing outside the node.
func TestPageBudget(t *testing.T) {
	total := 0
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(assets, p)
		if err != nil {
			return err
		}
		total += len(b)
		for _, bad := range []string{"http://", "https://", "//cdn", "fonts.googleapis"} {
			if strings.Contains(string(b), bad) && !strings.Contains(string(b), "http://www.w3.org/2000/svg") {
				t.Errorf("%s references %q: the console must work offline from the node alone", p, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if total > 200<<10 {
		t.Errorf("console assets: %d bytes, want under 200 KB", total)
	}
	t.Logf("console assets: %d bytes", total)
}

type mux struct{ *http.ServeMux }

func (m mux) HandleFunc(p string, h func(http.ResponseWriter, *http.Request)) {
	m.ServeMux.HandleFunc(p, h)
}

func newServer(t *testing.T) *httptest.Server {
	m := mux{http.NewServeMux()}
	Register(m, Options{API: http.NotFoundHandler()})
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return srv
}

// TestAssets: the pages are served with a strict CSP; nothing outside the
// embedded files is.
func TestAssets(t *testing.T) {
	srv := newServer(t)
	for path, want := range map[string]int{
		"/console/": 200, "/console/app.js": 200, "/console/app.css": 200, "/console/nope.js": 404,
		"/console/../go.mod": 404, "/console/assets/app.js": 404,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
		if want == 200 && !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: CSP %q, want default-src 'self'", path, resp.Header.Get("Content-Security-Policy"))
		}
	}
}

// TestCrossSiteRefused: a state-changing request from another origin, from
// a cross-site fetch, or without the console header is refused before any
// work, with a message naming what is wrong.
func TestCrossSiteRefused(t *testing.T) {
	srv := newServer(t)
	for _, c := range []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"other origin", map[string]string{"Origin": "https://evil.example", Header: "1"}, "own origin"},
		{"cross-site fetch without origin", map[string]string{"Sec-Fetch-Site": "cross-site", Header: "1"}, "own origin"},
		{"same-site subdomain", map[string]string{"Sec-Fetch-Site": "same-site", Header: "1"}, "own origin"},
		{"no console header (a form)", map[string]string{"Origin": srv.URL}, Header},
	} {
		for _, path := range []string{"/console/login", "/console/logout", "/console/me", "/console/rpc/sessiond.session.v1.SessionService/RevokeUserSessions"} {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(`{"email":"a@b.c","password":"x"}`))
			for k, v := range c.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(b.String(), CodeCrossSite) || !strings.Contains(b.String(), c.want) {
				t.Errorf("%s: POST %s: %d %s; want 403 %s naming %q", c.name, path, resp.StatusCode, b.String(), CodeCrossSite, c.want)
			}
		}
	}
}

// TestExtraOrigin: a configured origin (a proxy's) passes the site check;
// others still do not.
func TestExtraOrigin(t *testing.T) {
	m := mux{http.NewServeMux()}
	Register(m, Options{API: http.NotFoundHandler(), Origins: []string{"https://ops.example.com"}})
	srv := httptest.NewServer(m)
	defer srv.Close()
	for origin, want := range map[string]int{"https://ops.example.com": http.StatusNotFound, "https://evil.example": http.StatusForbidden} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/console/rpc/sessiond.x.v1.X/Y", strings.NewReader("{}"))
		req.Header.Set("Origin", origin)
		req.Header.Set(Header, "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("origin %s: %d, want %d (404: past the site check, an unknown procedure)", origin, resp.StatusCode, want)
		}
	}
}
