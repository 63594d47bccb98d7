package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1/sessionv1connect"
)

// lmRSS returns the resident set size of process pid in bytes.
func lmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read status of %d: %v", pid, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// TestAttackHugeBodies is the attack of issue 9 against a real agent over
// TLS: three clients, each with the check scope, send 100 MB CheckToken
// bodies at once. Each is answered RESOURCE_EXHAUSTED naming the limit
// while it is still sending (the server never reads the body: before,
// all three got 200 and the node's RSS went from 166 MiB to 935 MiB), and
// the node's memory does not grow by anything like the bodies.
func TestAttackHugeBodies(t *testing.T) {
	e2eSkipShort(t)
	t.Parallel()
	c := newE2ECluster(t, false)
	hk := c.startNode(e2eNodeOpts{Region: "hk"})
	hk.waitReady(e2eStartLimit)
	auth := e2eAuthHeader(hk.url()) // an operator token with the check scope
	pid := hk.cmd.Process.Pid
	before := lmRSS(t, pid)

	const size = 100 << 20
	tlsCfg := e2eHTTP.Transport.(*http.Transport).TLSClientConfig.Clone()
	tlsCfg.NextProtos = []string{"http/1.1"}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	sent := make([]int64, 3)
	for i := range 3 {
		wg.Go(func() {
			conn, err := tls.Dial("tcp", hk.httpAddr, tlsCfg)
			if err != nil {
				errs[i] = err
				return
			}
			defer conn.Close()
			head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%s: %s\r\nContent-Length: %d\r\n\r\n",
				sessionv1connect.SessionServiceCheckTokenProcedure, hk.httpAddr, auth[0], auth[1], size)
			if _, err := io.WriteString(conn, head+`{"token":"`); err != nil {
				errs[i] = err
				return
			}
			answered := make(chan struct{})
			var wsent int64
			wdone := make(chan struct{})
			go func() { // the rest of the body, until the server closes
				defer close(wdone)
				chunk := bytes.Repeat([]byte("a"), 64<<10)
				for wsent < size {
					select {
					case <-answered:
						return
					default:
					}
					_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
					n, err := conn.Write(chunk)
					wsent += int64(n)
					if err != nil {
						return
					}
				}
			}()
			_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			close(answered)
			if err != nil {
				errs[i] = fmt.Errorf("no answer: %w", err)
				return
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			_ = conn.Close() // ends the writer's Write
			<-wdone
			sent[i] = wsent
			if res.StatusCode != http.StatusTooManyRequests || !bytes.Contains(body, []byte(`"resource_exhausted"`)) ||
				!bytes.Contains(body, []byte("65536")) {
				errs[i] = fmt.Errorf("got %d %s; want 429 resource_exhausted naming the limit 65536", res.StatusCode, body)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("client %d: %v", i, err)
		}
		if sent[i] >= size {
			t.Errorf("client %d: sent all %d bytes before the answer; want the refusal while it was still sending", i, size)
		}
	}
	after := lmRSS(t, pid)
	t.Logf("RSS before %d MiB, after %d MiB; each client sent %v bytes before the answer", before>>20, after>>20, sent)
	if grew := after - before; grew > 32<<20 {
		t.Errorf("RSS grew by %d MiB (from %d to %d MiB) during three refused 100 MB bodies; want the bodies never read", grew>>20, before>>20, after>>20)
	}
}
