package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/metaclient"
	"github.com/strata-registry/strata/internal/rpc"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// metaConn is one command's link to the meta tier. Close it when done: it
// owns gRPC connections.
type metaConn struct {
	addrs  []string
	creds  *tlsconf.Creds // nil without TLS
	pool   *rpc.Pool
	client *metaclient.Client
}

// withMeta runs f with a connection to the meta tier as the operator
// (adminCreds), closed afterwards.
func (g *globals) withMeta(f func(*metaConn) error) error {
	return g.withMetaCreds(func(m *metaConn, _ *tlsconf.Creds) error { return f(m) })
}

// withMetaCreds is withMeta for a command that also calls nodes' admin
// HTTP: f gets the operator's credentials, loaded once for both.
func (g *globals) withMetaCreds(f func(*metaConn, *tlsconf.Creds) error) error {
	creds, err := g.adminCreds()
	if err != nil {
		return err
	}
	m, err := g.dialMeta(creds)
	if err != nil {
		return err
	}
	defer m.Close()
	return f(m, creds)
}

// dialMeta prepares calls to the --meta nodes with creds (nil: plaintext).
// Nothing is dialed yet.
func (g *globals) dialMeta(creds *tlsconf.Creds) (*metaConn, error) {
	pool := rpc.NewPool(creds, len(g.meta))
	mc, err := metaclient.New(g.meta, pool, g.timeout, nil)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &metaConn{addrs: g.meta, creds: creds, pool: pool, client: mc}, nil
}

// Close closes the connections.
func (m *metaConn) Close() { m.pool.Close() }

// call runs f against one meta node after another until one succeeds.
// The error names the call and the addresses tried, so "connection
// refused" is never the whole story.
func (m *metaConn) call(ctx context.Context, what string, f func(context.Context, registryv1.MetaServiceClient) error) error {
	err := m.client.Call(ctx, f)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	// Unavailable with a connection error (or a timeout) means nobody
	// answered; any other error is a meta node's own answer.
	if c := status.Code(err); c == codes.DeadlineExceeded ||
		(c == codes.Unavailable && strings.Contains(status.Convert(err).Message(), "connection error")) {
		hint := ""
		if m.creds == nil && strings.Contains(err.Error(), "server preface") {
			hint = " (the nodes run with TLS: give --credentials DIR, or --tls-cert, --tls-key and --tls-ca)"
		}
		return fmt.Errorf("%s: no meta node reachable at %s%s: %w", what, strings.Join(m.addrs, ","), hint, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (m *metaConn) clusterInfo(ctx context.Context) (*registryv1.GetClusterInfoResponse, error) {
	var resp *registryv1.GetClusterInfoResponse
	err := m.call(ctx, "get cluster info", func(ctx context.Context, c registryv1.MetaServiceClient) (err error) {
		resp, err = c.GetClusterInfo(ctx, &registryv1.GetClusterInfoRequest{})
		return err
	})
	return resp, err
}

func (m *metaConn) sessions(ctx context.Context) (*registryv1.ListSessionsResponse, error) {
	var resp *registryv1.ListSessionsResponse
	err := m.call(ctx, "list sessions", func(ctx context.Context, c registryv1.MetaServiceClient) (err error) {
		resp, err = c.ListSessions(ctx, &registryv1.ListSessionsRequest{})
		return err
	})
	return resp, err
}

// errNoLeader is a meta node's answer that it knows no leader. Returning it
// from the call makes the client ask the next meta node, which may know.
var errNoLeader = errors.New("no Raft leader known")

func (m *metaConn) leader(ctx context.Context) (*registryv1.GetLeaderResponse, error) {
	var resp *registryv1.GetLeaderResponse
	err := m.call(ctx, "get leader", func(ctx context.Context, c registryv1.MetaServiceClient) (err error) {
		if resp, err = c.GetLeader(ctx, &registryv1.GetLeaderRequest{}); err == nil && resp.GetLeader() == nil {
			err = errNoLeader
		}
		return err
	})
	return resp, err
}

// table returns the meta node's current slot table, with sync status.
// WatchSlotTable is the only call that serves the table: the first message
// of a new watch is the current table, then the stream is cancelled. The
// caller checks first that a table exists (GetClusterInfo's table_epoch >
// 0): before the first table the watch sends nothing until the timeout.
func (m *metaConn) table(ctx context.Context) (*registryv1.SlotTable, error) {
	var tb *registryv1.SlotTable
	err := m.call(ctx, "watch slot table", func(ctx context.Context, c registryv1.MetaServiceClient) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.WatchSlotTable(ctx, &registryv1.WatchSlotTableRequest{})
		if err != nil {
			return err
		}
		tb, err = stream.Recv()
		return err
	})
	return tb, err
}
