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
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/strata-registry/strata/internal/admin"
	"github.com/strata-registry/strata/internal/clock"
	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/obs"
	"github.com/strata-registry/strata/internal/rpc"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Server is one meta node.
type Server struct {
	cfg    Config
	deps   Deps
	logger *slog.Logger
	clock  clock.Clock
	reg    *prometheus.Registry
	fsm    *fsm

	grpcAddr, httpAddr, raftAddr string

	ready chan struct{}
	// arrange is signalled (never blocking) when sync status may have
	// changed, so the leader runs the arranger without waiting for a tick.
	arrange chan struct{}

	// Set in Run before ready closes, read-only after.
	raft  *raftNode
	agent *cluster.Agent

	// stopping is closed when Run begins to stop, ending watch streams.
	stopping chan struct{}

	// leaderReady is true while this node leads and has applied everything
	// earlier leaders committed; leader-only calls wait for it.
	leaderReady atomic.Bool

	metrics *collector
	loads   *sessionLoads
	// pool holds connections to other meta nodes (forwarding, bootstrap).
	pool   *rpc.Pool
	killed chan struct{}
	kill   sync.Once
}

// New validates cfg and deps. It starts nothing; Run does.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := deps.validate(); err != nil {
		return nil, err
	}
	logger := obs.Or(deps.Logger)
	reg := deps.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s := &Server{
		cfg:      cfg,
		deps:     deps,
		logger:   logger,
		clock:    clock.Or(deps.Clock),
		reg:      reg,
		fsm:      newFSM(),
		grpcAddr: advertised(cfg.GRPCAdvertise, deps.GRPCListener),
		httpAddr: advertised(cfg.HTTPAdvertise, deps.HTTPListener),
		raftAddr: advertised(cfg.RaftAdvertise, deps.RaftListener),
		ready:    make(chan struct{}),
		arrange:  make(chan struct{}, 1),
		loads:    newSessionLoads(),
		killed:   make(chan struct{}),
		stopping: make(chan struct{}),
	}
	return s, nil
}

func advertised(addr string, ln net.Listener) string {
	if addr != "" {
		return addr
	}
	return ln.Addr().String()
}

// Ready is closed once Raft, gossip, gRPC and HTTP are all up.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// GRPCAddr, HTTPAddr, RaftAddr return the advertised addresses.
func (s *Server) GRPCAddr() string { return s.grpcAddr }

// HTTPAddr returns the advertised admin HTTP address.
func (s *Server) HTTPAddr() string { return s.httpAddr }

// RaftAddr returns the advertised Raft address.
func (s *Server) RaftAddr() string { return s.raftAddr }

// GossipAddr returns the gossip address other nodes join; valid after Ready.
func (s *Server) GossipAddr() string { return s.agent.Addr() }

// State returns this node's replica of the state; callers must not modify it.
func (s *Server) State() *State { return s.fsm.Current() }

// IsLeader reports whether this node is the Raft leader; false before Ready.
func (s *Server) IsLeader() bool {
	select {
	case <-s.ready:
		return s.raft.raft.State() == raft.Leader
	default:
		return false
	}
}

// Kill makes Run return as a crash would: no graceful leave from the pool
// and no leadership transfer. Tests use it to simulate a failed node.
func (s *Server) Kill() { s.kill.Do(func() { close(s.killed) }) }

// Run starts the node and blocks until ctx ends (or Kill), then stops
// everything it started and returns. It returns early with an error if a
// part fails to start.
func (s *Server) Run(ctx context.Context) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	notify := make(chan bool, 16)
	rn, existing, err := openRaft(s.cfg, s.fsm, s.deps.RaftListener, s.raftAddr, notify, s.logger)
	if err != nil {
		closeAll(s.deps.GRPCListener, s.deps.HTTPListener)
		return err
	}
	s.raft = rn
	defer func() {
		if cerr := rn.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("meta: stop raft: %w", cerr))
		}
	}()

	expect := s.cfg.BootstrapExpect
	if existing {
		expect = 0
	}
	agent, err := cluster.New(cluster.Config{
		NodeID:        s.cfg.NodeID,
		BindAddr:      s.cfg.GossipBind,
		BindPort:      s.cfg.GossipPort,
		AdvertiseAddr: s.cfg.GossipAdvertise,
		Join:          s.cfg.Join,
		Profile:       s.cfg.GossipProfile,
		RetryJoin:     s.cfg.ReconcileInterval,
		Meta: cluster.Meta{
			Role: cluster.RoleMeta, GRPC: s.grpcAddr, HTTP: s.httpAddr, Raft: s.raftAddr,
			Zone: s.cfg.Zone, Expect: expect,
		},
	}, s.logger.With("component", "gossip"), s.clock)
	if err != nil {
		closeAll(s.deps.GRPCListener, s.deps.HTTPListener)
		return err
	}
	s.agent = agent

	gs, err := s.grpcServer()
	if err != nil {
		agent.Kill()
		closeAll(s.deps.GRPCListener, s.deps.HTTPListener)
		return err
	}
	s.pool = rpc.NewPool(s.cfg.TLS, 8)
	defer s.pool.Close()
	hs := &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 5 * time.Second}
	if err := s.registerMetrics(); err != nil {
		agent.Kill()
		closeAll(s.deps.GRPCListener, s.deps.HTTPListener)
		return err
	}
	defer s.unregisterMetrics()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		select {
		case <-s.killed:
			cancel()
		case <-gctx.Done():
		}
		return nil
	})
	g.Go(func() error {
		// Gossip outlives gctx slightly: leave only on a graceful stop.
		<-gctx.Done()
		select {
		case <-s.killed:
			agent.Kill()
		default:
			// A graceful stop hands leadership over first, so the cluster
			// does not sit out an election timeout.
			s.transferIfLeader()
			if s.cfg.LeaveOnShutdown {
				agent.Leave()
			} else {
				agent.Kill()
			}
		}
		return nil
	})
	g.Go(func() error { return agent.JoinLoop(gctx) })
	g.Go(func() error { return rpc.Serve(gs, s.deps.GRPCListener) })
	g.Go(func() error {
		<-gctx.Done()
		close(s.stopping)
		rpc.Stop(gs, 2*time.Second)
		return nil
	})
	g.Go(func() error { return admin.Serve(hs, s.deps.HTTPListener) })
	g.Go(func() error {
		<-gctx.Done()
		admin.Shutdown(hs, 2*time.Second)
		return nil
	})
	if expect > 0 {
		g.Go(func() error { return s.bootstrapLoop(gctx, expect) })
	}
	g.Go(func() error { return s.leadershipLoop(gctx, notify) })

	close(s.ready)
	s.logger.Info("meta node started", "grpc", s.grpcAddr, "http", s.httpAddr, "raft", s.raftAddr,
		"gossip", agent.Addr(), "bootstrap_expect", expect, "existing_state", existing)
	err = g.Wait()
	s.logger.Info("meta node stopped")
	return err
}

func (s *Server) grpcServer() (*grpc.Server, error) {
	opts, err := rpc.ServerOptions(s.cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("meta: %w", err)
	}
	gs := grpc.NewServer(opts...)
	registryv1.RegisterMetaServiceServer(gs, &service{s: s})
	return gs, nil
}

func closeAll(lns ...net.Listener) {
	for _, ln := range lns {
		_ = ln.Close()
	}
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
