// Package rpc is the gRPC plumbing every Strata role shares: server
// credentials from the TLS settings, a bounded pool of client connections
// to other nodes, and a graceful stop with a deadline.
package rpc

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
	"github.com/strata-registry/strata/pkg/client/wire"
)

// ServerOptions returns the options every Strata server uses: creds' TLS
// with client auth (none when creds is nil), maxRecv as the largest request
// message, and Stop waiting for running handlers, so a server's Run never
// returns while one of its handlers still works.
func ServerOptions(creds *tlsconf.Creds, auth tls.ClientAuthType, maxRecv int) []grpc.ServerOption {
	opts := []grpc.ServerOption{grpc.WaitForHandlers(true), grpc.MaxRecvMsgSize(maxRecv)}
	if creds != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(creds.Server(auth, nil))))
	}
	return opts
}

// Serve serves gs on ln until Stop; a stopped server is not an error.
func Serve(gs *grpc.Server, ln net.Listener) error {
	if err := gs.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve gRPC on %s: %w", ln.Addr(), err)
	}
	return nil
}

// Stop stops gs gracefully, then forcibly after d: streams end with their
// server's context, but a slow peer must not hold shutdown up.
func Stop(gs *grpc.Server, d time.Duration) {
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		gs.Stop()
		<-done
	}
}

// DialOptions returns the options for a client of a Strata node: creds'
// TLS, requiring the server to be peer (plaintext when creds is nil), and
// the message size limit.
func DialOptions(creds *tlsconf.Creds, peer identity.Peer) []grpc.DialOption {
	tc := insecure.NewCredentials()
	if creds != nil {
		tc = credentials.NewTLS(creds.Client(peer))
	}
	return []grpc.DialOption{
		grpc.WithTransportCredentials(tc),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(wire.MaxMessageBytes), grpc.MaxCallSendMsgSize(wire.MaxMessageBytes)),
		grpc.WithConnectParams(connectParams()),
	}
}

// connectParams is how node-to-node connections reconnect: grpc-go's
// defaults (1 s doubling-ish up to 120 s between attempts, 20 s for one
// attempt) are for clients of a distant service; a peer in the same
// cluster that comes back from a restart or a healed partition must be
// reached again within the failure detection budget, not after the
// connection's backoff has grown for as long as the peer was away. So:
// 100 ms, x1.6, jittered, at most 1 s between attempts, and an attempt
// (TCP and TLS handshake) given up after 2 s, so one to a frozen or
// black-holed peer does not hold the connection for 20 s after it is back.
func connectParams() grpc.ConnectParams {
	return grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
		MinConnectTimeout: 2 * time.Second,
	}
}

// Pool caches client connections by address and expected peer.
// Connections dial lazily and reconnect by themselves; the pool only
// bounds how many it keeps. Safe for concurrent use.
type Pool struct {
	creds *tlsconf.Creds
	max   int

	mu    sync.Mutex
	conns map[poolKey]*grpc.ClientConn
	order []poolKey // oldest first
}

// poolKey is a connection's address and the identity it checks: a
// connection verified as one peer is never handed out for another.
type poolKey struct {
	addr string
	peer identity.Peer
}

// NewPool returns a pool dialing with creds (plaintext when nil), keeping
// at most max connections; past that it closes the least recently used
// one. Size it well above the peers a node talks to: a closed connection
// ends its streams, which reconnect.
func NewPool(creds *tlsconf.Creds, max int) *Pool {
	return &Pool{creds: creds, max: max, conns: map[poolKey]*grpc.ClientConn{}}
}

// Get returns a connection to addr that speaks only to peer: with TLS,
// the server's certificate must name that identity (a node that moved, or
// an impostor at the address, fails the handshake).
func (p *Pool) Get(addr string, peer identity.Peer) (*grpc.ClientConn, error) {
	k := poolKey{addr, peer}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[k]; ok {
		p.touch(k)
		return c, nil
	}
	c, err := grpc.NewClient(addr, DialOptions(p.creds, peer)...)
	if err != nil {
		return nil, fmt.Errorf("rpc: dial %s: %w", addr, err)
	}
	if len(p.order) >= p.max {
		oldest := p.order[0]
		p.order = p.order[1:]
		_ = p.conns[oldest].Close()
		delete(p.conns, oldest)
	}
	p.conns[k] = c
	p.order = append(p.order, k)
	return c, nil
}

// touch moves k to the most recently used end. Callers hold p.mu.
func (p *Pool) touch(k poolKey) {
	for i, o := range p.order {
		if o == k {
			p.order = append(append(p.order[:i:i], p.order[i+1:]...), k)
			return
		}
	}
}

// Close closes every connection.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeLocked()
}

func (p *Pool) closeLocked() {
	for a, c := range p.conns {
		_ = c.Close()
		delete(p.conns, a)
	}
	p.order = nil
}
