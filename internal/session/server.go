// Package session is Strata's session tier: it terminates client
// connections (one bidirectional gRPC stream per client process), keeps
// its clients' publishers (the source of truth for anti-entropy) and
// forwards them to slot leaders, and pushes every change of a subscribed
// key to its local subscribers through internal/push.
//
// Files: config.go, server.go (lifecycle, meta, slot table, data nodes,
// fetching, notices, version scan), conn.go (client streams), inbox.go
// (a stream's reader, and the registrations waiting for its frame loop),
// owners.go (client identities' quotas, rates and streams), registry.go
// (publishers and forwarding), sync.go (SessionSyncService for data
// nodes), http.go (admin routes), httpapi.go, httpapi_routes.go,
// httpapi_leases.go and httpapi_watch.go (the HTTP/JSON API for clients
// not written in Go: its types and checks, its route table and OpenAPI
// document, instance leases, watches).
package session

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/admin"
	"github.com/strata-registry/strata/internal/clock"
	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/metaclient"
	"github.com/strata-registry/strata/internal/node"
	"github.com/strata-registry/strata/internal/push"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Server is one session node. The embedded node.Node is its runtime
// (gossip, servers, lifecycle): Ready, Kill and the address accessors are
// its.
type Server struct {
	*node.Node
	cfg    Config
	logger *slog.Logger
	clock  clock.Clock
	reg    *prometheus.Registry

	// proc names this process; it owns the publishers it forwards.
	proc string

	table atomic.Pointer[tableView]
	// tableMu guards tableNew, closed and replaced whenever a new table
	// is stored (waitTable waits on it).
	tableMu  sync.Mutex
	tableNew chan struct{}

	meta *metaclient.Client
	// engine is set in Start, read-only after.
	engine  *push.Engine
	metrics *metrics

	pubs   *publishers
	owners *owners
	conns  *conns
	fwd    *forwarder
	// fetches bounds the push engine's reads in flight per data node.
	fetches *nodeGate
	// routed are the writes and fetches in flight to slot leaders; a new
	// table cancels those whose leader it replaced.
	routed *routedCalls
	// scanNow asks for a version scan at once (a change stream overflowed).
	scanNow chan struct{}
	// watchNow asks noticeLoop to look for data nodes to watch at once (a
	// new table may name a leader this session has no stream to yet).
	watchNow chan struct{}
	// throttled counts registrations slowed down to their rates.
	throttled atomic.Int64
	// registered counts registrations accepted, publishers and
	// subscribers (updates and replays included): the rate operators
	// watch (strata_session_registrations_total, the console's chart).
	registeredPubs, registeredSubs atomic.Int64
	// redirects and balanceRounds count connection balance's work.
	redirects, balanceRounds atomic.Int64
	// streams counts the reader and writer goroutines of client streams;
	// Close waits for them after gRPC has stopped.
	streams sync.WaitGroup

	// apiLn is the HTTP/JSON API's listener (nil: none); api serves it.
	apiLn net.Listener
	api   *httpAPI
}

// tableView is the slot table with its hasher, swapped as a whole.
type tableView struct {
	t      slot.Table
	hasher *slot.Hasher
}

// serverOptions returns the client port's gRPC options.
//
// Fixed flow-control windows: setting them turns off grpc-go's bandwidth
// estimation, which answers each burst of client data (an ack, a
// heartbeat) with a PING the client must answer, doubling the frames and
// syscalls of every push round trip. What clients send is small, so a
// dynamic window buys nothing here.
//
// The read buffer: grpc-go gives every connection a bufio.Reader
// (32 KiB by default) for the life of the connection unless the
// connection is a bare *net.TCPConn, when it borrows one per read
// instead. A TLS connection (or one the connection cap counts) never is,
// so an idle client would hold 32 KiB for frames of a few hundred bytes.
// A tls.Conn buffers a whole record itself, so over TLS there is none; on
// a plaintext link a small one saves a syscall per frame header. A frame
// larger than the buffer is read straight into its destination either
// way.
func serverOptions(tls bool) []grpc.ServerOption {
	readBuffer := 4 << 10
	if tls {
		readBuffer = 0
	}
	return []grpc.ServerOption{
		grpc.InitialWindowSize(clientWindowBytes), grpc.InitialConnWindowSize(clientWindowBytes),
		grpc.ReadBufferSize(readBuffer), grpc.SharedWriteBuffer(true),
	}
}

