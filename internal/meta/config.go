package meta

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-registry/strata/internal/clock"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/internal/tlsconf"
)

// Config is a meta node's settings: plain data, filled from flags.
type Config struct {
	// NodeID names the node in Raft and in the gossip pool.
	NodeID string
	// DataDir holds the Raft log, stable store and snapshots.
	DataDir string
	// Zone is announced to the pool.
	Zone string

	// GRPCAdvertise, HTTPAdvertise and RaftAdvertise are the addresses other
	// nodes use; empty means the bound listener's address.
	GRPCAdvertise string
	HTTPAdvertise string
	RaftAdvertise string

	// GossipBind and GossipPort are where memberlist listens (port 0 picks
	// one); GossipAdvertise is the address others use, when it differs.
	GossipBind      string
	GossipPort      int
	GossipAdvertise string
	// GossipProfile is "lan" (production) or "local" (fast, for tests).
	GossipProfile string
	// Join lists gossip seeds (host:port) of any role.
	Join []string

	// BootstrapExpect forms the first Raft quorum once this many meta nodes
	// are in the pool and none of them already belongs to a cluster. 0 means
	// never bootstrap: wait to be added by an existing leader.
	BootstrapExpect int
	// LeaveOnShutdown leaves the pool gracefully on shutdown, which makes the
	// leader remove this node from the Raft voters. Off by default: a meta
	// node that restarts should stay a voter.
	LeaveOnShutdown bool

	// Slots is the settings a new cluster is created with; a cluster keeps
	// the settings of its creation whatever later nodes are started with.
	Slots    int
	Replicas int
	// MaxMoves caps voluntary slot moves per arranger round.
	MaxMoves int

	// JoinGrace is how long a node must stay alive in the pool before the
	// leader adds it as a member (flap damping); DeadGrace how long it must
	// stay dead before the leader removes it.
	JoinGrace time.Duration
	DeadGrace time.Duration
	// ArrangeInterval is the least time between two arranger rounds.
	ArrangeInterval time.Duration
	// ReconcileInterval is how often the leader reconciles the pool, the
	// Raft voters and the members, besides whenever the pool changes.
	ReconcileInterval time.Duration

	// Raft timings.
	RaftHeartbeatTimeout   time.Duration
	RaftElectionTimeout    time.Duration
	RaftLeaderLeaseTimeout time.Duration
	RaftCommitTimeout      time.Duration
	// SnapshotThreshold is how many log entries trigger a snapshot;
	// SnapshotInterval how often Raft checks.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// ApplyTimeout bounds one Raft proposal.
	ApplyTimeout time.Duration

	// TLS secures gRPC (served and dialed); off when empty.
	TLS tlsconf.Config
	// AdminToken, when set, is required as a bearer token on the admin HTTP
	// API and pprof (health, readiness and metrics stay open).
	AdminToken string
}

// DefaultConfig returns production defaults.
func DefaultConfig() Config {
	return Config{
		GossipBind:             "0.0.0.0",
		GossipPort:             7946,
		GossipProfile:          "lan",
		Slots:                  slot.DefaultCount,
		Replicas:               slot.DefaultReplicas,
		MaxMoves:               slot.DefaultMaxMoves,
		JoinGrace:              2 * time.Second,
		DeadGrace:              15 * time.Second,
		ArrangeInterval:        time.Second,
		ReconcileInterval:      5 * time.Second,
		RaftHeartbeatTimeout:   time.Second,
		RaftElectionTimeout:    time.Second,
		RaftLeaderLeaseTimeout: 500 * time.Millisecond,
		RaftCommitTimeout:      50 * time.Millisecond,
		SnapshotThreshold:      8192,
		SnapshotInterval:       2 * time.Minute,
		ApplyTimeout:           5 * time.Second,
	}
}

