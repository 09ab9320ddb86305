package data

import (
	"errors"
	"fmt"
	"time"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/node"
)

// Config is a data node's settings: plain data, filled from flags. The
// fields every role has (node id, zone, meta addresses, gossip, TLS, admin
// token) are node.Config's; LeaveOnShutdown is on by default, so meta
// reassigns a stopping node's slots at once instead of after its dead grace.
type Config struct {
	node.Config

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
}

// nodeConfig is base with what every data node sets: it leaves the pool
// on shutdown, and takes a data node's limits.
func nodeConfig(base node.Config) node.Config {
	base.LeaveOnShutdown = true
	base.Limits = Limits()
	return base
}

// DefaultConfig returns production defaults.
func DefaultConfig() Config {
	return Config{
		Config:              nodeConfig(node.DefaultConfig()),
		HeartbeatInterval:   time.Second,
		RetryInterval:       time.Second,
		SessionLease:        30 * time.Second,
		SessionGrace:        10 * time.Second,
		LeaseCheckInterval:  time.Second,
		AntiEntropyInterval: 30 * time.Second,
		LogCap:              4096,
		MaxBatch:            1024,
		NoticeMaxKeys:       100_000,
	}
}

// TestConfig returns short timings for in-process tests on loopback.
func TestConfig() Config {
	c := DefaultConfig()
	c.Config = nodeConfig(node.TestConfig())
	c.HeartbeatInterval = 50 * time.Millisecond
	c.RetryInterval = 50 * time.Millisecond
	c.SessionLease = time.Second
	c.SessionGrace = 300 * time.Millisecond
	c.LeaseCheckInterval = 50 * time.Millisecond
	c.AntiEntropyInterval = 200 * time.Millisecond
	c.LogCap = 256
	return c
}

// ErrBadConfig wraps every configuration error.
var ErrBadConfig = errors.New("data: bad config")

// Validate checks every field.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, args...))
	}
	if err := c.Config.Validate(cluster.RoleData); err != nil {
		return bad("%v", err)
	}
	for name, d := range map[string]time.Duration{
		"heartbeat interval": c.HeartbeatInterval, "retry interval": c.RetryInterval, "session lease": c.SessionLease,
		"session grace": c.SessionGrace, "lease check interval": c.LeaseCheckInterval,
		"anti-entropy interval": c.AntiEntropyInterval,
	} {
		if d <= 0 {
			return bad("%s must be positive, got %v", name, d)
		}
	}
	if c.LogCap < 1 || c.MaxBatch < 1 || c.NoticeMaxKeys < 1 {
		return bad("log cap, max batch and notice max keys must be positive")
	}
	return nil
}

// Deps are a data node's live collaborators (its Clock measures leases
// and grace periods).
type Deps = node.Deps

// MaxRequestBytes is the largest request a data node reads: a session's
// write batch (sessions cut them at session.ForwardBatchBytes, and one
// publisher of record.MaxPublisherBytes always fits) or a version scan.
const MaxRequestBytes = 16 << 20

// Limits are a data node's admission limits: batch-sized messages, and many
// streams per connection (a follower holds one replication stream per slot
// it follows from a leader, over one connection).
func Limits() node.Limits {
	l := node.DefaultLimits()
	l.MaxRecvBytes = MaxRequestBytes
	l.MaxStreams = 8192
	return l
}