// New validates cfg and deps. It starts nothing; Run does.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		proc:     fmt.Sprintf("%s@%d", cfg.NodeID, time.Now().UnixNano()),
		scanNow:  make(chan struct{}, 1),
		watchNow: make(chan struct{}, 1),
		tableNew: make(chan struct{}),
	}
	n, err := node.New(cfg.Config, node.Spec{Role: cluster.RoleSession, PoolSize: 1024, ServerOptions: serverOptions(cfg.TLS.Enabled()), Ready: s.ReadyState, Policy: policy, Tokens: true}, deps.Deps)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadConfig, err)
	}
	s.Node, s.logger, s.clock, s.reg = n, n.Logger(), n.Clock(), n.Registry()
	s.meta = n.Meta()
	s.pubs = newPublishers(s.clock)
	s.owners = newOwners(cfg.IdentityRegisterRate)
	s.metrics = newMetrics(s)
	s.conns = newConns()
	s.fwd = newForwarder(s)
	s.apiLn = deps.HTTPAPIListener
	s.api = newHTTPAPI(s)
	// Three quarters of the fetch workers per node: a frozen data node
	// holds at most that many (each for FetchTimeout) while the rest serve
	// every other node's keys; a busy healthy node still gets most of them.
	s.fetches = newNodeGate(cfg.Push.FetchWorkers - cfg.Push.FetchWorkers/4)
	s.routed = newRoutedCalls(func() *slot.Table {
		if tv := s.table.Load(); tv != nil {
			return &tv.t
		}
		return nil
	})
	return s, nil
}

// Publishers returns how many publications the session holds for its
// clients.
func (s *Server) Publishers() int { return s.pubs.count() }

// HTTPAPIAddr returns the HTTP/JSON API's bound address ("" when it is
// not served).
func (s *Server) HTTPAPIAddr() string {
	if s.apiLn == nil {
		return ""
	}
	return s.apiLn.Addr().String()
}

// Proc returns this process's id, the owner of its publishers.
func (s *Server) Proc() string { return s.proc }

// ReadyState reports whether the node serves clients: it has a slot table.
func (s *Server) ReadyState() (bool, any) {
	tv := s.table.Load()
	if tv == nil {
		return false, map[string]string{"status": "no slot table yet"}
	}
	return true, map[string]any{"status": "ready", "table_epoch": tv.t.Epoch, "connections": s.conns.count()}
}

// Run starts the node, blocks until ctx ends (or Kill), then stops
// everything it started and returns.
func (s *Server) Run(ctx context.Context) error { return s.Node.Run(ctx, (*lifecycle)(s)) }

// lifecycle is the Server as the node runtime sees it (node.Role).
type lifecycle Server

// Start creates the push engine and registers the metrics.
func (r *lifecycle) Start() (_ cluster.Meta, err error) {
	s := (*Server)(r)
	defer func() {
		if err != nil && s.apiLn != nil {
			_ = s.apiLn.Close() // Close is not called after a failed Start
		}
	}()
	engine, err := push.New(s.cfg.Push, push.Deps{Fetcher: s, Clock: s.clock, Logger: s.logger.With("component", "push"), Registerer: s.reg})
	if err != nil {
		return cluster.Meta{}, err
	}
	s.engine = engine
	if err := s.reg.Register(s.metrics); err != nil {
		return cluster.Meta{}, fmt.Errorf("session: register metrics: %w", err)
	}
	if err := s.reg.Register(s.api.metrics); err != nil {
		s.reg.Unregister(s.metrics)
		return cluster.Meta{}, fmt.Errorf("session: register HTTP API metrics: %w", err)
	}
	return cluster.Meta{GRPC: s.GRPCAddr(), HTTP: s.HTTPAddr(), Zone: s.cfg.Zone, Proc: s.proc}, nil
}

