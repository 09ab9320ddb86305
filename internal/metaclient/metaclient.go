// Package metaclient is how data and session nodes talk to the meta tier:
// calls go to any meta node (a follower forwards writes to the leader), fail
// over to the next on error, and refresh the list of meta nodes from the
// cluster itself; WatchTable follows the slot table across reconnects.
package metaclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/clock"
	"github.com/strata-registry/strata/internal/obs"
	"github.com/strata-registry/strata/internal/rpc"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Client calls the meta tier. Safe for concurrent use.
type Client struct {
	pool    *rpc.Pool
	logger  *slog.Logger
	timeout time.Duration

	mu    sync.Mutex
	addrs []string // meta gRPC addresses; the first answered last
	seeds []string // the configured addresses, never forgotten
}

// metaPeer is whom the client dials: any meta node of the cluster.
var metaPeer = identity.Peer{Role: identity.RoleMeta}

// ErrNoMeta is returned when no meta address is configured.
var ErrNoMeta = errors.New("metaclient: no meta addresses")

// New returns a client for the meta nodes at addrs (host:port), dialing
// through pool. timeout bounds each call to one meta node.
func New(addrs []string, pool *rpc.Pool, timeout time.Duration, logger *slog.Logger) (*Client, error) {
	if len(addrs) == 0 {
		return nil, ErrNoMeta
	}
	return &Client{pool: pool, logger: obs.Or(logger), timeout: timeout, addrs: slices.Clone(addrs), seeds: slices.Clone(addrs)}, nil
}

