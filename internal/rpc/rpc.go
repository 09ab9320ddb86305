// Package rpc is the gRPC plumbing every Strata role shares: server
// credentials from the TLS settings, a bounded pool of client connections
// to other nodes, and a graceful stop with a deadline.
package rpc

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/strata-registry/strata/internal/tlsconf"
)

// MaxMessageBytes bounds one gRPC message between Strata nodes (grpc-go's
// default is 4 MiB). Large things are chunked below it: snapshots stream
// in ~1 MiB pieces; a datum read carries whole publishers of at most
// record.MaxPublisherBytes each.
const MaxMessageBytes = 64 << 20

// ServerOptions returns the options every Strata server uses: cfg's TLS
// (none when TLS is off), and Stop waiting for running handlers, so a
// server's Run never returns while one of its handlers still works.
func ServerOptions(cfg tlsconf.Config) ([]grpc.ServerOption, error) {
	tc, err := cfg.Server()
	if err != nil {
		return nil, err
	}
	opts := []grpc.ServerOption{grpc.WaitForHandlers(true), grpc.MaxRecvMsgSize(MaxMessageBytes)}
	if tc != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	return opts, nil
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

// DialOptions returns the options for a client of the Strata node at addr:
// cfg's TLS (verifying addr's host) and the message size limit.
func DialOptions(cfg tlsconf.Config, addr string) ([]grpc.DialOption, error) {
	creds := insecure.NewCredentials()
	tc, err := cfg.Client()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			tc.ServerName = host
		}
		creds = credentials.NewTLS(tc)
	}
	return []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
	}, nil
}

// Pool caches client connections by address. Connections dial lazily and
// reconnect by themselves; the pool only bounds how many it keeps. Safe for
// concurrent use.
type Pool struct {
	tls tlsconf.Config
	max int

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
	order []string // addresses, oldest first
}

// NewPool returns a pool dialing with cfg's TLS, keeping at most max
// connections; past that it closes the least recently used one. Size it
// well above the peers a node talks to: a closed connection ends its
// streams, which reconnect.
func NewPool(cfg tlsconf.Config, max int) *Pool {
	return &Pool{tls: cfg, max: max, conns: map[string]*grpc.ClientConn{}}
}

// Get returns a connection to addr.
func (p *Pool) Get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		p.touch(addr)
		return c, nil
	}
	opts, err := DialOptions(p.tls, addr)
	if err != nil {
		return nil, err
	}
	c, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("rpc: dial %s: %w", addr, err)
	}
	if len(p.order) >= p.max {
		oldest := p.order[0]
		p.order = p.order[1:]
		_ = p.conns[oldest].Close()
		delete(p.conns, oldest)
	}
	p.conns[addr] = c
	p.order = append(p.order, addr)
	return c, nil
}

// touch moves addr to the most recently used end. Callers hold p.mu.
func (p *Pool) touch(addr string) {
	for i, a := range p.order {
		if a == addr {
			p.order = append(append(p.order[:i:i], p.order[i+1:]...), addr)
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