// Serve registers SessionService (clients), SessionSyncService (data
// nodes) and the admin routes.
func (r *lifecycle) Serve(gs *grpc.Server, mux *admin.Mux) {
	s := (*Server)(r)
	registryv1.RegisterSessionServiceServer(gs, &clientService{s: s})
	registryv1.RegisterSessionSyncServiceServer(gs, &syncService{s: s})
	s.routes(mux)
}

// Run starts the push engine and the loops.
func (r *lifecycle) Run(ctx context.Context, g *errgroup.Group) {
	s := (*Server)(r)
	g.Go(func() error { return s.engine.Run(ctx) })
	g.Go(func() error { return s.meta.WatchTable(ctx, s.cfg.RetryInterval, s.applyTable) })
	g.Go(func() error { return s.heartbeatLoop(ctx) })
	g.Go(func() error { return s.noticeLoop(ctx) })
	g.Go(func() error { return s.fwd.run(ctx) })
	g.Go(func() error { return s.scanLoop(ctx) })
	g.Go(func() error { return s.graceLoop(ctx) })
	g.Go(func() error { return s.balanceLoop(ctx) })
	if s.apiLn != nil {
		s.logger.Info("HTTP API listening", "http_api", s.HTTPAPIAddr(), "tls", s.Secure())
		g.Go(func() error {
			return s.ServeHTTP(ctx, "http_api", s.apiLn, s.cfg.HTTPAPI.MaxConnections, s.api.handler())
		})
		g.Go(func() error { return s.api.run(ctx) })
	}
}

// Stop ends every client stream before the servers stop.
func (r *lifecycle) Stop(bool) { (*Server)(r).conns.closeAll("session shutting down") }

// Close waits for the client streams' goroutines.
func (r *lifecycle) Close() error {
	s := (*Server)(r)
	s.streams.Wait()
	if s.metrics != nil {
		s.reg.Unregister(s.metrics)
		s.reg.Unregister(s.api.metrics)
	}
	if s.apiLn != nil {
		_ = s.apiLn.Close() // served (and so closed) unless Run failed first
	}
	return nil
}

// applyTable takes a new slot table (in epoch order), cancels the calls
// in flight to leaders it replaced (routedCalls), and wakes the
// forwarder, whose pending writes may now have a leader.
func (s *Server) applyTable(pt *registryv1.SlotTable) {
	t, err := metaclient.Table(pt)
	if err != nil {
		s.logger.Error("unusable slot table from meta", "err", err)
		return
	}
	tv := s.table.Load()
	h := (*slot.Hasher)(nil)
	if tv != nil && len(tv.t.Slots) == int(pt.GetSlotCount()) {
		h = tv.hasher
	} else {
		if h, err = slot.NewHasher(int(pt.GetSlotCount())); err != nil {
			s.logger.Error("unusable slot table from meta", "epoch", t.Epoch, "err", err)
			return
		}
	}
	s.table.Store(&tableView{t: t, hasher: h})
	s.tableMu.Lock()
	close(s.tableNew)
	s.tableNew = make(chan struct{})
	s.tableMu.Unlock()
	if n := s.routed.retarget(t); n > 0 {
		s.logger.Debug("calls to replaced slot leaders cancelled", "calls", n, "epoch", t.Epoch)
	}
	select {
	case s.watchNow <- struct{}{}:
	default:
	}
	s.fwd.retryNow()
	if s.engine != nil {
		s.engine.RetryNow()
	}
}

// TableEpoch is the epoch of the slot table this session routes by (0
// before the first).
func (s *Server) TableEpoch() uint64 {
	if tv := s.table.Load(); tv != nil {
		return tv.t.Epoch
	}
	return 0
}

// waitTable waits until this session holds a slot table of epoch or
// newer.
func (s *Server) waitTable(ctx context.Context, epoch uint64) error {
	for {
		s.tableMu.Lock()
		ch := s.tableNew
		s.tableMu.Unlock()
		tv := s.table.Load()
		if tv != nil && tv.t.Epoch >= epoch {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			have := uint64(0)
			if tv != nil {
				have = tv.t.Epoch
			}
			return status.Errorf(codes.Unavailable, "session: slot table at epoch %d, behind the caller's %d; retry", have, epoch)
		}
	}
}

