package session_test

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/strata-registry/strata/internal/session"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// hugeFrame sends, as a raw HTTP/2 client, one gRPC message claiming size
// bytes on a Connect stream, and streams zeros as the server's flow
// control allows, until the server answers (trailers or a reset), all size
// bytes are sent, or the deadline passes. It returns the server's answer:
// the grpc-status and grpc-message of its trailers, or what ended the
// stream. The client keeps no buffer beyond 16 KiB, so what the process
// allocates is the server's.
func hugeFrame(t *testing.T, addr string, tc *tls.Config, size int) string {
	t.Helper()
	tc = tc.Clone()
	tc.NextProtos = []string{"h2"}
	conn, err := tls.Dial("tcp", addr, tc)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(testcluster.DefaultWait))
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		return "preface: " + err.Error()
	}
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var mu sync.Mutex // guards writes to fr and the windows
	cond := sync.NewCond(&mu)
	connWin, streamWin := int64(65535), int64(65535)
	answer := ""
	write := func(f func() error) error {
		mu.Lock()
		defer mu.Unlock()
		return f()
	}
	if err := write(func() error { return fr.WriteSettings() }); err != nil {
		return err.Error()
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, h := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":path", registryv1.SessionService_Connect_FullMethodName},
		{":authority", addr}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: h[0], Value: h[1]})
	}
	if err := write(func() error {
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	}); err != nil {
		return err.Error()
	}
	go func() {
		defer func() { mu.Lock(); cond.Broadcast(); mu.Unlock() }()
		for {
			f, err := fr.ReadFrame()
			mu.Lock()
			if err != nil {
				if answer == "" {
					answer = "read: " + err.Error()
				}
				mu.Unlock()
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					_ = fr.WriteSettingsAck()
					if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
						streamWin += int64(v) - 65535
					}
				}
			case *http2.WindowUpdateFrame:
				if f.StreamID == 0 {
					connWin += int64(f.Increment)
				} else {
					streamWin += int64(f.Increment)
				}
			case *http2.PingFrame:
				if !f.IsAck() {
					_ = fr.WritePing(true, f.Data)
				}
			case *http2.MetaHeadersFrame:
				if f.StreamEnded() {
					answer = fmt.Sprintf("grpc-status %s: %s", headerValue(f, "grpc-status"), headerValue(f, "grpc-message"))
				}
			case *http2.RSTStreamFrame:
				if answer == "" {
					answer = "reset: " + f.ErrCode.String()
				}
			case *http2.GoAwayFrame:
				if answer == "" {
					answer = "goaway: " + f.ErrCode.String()
				}
			}
			cond.Broadcast()
			done := answer != ""
			mu.Unlock()
			if done {
				return
			}
		}
	}()
	chunk := make([]byte, 16<<10)
	prefix := binary.BigEndian.AppendUint32([]byte{0}, uint32(size))
	sent := -len(prefix)
	for sent < size {
		mu.Lock()
		for answer == "" && (connWin <= 0 || streamWin <= 0) {
			cond.Wait()
		}
		if answer != "" {
			a := answer
			mu.Unlock()
			return a
		}
		n := int(min(int64(len(chunk)), connWin, streamWin, int64(size-sent)))
		buf := chunk[:n]
		if sent < 0 {
			buf = append(prefix, chunk[:n-len(prefix)]...)
		}
		err := fr.WriteData(1, false, buf)
		connWin -= int64(n)
		streamWin -= int64(n)
		mu.Unlock()
		if err != nil {
			break
		}
		sent += n
	}
	mu.Lock()
	for answer == "" {
		cond.Wait()
	}
	defer mu.Unlock()
	return answer
}

func headerValue(f *http2.MetaHeadersFrame, name string) string {
	for _, h := range f.Fields {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

// heapBytes reads the live heap after a collection, from runtime/metrics.
func heapBytes() (live, allocated uint64) {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

// TestSession_FourHugeFrames_RefusedUnread_HeapStaysFlat: four concurrent
// 60 MiB frames on the client port, from an authenticated client (its
// first frame is read, and refused by its length prefix) and from one
// without credentials (refused before any frame is read), end their
// streams with ResourceExhausted and Unauthenticated; the process's live
// heap grows by no more than a few MiB.
func TestSession_FourHugeFrames_RefusedUnread_HeapStaysFlat(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1})
	c.WaitDataSettled(t)
	addr := c.Session(0).Server().GRPCAddr()
	authed := c.Creds(t, identity.RoleClient, testcluster.ClientName).Client(identity.Peer{Role: identity.RoleSession})
	anonymous := c.ClientTLS(t).Clone()
	anonymous.Certificates = nil
	for _, tc := range []struct {
		name string
		tls  *tls.Config
		want string
	}{
		{"authenticated client", authed, "grpc-status 8: grpc: received message larger than max"},
		{"no credentials", anonymous, "grpc-status 16: node: a client certificate or a bearer token is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, allocBefore := heapBytes()
			answers := make([]string, 4)
			var wg sync.WaitGroup
			for i := range answers {
				wg.Go(func() { answers[i] = hugeFrame(t, addr, tc.tls, 60<<20) })
			}
			wg.Wait()
			after, allocAfter := heapBytes()
			for i, a := range answers {
				if !strings.HasPrefix(a, tc.want) {
					t.Errorf("frame %d: %q, want %q", i, a, tc.want)
				}
			}
			grew := int64(after) - int64(before)
			t.Logf("4 x 60 MiB frames: live heap %+.1f MiB, %.1f MiB allocated meanwhile (whole process)", float64(grew)/(1<<20), float64(allocAfter-allocBefore)/(1<<20))
			if grew > 4<<20 {
				t.Errorf("the live heap grew by %.1f MiB", float64(grew)/(1<<20))
			}
			if allocAfter-allocBefore > 60<<20 {
				t.Errorf("%.1f MiB allocated while the frames were refused: a frame was read", float64(allocAfter-allocBefore)/(1<<20))
			}
		})
	}
}

// TestSession_ConnectionCap_ClosesTheOneTooMany: a session at its
// --max-connections closes the next connection as soon as it accepts it,
// counts it, and takes a new one once a slot is free.
func TestSession_ConnectionCap_ClosesTheOneTooMany(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1, SessionConfig: func(_ int, cfg *session.Config) {
		cfg.Limits.MaxConnections = 8
	}})
	n := c.Session(0)
	tc := c.Creds(t, identity.RoleClient, testcluster.ClientName).Client(identity.Peer{Role: identity.RoleSession})
	tc.NextProtos = []string{"h2"}
	handshake := func() (*tls.Conn, error) {
		conn, err := tls.Dial("tcp", n.Server().GRPCAddr(), tc)
		if err != nil {
			return nil, err
		}
		// The server's verdict arrives with the first read (TLS 1.3).
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := conn.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
			conn.Close()
			return nil, err
		}
		_ = conn.SetReadDeadline(time.Time{})
		return conn, nil
	}
	// The cluster's own links (the data node's, say) may hold a slot: fill
	// what is left, then one more.
	var open []*tls.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for len(open) <= 8 {
		conn, err := handshake()
		if err != nil {
			break
		}
		open = append(open, conn)
	}
	if len(open) == 0 || len(open) > 8 {
		t.Fatalf("%d connections served with a cap of 8", len(open))
	}
	if got := metricValue(t, n, "strata_node_connections_refused_total"); got < 1 {
		t.Errorf("strata_node_connections_refused_total = %v, want at least 1", got)
	}
	open[0].Close()
	open = open[1:]
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		conn, err := handshake()
		if err != nil {
			return err
		}
		conn.Close()
		return nil
	})
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}
