package faultproxy_test

import (
	"bufio"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/faultproxy"
)

// echo serves a line echo on loopback and returns its address.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func start(t *testing.T) *faultproxy.Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := faultproxy.Start(ln, echo(t))
	t.Cleanup(func() { _ = p.Close() })
	return p
}

type client struct {
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &client{c: c, r: bufio.NewReader(c)}
}

// roundTrip sends a line and reads the echo within d.
func (c *client) roundTrip(line string, d time.Duration) (string, error) {
	if _, err := c.c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	return c.read(d)
}

func (c *client) read(d time.Duration) (string, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(d))
	s, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return s[:len(s)-1], nil
}

func TestProxy_Forwards_PauseHoldsBytes_HealDeliversThem(t *testing.T) {
	p := start(t)
	c := dial(t, p.Addr())
	if got, err := c.roundTrip("one", 5*time.Second); err != nil || got != "one" {
		t.Fatalf("open link: got %q, %v", got, err)
	}
	p.Pause()
	if p.State() != faultproxy.Paused {
		t.Fatalf("state %v, want paused", p.State())
	}
	// Nothing may come back while paused; a short deadline proves the
	// negative (there is no event to wait for).
	if got, err := c.roundTrip("two", 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("paused link answered %q, %v; want a timeout", got, err)
	}
	p.Heal()
	if got, err := c.read(5 * time.Second); err != nil || got != "two" {
		t.Fatalf("after heal: got %q, %v; want the held line", got, err)
	}
}

func TestProxy_Cut_ClosesConnectionsAndRefusesNew_UntilHealed(t *testing.T) {
	p := start(t)
	c := dial(t, p.Addr())
	if _, err := c.roundTrip("one", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Pause() // a cut also ends a pause and the bytes it held
	p.Cut()
	if _, err := c.read(5 * time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("open connection through a cut: %v; want it closed", err)
	}
	n := dial(t, p.Addr())
	if _, err := n.roundTrip("x", 5*time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("new connection through a cut: %v; want it closed", err)
	}
	p.Heal()
	h := dial(t, p.Addr())
	if got, err := h.roundTrip("back", 5*time.Second); err != nil || got != "back" {
		t.Fatalf("after heal: got %q, %v", got, err)
	}
}

func TestProxy_Close_EndsPausedConnections(t *testing.T) {
	p := start(t)
	c := dial(t, p.Addr())
	if _, err := c.roundTrip("one", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Pause()
	if _, err := c.c.Write([]byte("held\n")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.read(5 * time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection after close: %v; want it closed", err)
	}
}
