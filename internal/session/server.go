// Package session is Strata's session tier: it terminates client
// connections (one bidirectional gRPC stream per client process), keeps
// its clients' publishers (the source of truth for anti-entropy) and
// forwards them to slot leaders, and pushes every change of a subscribed
// key to its local subscribers through internal/push.
//
// Files: config.go, server.go (lifecycle, meta, slot table, data nodes,
// fetching, notices, version scan), conn.go (client streams), registry.go
// (publishers and forwarding), sync.go (SessionSyncService for data
// nodes), http.go.
package session

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
	"github.com/strata-registry/strata/internal/obs"
	"github.com/strata-registry/strata/internal/push"
	"github.com/strata-registry/strata/internal/rpc"
	"github.com/strata-registry/strata/internal/slot"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Server is one session node.
type Server struct {
	cfg    Config
	deps   Deps
	logger *slog.Logger
	clock  clock.Clock
	reg    *prometheus.Registry

	grpcAddr, httpAddr string
	// proc names this process; it owns the publishers it forwards.
	proc string

	ready  chan struct{}
	killed chan struct{}
	kill   sync.Once

	table atomic.Pointer[tableView]

	// Set in Run before ready closes, read-only after.
	agent  *cluster.Agent
	pool   *rpc.Pool
	meta   *metaclient.Client
	engine *push.Engine

	pubs  *publishers
	conns *conns
	fwd   *forwarder
	// scanNow asks for a version scan at once (a change stream overflowed).
	scanNow chan struct{}
	// redirects and balanceRounds count connection balance's work.
	redirects, balanceRounds atomic.Int64
	// streams counts the reader and writer goroutines of client streams;
	// Run waits for them after stopping gRPC.
	streams sync.WaitGroup
}

// tableView is the slot table with its hasher, swapped as a whole.
type tableView struct {
	t      slot.Table
	hasher *slot.Hasher
}

// New validates cfg and deps. It starts nothing; Run does.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.GRPCListener == nil || deps.HTTPListener == nil {
		return nil, fmt.Errorf("%w: gRPC and HTTP listeners are required", ErrBadConfig)
	}
	reg := deps.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s := &Server{
		cfg: cfg, deps: deps, logger: obs.Or(deps.Logger), clock: clock.Or(deps.Clock), reg: reg,
		grpcAddr: advertised(cfg.GRPCAdvertise, deps.GRPCListener),
		httpAddr: advertised(cfg.HTTPAdvertise, deps.HTTPListener),
		proc:     fmt.Sprintf("%s@%d", cfg.NodeID, time.Now().UnixNano()),
		ready:    make(chan struct{}),
		killed:   make(chan struct{}),
		scanNow:  make(chan struct{}, 1),
	}
	s.pubs = newPublishers()
	s.conns = newConns()
	s.fwd = newForwarder(s)
	return s, nil
}

func advertised(addr string, ln net.Listener) string {
	if addr != "" {
		return addr
	}
	return ln.Addr().String()
}

// Ready is closed once the servers are up (clients are served once a slot
// table has arrived: /readyz says when).
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Kill makes Run return as a crash would (no graceful gossip leave).
func (s *Server) Kill() { s.kill.Do(func() { close(s.killed) }) }

// GRPCAddr returns the advertised gRPC address (clients and data nodes).
func (s *Server) GRPCAddr() string { return s.grpcAddr }

