package testcluster

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-registry/strata/internal/data"
	"github.com/strata-registry/strata/internal/faultproxy"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/pkg/client/identity"
)

// DataNode is one data node of the cluster.
type DataNode struct {
	Index    int
	ID       string
	Dir      string
	Registry *prometheus.Registry
	Config   data.Config
	// MetaLink is the node's path to meta (Spec.MetaLinks), else nil.
	MetaLink *MetaLink
	// Front is the fault proxy every other node reaches this node's gRPC
	// port through (Spec.DataFronts), else nil: pausing it freezes the
	// node's service while it stays alive in gossip, a gray failure.
	Front *faultproxy.Proxy

	proc
	// addrs are the last gRPC, HTTP and gossip addresses, so a restart
	// comes back where the node was, as a restarted process does.
	addrs [3]string
}

// Server returns the running server, or nil when stopped.
func (n *DataNode) Server() *data.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	srv, _ := n.srv.(*data.Server)
	return srv
}

// Running reports whether the node is started.
func (n *DataNode) Running() bool { return n.running() }

// AddData starts one more data node joined to the cluster.
func (c *Cluster) AddData(t testing.TB) *DataNode {
	t.Helper()
	i := len(c.datas)
	id := fmt.Sprintf("data-%d", i)
	cfg := data.TestConfig()
	cfg.NodeID = id
	c.secure(t, &cfg.Config, identity.RoleData)
	if c.spec.DataConfig != nil {
		c.spec.DataConfig(i, &cfg)
	}
	n := &DataNode{Index: i, ID: id, Dir: filepath.Join(c.dir, id), Config: cfg}
	c.datas = append(c.datas, n)
	c.startData(t, n)
	return n
}

func (c *Cluster) startData(t testing.TB, n *DataNode) {
	t.Helper()
	lf, logger := openLog(t, n.Dir, n.ID)
	cfg := n.Config
	cfg.MetaAddrs = c.MetaAddrs()
	if c.spec.MetaLinks {
		n.MetaLink = c.newMetaLink(t)
		cfg.MetaAddrs = n.MetaLink.metaAddrs()
	}
	cfg.Join = c.GossipSeeds()
	n.Registry = prometheus.NewRegistry()
	grpcLn, httpLn := relisten(t, n.addrs[0]), relisten(t, n.addrs[1])
	if c.spec.DataFronts {
		if n.Front == nil {
			n.Front = faultproxy.Start(Listen(t), grpcLn.Addr().String())
			front := n.Front
			t.Cleanup(func() { _ = front.Close() })
		}
		cfg.GRPCAdvertise = n.Front.Addr()
	}
	if _, port, err := net.SplitHostPort(n.addrs[2]); err == nil {
		cfg.GossipPort, _ = strconv.Atoi(port)
	}
	deps := data.Deps{
		Logger:       logger,
		Registry:     n.Registry,
		GRPCListener: grpcLn,
		HTTPListener: httpLn,
	}
	if c.spec.DataServerOptions != nil {
		deps.ServerOptions = c.spec.DataServerOptions(n.Index)
	}
	srv, err := data.New(cfg, deps)
	if err != nil {
		_ = lf.Close()
		t.Fatalf("testcluster: new %s: %v", n.ID, err)
	}
	n.start(t, n.ID, srv, lf)
	n.addrs = [3]string{grpcLn.Addr().String(), srv.HTTPAddr(), srv.GossipAddr()}
	Eventually(t, DefaultWait, func() error {
		if _, ok := c.WaitLeader(t).Server().State().Members[n.ID]; !ok {
			return fmt.Errorf("%s is not a member yet", n.ID)
		}
		return nil
	})
}

// Data returns data node i.
func (c *Cluster) Data(i int) *DataNode { return c.datas[i] }