// route returns the slot of key, its leader and the epochs a write must
// carry; leader is "" when the slot has none.
func (s *Server) route(key string) (id slot.ID, leader slot.NodeID, tableEpoch, leaderEpoch uint64, err error) {
	tv := s.table.Load()
	if tv == nil {
		return 0, "", 0, 0, errNoTable
	}
	id = tv.hasher.Of(key)
	row := tv.t.Slots[id]
	return id, row.Leader, tv.t.Epoch, row.LeaderEpoch, nil
}

// errNoLeader refuses a call for a slot whose leader is unknown or gone.
var errNoLeader = status.Error(codes.Unavailable, "session: the slot has no live leader")

// dataConn returns a connection to data node id at its address in the
// gossip pool; with TLS it speaks only to that node.
func (s *Server) dataConn(id slot.NodeID) (*grpc.ClientConn, error) {
	addr := s.dataAddr(id)
	if addr == "" {
		return nil, errNoLeader
	}
	return s.Pool().Get(addr, identity.Peer{Role: identity.RoleData, Name: string(id)})
}

var errNoTable = status.Error(codes.Unavailable, "session: no slot table yet; retry")

// dataAddr returns a data node's gRPC address from the gossip pool.
func (s *Server) dataAddr(id slot.NodeID) string {
	if id == "" {
		return ""
	}
	if m, ok := s.Agent().Member(string(id)); ok && m.Meta.Role == cluster.RoleData && m.State == cluster.StateAlive {
		return m.Meta.GRPC
	}
	return ""
}

// Fetch implements push.Fetcher: the whole datum from its slot leader, or
// an error (no leader, migrating slot, epoch mismatch) and never a partial
// datum. It reads under this session's id, so the data node counts the key
// as this session's interest: its changes come ahead of other notices,
// with the datum inline when small.
func (s *Server) Fetch(ctx context.Context, key string) (*registryv1.Datum, error) {
	id, leader, _, leaderEpoch, err := s.route(key)
	if err != nil {
		return nil, err
	}
	conn, err := s.dataConn(leader)
	if err != nil {
		return nil, err
	}
	if !s.fetches.acquire(leader) {
		return nil, status.Errorf(codes.Unavailable, "session: data node %s already has its share of reads in flight; retry", leader)
	}
	defer s.fetches.release(leader)
	ctx, done := s.routed.start(ctx, id, leader, leaderEpoch)
	defer done()
	resp, err := registryv1.NewDataServiceClient(conn).GetDatums(ctx, &registryv1.GetDatumsRequest{DataInfoIds: []string{key}, SessionId: s.proc})
	if err != nil {
		if replaced(ctx) {
			return nil, errLeaderReplaced
		}
		return nil, err
	}
	if len(resp.GetDatums()) != 1 {
		return nil, fmt.Errorf("session: data node answered %d datums for one key", len(resp.GetDatums()))
	}
	return resp.GetDatums()[0], nil
}

// heartbeatLoop keeps this node registered with meta, reporting its
// client count (meta lists sessions lightest first).
func (s *Server) heartbeatLoop(ctx context.Context) error {
	node := &registryv1.Node{Id: s.cfg.NodeID, Role: registryv1.Role_ROLE_SESSION, GrpcAddress: s.GRPCAddr(), HttpAddress: s.HTTPAddr(), Zone: s.cfg.Zone, Proc: s.proc}
	return s.meta.Membership(ctx, s.clock, s.cfg.HeartbeatInterval, node, func(req *registryv1.HeartbeatRequest) {
		req.ClientCount = uint32(s.conns.count())
	})
}

