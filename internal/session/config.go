package session

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/node"
	"github.com/strata-registry/strata/internal/push"
	"github.com/strata-registry/strata/pkg/client/record"
)

// Config is a session node's settings: plain data, filled from flags. The
// fields every role has (node id, zone, meta addresses, gossip, TLS, admin
// token) are node.Config's.
type Config struct {
	node.Config

	// HeartbeatInterval is how often the node reports its client count.
	HeartbeatInterval time.Duration
	// RetryInterval paces reconnects and forwarding retries.
	RetryInterval time.Duration
	// DisconnectGrace: a client's publishers and subscribers outlive its
	// disconnect this long; a reconnect with the same client id in time
	// keeps them.
	DisconnectGrace time.Duration
	// ClientHeartbeat is the interval clients are told to heartbeat at;
	// a connection silent for ClientTimeout is closed.
	ClientHeartbeat time.Duration
	ClientTimeout   time.Duration
	// VersionScanInterval is how often subscribed keys' versions are
	// compared with the data nodes' (repairs lost notices).
	VersionScanInterval time.Duration
	// Per-connection limits: registrations at most RegisterRate per second
	// (bursts of RegisterBurst); at most MaxPerConn publishers plus
	// subscribers; at most SendQueue frames waiting for the client.
	RegisterRate  float64
	RegisterBurst int
	MaxPerConn    int
	SendQueue     int
	// Per-identity limits, over all of a client identity's connections to
	// this session, unless its tokens file entry sets its own:
	// registrations at most IdentityRegisterRate per second (bursts of
	// two seconds' worth), at most IdentityMaxRegistrations publishers
	// plus subscribers, at most IdentityMaxStreams open streams (client
	// processes). Nodes without TLS have no identities: only the
	// per-connection limits hold.
	IdentityRegisterRate     float64
	IdentityMaxRegistrations int
	IdentityMaxStreams       int
	// ForwardBatch bounds the publishers in one write to a slot leader.
	ForwardBatch int
	// Connection balance (balance.go): every BalanceInterval (0: off), a
	// session holding more than BalanceTolerance times the mean client
	// count redirects clients down to the mean, at most BalanceMaxMoves a
	// round.
	BalanceInterval  time.Duration
	BalanceTolerance float64
	BalanceMaxMoves  int
	// Push configures the push engine.
	Push push.Config
	// HTTPAPI configures the HTTP/JSON API (httpapi.go), served when Deps
	// carries its listener.
	HTTPAPI HTTPAPIConfig
}

// HTTPAPIConfig is the HTTP/JSON API's settings: instance leases, watch
// bounds and the port's connection cap.
type HTTPAPIConfig struct {
	// MinTTL, MaxTTL bound the TTL a registration may ask for;
	// DefaultTTL is the TTL of one that names none.
	MinTTL, MaxTTL, DefaultTTL time.Duration
	// ExpiryInterval is how often lapsed leases are looked for: an
	// instance outlives its TTL by at most this much.
	ExpiryInterval time.Duration
	// MaxWait bounds a blocking query's wait; DefaultWait is the wait of
	// one that names none.
	MaxWait, DefaultWait time.Duration
	// WatchHeartbeat is how often an idle Server-Sent Events stream gets
	// a comment, so proxies keep it open.
	WatchHeartbeat time.Duration
	// WatchLinger keeps a service's session-side subscription this long
	// after its last HTTP watcher left, so a long-poller's next request
	// (moments later) finds it warm instead of fetching again.
	WatchLinger time.Duration
	// MaxWatches and MaxWatchesPerIdentity cap the blocking queries and
	// event streams open at once, on this node and per client identity;
	// one more is answered 429 with Retry-After.
	MaxWatches, MaxWatchesPerIdentity int
	// MaxConnections caps the port's open connections (a long poll or an
	// event stream holds one).
	MaxConnections int
}

// DefaultHTTPAPIConfig returns the production defaults.
func DefaultHTTPAPIConfig() HTTPAPIConfig {
	return HTTPAPIConfig{
		MinTTL: 5 * time.Second, MaxTTL: time.Hour, DefaultTTL: 30 * time.Second,
		ExpiryInterval: time.Second,
		MaxWait:        5 * time.Minute, DefaultWait: time.Minute,
		WatchHeartbeat: 15 * time.Second, WatchLinger: 30 * time.Second,
		MaxWatches: 10_000, MaxWatchesPerIdentity: 256,
		MaxConnections: 10_000,
	}
}

func (c HTTPAPIConfig) validate() error {
	if c.MinTTL <= 0 || c.MaxTTL < c.MinTTL || c.DefaultTTL < c.MinTTL || c.DefaultTTL > c.MaxTTL {
		return fmt.Errorf("http api TTLs: need 0 < min %v <= default %v <= max %v", c.MinTTL, c.DefaultTTL, c.MaxTTL)
	}
	if c.MaxWait <= 0 || c.DefaultWait <= 0 || c.DefaultWait > c.MaxWait {
		return fmt.Errorf("http api waits: need 0 < default %v <= max %v", c.DefaultWait, c.MaxWait)
	}
	if c.ExpiryInterval <= 0 || c.WatchHeartbeat <= 0 || c.WatchLinger < 0 {
		return fmt.Errorf("http api expiry interval and watch heartbeat must be positive, the linger not negative")
	}
	if c.MaxWatches < 1 || c.MaxWatchesPerIdentity < 1 || c.MaxConnections < 1 {
		return fmt.Errorf("http api watch and connection caps must be positive")
	}
	return nil
}