// LiveData returns the running data nodes.
func (c *Cluster) LiveData() []*DataNode {
	var out []*DataNode
	for _, n := range c.datas {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// StopData stops data node i: as a crash (no gossip leave) when crash is
// true, else as SIGTERM (it leaves the pool, so meta reassigns at once).
func (c *Cluster) StopData(t testing.TB, i int, crash bool) {
	t.Helper()
	c.datas[i].stop(t, c.datas[i].ID, crash)
}

// RestartData starts a stopped data node again under the same id: a new
// process with an empty store, as after a crash and restart.
func (c *Cluster) RestartData(t testing.TB, i int) {
	t.Helper()
	if c.datas[i].Running() {
		t.Fatalf("testcluster: %s is running", c.datas[i].ID)
	}
	c.startData(t, c.datas[i])
}

// WaitDataReady waits until every running data node reports ready
// (has a table, leads no migrating slot).
func (c *Cluster) WaitDataReady(t testing.TB) {
	t.Helper()
	Eventually(t, DefaultWait, func() error {
		for _, n := range c.LiveData() {
			if ok, why := n.Server().ReadyState(); !ok {
				return fmt.Errorf("%s not ready: %v", n.ID, why)
			}
		}
		return nil
	})
}

// Route is where a key's writes go now, by the meta leader's table.
type Route struct {
	Slot        uint32
	TableEpoch  uint64
	LeaderEpoch uint64
	Leader      *DataNode
	Followers   []*DataNode
}

// RouteOf returns the current route of key.
func (c *Cluster) RouteOf(t testing.TB, key string) Route {
	t.Helper()
	st := c.WaitLeader(t).Server().State()
	h, err := slot.NewHasher(st.Settings.Count)
	if err != nil {
		t.Fatal(err)
	}
	id := h.Of(key)
	r := Route{Slot: uint32(id), TableEpoch: st.Table.Epoch}
	if int(id) >= len(st.Table.Slots) {
		return r
	}
	row := st.Table.Slots[id]
	r.LeaderEpoch = row.LeaderEpoch
	for _, n := range c.datas {
		if slot.NodeID(n.ID) == row.Leader && n.Running() {
			r.Leader = n
		}
		if slices.Contains(row.Followers, slot.NodeID(n.ID)) && n.Running() {
			r.Followers = append(r.Followers, n)
		}
	}
	return r
}

// WaitDataSettled waits until the slot table has stopped moving: every
// slot has a leader and all its followers report synced, the arranger is at
// its fixed point (another round would change nothing), and every running
// data node follows that table and is ready. It returns the table epoch.
func (c *Cluster) WaitDataSettled(t testing.TB) uint64 {
	t.Helper()
	var epoch uint64
	Eventually(t, DefaultWait, func() error {
		st := c.WaitLeader(t).Server().State()
		if len(st.Table.Slots) == 0 {
			return fmt.Errorf("no slot table yet")
		}
		for _, s := range st.Table.Slots {
			if s.Leader == "" {
				return fmt.Errorf("slot %d has no leader", s.ID)
			}
			for _, f := range s.Followers {
				if !st.Sync.Synced(s.ID, f) {
					return fmt.Errorf("slot %d: follower %s not synced", s.ID, f)
				}
			}
		}
		settings := st.Settings
		settings.MaxMoves = c.metas[0].Config.MaxMoves
		if next, err := slot.Next(st.Table, st.DataNodes(), st.Sync, settings); err != nil || next.Epoch != st.Table.Epoch {
			return fmt.Errorf("the arranger would still move slots (epoch %d, err %v)", st.Table.Epoch, err)
		}
		for _, n := range c.LiveData() {
			if e := n.Server().TableEpoch(); e != st.Table.Epoch {
				return fmt.Errorf("%s at epoch %d, meta at %d", n.ID, e, st.Table.Epoch)
			}
			if ok, why := n.Server().ReadyState(); !ok {
				return fmt.Errorf("%s not ready: %v", n.ID, why)
			}
		}
		epoch = st.Table.Epoch
		return nil
	})
	return epoch
}

// relisten binds addr again if given (a restart on the same port), else
// 127.0.0.1:0.
func relisten(t testing.TB, addr string) net.Listener {
	t.Helper()
	if addr == "" {
		return Listen(t)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("testcluster: rebind %s for a restart: %v", addr, err)
	}
	return ln
}
