package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultProfilePath is where a node serves its CPU profile (net/http/pprof's
// path, behind operator credentials).
const DefaultProfilePath = "/debug/pprof/profile"

// Profiler takes a CPU profile of every target while a run goes on.
type Profiler struct {
	// Conn reaches the nodes (the operator token authenticates).
	Conn Conn
	// Dir receives <host>_<port>.cpu.pprof per node.
	Dir string
	// Path is the profile route (default DefaultProfilePath).
	Path string
}

// Start asks every target for a CPU profile of d (whole seconds, at least
// one) and returns a function that waits for them and returns a note per
// node that gave none (the route is missing, refused, or failed) and the
// files written.
func (p Profiler) Start(ctx context.Context, d time.Duration) (wait func() (notes, files []string)) {
	path := p.Path
	if path == "" {
		path = DefaultProfilePath
	}
	secs := max(int(d.Seconds()), 1)
	hc, err := p.Conn.HTTPClient(0)
	if err != nil {
		return func() ([]string, []string) { return []string{"profiles: " + err.Error()}, nil }
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var notes, files []string
	for _, t := range p.Conn.Targets {
		wg.Go(func() {
			f, err := p.fetch(ctx, hc, strings.TrimRight(t, "/")+path+"?seconds="+strconv.Itoa(secs), t, time.Duration(secs+30)*time.Second)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				notes = append(notes, fmt.Sprintf("no CPU profile from %s: %v", t, err))
				return
			}
			files = append(files, f)
		})
	}
	return func() ([]string, []string) {
		wg.Wait()
		hc.CloseIdleConnections()
		return notes, files
	}
}

func (p Profiler) fetch(ctx context.Context, hc *http.Client, u, target string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	if tok := p.Conn.OperatorToken; tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s (does the node expose pprof to operators?)", u, resp.Status)
	}
	name := "node"
	if pu, err := url.Parse(target); err == nil {
		name = strings.NewReplacer(":", "_", "[", "", "]", "").Replace(pu.Host)
	}
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(p.Dir, name+".cpu.pprof")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, io.LimitReader(resp.Body, 256<<20)); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}
