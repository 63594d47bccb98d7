package main

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ptProxy is a fault-injecting TCP proxy for tests: it listens on a
// loopback port and forwards every connection to target. Cut closes the
// listener and every live connection (new ones are refused until Heal);
// SetLatency delays every chunk read in one direction by d before it is
// written on, keeping order.
type ptProxy struct {
	t      testing.TB
	target string
	addr   string // the proxy's listen address, stable across Cut/Heal

	up, down atomic.Int64 // one-way latency in ns: client→target, target→client
	tap      atomic.Pointer[ptTap]

	mu     sync.Mutex
	ln     net.Listener // nil while cut
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// ptNewProxy starts a proxy to target on a free loopback port and stops it
// in t.Cleanup.
func ptNewProxy(t testing.TB, target string) *ptProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &ptProxy{t: t, target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	t.Cleanup(p.close)
	return p
}

// ptFreePort returns a loopback address with a port that was free a moment
// ago (for binds that must be known before they happen).
func ptFreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// Addr is the address clients should dial.
func (p *ptProxy) Addr() string { return p.addr }

// SetLatency sets the one-way delay of each direction (0 for none).
func (p *ptProxy) SetLatency(up, down time.Duration) {
	p.up.Store(int64(up))
	p.down.Store(int64(down))
}

// Cut closes the listener and every live connection; new connections are
// refused until Heal.
func (p *ptProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// Heal listens again on the same address.
func (p *ptProxy) Heal() {
	p.t.Helper()
	p.mu.Lock()
	if p.ln != nil || p.closed {
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	var ln net.Listener
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		// The port was ours a moment ago; retry briefly if the kernel has
		// not released it yet.
		if ln, err = net.Listen("tcp", p.addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	if err != nil {
		p.t.Fatalf("proxy heal: listen %s: %v", p.addr, err)
	}
	p.serve(ln)
}

func (p *ptProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.Cut()
	p.wg.Wait()
}

// serve accepts on ln until it is closed.
func (p *ptProxy) serve(ln net.Listener) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = ln.Close()
		return
	}
	p.ln = ln
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.handle(ln, c)
		}
	}()
}

// track registers c unless ln is no longer the live listener (cut since).
func (p *ptProxy) track(ln net.Listener, cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != ln {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *ptProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

func (p *ptProxy) handle(ln net.Listener, c net.Conn) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		s, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			_ = c.Close()
			return
		}
		if !p.track(ln, c, s) {
			_ = c.Close()
			_ = s.Close()
			return
		}
		var pipes sync.WaitGroup
		pipes.Add(2)
		tap := p.tap.Load()
		go func() { defer pipes.Done(); ptPipe(s, c, &p.up, tap) }()
		go func() { defer pipes.Done(); ptPipe(c, s, &p.down, tap) }()
		pipes.Wait()
		_ = c.Close()
		_ = s.Close()
		p.untrack(c, s)
	}()
}

type ptChunk struct {
	b   []byte
	due time.Time
}

// ptTap records every byte a proxy carries, both ways.
type ptTap struct {
	mu sync.Mutex
	b  []byte
}

func (t *ptTap) add(b []byte) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.b = append(t.b, b...)
	t.mu.Unlock()
}

// Bytes returns a copy of what was recorded.
func (t *ptTap) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.b...)
}

// Record makes the proxy record the bytes of the connections it accepts
// from now on.
func (p *ptProxy) Record() *ptTap {
	t := &ptTap{}
	p.tap.Store(t)
	return t
}

// ptPipe copies src to dst, delaying each chunk by the latency current when
// it was read, and records it on tap (if not nil). It closes both ends when
// either fails.
func ptPipe(dst, src net.Conn, latency *atomic.Int64, tap *ptTap) {
	q := make(chan ptChunk, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ch := range q {
			if d := time.Until(ch.due); d > 0 {
				time.Sleep(d) // the injected latency itself
			}
			if _, err := dst.Write(ch.b); err != nil {
				_ = src.Close()
				for range q { // drain so the reader never blocks
				}
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			b := make([]byte, n)
			copy(b, buf[:n])
			tap.add(b)
			q <- ptChunk{b: b, due: time.Now().Add(time.Duration(latency.Load()))}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				_ = dst.Close()
			}
			break
		}
	}
	close(q)
	<-done
	// Half-close so the peer sees EOF after the data, then let the caller
	// close everything.
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

func TestPartitionProxyCutHealLatency(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = echo.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); _ = c.Close() }()
		}
	}()
	p := ptNewProxy(t, echo.Addr().String())
	roundTrip := func() (time.Duration, error) {
		c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		t0 := time.Now()
		if _, err := c.Write([]byte("ping")); err != nil {
			return 0, err
		}
		got := make([]byte, 4)
		if _, err := io.ReadFull(c, got); err != nil {
			return 0, err
		}
		if string(got) != "ping" {
			t.Fatalf("echo through proxy: got %q, want %q", got, "ping")
		}
		return time.Since(t0), nil
	}
	if _, err := roundTrip(); err != nil {
		t.Fatalf("round trip through healthy proxy: %v", err)
	}
	// A live connection is closed by Cut.
	live, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if _, err := live.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(live, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	_ = live.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := live.Read(make([]byte, 1)); err == nil {
		t.Fatal("read on a cut connection succeeded, want an error")
	}
	if _, err := roundTrip(); err == nil {
		t.Fatal("round trip through a cut proxy succeeded, want an error")
	}
	p.Heal()
	p.SetLatency(20*time.Millisecond, 20*time.Millisecond)
	d, err := roundTrip()
	if err != nil {
		t.Fatalf("round trip after heal: %v", err)
	}
	if d < 40*time.Millisecond {
		t.Fatalf("round trip with 20 ms each way took %s, want >= 40ms", d)
	}
}
