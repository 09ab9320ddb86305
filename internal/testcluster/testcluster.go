// Package testcluster runs real Strata nodes inside one test process: real
// Raft on bolt in temp dirs, real memberlist and gRPC over loopback, every
// listener bound to 127.0.0.1:0 by the harness and passed in. Each node has
// its own logger (a file in its dir, printed when the test fails) and its own
// Prometheus registry.
//
//	c := testcluster.Start(t, testcluster.Spec{Meta: 3})
//	leader := c.WaitLeader(t)
//	c.Stop(t, leader.Index)          // as a crash: no graceful leave
//	c.Restart(t, leader.Index)       // same data dir, new ports
//
// Later tiers add data and session nodes here.
package testcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/strata-registry/strata/internal/data"
	"github.com/strata-registry/strata/internal/meta"
	"github.com/strata-registry/strata/internal/node"
	"github.com/strata-registry/strata/internal/rpc"
	"github.com/strata-registry/strata/internal/session"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// DefaultWait bounds the harness's waits; generous for -race on 2 cores.
const DefaultWait = 20 * time.Second

// Spec says what to start.
type Spec struct {
	// Meta is the number of meta nodes (BootstrapExpect is set to it).
	Meta int
	// MetaConfig, when set, adjusts each meta node's config (from
	// meta.TestConfig) before it starts.
	MetaConfig func(i int, c *meta.Config)
	// Data is the number of data nodes, started after the meta nodes.
	Data int
	// DataConfig, when set, adjusts each data node's config (from
	// data.TestConfig) before it starts.
	DataConfig func(i int, c *data.Config)
	// DataServerOptions, when set, adds gRPC server options (a test's
	// interceptors) to data node i, after its own.
	DataServerOptions func(i int) []grpc.ServerOption
	// Session is the number of session nodes, started after the data nodes.
	Session int
	// SessionConfig adjusts each session node's config (from
	// session.TestConfig) before it starts.
	SessionConfig func(i int, c *session.Config)
	// Insecure runs every node without TLS (nothing authenticated), as
	// --insecure does. By default each node has its own certificate
	// (issued by the cluster's test CA), the tokens file lists the harness's
	// client and operator, and every call is authenticated and authorized
	// as in production.
	Insecure bool
	// MetaLinks puts each data and session node's path to meta through
	// fault proxies of its own (DataNode.MetaLink, SessionNode.MetaLink),
	// so a test can freeze one node's view of the slot table.
	MetaLinks bool
	// DataFronts puts a fault proxy in front of each data node's gRPC port
	// (DataNode.Front), advertised in its place.
	DataFronts bool
}

// Cluster is a running set of nodes. Its methods are for the test's own
// goroutine.
type Cluster struct {
	spec     Spec
	dir      string
	metas    []*MetaNode
	datas    []*DataNode
	sessions []*SessionNode

	// creds is the cluster's PKI; nil for an insecure cluster.
	creds *clusterPKI

	poolsMu sync.Mutex
	pools   map[identity.ID]*rpc.Pool // by the identity they dial as
}

// MetaNode is one meta node of the cluster.
type MetaNode struct {
	Index    int
	ID       string
	Dir      string
	Registry *prometheus.Registry
	Config   meta.Config

	proc
	gossip string // last known gossip address, to rejoin after a restart
}

// Server returns the running server, or nil when stopped.
func (n *MetaNode) Server() *meta.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	srv, _ := n.srv.(*meta.Server)
	return srv
}

// Running reports whether the node is started.
func (n *MetaNode) Running() bool { return n.running() }

// Start starts the cluster and waits until every meta node has joined and a
// leader has set the cluster up. Everything stops at test cleanup.
func Start(t testing.TB, spec Spec) *Cluster {
	t.Helper()
	if spec.Meta < 1 {
		t.Fatalf("testcluster: spec needs at least one meta node, got %d", spec.Meta)
	}
	c := &Cluster{spec: spec, dir: t.TempDir(), pools: map[identity.ID]*rpc.Pool{}}
	if !spec.Insecure {
		c.creds = newCredentials(t, c.dir)
	}
	t.Cleanup(func() { c.cleanup(t) })
	for i := range spec.Meta {
		id := fmt.Sprintf("meta-%d", i)
		cfg := meta.TestConfig()
		cfg.NodeID = id
		cfg.DataDir = filepath.Join(c.dir, id)
		cfg.BootstrapExpect = spec.Meta
		c.secure(t, &cfg.Config, identity.RoleMeta)
		if spec.MetaConfig != nil {
			spec.MetaConfig(i, &cfg)
		}
		n := &MetaNode{Index: i, ID: id, Dir: cfg.DataDir, Config: cfg}
		c.metas = append(c.metas, n)
		c.startMeta(t, n)
	}
	c.WaitLeader(t)
	Eventually(t, DefaultWait, func() error {
		for _, n := range c.LiveMetas() {
			if !n.Server().State().Initialized() {
				return fmt.Errorf("%s has not applied the cluster init", n.ID)
			}
		}
		return nil
	})
	for range spec.Data {
		c.AddData(t)
	}
	for range spec.Session {
		c.AddSession(t)
	}
	return c
}

