package testcluster

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/rpc"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Peer is a data or session node reduced to the meta protocol: it gossips
// in the pool under its role, registers through MetaService, watches the
// slot table and heartbeats. The meta tier's tests use it to drive
// membership and sync status; it stores no records, so whether it reports
// its slots synced is the test's choice (SetSynced).
type Peer struct {
	ID   string
	Role cluster.Role

	agent  *cluster.Agent
	cancel context.CancelFunc
	wg     sync.WaitGroup
	log    *os.File

	mu sync.Mutex
	// addrs are meta gRPC addresses, refreshed from GetClusterInfo.
	addrs  []string
	table  *registryv1.SlotTable
	synced bool
	// tables records every table received, in order.
	tables []*registryv1.SlotTable
	conns  map[string]*grpc.ClientConn
	creds  *tlsconf.Creds // nil in an insecure cluster
}

// conn returns a cached connection to addr.
func (p *Peer) conn(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, rpc.DialOptions(p.creds, identity.Peer{Role: identity.RoleMeta})...)
	if err != nil {
		return nil, err
	}
	p.conns[addr] = c
	return c, nil
}

// StartPeer starts a peer with the given role, joins it to the pool and
// registers it with meta (retrying until the leader accepts).
func (c *Cluster) StartPeer(t testing.TB, id string, role cluster.Role) *Peer {
	t.Helper()
	dir := filepath.Join(c.dir, id)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, "node.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(lf, nil)).With("node", id)
	grpcLn := Listen(t) // reserves the announced address; the peer serves nothing on it
	t.Cleanup(func() { _ = grpcLn.Close() })
	agent, err := cluster.New(cluster.Config{
		NodeID: id, BindAddr: "127.0.0.1", Profile: "local", Join: c.GossipSeeds(), RetryJoin: 50 * time.Millisecond, Keys: c.GossipKeys(t),
		Meta: cluster.Meta{Role: role, GRPC: grpcLn.Addr().String(), HTTP: grpcLn.Addr().String()},
	}, logger, nil)
	if err != nil {
		t.Fatalf("testcluster: peer %s: %v", id, err)
	}
	creds := c.Creds(t, identity.Role(role), id)
	ctx, cancel := context.WithCancel(context.Background())
	p := &Peer{creds: creds, ID: id, Role: role, agent: agent, cancel: cancel, log: lf, addrs: c.MetaAddrs(), conns: map[string]*grpc.ClientConn{}}
	t.Cleanup(func() { p.stop(false) })
	p.wg.Add(1)
	go func() { defer p.wg.Done(); _ = agent.JoinLoop(ctx) }()
	protoRole := registryv1.Role_ROLE_DATA
	if role == cluster.RoleSession {
		protoRole = registryv1.Role_ROLE_SESSION
	}
	node := &registryv1.Node{Id: id, Role: protoRole, GrpcAddress: grpcLn.Addr().String(), HttpAddress: grpcLn.Addr().String()}
	Eventually(t, DefaultWait, func() error {
		return p.call(ctx, func(c registryv1.MetaServiceClient, ctx context.Context) error {
			_, err := c.RegisterNode(ctx, &registryv1.RegisterNodeRequest{Node: node})
			return err
		})
	})
	p.wg.Add(2)
	go func() { defer p.wg.Done(); p.watch(ctx) }()
	go func() { defer p.wg.Done(); p.heartbeat(ctx) }()
	return p
}

// SetSynced makes the peer report every slot it follows as synced (true) or
// report nothing (false).
func (p *Peer) SetSynced(v bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.synced = v
}

// Table returns the newest table the peer has received, or nil.
func (p *Peer) Table() *registryv1.SlotTable {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.table
}

// Tables returns every table the peer has received, in arrival order.
func (p *Peer) Tables() []*registryv1.SlotTable {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.tables)
}

// Kill stops the peer as a crash would: gossip stops without leaving.
func (p *Peer) Kill() { p.stop(false) }

// Leave stops the peer gracefully: the pool sees it leave.
func (p *Peer) Leave() { p.stop(true) }

func (p *Peer) stop(leave bool) {
	p.mu.Lock()
	cancel := p.cancel
	p.cancel = nil
	p.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	p.wg.Wait()
	if leave {
		p.agent.Leave()
	} else {
		p.agent.Kill()
	}
	p.mu.Lock()
	for a, c := range p.conns {
		_ = c.Close()
		delete(p.conns, a)
	}
	p.mu.Unlock()
	_ = p.log.Close()
}

// call runs f against the meta nodes in turn until one succeeds, refreshing
// the address list from the cluster when it can.
func (p *Peer) call(ctx context.Context, f func(registryv1.MetaServiceClient, context.Context) error) error {
	p.mu.Lock()
	addrs := slices.Clone(p.addrs)
	p.mu.Unlock()
	var last error
	for _, a := range addrs {
		conn, err := p.conn(a)
		if err != nil {
			last = err
			continue
		}
		client := registryv1.NewMetaServiceClient(conn)
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = f(client, cctx)
		if err == nil {
			if info, ierr := client.GetClusterInfo(cctx, &registryv1.GetClusterInfoRequest{}); ierr == nil {
				p.refresh(info)
			}
		}
		cancel()
		if err == nil {
			return nil
		}
		last = err
	}
	return last
}

func (p *Peer) refresh(info *registryv1.GetClusterInfoResponse) {
	var addrs []string
	for _, m := range info.GetMeta() {
		if m.GetGrpcAddress() != "" {
			addrs = append(addrs, m.GetGrpcAddress())
		}
	}
	if len(addrs) == 0 {
		return
	}
	p.mu.Lock()
	p.addrs = addrs
	p.mu.Unlock()
}

// watch follows WatchSlotTable, reconnecting to another meta node on error.
func (p *Peer) watch(ctx context.Context) {
	for ctx.Err() == nil {
		p.mu.Lock()
		addrs := slices.Clone(p.addrs)
		var after uint64
		if p.table != nil {
			after = p.table.GetEpoch()
		}
		p.mu.Unlock()
		for _, a := range addrs {
			conn, err := p.conn(a)
			if err != nil {
				continue
			}
			stream, err := registryv1.NewMetaServiceClient(conn).WatchSlotTable(ctx, &registryv1.WatchSlotTableRequest{AfterEpoch: after})
			for err == nil {
				var t *registryv1.SlotTable
				if t, err = stream.Recv(); err == nil {
					p.mu.Lock()
					p.table = t
					after = t.GetEpoch()
					p.tables = append(p.tables, t)
					p.mu.Unlock()
				}
			}
			if ctx.Err() != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond): // back off before the next round of addresses
		}
	}
}

// heartbeat reports sync status (data) or a client count of 0 (session)
// every 20 ms, as a real node would every second.
func (p *Peer) heartbeat(ctx context.Context) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		req := &registryv1.HeartbeatRequest{NodeId: p.ID}
		p.mu.Lock()
		if p.synced && p.table != nil {
			for _, s := range p.table.GetSlots() {
				if slices.Contains(s.GetFollowers(), p.ID) {
					req.Slots = append(req.Slots, &registryv1.SlotSync{SlotId: s.GetId(), LeaderEpoch: s.GetLeaderEpoch(), Synced: true})
				}
			}
		}
		p.mu.Unlock()
		_ = p.call(ctx, func(c registryv1.MetaServiceClient, ctx context.Context) error {
			_, err := c.Heartbeat(ctx, req)
			return err
		})
	}
}