// HTTPAddr returns the advertised admin HTTP address.
func (s *Server) HTTPAddr() string { return s.httpAddr }

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
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	closeListeners := func() { _ = s.deps.GRPCListener.Close(); _ = s.deps.HTTPListener.Close() }
	s.pool = rpc.NewPool(s.cfg.TLS, 1024)
	defer s.pool.Close()
	mc, err := metaclient.New(s.cfg.MetaAddrs, s.pool, s.cfg.CallTimeout, s.logger)
	if err != nil {
		closeListeners()
		return err
	}
	s.meta = mc
	engine, err := push.New(s.cfg.Push, push.Deps{Fetcher: s, Clock: s.clock, Logger: s.logger.With("component", "push"), Registerer: s.reg})
	if err != nil {
		closeListeners()
		return err
	}
	s.engine = engine
	opts, err := rpc.ServerOptions(s.cfg.TLS)
	if err != nil {
		closeListeners()
		return fmt.Errorf("session: %w", err)
	}
	// Fixed flow-control windows: setting them turns off grpc-go's
	// bandwidth estimation, which answers each burst of client data (an
	// ack, a heartbeat) with a PING the client must answer, doubling the
	// frames and syscalls of every push round trip. What clients send is
	// small, so a dynamic window buys nothing here.
	opts = append(opts, grpc.InitialWindowSize(clientWindowBytes), grpc.InitialConnWindowSize(clientWindowBytes))
	agent, err := cluster.New(cluster.Config{
		NodeID: s.cfg.NodeID, BindAddr: s.cfg.GossipBind, BindPort: s.cfg.GossipPort, AdvertiseAddr: s.cfg.GossipAdvertise,
		Join: s.cfg.Join, Profile: s.cfg.GossipProfile, RetryJoin: s.cfg.RetryInterval,
		Meta: cluster.Meta{Role: cluster.RoleSession, GRPC: s.grpcAddr, HTTP: s.httpAddr, Zone: s.cfg.Zone, Proc: s.proc},
	}, s.logger.With("component", "gossip"), s.clock)
	if err != nil {
		closeListeners()
		return err
	}
	s.agent = agent
	metrics := newMetrics(s)
	if err := s.reg.Register(metrics); err != nil {
		agent.Kill()
		closeListeners()
		return fmt.Errorf("session: register metrics: %w", err)
	}
	defer s.reg.Unregister(metrics)

	gs := grpc.NewServer(opts...)
	registryv1.RegisterSessionServiceServer(gs, &clientService{s: s})
	registryv1.RegisterSessionSyncServiceServer(gs, &syncService{s: s})
	hs := &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 5 * time.Second}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		select {
		case <-s.killed:
			cancel()
		case <-gctx.Done():
		}
		return nil
	})
	g.Go(func() error { return agent.JoinLoop(gctx) })
	g.Go(func() error { return engine.Run(gctx) })
	g.Go(func() error { return rpc.Serve(gs, s.deps.GRPCListener) })
	g.Go(func() error { return admin.Serve(hs, s.deps.HTTPListener) })
	g.Go(func() error { return s.meta.WatchTable(gctx, s.cfg.RetryInterval, s.applyTable) })
	g.Go(func() error { return s.heartbeatLoop(gctx) })
	g.Go(func() error { return s.noticeLoop(gctx) })
	g.Go(func() error { return s.fwd.run(gctx) })
	g.Go(func() error { return s.scanLoop(gctx) })
	g.Go(func() error { return s.graceLoop(gctx) })
	g.Go(func() error { return s.balanceLoop(gctx) })
	g.Go(func() error {
		<-gctx.Done()
		s.conns.closeAll("session shutting down")
		rpc.Stop(gs, 2*time.Second)
		admin.Shutdown(hs, 2*time.Second)
		select {
		case <-s.killed:
			agent.Kill()
		default:
			if s.cfg.LeaveOnShutdown {
				agent.Leave()
			} else {
				agent.Kill()
			}
		}
		return nil
	})
	close(s.ready)
	s.logger.Info("session node started", "grpc", s.grpcAddr, "http", s.httpAddr, "gossip", agent.Addr(), "proc", s.proc)
	err = g.Wait()
	s.streams.Wait()
	s.logger.Info("session node stopped")
	return err
}

// applyTable takes a new slot table (in epoch order) and wakes the
// forwarder, whose pending writes may now have a leader.
func (s *Server) applyTable(pt *registryv1.SlotTable) {
	t := metaclient.Table(pt)
	tv := s.table.Load()
	h := (*slot.Hasher)(nil)
	if tv != nil && len(tv.t.Slots) == int(pt.GetSlotCount()) {
		h = tv.hasher
	} else {
		var err error
		if h, err = slot.NewHasher(int(pt.GetSlotCount())); err != nil {
			s.logger.Error("unusable slot table from meta", "epoch", t.Epoch, "err", err)
			return
		}
	}
	s.table.Store(&tableView{t: t, hasher: h})
	s.fwd.wake()
}