// AddMeta starts one more meta node (not part of the bootstrap) that joins
// the running cluster; the leader adds it as a voter.
func (c *Cluster) AddMeta(t testing.TB) *MetaNode {
	t.Helper()
	i := len(c.metas)
	id := fmt.Sprintf("meta-%d", i)
	cfg := meta.TestConfig()
	cfg.NodeID = id
	cfg.DataDir = filepath.Join(c.dir, id)
	c.secure(t, &cfg.Config, identity.RoleMeta)
	if c.spec.MetaConfig != nil {
		c.spec.MetaConfig(i, &cfg)
	}
	n := &MetaNode{Index: i, ID: id, Dir: cfg.DataDir, Config: cfg}
	c.metas = append(c.metas, n)
	c.startMeta(t, n)
	return n
}

func (c *Cluster) startMeta(t testing.TB, n *MetaNode) {
	t.Helper()
	lf, logger := openLog(t, n.Dir, n.ID)
	cfg := n.Config
	cfg.Join = c.gossipSeeds(n)
	n.Registry = prometheus.NewRegistry()
	srv, err := meta.New(cfg, meta.Deps{
		Deps:         node.Deps{Logger: logger, Registry: n.Registry, GRPCListener: Listen(t), HTTPListener: Listen(t)},
		RaftListener: Listen(t),
	})
	if err != nil {
		_ = lf.Close()
		t.Fatalf("testcluster: new %s: %v", n.ID, err)
	}
	n.start(t, n.ID, srv, lf)
	n.mu.Lock()
	n.gossip = srv.GossipAddr()
	n.mu.Unlock()
}

// secure sets a node's cluster name and, unless the cluster is insecure,
// its TLS files and the tokens file.
func (c *Cluster) secure(t testing.TB, cfg *node.Config, role identity.Role) {
	cfg.Cluster = Name
	cfg.Insecure = c.creds == nil
	cfg.TLS = c.TLS(t, role, cfg.NodeID)
	cfg.TokensFile = c.TokensFile()
	cfg.GossipKeyFile = c.GossipKeyFile()
}

// gossipSeeds returns the gossip addresses of the other meta nodes known so far.
func (c *Cluster) gossipSeeds(self *MetaNode) []string {
	var out []string
	for _, n := range c.metas {
		n.mu.Lock()
		if n != self && n.gossip != "" {
			out = append(out, n.gossip)
		}
		n.mu.Unlock()
	}
	return out
}

// GossipSeeds returns the gossip addresses of the meta nodes, for other
// roles to join the pool.
func (c *Cluster) GossipSeeds() []string { return c.gossipSeeds(nil) }

// Meta returns meta node i.
func (c *Cluster) Meta(i int) *MetaNode { return c.metas[i] }

