// Package data is Strata's data tier: publisher records sharded by slot,
// each slot held by a leader (the only node that accepts its writes) and
// followers that replicate from it.
//
// A data node follows the slot table from meta. For each slot it leads, it
// serves writes from sessions (fenced by table and leader epoch), sends
// change notices to every session, expires the publishers of sessions that
// are gone (leases), and compares its records with every session
// (anti-entropy). For each slot it follows, it pulls a snapshot and then the
// leader's op stream, and reports "synced" to meta once caught up, which is
// what lets the arranger promote it.
//
// Files: config.go, server.go (lifecycle, meta), slots.go (roles and
// replication), service.go (gRPC), notify.go (change notices), lease.go,
// antientropy.go, http.go, store.go (the per-slot store).
package data

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/strata-registry/strata/internal/admin"
	"github.com/strata-registry/strata/internal/clock"
	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/metaclient"
	"github.com/strata-registry/strata/internal/obs"
	"github.com/strata-registry/strata/internal/rpc"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Server is one data node.
type Server struct {
	cfg    Config
	deps   Deps
	logger *slog.Logger
	clock  clock.Clock
	reg    *prometheus.Registry

	grpcAddr, httpAddr string
	// proc names this process: meta treats a new one under our id as a
	// node that lost its (in-memory) data.
	proc string

	ready  chan struct{}
	killed chan struct{}
	kill   sync.Once
	// aeKick asks the anti-entropy loop for a round now.
	aeKick chan struct{}

	// Set in Run before ready closes, read-only after.
	agent *cluster.Agent
	pool  *rpc.Pool
	meta  *metaclient.Client

	slots   *slots
	repl    replStreams
	notices *notifier
	leases  *leases
	metrics *metrics
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
		cfg:      cfg,
		deps:     deps,
		logger:   obs.Or(deps.Logger),
		clock:    clock.Or(deps.Clock),
		reg:      reg,
		proc:     fmt.Sprintf("%s@%d", cfg.NodeID, time.Now().UnixNano()),
		grpcAddr: advertised(cfg.GRPCAdvertise, deps.GRPCListener),
		httpAddr: advertised(cfg.HTTPAdvertise, deps.HTTPListener),
		ready:    make(chan struct{}),
		aeKick:   make(chan struct{}, 1),
		killed:   make(chan struct{}),
	}
	s.notices = newNotifier(cfg.NoticeMaxKeys, s.clock)
	s.leases = newLeases(s.clock)
	s.slots = newSlots(s)
	return s, nil
}

func advertised(addr string, ln net.Listener) string {
	if addr != "" {
		return addr
	}
	return ln.Addr().String()
}

// Ready is closed once gossip, gRPC and HTTP are up (not when the node has
// a table: /readyz says that).
func (s *Server) Ready() <-chan struct{} { return s.ready }

// GRPCAddr returns the advertised gRPC address.
func (s *Server) GRPCAddr() string { return s.grpcAddr }

// HTTPAddr returns the advertised admin HTTP address.
func (s *Server) HTTPAddr() string { return s.httpAddr }

// Kill makes Run return as a crash would: no graceful leave from the gossip
// pool. Tests use it to simulate a failed node.
func (s *Server) Kill() { s.kill.Do(func() { close(s.killed) }) }

// GossipAddr returns the gossip address; valid after Ready.
func (s *Server) GossipAddr() string { return s.agent.Addr() }

// TableEpoch returns the epoch of the slot table this node follows (0
// before the first).
func (s *Server) TableEpoch() uint64 {
	e, _ := s.slots.epoch()
	return e
}

// ReadyState reports what /readyz reports: a table has arrived and no slot
// this node leads is migrating.
func (s *Server) ReadyState() (bool, any) {
	epoch, ok := s.slots.epoch()
	if !ok {
		return false, map[string]string{"status": "no slot table yet"}
	}
	var migrating []uint32
	for _, st := range s.slots.led() {
		if st.migrating.Load() {
			migrating = append(migrating, uint32(st.id))
		}
	}
	if len(migrating) > 0 {
		return false, map[string]any{"status": "slots migrating", "slots": migrating, "table_epoch": epoch}
	}
	return true, map[string]any{"status": "ready", "table_epoch": epoch}
}

// Run starts the node, blocks until ctx ends (or Kill), then stops
// everything it started and returns.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	closeListeners := func() { _ = s.deps.GRPCListener.Close(); _ = s.deps.HTTPListener.Close() }
	// Meta nodes, data peers and every session (anti-entropy): keep them all.
	s.pool = rpc.NewPool(s.cfg.TLS, 4096)
	defer s.pool.Close()
	mc, err := metaclient.New(s.cfg.MetaAddrs, s.pool, s.cfg.CallTimeout, s.logger)
	if err != nil {
		closeListeners()
		return err
	}
	s.meta = mc
	opts, err := rpc.ServerOptions(s.cfg.TLS)
	if err != nil {
		closeListeners()
		return fmt.Errorf("data: %w", err)
	}
	agent, err := cluster.New(cluster.Config{
		NodeID: s.cfg.NodeID, BindAddr: s.cfg.GossipBind, BindPort: s.cfg.GossipPort, AdvertiseAddr: s.cfg.GossipAdvertise,
		Join: s.cfg.Join, Profile: s.cfg.GossipProfile, RetryJoin: s.cfg.RetryInterval,
		Meta: cluster.Meta{Role: cluster.RoleData, GRPC: s.grpcAddr, HTTP: s.httpAddr, Zone: s.cfg.Zone, Proc: s.proc},
	}, s.logger.With("component", "gossip"), s.clock)
	if err != nil {
		closeListeners()
		return err
	}
	s.agent = agent
	s.metrics = newMetrics(s)
	if err := s.reg.Register(s.metrics); err != nil {
		agent.Kill()
		closeListeners()
		return fmt.Errorf("data: register metrics: %w", err)
	}
	defer s.reg.Unregister(s.metrics)

	gs := grpc.NewServer(opts...)
	registryv1.RegisterDataServiceServer(gs, &service{s: s})
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
	g.Go(func() error { return rpc.Serve(gs, s.deps.GRPCListener) })
	g.Go(func() error { return admin.Serve(hs, s.deps.HTTPListener) })
	g.Go(func() error { return s.meta.WatchTable(gctx, s.cfg.RetryInterval, s.slots.apply) })
	g.Go(func() error { return s.heartbeatLoop(gctx) })
	g.Go(func() error { return s.leaseLoop(gctx) })
	g.Go(func() error { return s.antiEntropyLoop(gctx) })
	g.Go(func() error {
		<-gctx.Done()
		// Order: stop replication and streams, then servers, then gossip.
		s.slots.stopAll()
		s.notices.closeAll()
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
	s.logger.Info("data node started", "grpc", s.grpcAddr, "http", s.httpAddr, "gossip", agent.Addr(), "meta", s.cfg.MetaAddrs)
	err = g.Wait()
	s.slots.wait()
	s.logger.Info("data node stopped")
	return err
}

// heartbeatLoop keeps this node registered with meta, reporting the
// sync status of every slot it follows.
func (s *Server) heartbeatLoop(ctx context.Context) error {
	node := &registryv1.Node{Id: s.cfg.NodeID, Role: registryv1.Role_ROLE_DATA, GrpcAddress: s.grpcAddr, HttpAddress: s.httpAddr, Zone: s.cfg.Zone, Proc: s.proc}
	return s.meta.Membership(ctx, s.clock, s.cfg.HeartbeatInterval, node, func(req *registryv1.HeartbeatRequest) {
		req.Slots = s.slots.syncReport()
	})
}
