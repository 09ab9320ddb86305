package meta

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/strata-registry/strata/internal/obs"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// raftLogCache is how many of the newest Raft log entries are kept decoded
// in memory (see openRaft).
const raftLogCache = 64

// raftNode bundles Raft with the stores it owns, so they close together.
type raftNode struct {
	raft      *raft.Raft
	store     *raftboltdb.BoltStore
	transport *raft.NetworkTransport
}

// openRaft opens the bolt log/stable store and file snapshots under dir and
// starts Raft on the pre-bound listener. It reports whether the stores held
// state from an earlier run (such a node never bootstraps again).
func openRaft(cfg Config, creds *tlsconf.Creds, f *fsm, ln net.Listener, advertise string, notify chan bool, logger *slog.Logger) (_ *raftNode, _ bool, err error) {
	// Until the transport owns the listener, a failure must close it here.
	ownsListener := false
	defer func() {
		if err != nil && !ownsListener {
			_ = ln.Close()
		}
	}()
	dir := filepath.Join(cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, false, fmt.Errorf("meta: create raft dir: %w", err)
	}
	hl := obs.HCLogger("raft", logger.With("component", "raft"), slog.LevelInfo)

	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		return nil, false, fmt.Errorf("meta: open raft store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hl)
	if err != nil {
		return nil, false, errors.Join(fmt.Errorf("meta: open snapshot store: %w", err), store.Close())
	}
	addr, err := net.ResolveTCPAddr("tcp", advertise)
	if err != nil {
		return nil, false, errors.Join(fmt.Errorf("meta: raft advertise address %q: %w", advertise, err), store.Close())
	}
	serverTLS, clientTLS := raftTLS(creds)
	transport := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  &streamLayer{Listener: ln, advertise: addr, serverTLS: serverTLS, clientTLS: clientTLS},
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hl,
	})
	ownsListener = true

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.RaftHeartbeatTimeout
	rc.ElectionTimeout = cfg.RaftElectionTimeout
	rc.LeaderLeaseTimeout = cfg.RaftLeaderLeaseTimeout
	rc.CommitTimeout = cfg.RaftCommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = 1024
	rc.NotifyCh = notify
	rc.Logger = hl
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, false, errors.Join(fmt.Errorf("%w: raft: %v", ErrBadConfig, err), transport.Close(), store.Close())
	}
	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return nil, false, errors.Join(fmt.Errorf("meta: read raft state: %w", err), transport.Close(), store.Close())
	}
	// The leader reads the entry before each append's first (its term and
	// index go in the request), and with nothing to send it still sends an
	// empty append every commit timeout: from bolt each read decodes the
	// entry anew, a table command included. The cache keeps the newest
	// entries decoded; older ones, for a lagging follower, come from bolt.
	logs, err := raft.NewLogCache(raftLogCache, store)
	if err != nil {
		return nil, false, errors.Join(fmt.Errorf("meta: raft log cache: %w", err), transport.Close(), store.Close())
	}
	r, err := raft.NewRaft(rc, f, logs, store, snaps, transport)
	if err != nil {
		return nil, false, errors.Join(fmt.Errorf("meta: start raft: %w", err), transport.Close(), store.Close())
	}
	return &raftNode{raft: r, store: store, transport: transport}, existing, nil
}

// close shuts Raft down and then the stores it used.
func (n *raftNode) close() error {
	err := n.raft.Shutdown().Error()
	return errors.Join(err, n.transport.Close(), n.store.Close())
}

// raftTLS returns the TLS configs for Raft's links, or nils without TLS:
// the node's own certificate both ways, and the peer's must name a meta
// node of the cluster, checked in the handshake (Raft's transport has no
// later place to check it). Only meta nodes speak Raft.
func raftTLS(creds *tlsconf.Creds) (server, client *tls.Config) {
	if creds == nil {
		return nil, nil
	}
	onlyMeta := func(id identity.ID) error {
		return identity.Peer{Role: identity.RoleMeta}.Check(creds.Cluster(), id)
	}
	return creds.Server(tls.RequireAndVerifyClientCert, onlyMeta), creds.Client(identity.Peer{Role: identity.RoleMeta})
}

// streamLayer is raft.StreamLayer over a listener the caller bound, so
// tests can pass a 127.0.0.1:0 listener. It tracks the connections it
// accepts and dials and closes them with the listener: raft's
// NetworkTransport leaves inbound handlers blocked in Read otherwise.
type streamLayer struct {
	net.Listener
	advertise net.Addr
	// serverTLS and clientTLS secure accepted and dialed links (nil: none).
	// Handshakes happen on the connection's first read or write, in
	// Raft's per-connection goroutine, so a peer that never completes one
	// holds up nothing else.
	serverTLS, clientTLS *tls.Config

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func (s *streamLayer) track(c net.Conn) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	return &trackedConn{Conn: c, layer: s}, nil
}

func (s *streamLayer) forget(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

func (s *streamLayer) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if s.serverTLS != nil {
		c = tls.Server(c, s.serverTLS)
	}
	return s.track(c)
}

// Close closes the listener and every connection still open.
func (s *streamLayer) Close() error {
	err := s.Listener.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	clear(s.conns)
	return err
}

func (s *streamLayer) Addr() net.Addr { return s.advertise }

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	var (
		c   net.Conn
		err error
	)
	if s.clientTLS == nil {
		c, err = d.Dial("tcp", string(address))
	} else {
		c, err = tls.DialWithDialer(d, "tcp", string(address), s.clientTLS)
	}
	if err != nil {
		return nil, err
	}
	return s.track(c)
}

// trackedConn removes itself from its layer when closed.
type trackedConn struct {
	net.Conn
	layer *streamLayer
	once  sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.layer.forget(c.Conn) })
	return c.Conn.Close()
}
