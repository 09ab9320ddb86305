package meta

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/strata-registry/strata/internal/obs"
)

// raftNode bundles Raft with the stores it owns, so they close together.
type raftNode struct {
	raft      *raft.Raft
	store     *raftboltdb.BoltStore
	transport *raft.NetworkTransport
}

// openRaft opens the bolt log/stable store and file snapshots under dir and
// starts Raft on the pre-bound listener. It reports whether the stores held
// state from an earlier run (such a node never bootstraps again).
func openRaft(cfg Config, f *fsm, ln net.Listener, advertise string, notify chan bool, logger *slog.Logger) (*raftNode, bool, error) {
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
	tlsCfg, err := raftTLS(cfg)
	if err != nil {
		return nil, false, errors.Join(err, store.Close())
	}
	transport := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  &streamLayer{Listener: ln, advertise: addr, tls: tlsCfg},
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hl,
	})

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
	r, err := raft.NewRaft(rc, f, store, store, snaps, transport)
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

// raftTLS returns the TLS config for Raft's links: the same certificates as
// gRPC, and mutual verification whenever TLS is on (only meta nodes speak
// Raft, so every peer has a certificate).
func raftTLS(cfg Config) (*tls.Config, error) {
	if !cfg.TLS.Enabled() {
		return nil, nil
	}
	c := cfg.TLS
	c.RequireClientCert = c.CAFile != ""
	server, err := c.Server()
	if err != nil {
		return nil, err
	}
	client, err := c.Client()
	if err != nil {
		return nil, err
	}
	server.RootCAs = client.RootCAs
	return server, nil
}

// streamLayer is raft.StreamLayer over a listener the caller bound, so
// tests can pass a 127.0.0.1:0 listener.
type streamLayer struct {
	net.Listener
	advertise net.Addr
	tls       *tls.Config
}

func (s *streamLayer) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil || s.tls == nil {
		return c, err
	}
	return tls.Server(c, s.tls), nil
}

func (s *streamLayer) Addr() net.Addr { return s.advertise }

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if s.tls == nil {
		return d.Dial("tcp", string(address))
	}
	host, _, _ := net.SplitHostPort(string(address))
	c := s.tls.Clone()
	c.ServerName = host
	return tls.DialWithDialer(d, "tcp", string(address), c)
}