// TestConfig returns short timings for in-process tests on loopback.
func TestConfig() Config {
	c := DefaultConfig()
	c.GossipBind = "127.0.0.1"
	c.GossipPort = 0
	c.GossipProfile = "local"
	c.JoinGrace = 50 * time.Millisecond
	c.DeadGrace = 500 * time.Millisecond
	c.ArrangeInterval = 20 * time.Millisecond
	c.ReconcileInterval = 100 * time.Millisecond
	c.RaftHeartbeatTimeout = 300 * time.Millisecond
	c.RaftElectionTimeout = 300 * time.Millisecond
	c.RaftLeaderLeaseTimeout = 150 * time.Millisecond
	c.RaftCommitTimeout = 5 * time.Millisecond
	c.SnapshotThreshold = 64
	c.SnapshotInterval = 200 * time.Millisecond
	c.ApplyTimeout = 3 * time.Second
	return c
}

// ErrBadConfig wraps every configuration error.
var ErrBadConfig = errors.New("meta: bad config")

// Settings returns the slot settings a new cluster would be created with.
func (c Config) Settings() slot.Settings {
	return slot.Settings{Count: c.Slots, Replicas: c.Replicas, MaxMoves: c.MaxMoves}
}

// Validate checks every field and their combinations.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, args...))
	}
	if err := validNodeID(c.NodeID); err != nil {
		return bad("node id: %v", err)
	}
	if c.DataDir == "" {
		return bad("data dir is required")
	}
	if err := c.Settings().Validate(); err != nil {
		return bad("%v", err)
	}
	if c.BootstrapExpect < 0 || c.BootstrapExpect > 9 {
		return bad("bootstrap-expect %d out of range (want 0..9; 3 or 5 is usual)", c.BootstrapExpect)
	}
	if c.GossipPort < 0 || c.GossipPort > 65535 {
		return bad("gossip port %d out of range", c.GossipPort)
	}
	for name, d := range map[string]time.Duration{
		"join grace": c.JoinGrace, "dead grace": c.DeadGrace, "arrange interval": c.ArrangeInterval,
		"reconcile interval": c.ReconcileInterval, "raft heartbeat timeout": c.RaftHeartbeatTimeout,
		"raft election timeout": c.RaftElectionTimeout, "raft leader lease timeout": c.RaftLeaderLeaseTimeout,
		"raft commit timeout": c.RaftCommitTimeout, "snapshot interval": c.SnapshotInterval, "apply timeout": c.ApplyTimeout,
	} {
		if d <= 0 {
			return bad("%s must be positive, got %v", name, d)
		}
	}
	if c.RaftLeaderLeaseTimeout > c.RaftHeartbeatTimeout {
		return bad("raft leader lease timeout %v must not exceed heartbeat timeout %v", c.RaftLeaderLeaseTimeout, c.RaftHeartbeatTimeout)
	}
	if c.SnapshotThreshold == 0 {
		return bad("snapshot threshold must be positive")
	}
	for name, a := range map[string]string{"grpc advertise": c.GRPCAdvertise, "http advertise": c.HTTPAdvertise, "raft advertise": c.RaftAdvertise} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return bad("%s address %q: %v", name, a, err)
		}
	}
	if err := c.TLS.Validate(); err != nil {
		return bad("%v", err)
	}
	return nil
}

// Deps are a meta node's live collaborators.
type Deps struct {
	// Logger should carry a "node" attribute; nil discards.
	Logger *slog.Logger
	// Registry receives the node's metrics and serves /metrics; nil makes a
	// fresh one. Never the global registry.
	Registry *prometheus.Registry
	// Clock measures grace periods; nil is the real clock.
	Clock clock.Clock
	// GRPCListener, HTTPListener and RaftListener are bound by the caller, so
	// tests can pass 127.0.0.1:0 listeners. The server closes them.
	GRPCListener net.Listener
	HTTPListener net.Listener
	RaftListener net.Listener
}

func (d Deps) validate() error {
	if d.GRPCListener == nil || d.HTTPListener == nil || d.RaftListener == nil {
		return fmt.Errorf("%w: gRPC, HTTP and Raft listeners are required", ErrBadConfig)
	}
	return nil
}