// Call runs f against one meta node after another until one succeeds, and
// returns the last error if none does. f gets a context bounded by the
// client's timeout.
func (c *Client) Call(ctx context.Context, f func(context.Context, registryv1.MetaServiceClient) error) error {
	var last error
	for _, a := range c.candidates() {
		conn, err := c.pool.Get(a, metaPeer)
		if err != nil {
			last = err
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, c.timeout)
		err = f(cctx, registryv1.NewMetaServiceClient(conn))
		cancel()
		if err == nil {
			c.prefer(a)
			return nil
		}
		last = fmt.Errorf("meta %s: %w", a, err)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return last
}

// Refresh replaces the address list with the meta peers the cluster
// reports (keeping the configured seeds as a fallback).
func (c *Client) Refresh(ctx context.Context) error {
	return c.Call(ctx, func(ctx context.Context, mc registryv1.MetaServiceClient) error {
		info, err := mc.GetClusterInfo(ctx, &registryv1.GetClusterInfoRequest{})
		if err != nil {
			return err
		}
		var addrs []string
		for _, p := range info.GetMeta() {
			if p.GetGrpcAddress() != "" {
				addrs = append(addrs, p.GetGrpcAddress())
			}
		}
		if len(addrs) > 0 {
			c.mu.Lock()
			c.addrs = addrs
			c.mu.Unlock()
		}
		return nil
	})
}

func (c *Client) candidates() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(c.addrs)
	for _, s := range c.seeds {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func (c *Client) prefer(a string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := slices.Index(c.addrs, a); i > 0 {
		c.addrs[0], c.addrs[i] = c.addrs[i], c.addrs[0]
	}
}

// WatchTable calls onTable with every slot table from the meta tier, in
// epoch order, until ctx ends: it reconnects to another meta node on error
// (pausing retry between rounds) and resumes after the last epoch it saw,
// dropping any table older than one already delivered. It returns nil when
// ctx ends. onTable runs on the watching goroutine.
func (c *Client) WatchTable(ctx context.Context, retry time.Duration, onTable func(*registryv1.SlotTable)) error {
	var last uint64
	c.watch(ctx, retry, "slot table", func(ctx context.Context, mc registryv1.MetaServiceClient) (func() error, error) {
		stream, err := mc.WatchSlotTable(ctx, &registryv1.WatchSlotTableRequest{AfterEpoch: last})
		if err != nil {
			return nil, err
		}
		return func() error {
			tb, err := stream.Recv()
			if err == nil && tb.GetEpoch() > last {
				last = tb.GetEpoch()
				onTable(tb)
			}
			return err
		}, nil
	})
	return nil
}

// WatchInstanceStates calls onStates with the operators' instance marks
// (each message the whole set) now and after every change, until ctx
// ends, reconnecting as WatchTable does; a set older (by Raft index) than
// one already delivered is dropped. It returns nil when ctx ends.
func (c *Client) WatchInstanceStates(ctx context.Context, retry time.Duration, onStates func(*registryv1.InstanceStates)) error {
	var last uint64
	delivered := false
	c.watch(ctx, retry, "instance states", func(ctx context.Context, mc registryv1.MetaServiceClient) (func() error, error) {
		stream, err := mc.WatchInstanceStates(ctx, &registryv1.WatchInstanceStatesRequest{})
		if err != nil {
			return nil, err
		}
		return func() error {
			st, err := stream.Recv()
			if err == nil && (!delivered || st.GetIndex() > last) {
				last, delivered = st.GetIndex(), true
				onStates(st)
			}
			return err
		}, nil
	})
	return nil
}

// watch opens a stream with open on one meta node after another and calls
// its receive function until it fails, until ctx ends; between rounds over
// every node it refreshes the node list and pauses retry.
func (c *Client) watch(ctx context.Context, retry time.Duration, what string, open func(context.Context, registryv1.MetaServiceClient) (func() error, error)) {
	t := time.NewTicker(retry)
	defer t.Stop()
	for ctx.Err() == nil {
		for _, a := range c.candidates() {
			conn, err := c.pool.Get(a, metaPeer)
			if err != nil {
				continue
			}
			recv, err := open(ctx, registryv1.NewMetaServiceClient(conn))
			for err == nil {
				err = recv()
			}
			if ctx.Err() != nil {
				return
			}
			c.logger.Debug(what+" watch ended; trying another meta node", "meta", a, "err", err)
		}
		_ = c.Refresh(ctx)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}

// Table converts a wire slot table to slot.Table, refusing one whose shape
// its users could not index: a slot count of 0 or over slot.MaxCount, rows
// other than one per slot in ID order. (Meta only sends well-formed tables;
// this keeps a node that reads a bad one from indexing past its end.)
func Table(p *registryv1.SlotTable) (slot.Table, error) {
	n := p.GetSlotCount()
	if n == 0 || n > slot.MaxCount || len(p.GetSlots()) != int(n) {
		return slot.Table{}, fmt.Errorf("metaclient: slot table of epoch %d has %d rows for %d slots (want 1..%d, one row a slot)", p.GetEpoch(), len(p.GetSlots()), n, slot.MaxCount)
	}
	t := slot.Table{Epoch: p.GetEpoch(), Slots: make([]slot.Slot, len(p.GetSlots()))}
	for i, ps := range p.GetSlots() {
		if ps.GetId() != uint32(i) {
			return slot.Table{}, fmt.Errorf("metaclient: slot table of epoch %d has slot %d at row %d", p.GetEpoch(), ps.GetId(), i)
		}
		s := slot.Slot{ID: slot.ID(ps.GetId()), Leader: slot.NodeID(ps.GetLeader()), LeaderEpoch: ps.GetLeaderEpoch()}
		for _, f := range ps.GetFollowers() {
			s.Followers = append(s.Followers, slot.NodeID(f))
		}
		t.Slots[i] = s
	}
	return t, nil
}

// Membership keeps a data or session node known to meta until ctx ends:
// it registers node, then heartbeats every interval with the request fill
// completes (sync status, client count), and registers again whenever meta
// answers that it does not know the node (it was declared dead and came
// back). Failures are retried at the next tick. It returns nil when ctx
// ends.
func (c *Client) Membership(ctx context.Context, clk clock.Clock, every time.Duration, node *registryv1.Node, fill func(*registryv1.HeartbeatRequest)) error {
	registered := false
	t := clk.NewTicker(every)
	defer t.Stop()
	for {
		if !registered {
			err := c.Call(ctx, func(ctx context.Context, mc registryv1.MetaServiceClient) error {
				_, err := mc.RegisterNode(ctx, &registryv1.RegisterNodeRequest{Node: node})
				return err
			})
			if err == nil {
				registered = true
				c.logger.Info("registered with meta")
			} else if ctx.Err() == nil {
				c.logger.Warn("register with meta", "err", err)
			}
		}
		if registered {
			req := &registryv1.HeartbeatRequest{NodeId: node.GetId()}
			fill(req)
			err := c.Call(ctx, func(ctx context.Context, mc registryv1.MetaServiceClient) error {
				_, err := mc.Heartbeat(ctx, req)
				return err
			})
			if status.Code(err) == codes.NotFound {
				registered = false
			} else if err != nil && ctx.Err() == nil {
				c.logger.Debug("heartbeat to meta", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
	}
}
