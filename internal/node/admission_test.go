package node

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// TestAdminHTTP_IdleAndSilentConnections_GiveTheirSlotsBack: admin HTTP
// holds at most MaxHTTPConnections connections, so peers that open
// connections and then do nothing (one that never sends a request, one
// that keeps its keep-alive connection after a request) must lose them,
// or they would lock operators and scrapers out for good. With every slot
// taken, one more connection is closed at once; once the server has
// closed the silent and the idle one, a new request is served.
func TestAdminHTTP_IdleAndSilentConnections_GiveTheirSlotsBack(t *testing.T) {
	l := DefaultLimits()
	l.HandshakeTimeout = 300 * time.Millisecond
	l.HTTPIdleTimeout = 300 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int64
	capped := newCapListener(ln, 2, func() { refused.Add(1) })
	hs := l.httpServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	go func() { _ = hs.Serve(capped) }()
	t.Cleanup(func() { _ = hs.Close() })
	addr := ln.Addr().String()

	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	get := func(c net.Conn) error {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	// closedByServer waits (bounded) for the server to close c.
	closedByServer := func(c net.Conn, what string) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("%s: read = %v, want EOF (closed by the server)", what, err)
		}
	}

	idle := dial()
	if err := get(idle); err != nil {
		t.Fatalf("first request: %v", err)
	}
	silent := dial() // never sends a byte
	// Both slots are held: wait until the listener has accepted the silent
	// one, then one more connection is closed as soon as it is accepted.
	deadline := time.Now().Add(10 * time.Second)
	for capped.open() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("open = %d, want 2", capped.open())
		}
		time.Sleep(5 * time.Millisecond)
	}
	closedByServer(dial(), "a third connection past the cap")
	if refused.Load() != 1 {
		t.Fatalf("refused = %d, want 1", refused.Load())
	}

	closedByServer(silent, "a connection that never sent its request headers")
	closedByServer(idle, "a keep-alive connection left idle")
	if err := get(dial()); err != nil {
		t.Fatalf("a request after the silent and idle connections were dropped: %v", err)
	}
}
