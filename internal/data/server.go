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
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/strata-registry/strata/internal/admin"
	"github.com/strata-registry/strata/internal/clock"
	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/metaclient"
	"github.com/strata-registry/strata/internal/node"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Server is one data node. The embedded node.Node is its runtime (gossip,
// servers, lifecycle): Ready, Kill and the address accessors are its.
type Server struct {
	*node.Node
	cfg    Config
	logger *slog.Logger
	clock  clock.Clock
	reg    *prometheus.Registry

	// proc names this process: meta treats a new one under our id as a
	// node that lost its (in-memory) data.
	proc string

	// aeKick asks the anti-entropy loop for a round now.
	aeKick chan struct{}
	// leaving is closed (once, by Drain) to end the heartbeats to meta.
	leaving     chan struct{}
	leavingOnce sync.Once

	meta    *metaclient.Client
	slots   *slots
	repl    replStreams
	notices *notifier
	marks   marks
	leases  *leases
	metrics *metrics
}

// New validates cfg and deps. It starts nothing; Run does.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		proc:    fmt.Sprintf("%s@%d", cfg.NodeID, time.Now().UnixNano()),
		aeKick:  make(chan struct{}, 1),
		leaving: make(chan struct{}),
	}
	// Meta nodes, data peers and every session (anti-entropy): keep them all.
	n, err := node.New(cfg.Config, node.Spec{Role: cluster.RoleData, PoolSize: 4096, Ready: s.ReadyState, Policy: policy}, deps)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadConfig, err)
	}
	s.Node, s.logger, s.clock, s.reg = n, n.Logger(), n.Clock(), n.Registry()
	s.meta = n.Meta()
	s.notices = newNotifier(cfg.NoticeMaxKeys, s.clock)
	s.leases = newLeases(s.clock)
	s.slots = newSlots(s)
	return s, nil
}

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
func (s *Server) Run(ctx context.Context) error { return s.Node.Run(ctx, (*lifecycle)(s)) }

// lifecycle is the Server as the node runtime sees it (node.Role).
type lifecycle Server

// Start registers the metrics and announces the node.
func (r *lifecycle) Start() (cluster.Meta, error) {
	s := (*Server)(r)
	s.metrics = newMetrics(s)
	if err := s.reg.Register(s.metrics); err != nil {
		return cluster.Meta{}, fmt.Errorf("data: register metrics: %w", err)
	}
	return cluster.Meta{GRPC: s.GRPCAddr(), HTTP: s.HTTPAddr(), Zone: s.cfg.Zone, Proc: s.proc}, nil
}

// Serve registers DataService and the admin routes.
func (r *lifecycle) Serve(gs *grpc.Server, mux *admin.Mux) {
	s := (*Server)(r)
	registryv1.RegisterDataServiceServer(gs, &service{s: s})
	s.routes(mux)
}

// Run starts the loops: the slot table and instance mark watches,
// heartbeats, leases and anti-entropy.
func (r *lifecycle) Run(ctx context.Context, g *errgroup.Group) {
	s := (*Server)(r)
	g.Go(func() error { return s.meta.WatchTable(ctx, s.cfg.RetryInterval, s.slots.apply) })
	g.Go(func() error { return s.meta.WatchInstanceStates(ctx, s.cfg.RetryInterval, s.applyMarks) })
	hctx, stopHeartbeats := context.WithCancel(ctx)
	g.Go(func() error {
		select {
		case <-s.leaving:
		case <-hctx.Done():
		}
		stopHeartbeats()
		return nil
	})
	g.Go(func() error { return s.heartbeatLoop(hctx) })
	g.Go(func() error { return s.leaseLoop(ctx) })
	g.Go(func() error { return s.antiEntropyLoop(ctx) })
}

// Stop ends replication and the sessions' change streams before the
// servers stop.
func (r *lifecycle) Stop(bool) {
	s := (*Server)(r)
	s.slots.stopAll()
	s.notices.closeAll()
}

// Close waits for the slots' goroutines.
func (r *lifecycle) Close() error {
	s := (*Server)(r)
	s.slots.wait()
	if s.metrics != nil {
		s.reg.Unregister(s.metrics)
	}
	return nil
}

// heartbeatLoop keeps this node registered with meta, reporting the
// sync status of every slot it follows and the handovers in flight of the
// slots it leads.
func (s *Server) heartbeatLoop(ctx context.Context) error {
	node := &registryv1.Node{Id: s.cfg.NodeID, Role: registryv1.Role_ROLE_DATA, GrpcAddress: s.GRPCAddr(), HttpAddress: s.HTTPAddr(), Zone: s.cfg.Zone, Proc: s.proc}
	return s.meta.Membership(ctx, s.clock, s.cfg.HeartbeatInterval, node, s.fillHeartbeat)
}

// fillHeartbeat completes a heartbeat: sync status of followed slots, and
// the led slots still migrating (at most the slot count: one per slot held)
// as of table_epoch. The epoch is read first, so a table applied meanwhile
// makes the report look older than it is, never newer: meta then counts
// the slots moved since as not yet reported, rather than miss one.
func (s *Server) fillHeartbeat(req *registryv1.HeartbeatRequest) {
	req.TableEpoch, _ = s.slots.epoch()
	req.Slots = s.slots.syncReport()
	for _, st := range s.slots.led() {
		if st.migrating.Load() {
			req.HandoverSlots = append(req.HandoverSlots, uint32(st.id))
		}
	}
}

// Drain implements node.Drainer: it stops heartbeats (meta would take a
// heartbeat from a removed node as a reason to register it again) and
// leaves the pool; meta then moves its leaderships to their followers.
// Drain returns once the table this node follows gives it none (or ctx
// ends), so the sessions' writes move to the new leaders while this one
// still answers and nothing waits for it to be gone. Its followerships
// need no handover. Measured in the chaos runs: keys on a data node that
// restarts gracefully stalled ~2.3 s before (it stopped serving, for up to
// the 2 s gRPC stop, before it left the pool).
func (r *lifecycle) Drain(ctx context.Context, leave func()) {
	s := (*Server)(r)
	s.leavingOnce.Do(func() { close(s.leaving) })
	leave()
	t := s.clock.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for len(s.slots.led()) > 0 {
		select {
		case <-ctx.Done():
			s.logger.Warn("drain ended with slots still led here", "slots", len(s.slots.led()), "err", ctx.Err())
			return
		case <-t.C():
		}
	}
}
