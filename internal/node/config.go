package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/strata-registry/strata/internal/clock"
	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// Config is what every node has, whatever its role: plain data, filled
// from flags. The role configs (meta.Config, data.Config, session.Config)
// embed it, so its fields read as theirs (cfg.NodeID).
type Config struct {
	// Cluster is the cluster's name: every certificate of the cluster
	// names it, and a peer whose certificate names another is refused.
	Cluster string
	// NodeID names the node in the gossip pool, the member list and the
	// slot table (and, for meta nodes, in Raft).
	NodeID string
	// Zone (availability zone or rack) is announced to the cluster.
	Zone string
	// MetaAddrs are meta gRPC addresses (any subset; the rest is learned).
	// Data and session nodes need at least one; meta nodes ignore it.
	MetaAddrs []string

	// GRPCAdvertise and HTTPAdvertise are the addresses other nodes use;
	// empty means the bound listener's address.
	GRPCAdvertise string
	HTTPAdvertise string

	// GossipBind and GossipPort are where memberlist listens (port 0 picks
	// one); GossipAdvertise is the address others use (an IP), when it
	// differs from the bound one.
	GossipBind      string
	GossipPort      int
	GossipAdvertise string
	// GossipProfile picks memberlist's timings: "lan" (production) or
	// "local" (fast, for tests on loopback); GossipTiming overrides its
	// failure-detection timings (zero fields keep the profile's), and so
	// the detection budget the node logs at start (cluster.Budget).
	GossipProfile string
	GossipTiming  cluster.Timing
	// GossipKeyFile holds the keys gossip is encrypted with (one base64 key
	// a line, the primary first; cluster.ParseKeys); re-read on SIGHUP.
	// Empty: plaintext gossip, which only a node without TLS may run.
	GossipKeyFile string
	// Join lists gossip seeds (host:port) of any role.
	Join []string
	// JoinRetry is the pause between attempts to reach the seeds, and
	// between rounds of reconnecting to members believed dead.
	JoinRetry time.Duration
	// CallTimeout bounds one call to meta or another node.
	CallTimeout time.Duration
	// LeaveOnShutdown leaves the pool on a graceful stop (others see the
	// node "left" at once rather than "dead" after their probes fail).
	LeaveOnShutdown bool

	// TLS secures gRPC (served and dialed) with the node's certificate,
	// which must name this node: spiffe://<Cluster>/<role>/<NodeID>. Off
	// when empty: then nothing is authenticated.
	TLS tlsconf.Config
	// Insecure runs the node without TLS: nothing is authenticated and
	// every caller may do anything. It must be asked for: a node without
	// TLS files and without Insecure refuses to start.
	Insecure bool
	// CAKeyFile is the CA's key (PEM), for a meta node that issues
	// certificates to enrolling nodes (MetaService.Enroll); empty: it
	// issues none. The CA's certificate is TLS.CAFile's first.
	CAKeyFile string
	// TokensFile lists the client and operator identities that prove
	// themselves with a bearer token, and every client's rights
	// (access.File); re-read on SIGHUP. Empty: no tokens, and client
	// certificates carry no rights.
	TokensFile string
	// Limits bound what the node accepts (admission.go).
	Limits Limits
	// AdminToken, when set, is required as a bearer token on the admin
	// HTTP API and pprof (health, readiness and metrics stay open).
	AdminToken string
}

// DefaultConfig returns the production defaults of the shared fields.
func DefaultConfig() Config {
	return Config{
		Cluster:       identity.DefaultCluster,
		GossipBind:    "0.0.0.0",
		GossipPort:    7946,
		GossipProfile: "lan",
		JoinRetry:     time.Second,
		CallTimeout:   5 * time.Second,
		Limits:        DefaultLimits(),
	}
}

// TestConfig returns the shared fields for in-process tests on loopback:
// gossip on 127.0.0.1 with a port picked at bind time, fast timings.
func TestConfig() Config {
	c := DefaultConfig()
	c.GossipBind = "127.0.0.1"
	c.GossipPort = 0
	c.GossipProfile = "local"
	c.JoinRetry = 50 * time.Millisecond
	c.CallTimeout = 2 * time.Second
	// A test that wants TLS (testcluster does, by default) sets the files
	// and clears this.
	c.Insecure = true
	return c
}

