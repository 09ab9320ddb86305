package meta

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/console"
	"github.com/strata-registry/strata/internal/node"
	"github.com/strata-registry/strata/internal/slot"
)

// Config is a meta node's settings: plain data, filled from flags. The
// fields every role has (node id, zone, addresses, gossip, TLS, admin
// token) are node.Config's.
type Config struct {
	node.Config

	// DataDir holds the Raft log, stable store and snapshots.
	DataDir string
	// RaftAdvertise is the Raft address other meta nodes use; empty means
	// the bound listener's address.
	RaftAdvertise string

	// BootstrapExpect forms the first Raft quorum once this many meta nodes
	// are in the pool and none of them already belongs to a cluster. 0 means
	// never bootstrap: wait to be added by an existing leader.
	BootstrapExpect int
	// Slots is the settings a new cluster is created with; a cluster keeps
	// the settings of its creation whatever later nodes are started with.
	Slots    int
	Replicas int
	// MaxMoves caps voluntary slot moves per arranger round.
	MaxMoves int

	// DeadGrace is how long a member must stay dead (or missing) in the
	// gossip pool before the leader removes it (flap damping).
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
	// EnrollValidity is how long a certificate issued to an enrolling node
	// is valid (with --ca-key-file).
	EnrollValidity time.Duration

	// Console is how the web console's collector scrapes the nodes for
	// its charts.
	Console console.Config
}

// DefaultConfig returns production defaults. LeaveOnShutdown is off: a
// meta node that leaves the pool is removed from the Raft voters, which a
// restart should not do (it is for decommissioning).
func DefaultConfig() Config {
	return Config{
		Config:                 node.DefaultConfig(),
		Slots:                  slot.DefaultCount,
		Replicas:               slot.DefaultReplicas,
		MaxMoves:               slot.DefaultMaxMoves,
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
		EnrollValidity:         90 * 24 * time.Hour,
		Console:                console.DefaultConfig(),
	}
}

// TestConfig returns short timings for in-process tests on loopback.
func TestConfig() Config {
	c := DefaultConfig()
	c.Config = node.TestConfig()
	c.DeadGrace = 500 * time.Millisecond
	c.ArrangeInterval = 20 * time.Millisecond
	c.ReconcileInterval = 100 * time.Millisecond
	// Raft's timeouts leave room for a loaded machine (-race on 2 cores
	// beside other test binaries): at 300 ms leaders flapped there and
	// tests failed with "no leader" after 20 s. A leader loss costs a test
	// about a second more.
	c.RaftHeartbeatTimeout = time.Second
	c.RaftElectionTimeout = time.Second
	c.RaftLeaderLeaseTimeout = 500 * time.Millisecond
	c.RaftCommitTimeout = 5 * time.Millisecond
	c.SnapshotThreshold = 64
	c.SnapshotInterval = 200 * time.Millisecond
	c.ApplyTimeout = 3 * time.Second
	// Console keeps its production settings (a scrape of every node each
	// 5 s): every meta node of every test scrapes, and a shorter interval
	// would load the machine for tests that never look. Tests of the
	// console shorten it on the node they read.
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
	if err := c.Config.Validate(cluster.RoleMeta); err != nil {
		return bad("%v", err)
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
	for name, d := range map[string]time.Duration{
		"dead grace": c.DeadGrace, "arrange interval": c.ArrangeInterval,
		"reconcile interval": c.ReconcileInterval, "raft heartbeat timeout": c.RaftHeartbeatTimeout,
		"raft election timeout": c.RaftElectionTimeout, "raft leader lease timeout": c.RaftLeaderLeaseTimeout,
		"raft commit timeout": c.RaftCommitTimeout, "snapshot interval": c.SnapshotInterval, "apply timeout": c.ApplyTimeout,
		"enroll validity": c.EnrollValidity,
	} {
		if d <= 0 {
			return bad("%s must be positive, got %v", name, d)
		}
	}
	if c.RaftLeaderLeaseTimeout > c.RaftHeartbeatTimeout {
		return bad("raft leader lease timeout %v must not exceed heartbeat timeout %v", c.RaftLeaderLeaseTimeout, c.RaftHeartbeatTimeout)
	}
	if err := c.Console.Validate(); err != nil {
		return bad("%v", err)
	}
	if c.SnapshotThreshold == 0 {
		return bad("snapshot threshold must be positive")
	}
	if c.CAKeyFile != "" && c.TLS.CAFile == "" {
		return bad("--ca-key-file needs TLS: the CA certificate (--tls-ca) it signs for")
	}
	if c.RaftAdvertise != "" {
		if _, _, err := net.SplitHostPort(c.RaftAdvertise); err != nil {
			return bad("raft advertise address %q: %v", c.RaftAdvertise, err)
		}
	}
	return nil
}

// Deps are a meta node's live collaborators: node.Deps (its Clock
// measures grace periods) and the Raft listener.
type Deps struct {
	node.Deps
	// RaftListener is bound by the caller, like the others; the server
	// closes it.
	RaftListener net.Listener
}

func (d Deps) validate() error {
	if err := d.Deps.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrBadConfig, err)
	}
	if d.RaftListener == nil {
		return fmt.Errorf("%w: a Raft listener is required", ErrBadConfig)
	}
	return nil
}
