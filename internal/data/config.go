package data

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-registry/strata/internal/clock"
	"github.com/strata-registry/strata/internal/tlsconf"
)

// Config is a data node's settings: plain data, filled from flags.
type Config struct {
	// NodeID names the node in the slot table and the gossip pool.
	NodeID string
	Zone   string
	// MetaAddrs are meta gRPC addresses (any subset; the rest is learned).
	MetaAddrs []string

	// GRPCAdvertise and HTTPAdvertise are the addresses others use; empty
	// means the bound listener's address.
	GRPCAdvertise string
	HTTPAdvertise string

	// Gossip: where memberlist listens (port 0 picks one), the address
	// others use (an IP), the timing profile ("lan" or "local"), seeds.
	GossipBind      string
	GossipPort      int
	GossipAdvertise string
	GossipProfile   string
	Join            []string
	// LeaveOnShutdown leaves the pool on a graceful stop, so meta reassigns
	// this node's slots at once instead of after its dead grace.
	LeaveOnShutdown bool

	// HeartbeatInterval is how often the node reports sync status to meta.
	HeartbeatInterval time.Duration
	// RetryInterval paces reconnects (meta watch, replication streams).
	RetryInterval time.Duration
	// SessionLease: a session that sent nothing and kept no change stream
	// open for this long has its publishers removed by the slot leaders.
	SessionLease time.Duration
	// SessionGrace: a session the gossip pool shows dead (or restarted as
	// a new process) for this long has its publishers removed.
	SessionGrace time.Duration
	// LeaseCheckInterval is how often leases are checked.
	LeaseCheckInterval time.Duration
	// AntiEntropyInterval is how often a slot leader compares its slots
	// with every session.
	AntiEntropyInterval time.Duration
	// LogCap bounds each slot's replication op log; a follower further
	// behind gets a snapshot.
	LogCap int
	// MaxBatch bounds the puts plus deletes in one publish request.
	MaxBatch int
	// NoticeMaxKeys bounds the keys pending for one session's change
	// stream; past it the session is told to scan versions (overflow).
	NoticeMaxKeys int
	// CallTimeout bounds one call to meta or another node.
	CallTimeout time.Duration

	// TLS secures gRPC (served and dialed); off when empty.
	TLS tlsconf.Config
	// AdminToken guards /api and /debug on the admin HTTP server.
	AdminToken string
}

// DefaultConfig returns production defaults.
func DefaultConfig() Config {
	return Config{
		GossipBind:          "0.0.0.0",
		GossipPort:          7946,
		GossipProfile:       "lan",
		LeaveOnShutdown:     true,
		HeartbeatInterval:   time.Second,
		RetryInterval:       time.Second,
		SessionLease:        30 * time.Second,
		SessionGrace:        10 * time.Second,
		LeaseCheckInterval:  time.Second,
		AntiEntropyInterval: 30 * time.Second,
		LogCap:              4096,
		MaxBatch:            1024,
		NoticeMaxKeys:       100_000,
		CallTimeout:         5 * time.Second,
	}
}

// TestConfig returns short timings for in-process tests on loopback.
func TestConfig() Config {
	c := DefaultConfig()
	c.GossipBind = "127.0.0.1"
	c.GossipPort = 0
	c.GossipProfile = "local"
	c.HeartbeatInterval = 50 * time.Millisecond
	c.RetryInterval = 50 * time.Millisecond
	c.SessionLease = time.Second
	c.SessionGrace = 300 * time.Millisecond
	c.LeaseCheckInterval = 50 * time.Millisecond
	c.AntiEntropyInterval = 200 * time.Millisecond
	c.LogCap = 256
	c.CallTimeout = 2 * time.Second
	return c
}

// ErrBadConfig wraps every configuration error.
var ErrBadConfig = errors.New("data: bad config")

// Validate checks every field.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, args...))
	}
	if c.NodeID == "" || len(c.NodeID) > 128 {
		return bad("node id must be 1..128 bytes, got %q", c.NodeID)
	}
	if len(c.MetaAddrs) == 0 {
		return bad("at least one meta address is required")
	}
	for _, a := range c.MetaAddrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return bad("meta address %q: %v", a, err)
		}
	}
	for name, d := range map[string]time.Duration{
		"heartbeat interval": c.HeartbeatInterval, "retry interval": c.RetryInterval, "session lease": c.SessionLease,
		"session grace": c.SessionGrace, "lease check interval": c.LeaseCheckInterval,
		"anti-entropy interval": c.AntiEntropyInterval, "call timeout": c.CallTimeout,
	} {
		if d <= 0 {
			return bad("%s must be positive, got %v", name, d)
		}
	}
	if c.LogCap < 1 || c.MaxBatch < 1 || c.NoticeMaxKeys < 1 {
		return bad("log cap, max batch and notice max keys must be positive")
	}
	if c.GossipPort < 0 || c.GossipPort > 65535 {
		return bad("gossip port %d out of range", c.GossipPort)
	}
	if err := c.TLS.Validate(); err != nil {
		return bad("%v", err)
	}
	return nil
}

// Deps are a data node's live collaborators.
type Deps struct {
	// Logger should carry a "node" attribute; nil discards.
	Logger *slog.Logger
	// Registry receives metrics and serves /metrics; nil makes a fresh one.
	Registry *prometheus.Registry
	// Clock measures leases and grace periods; nil is the real clock.
	Clock clock.Clock
	// GRPCListener and HTTPListener are bound by the caller; the server
	// closes them.
	GRPCListener net.Listener
	HTTPListener net.Listener
}