// DefaultConfig returns production defaults.
func DefaultConfig() Config {
	nc := node.DefaultConfig()
	nc.LeaveOnShutdown = true
	nc.Limits = Limits()
	return Config{
		Config:                   nc,
		HeartbeatInterval:        time.Second,
		RetryInterval:            time.Second,
		DisconnectGrace:          5 * time.Second,
		ClientHeartbeat:          10 * time.Second,
		ClientTimeout:            35 * time.Second,
		VersionScanInterval:      10 * time.Second,
		RegisterRate:             1000,
		RegisterBurst:            2000,
		MaxPerConn:               100_000,
		IdentityRegisterRate:     10_000,
		IdentityMaxRegistrations: 1_000_000,
		IdentityMaxStreams:       10_000,
		SendQueue:                1024,
		ForwardBatch:             512,
		BalanceInterval:          30 * time.Second,
		BalanceTolerance:         1.2,
		BalanceMaxMoves:          50,
		Push:                     push.DefaultConfig(),
		HTTPAPI:                  DefaultHTTPAPIConfig(),
	}
}

// TestConfig returns short timings for in-process tests on loopback.
func TestConfig() Config {
	c := DefaultConfig()
	c.Config = node.TestConfig()
	c.LeaveOnShutdown = true
	c.Limits = Limits()
	c.HeartbeatInterval = 50 * time.Millisecond
	c.RetryInterval = 50 * time.Millisecond
	c.DisconnectGrace = 500 * time.Millisecond
	c.ClientHeartbeat = 200 * time.Millisecond
	c.ClientTimeout = 3 * time.Second
	c.VersionScanInterval = 200 * time.Millisecond
	c.BalanceInterval = 0 // tests that balance turn it on
	c.Push = push.TestConfig()
	c.HTTPAPI.MinTTL = 100 * time.Millisecond
	c.HTTPAPI.ExpiryInterval = 20 * time.Millisecond
	c.HTTPAPI.WatchHeartbeat = 200 * time.Millisecond
	c.HTTPAPI.WatchLinger = 200 * time.Millisecond
	return c
}

// ErrBadConfig wraps every configuration error.
var ErrBadConfig = errors.New("session: bad config")

// Validate checks every field.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, args...))
	}
	if err := c.Config.Validate(cluster.RoleSession); err != nil {
		return bad("%v", err)
	}
	for name, d := range map[string]time.Duration{
		"heartbeat interval": c.HeartbeatInterval, "retry interval": c.RetryInterval, "disconnect grace": c.DisconnectGrace,
		"client heartbeat": c.ClientHeartbeat, "client timeout": c.ClientTimeout, "version scan interval": c.VersionScanInterval,
	} {
		if d <= 0 {
			return bad("%s must be positive, got %v", name, d)
		}
	}
	if c.ClientTimeout <= c.ClientHeartbeat {
		return bad("client timeout %v must exceed the client heartbeat %v", c.ClientTimeout, c.ClientHeartbeat)
	}
	if c.RegisterRate <= 0 || c.RegisterBurst < 1 || c.MaxPerConn < 1 || c.SendQueue < 1 || c.ForwardBatch < 1 ||
		c.IdentityRegisterRate <= 0 || c.IdentityMaxRegistrations < 1 || c.IdentityMaxStreams < 1 {
		return bad("rates, limits and queue sizes must be positive")
	}
	if c.BalanceInterval < 0 || (c.BalanceInterval > 0 && c.BalanceInterval < 3*c.HeartbeatInterval) {
		return bad("balance interval %v must be 0 (off) or at least three heartbeat intervals (%v): other sessions' counts lag by a heartbeat", c.BalanceInterval, 3*c.HeartbeatInterval)
	}
	if c.BalanceInterval > 0 && (c.BalanceTolerance < 1 || c.BalanceMaxMoves < 1) {
		return bad("balance tolerance must be at least 1 and max moves at least 1, got %v and %d", c.BalanceTolerance, c.BalanceMaxMoves)
	}
	if err := c.Push.Validate(); err != nil {
		return bad("%v", err)
	}
	if err := c.HTTPAPI.validate(); err != nil {
		return bad("%v", err)
	}
	return nil
}

// Deps are a session node's live collaborators: node.Deps (its Clock
// measures grace periods, timeouts, rates and instance leases) and the
// HTTP/JSON API's listener.
type Deps struct {
	node.Deps
	// HTTPAPIListener is bound by the caller, like the others, for the
	// HTTP/JSON API (httpapi.go); nil serves no HTTP API. The server
	// closes it.
	HTTPAPIListener net.Listener
}

// Close closes the listeners, for a caller whose New failed.
func (d Deps) Close() {
	d.Deps.Close()
	if d.HTTPAPIListener != nil {
		_ = d.HTTPAPIListener.Close()
	}
}

// MaxClientFrameBytes is the largest frame a client may send: one
// publisher of record.MaxPublisherBytes with its ids and framing. It is
// the session's gRPC request limit: a larger frame is refused from its
// length prefix, before it is read.
const MaxClientFrameBytes = record.MaxPublisherBytes + 64<<10

// Limits are a session's admission limits: client-sized messages, many
// connections (one a client process), few streams each (a client opens
// one).
func Limits() node.Limits {
	l := node.DefaultLimits()
	l.MaxRecvBytes = MaxClientFrameBytes
	l.MaxConnections = 100_000
	l.MaxStreams = 64
	return l
}
