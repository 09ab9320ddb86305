// Package meta is Strata's meta tier: a small Raft group (3 or 5 nodes) that
// owns cluster membership and the slot table.
//
// Every node of every role gossips in one memberlist pool. The Raft leader
// turns what the pool shows into Raft commands (after grace periods), runs
// the slot arranger (internal/slot) whenever data membership or sync status
// changes, and adds meta nodes it finds in the pool as voters. Data and
// session nodes call MetaService to register, heartbeat (data nodes carry
// per-slot sync status) and watch the slot table.
//
// Files: config.go (Config, Deps), fsm.go (replicated state and commands),
// raft.go (Raft on bolt and the pre-bound listener), liveness.go (flap
// damping), leader.go (what only the leader does), bootstrap.go (forming
// the first quorum), service.go (gRPC), http.go (admin HTTP), metrics.go.
package meta

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/strata-registry/strata/internal/admin"
	"github.com/strata-registry/strata/internal/clock"
	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/console"
	"github.com/strata-registry/strata/internal/node"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Server is one meta node. The embedded node.Node is its runtime (gossip,
// servers, lifecycle): Ready, Kill and the address accessors are its.
type Server struct {
	*node.Node
	cfg    Config
	deps   Deps
	logger *slog.Logger
	clock  clock.Clock
	reg    *prometheus.Registry
	fsm    *fsm

	raftAddr string

	// arrange is signalled (never blocking) when sync status may have
	// changed, so the leader runs the arranger without waiting for a tick.
	arrange chan struct{}

	// Set in Start, read-only after.
	raft *raftNode
	// existing is whether Raft found state on disk (such a node never
	// bootstraps); notify carries Raft's leadership changes.
	existing bool
	notify   chan bool

	// stopping is closed when the node begins to stop, ending watch streams.
	stopping chan struct{}

	// leaderReady is true while this node leads and has applied everything
	// earlier leaders committed; leader-only calls wait for it.
	leaderReady atomic.Bool

	metrics *collector
	loads   *sessionLoads
	// handovers is the leader's soft state of data nodes' handovers in
	// flight (readiness detail).
	handovers *handoverReports
	// motion caches the readiness detail's slot counts per state.
	motion motionCache
	// console collects the web console's series from the nodes' metrics.
	console *console.Collector
}

// New validates cfg and deps. It starts nothing; Run does.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := deps.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		deps:      deps,
		fsm:       newFSM(),
		raftAddr:  advertised(cfg.RaftAdvertise, deps.RaftListener),
		arrange:   make(chan struct{}, 1),
		loads:     newSessionLoads(),
		handovers: newHandoverReports(),
		stopping:  make(chan struct{}),
		notify:    make(chan bool, 16),
	}
	// The CA is read again at each enrollment; reading it now makes a
	// wrong --ca-key-file fail the start instead.
	if _, err := loadIssuer(cfg); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadConfig, err)
	}
	n, err := node.New(cfg.Config, node.Spec{Role: cluster.RoleMeta, PoolSize: 8, Ready: s.readyState, Policy: policy, Tokens: true}, deps.Deps)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadConfig, err)
	}
	s.Node, s.logger, s.clock, s.reg = n, n.Logger(), n.Clock(), n.Registry()
	if s.console, err = newConsole(s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadConfig, err)
	}
	return s, nil
}

func advertised(addr string, ln net.Listener) string {
	if addr != "" {
		return addr
	}
	return ln.Addr().String()
}

// RaftAddr returns the advertised Raft address.
func (s *Server) RaftAddr() string { return s.raftAddr }

// State returns this node's replica of the state; callers must not modify it.
func (s *Server) State() *State { return s.fsm.Current() }

// IsLeader reports whether this node is the Raft leader; false before Ready.
func (s *Server) IsLeader() bool {
	select {
	case <-s.Ready():
		return s.raft.raft.State() == raft.Leader
	default:
		return false
	}
}

// Run starts the node and blocks until ctx ends (or Kill), then stops
// everything it started and returns. It returns early with an error if a
// part fails to start.
func (s *Server) Run(ctx context.Context) error { return s.Node.Run(ctx, (*lifecycle)(s)) }

// lifecycle is the Server as the node runtime sees it (node.Role).
type lifecycle Server

// Start opens Raft, which decides what the node announces: a node with
// Raft state on disk never bootstraps, so it announces no expectation.
func (r *lifecycle) Start() (cluster.Meta, error) {
	s := (*Server)(r)
	rn, existing, err := openRaft(s.cfg, s.Creds(), s.fsm, s.deps.RaftListener, s.raftAddr, s.notify, s.logger)
	if err != nil {
		return cluster.Meta{}, err
	}
	s.raft, s.existing = rn, existing
	s.metrics = newCollector(s)
	if err := s.reg.Register(s.metrics); err != nil {
		return cluster.Meta{}, errors.Join(fmt.Errorf("meta: register metrics: %w", err), rn.close())
	}
	return cluster.Meta{GRPC: s.GRPCAddr(), HTTP: s.HTTPAddr(), Raft: s.raftAddr, Zone: s.cfg.Zone, Expect: s.expect()}, nil
}

// expect is the bootstrap expectation this node acts on and announces.
func (s *Server) expect() int {
	if s.existing {
		return 0
	}
	return s.cfg.BootstrapExpect
}

// Serve registers MetaService and the admin routes.
func (r *lifecycle) Serve(gs *grpc.Server, mux *admin.Mux) {
	s := (*Server)(r)
	registryv1.RegisterMetaServiceServer(gs, &service{s: s})
	s.routes(mux)
}

// Run starts bootstrap (for a new cluster) and the leadership loop.
func (r *lifecycle) Run(ctx context.Context, g *errgroup.Group) {
	s := (*Server)(r)
	if expect := s.expect(); expect > 0 {
		g.Go(func() error { return s.bootstrapLoop(ctx, expect) })
	}
	g.Go(func() error { return s.leadershipLoop(ctx, s.notify) })
	g.Go(func() error { return s.console.Run(ctx) })
	s.logger.Info("meta node starting its loops", "bootstrap_expect", s.expect(), "existing_state", s.existing)
}

// Stop ends the slot table watches and, on a graceful stop, hands
// leadership over first, so the cluster does not sit out an election
// timeout.
func (r *lifecycle) Stop(graceful bool) {
	s := (*Server)(r)
	close(s.stopping)
	if graceful {
		s.transferIfLeader()
	}
}

// Close stops Raft and its stores.
func (r *lifecycle) Close() error {
	s := (*Server)(r)
	s.reg.Unregister(s.metrics)
	if err := s.raft.close(); err != nil {
		return fmt.Errorf("meta: stop raft: %w", err)
	}
	return nil
}

// transferIfLeader hands leadership over before a graceful leave, so the
// cluster does not wait for an election.
func (s *Server) transferIfLeader() {
	if s.raft.raft.State() != raft.Leader {
		return
	}
	if fut := s.raft.raft.GetConfiguration(); fut.Error() != nil || len(fut.Configuration().Servers) < 2 {
		return // nobody to hand over to
	}
	if err := s.raft.raft.LeadershipTransfer().Error(); err != nil {
		s.logger.Warn("leadership transfer before leaving failed", "err", err)
	}
}

// newClusterID returns a random 16-byte hex id for a new cluster.
func newClusterID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}
