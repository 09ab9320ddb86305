package node

import (
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Limits bound what a node accepts from any peer, authenticated or not,
// so that none makes it allocate without bound: the largest request
// message (sized per role to the largest valid one), connections, streams
// per connection, the time a new connection may take to finish its
// handshakes, how long a connection may sit idle, and keepalive pings.
type Limits struct {
	// MaxRecvBytes is the largest gRPC request message the node reads;
	// a larger one is refused from its 5-byte length prefix, before any of
	// it is buffered (ResourceExhausted). Each role sets its own.
	MaxRecvBytes int
	// MaxConnections caps open connections to the gRPC port; one more is
	// closed as soon as it is accepted (and counted).
	MaxConnections int
	// MaxHTTPConnections caps open connections to the admin HTTP port.
	MaxHTTPConnections int
	// MaxStreams caps concurrent streams (calls) per connection.
	MaxStreams uint32
	// HandshakeTimeout bounds a new connection's TLS and HTTP/2 handshake
	// on the gRPC port, and on the admin HTTP port the TLS handshake and
	// the reading of each request's headers.
	HandshakeTimeout time.Duration
	// MaxConnectionIdle closes a gRPC connection (GOAWAY) that has had no
	// call or stream open for this long, so idle anonymous connections do
	// not hold MaxConnections' slots. A connection with an open stream (a
	// subscriber's) is not idle; a client whose connection closed this way
	// reconnects at its next call.
	MaxConnectionIdle time.Duration
	// HTTPIdleTimeout closes an admin HTTP keep-alive connection that has
	// waited this long for its next request, so idle connections do not
	// hold MaxHTTPConnections' slots.
	HTTPIdleTimeout time.Duration
	// KeepaliveMinTime: a peer that pings more often than this is
	// disconnected. KeepaliveTime and KeepaliveTimeout: the server pings a
	// connection idle for KeepaliveTime and drops it if no answer comes
	// within KeepaliveTimeout.
	KeepaliveMinTime, KeepaliveTime, KeepaliveTimeout time.Duration
}

// DefaultLimits are the limits of a meta node; data and session nodes
// change what their traffic needs.
func DefaultLimits() Limits {
	return Limits{
		MaxRecvBytes:       4 << 20,
		MaxConnections:     10_000,
		MaxHTTPConnections: 256,
		MaxStreams:         1024,
		HandshakeTimeout:   5 * time.Second,
		MaxConnectionIdle:  5 * time.Minute,
		HTTPIdleTimeout:    time.Minute,
		KeepaliveMinTime:   5 * time.Second,
		KeepaliveTime:      30 * time.Second,
		KeepaliveTimeout:   10 * time.Second,
	}
}

func (l Limits) validate() error {
	if l.MaxRecvBytes < 1<<10 || l.MaxConnections < 1 || l.MaxHTTPConnections < 1 || l.MaxStreams < 1 {
		return errLimits
	}
	if l.HandshakeTimeout <= 0 || l.MaxConnectionIdle <= 0 || l.HTTPIdleTimeout <= 0 ||
		l.KeepaliveMinTime <= 0 || l.KeepaliveTime <= 0 || l.KeepaliveTimeout <= 0 {
		return errLimits
	}
	return nil
}

// serverOptions are the gRPC options that enforce l.
func (l Limits) serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(l.MaxStreams),
		grpc.ConnectionTimeout(l.HandshakeTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: l.KeepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: l.MaxConnectionIdle, Time: l.KeepaliveTime, Timeout: l.KeepaliveTimeout,
		}),
	}
}

// httpServer returns the admin HTTP server for h, with l's timeouts: a
// peer that sends no request headers within HandshakeTimeout (TLS
// handshake included), or keeps a connection idle past HTTPIdleTimeout,
// loses the connection and its MaxHTTPConnections slot.
func (l Limits) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.HandshakeTimeout,
		IdleTimeout:       l.HTTPIdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
}

// capListener accepts at most cap connections at a time: one more is
// closed at once and counted, so a flood of connections costs a file
// descriptor for a moment each and nothing more.
type capListener struct {
	net.Listener
	slots   chan struct{}
	refused func()
}

func newCapListener(ln net.Listener, cap int, refused func()) *capListener {
	return &capListener{Listener: ln, slots: make(chan struct{}, cap), refused: refused}
}

// Accept returns the next connection within the cap.
func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &capConn{Conn: c, release: sync.OnceFunc(func() { <-l.slots })}, nil
		default:
			l.refused()
			_ = c.Close()
		}
	}
}

// open returns how many connections are open.
func (l *capListener) open() int { return len(l.slots) }

// capConn gives its slot back when closed.
type capConn struct {
	net.Conn
	release func()
}

func (c *capConn) Close() error {
	c.release()
	return c.Conn.Close()
}
