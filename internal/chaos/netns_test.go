//go:build linux

package chaos

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestNetCutAndHeal: two hosts talk over TCP and UDP; a cut drops their
// traffic both ways (a dial times out: no refusal reaches the dialer) while
// the gateway still reaches both; Heal restores it; Close leaves no
// namespace behind.
func TestNetCutAndHeal(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	n, err := NewNet()
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = n.Close()
		}
	})
	a, err := n.AddHost()
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.AddHost()
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	var pc net.PacketConn
	if err := b.Do(func() (err error) {
		if ln, err = net.Listen("tcp", b.IP+":7000"); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", b.IP+":7001")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	echo := func(from *Host) error {
		dial := func() error {
			c, err := net.DialTimeout("tcp", b.IP+":7000", 500*time.Millisecond)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Write([]byte("ping")); err != nil {
				return err
			}
			_, err = io.ReadFull(c, make([]byte, 4))
			return err
		}
		if from == nil {
			return dial()
		}
		return from.Do(dial)
	}
	udp := func() bool {
		if err := a.Do(func() error {
			c, err := net.Dial("udp", b.IP+":7001")
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("hello"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		_ = pc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, _, err := pc.ReadFrom(make([]byte, 16))
		return err == nil
	}

	if err := echo(a); err != nil {
		t.Fatalf("a -> b before the cut: %v", err)
	}
	if !udp() {
		t.Fatal("UDP a -> b before the cut: nothing received")
	}
	if err := n.Cut(a, b); err != nil {
		t.Fatal(err)
	}
	err = echo(a)
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("a -> b across the cut: %v; want a timeout (packets dropped silently)", err)
	}
	if udp() {
		t.Fatal("UDP a -> b across the cut: received; want dropped")
	}
	if err := echo(nil); err != nil {
		t.Fatalf("gateway -> b during the cut: %v; want reachable", err)
	}
	if got := n.Cuts(); got != 2 {
		t.Fatalf("Cuts() = %d, want 2 (both directions)", got)
	}
	if err := n.Heal(); err != nil {
		t.Fatal(err)
	}
	if err := echo(a); err != nil {
		t.Fatalf("a -> b after Heal: %v", err)
	}

	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	out, err := ipOutput("netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, a.Name) || strings.Contains(out, b.Name) {
		t.Fatalf("after Close, ip netns list = %q; want neither %s nor %s", out, a.Name, b.Name)
	}
}