// noticeLoop keeps one change stream open to every data node in the pool
// and turns its batches into engine notices. Holding the stream also holds
// this session's lease on that node. It looks every RetryInterval, and at
// once on a new slot table: a data node that just restarted and got
// leaderships back must not wait a retry interval for its notices to
// reach this session (until then only a version scan would find them).
func (s *Server) noticeLoop(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	open := map[string]bool{}
	var mu sync.Mutex
	t := s.clock.NewTicker(s.cfg.RetryInterval)
	defer t.Stop()
	for {
		for _, m := range s.Agent().Members() {
			if m.Meta.Role != cluster.RoleData || m.State != cluster.StateAlive || m.Meta.GRPC == "" {
				continue
			}
			id, addr := m.ID, m.Meta.GRPC
			mu.Lock()
			started := open[addr]
			open[addr] = true
			mu.Unlock()
			if started {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.watchData(ctx, id, addr)
				mu.Lock()
				delete(open, addr)
				mu.Unlock()
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		case <-s.watchNow:
		}
	}
}

// watchData follows data node id's change stream until it breaks.
func (s *Server) watchData(ctx context.Context, id, addr string) {
	conn, err := s.Pool().Get(addr, identity.Peer{Role: identity.RoleData, Name: id})
	if err != nil {
		return
	}
	stream, err := registryv1.NewDataServiceClient(conn).WatchChanges(ctx, &registryv1.WatchChangesRequest{SessionId: s.proc})
	if err != nil {
		return
	}
	// The data node sends headers once this session is subscribed: every
	// change from then on comes as a notice. Changes before that (the
	// stream was down, or this session just started) could only be seen
	// by a version scan, so run one now rather than at the next interval.
	if _, err := stream.Header(); err != nil {
		return
	}
	select {
	case s.scanNow <- struct{}{}:
	default:
	}
	for {
		b, err := stream.Recv()
		if err != nil {
			return
		}
		var changed time.Time
		if ns := b.GetFirstChangeUnixNano(); ns > 0 {
			changed = time.Unix(0, ns)
		}
		// Datums that came along are pushed without a fetch; a change
		// whose datum is here is then no news to the engine.
		for _, d := range b.GetDatums() {
			s.engine.Offer(d, changed)
		}
		for _, c := range b.GetChanges() {
			s.engine.NotifyAt(c.GetDataInfoId(), c.GetVersion(), changed)
		}
		if b.GetOverflow() {
			select {
			case s.scanNow <- struct{}{}:
			default:
			}
		}
	}
}

// scanChunk bounds the keys of one version scan request: at most about
// 3 MiB of dataInfoIDs, well within the data node's request limit.
const scanChunk = 4096

// scanLoop compares the versions of subscribed keys with their slot
// leaders' every VersionScanInterval (or at once after an overflow), and
// notifies the engine of any it missed.
func (s *Server) scanLoop(ctx context.Context) error {
	t := s.clock.NewTicker(s.cfg.VersionScanInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		case <-s.scanNow:
		}
		byLeader := map[slot.NodeID][]string{}
		for _, key := range s.engine.Keys() {
			if _, leader, _, _, err := s.route(key); err == nil && leader != "" {
				byLeader[leader] = append(byLeader[leader], key)
			}
		}
		// One goroutine per leader (a handful): a frozen leader holds its
		// own keys' scan for a call timeout, not everyone's.
		var wg sync.WaitGroup
		for leader, keys := range byLeader {
			wg.Go(func() { s.scanLeader(ctx, leader, keys) })
		}
		wg.Wait()
	}
}

// scanLeader compares keys' versions with their leader's.
func (s *Server) scanLeader(ctx context.Context, leader slot.NodeID, keys []string) {
	conn, err := s.dataConn(leader)
	if err != nil {
		return
	}
	for chunk := range slices.Chunk(keys, scanChunk) {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
		resp, err := registryv1.NewDataServiceClient(conn).GetVersions(cctx, &registryv1.GetVersionsRequest{DataInfoIds: chunk})
		cancel()
		if err != nil {
			return
		}
		for _, v := range resp.GetVersions() {
			if v.GetVersion() > s.engine.Fetched(v.GetDataInfoId()) {
				s.engine.Notify(v.GetDataInfoId(), v.GetVersion())
			}
		}
	}
}