// route returns the slot of key, its leader's gRPC address and the epochs
// a write must carry; addr is "" when the leader is unknown or gone.
func (s *Server) route(key string) (id slot.ID, addr string, tableEpoch, leaderEpoch uint64, err error) {
	tv := s.table.Load()
	if tv == nil {
		return 0, "", 0, 0, errNoTable
	}
	id = tv.hasher.Of(key)
	row := tv.t.Slots[id]
	return id, s.dataAddr(row.Leader), tv.t.Epoch, row.LeaderEpoch, nil
}

var errNoTable = status.Error(codes.Unavailable, "session: no slot table yet; retry")

// dataAddr returns a data node's gRPC address from the gossip pool.
func (s *Server) dataAddr(id slot.NodeID) string {
	if id == "" {
		return ""
	}
	for _, m := range s.agent.Members() {
		if m.ID == string(id) && m.Meta.Role == cluster.RoleData && m.State == cluster.StateAlive {
			return m.Meta.GRPC
		}
	}
	return ""
}

// Fetch implements push.Fetcher: the whole datum from its slot leader, or
// an error (no leader, migrating slot, epoch mismatch) and never a partial
// datum.
func (s *Server) Fetch(ctx context.Context, key string) (*registryv1.Datum, error) {
	_, addr, _, _, err := s.route(key)
	if err != nil {
		return nil, err
	}
	if addr == "" {
		return nil, status.Error(codes.Unavailable, "session: the slot has no live leader")
	}
	conn, err := s.pool.Get(addr)
	if err != nil {
		return nil, err
	}
	resp, err := registryv1.NewDataServiceClient(conn).GetDatums(ctx, &registryv1.GetDatumsRequest{DataInfoIds: []string{key}})
	if err != nil {
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
	node := &registryv1.Node{Id: s.cfg.NodeID, Role: registryv1.Role_ROLE_SESSION, GrpcAddress: s.grpcAddr, HttpAddress: s.httpAddr, Zone: s.cfg.Zone, Proc: s.proc}
	return s.meta.Membership(ctx, s.clock, s.cfg.HeartbeatInterval, node, func(req *registryv1.HeartbeatRequest) {
		req.ClientCount = uint32(s.conns.count())
	})
}

// noticeLoop keeps one change stream open to every data node in the pool
// and turns its batches into engine notices. Holding the stream also holds
// this session's lease on that node.
func (s *Server) noticeLoop(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	open := map[string]bool{}
	var mu sync.Mutex
	t := s.clock.NewTicker(s.cfg.RetryInterval)
	defer t.Stop()
	for {
		for _, m := range s.agent.Members() {
			if m.Meta.Role != cluster.RoleData || m.State != cluster.StateAlive || m.Meta.GRPC == "" {
				continue
			}
			addr := m.Meta.GRPC
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
				s.watchData(ctx, addr)
				mu.Lock()
				delete(open, addr)
				mu.Unlock()
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
	}
}

// watchData follows one data node's change stream until it breaks.
func (s *Server) watchData(ctx context.Context, addr string) {
	conn, err := s.pool.Get(addr)
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
		byAddr := map[string][]string{}
		for _, key := range s.engine.Keys() {
			if _, addr, _, _, err := s.route(key); err == nil && addr != "" {
				byAddr[addr] = append(byAddr[addr], key)
			}
		}
		for addr, keys := range byAddr {
			conn, err := s.pool.Get(addr)
			if err != nil {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
			resp, err := registryv1.NewDataServiceClient(conn).GetVersions(cctx, &registryv1.GetVersionsRequest{DataInfoIds: keys})
			cancel()
			if err != nil {
				continue
			}
			for _, v := range resp.GetVersions() {
				if v.GetVersion() > s.engine.Fetched(v.GetDataInfoId()) {
					s.engine.Notify(v.GetDataInfoId(), v.GetVersion())
				}
			}
		}
	}
}