// LiveMetas returns the running meta nodes.
func (c *Cluster) LiveMetas() []*MetaNode {
	var out []*MetaNode
	for _, n := range c.metas {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// MetaAddrs returns the gRPC addresses of the running meta nodes.
func (c *Cluster) MetaAddrs() []string {
	var out []string
	for _, n := range c.LiveMetas() {
		out = append(out, n.Server().GRPCAddr())
	}
	return out
}

// Stop stops meta node i as a crash would (no graceful leave, no
// leadership transfer) and waits for it to exit.
func (c *Cluster) Stop(t testing.TB, i int) { c.stop(t, i, true) }

// StopGraceful stops meta node i as SIGTERM does: it leaves the pool if its
// config says so, and waits for it to exit.
func (c *Cluster) StopGraceful(t testing.TB, i int) { c.stop(t, i, false) }

func (c *Cluster) stop(t testing.TB, i int, crash bool) {
	t.Helper()
	c.metas[i].stop(t, c.metas[i].ID, crash)
}

// Restart starts a stopped meta node again on the same data dir (with new
// ports: the cluster learns its new addresses through gossip).
func (c *Cluster) Restart(t testing.TB, i int) {
	t.Helper()
	if c.metas[i].Running() {
		t.Fatalf("testcluster: %s is running", c.metas[i].ID)
	}
	c.startMeta(t, c.metas[i])
}

// WaitLeader waits until every running meta node agrees on one leader, and
// returns it.
func (c *Cluster) WaitLeader(t testing.TB) *MetaNode {
	t.Helper()
	var leader *MetaNode
	Eventually(t, DefaultWait, func() error {
		leader = nil
		live := c.LiveMetas()
		for _, n := range live {
			if n.Server().IsLeader() {
				if leader != nil {
					return fmt.Errorf("two leaders: %s and %s", leader.ID, n.ID)
				}
				leader = n
			}
		}
		if leader == nil {
			return errors.New("no leader")
		}
		for _, n := range live {
			conn := c.Dial(t, n.Server().GRPCAddr())
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			resp, err := registryv1.NewMetaServiceClient(conn).GetLeader(ctx, &registryv1.GetLeaderRequest{})
			cancel()
			_ = conn.Close()
			if err != nil {
				return fmt.Errorf("%s: GetLeader: %v", n.ID, err)
			}
			if resp.GetLeader().GetId() != leader.ID || resp.GetLeader().GetGrpcAddress() == "" {
				return fmt.Errorf("%s sees leader %q, not %s", n.ID, resp.GetLeader().GetId(), leader.ID)
			}
		}
		return nil
	})
	return leader
}

// WaitEpoch waits until every running meta node has applied a slot table of
// at least epoch, and returns the leader's table.
func (c *Cluster) WaitEpoch(t testing.TB, epoch uint64) slot.Table {
	t.Helper()
	var table slot.Table
	Eventually(t, DefaultWait, func() error {
		for _, n := range c.LiveMetas() {
			st := n.Server().State()
			if st.Table.Epoch < epoch {
				return fmt.Errorf("%s at epoch %d, want >= %d", n.ID, st.Table.Epoch, epoch)
			}
			if n.Server().IsLeader() {
				table = st.Table
			}
		}
		if table.Slots == nil {
			return errors.New("no leader")
		}
		return nil
	})
	return table
}

func (c *Cluster) cleanup(t testing.TB) {
	defer func() {
		c.poolsMu.Lock()
		defer c.poolsMu.Unlock()
		for _, p := range c.pools {
			p.Close()
		}
	}()
	for i := range c.sessions {
		c.StopSession(t, i, false)
	}
	for i := range c.datas {
		c.StopData(t, i, false)
	}
	for i := range c.metas {
		c.Stop(t, i)
	}
	if t.Failed() {
		for _, n := range c.metas {
			dumpLog(t, n.ID, filepath.Join(n.Dir, "node.log"))
		}
		for _, n := range c.datas {
			dumpLog(t, n.ID, filepath.Join(n.Dir, "node.log"))
		}
		for _, n := range c.sessions {
			dumpLog(t, n.ID, filepath.Join(n.Dir, "node.log"))
		}
	}
}

// dumpLog prints the last lines of a node's log to the test output.
func dumpLog(t testing.TB, id, path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 200 {
			lines = slices.Delete(lines, 0, 1)
		}
	}
	t.Logf("---- last %d lines of %s (%s) ----", len(lines), id, path)
	for _, l := range lines {
		t.Log(l)
	}
}

// Listen binds 127.0.0.1:0; the caller (or the server it is passed to)
// closes it.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testcluster: listen: %v", err)
	}
	return ln
}

// Dial returns a client connection to the node at addr, as the test
// operator (TLS unless the cluster is insecure). The caller closes it.
func (c *Cluster) Dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	return c.DialAs(t, addr, identity.RoleAdmin, AdminName)
}

// DialAs returns a client connection to the node at addr as role's name
// (issuing its certificate if need be). The caller closes it.
func (c *Cluster) DialAs(t testing.TB, addr string, role identity.Role, name string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, rpc.DialOptions(c.Creds(t, role, name), c.peerAt(addr))...)
	if err != nil {
		t.Fatalf("testcluster: dial %s: %v", addr, err)
	}
	return conn
}

// Eventually calls f until it returns nil, failing the test with f's last
// error if timeout passes first. It polls; it never sleeps for a condition.
func Eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v: %v", timeout, err)
		}
		<-tick.C
	}
}

// ReloadAll makes every running node re-read its credentials, as SIGHUP
// does (TLS files, tokens file, gossip keys), failing the test on error.
func (c *Cluster) ReloadAll(t testing.TB) {
	t.Helper()
	type reloader interface{ Reload() error }
	var all []reloader
	for _, n := range c.LiveMetas() {
		all = append(all, n.Server())
	}
	for _, n := range c.LiveData() {
		all = append(all, n.Server())
	}
	for _, n := range c.sessions {
		if srv := n.Server(); srv != nil {
			all = append(all, srv)
		}
	}
	for _, r := range all {
		if err := r.Reload(); err != nil {
			t.Fatalf("testcluster: reload: %v", err)
		}
	}
}