var errLimits = errors.New("limits: message size (at least 1 KiB), connections, streams and timeouts must be positive")

// MaxNodeIDBytes bounds a node id: a node id is its identity's name
// (spiffe://<cluster>/<role>/<node id>), so identity's bound.
const MaxNodeIDBytes = identity.MaxNameBytes

// ValidNodeID accepts what identity.ValidName accepts: 1..128 bytes of
// printable UTF-8 without spaces or slashes (a node id is a path segment
// of its certificate's identity).
func ValidNodeID(id string) error {
	if err := identity.ValidName(id); err != nil {
		return fmt.Errorf("node id: %w", err)
	}
	return nil
}

// Validate checks the shared fields for a node of role. Errors name the
// field; the role wraps them in its own ErrBadConfig.
func (c Config) Validate(role cluster.Role) error {
	if !role.Valid() {
		return fmt.Errorf("unknown role %q", role)
	}
	if err := ValidNodeID(c.NodeID); err != nil {
		return err
	}
	if err := identity.ValidCluster(c.Cluster); err != nil {
		return err
	}
	if role != cluster.RoleMeta {
		if len(c.MetaAddrs) == 0 {
			return errors.New("at least one meta address is required")
		}
		for _, a := range c.MetaAddrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return fmt.Errorf("meta address %q: %v", a, err)
			}
		}
	}
	for name, a := range map[string]string{"grpc advertise": c.GRPCAdvertise, "http advertise": c.HTTPAdvertise} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("%s address %q: %v", name, a, err)
		}
	}
	if c.GossipPort < 0 || c.GossipPort > 65535 {
		return fmt.Errorf("gossip port %d out of range", c.GossipPort)
	}
	if err := cluster.CheckTiming(c.GossipProfile, c.GossipTiming); err != nil {
		return err
	}
	if c.JoinRetry <= 0 || c.CallTimeout <= 0 {
		return fmt.Errorf("join retry and call timeout must be positive, got %v and %v", c.JoinRetry, c.CallTimeout)
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	if err := c.TLS.Validate(); err != nil {
		return err
	}
	switch {
	case !c.TLS.Enabled() && !c.Insecure:
		return errors.New("no credentials: give --credentials DIR (registryctl certs init DIR) or the --tls-* files, or --insecure to run without authentication")
	case c.TLS.Enabled() && c.Insecure:
		return errors.New("--insecure and TLS files together: choose one")
	}
	if c.TLS.Enabled() && c.GossipKeyFile == "" {
		return errors.New("a node with TLS needs a gossip key file (--gossip-key-file): plaintext gossip would let anyone join the pool")
	}
	if c.TokensFile != "" && !c.TLS.Enabled() {
		return errors.New("a tokens file needs TLS: tokens would cross the network in clear, and without TLS nothing is checked")
	}
	return nil
}

// Deps are the live collaborators every node has. The role Deps are (or
// embed) it.
type Deps struct {
	// Logger should carry a "node" attribute; nil discards.
	Logger *slog.Logger
	// Registry receives the node's metrics and serves /metrics; nil makes
	// a fresh one. Never the global registry.
	Registry *prometheus.Registry
	// Clock measures leases, grace periods and intervals; nil is the real
	// clock.
	Clock clock.Clock
	// GRPCListener and HTTPListener are bound by the caller, so tests can
	// pass 127.0.0.1:0 listeners. The node closes them.
	GRPCListener net.Listener
	HTTPListener net.Listener
	// ServerOptions are added to the gRPC server's after the node's and
	// the role's own: an embedding program's interceptors, or a test's.
	// The node's authentication and policy run first whatever they add.
	ServerOptions []grpc.ServerOption
}

// Validate checks that the listeners are there.
func (d Deps) Validate() error {
	if d.GRPCListener == nil || d.HTTPListener == nil {
		return errors.New("gRPC and HTTP listeners are required")
	}
	return nil
}

// Close closes the listeners, for a caller whose New failed (the node
// would have closed them in Run).
func (d Deps) Close() {
	for _, ln := range []net.Listener{d.GRPCListener, d.HTTPListener} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}
