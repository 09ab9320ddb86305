package testcluster

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/publisher"
	"github.com/strata-registry/strata/internal/rpc"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// FakeSession speaks the session side of the data protocol, until the
// session tier exists: it gossips as a session with a process id, serves
// SessionSyncService from its own publisher list (sessions are the source
// of truth for anti-entropy), writes to slot leaders and keeps a change
// stream open to every data node (which holds its lease). The test decides
// what it holds and what it tells the data tier.
type FakeSession struct {
	ID   string
	Proc string

	c      *Cluster
	pool   *rpc.Pool // dials as this session
	agent  *cluster.Agent
	gs     *grpc.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
	log    *os.File
	hasher *slot.Hasher

	mu   sync.Mutex
	pubs map[[2]string]*registryv1.Publisher // (data info id, register id)
	seen map[string]uint64                   // newest version noticed, per key
	// inline is the newest datum that came with a notice, per key.
	inline map[string]*registryv1.Datum
	// streams: data node address -> a change stream is open to it.
	streams map[string]bool
	stop    bool
	// mute makes SessionSyncService answer Unavailable, as a session that
	// is alive but cannot serve anti-entropy.
	mute bool
}

// Mute makes the session refuse anti-entropy calls (true) or serve them.
func (f *FakeSession) Mute(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mute = v
}

func (f *FakeSession) muted() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mute
}

// Seen returns the newest version of key this session was notified of.
func (f *FakeSession) Seen(key string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[key]
}

// StartSession starts a fake session named id.
func (c *Cluster) StartSession(t testing.TB, id string) *FakeSession {
	t.Helper()
	dir := filepath.Join(c.dir, id)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, "node.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	st := c.WaitLeader(t).Server().State()
	h, err := slot.NewHasher(st.Settings.Count)
	if err != nil {
		t.Fatal(err)
	}
	f := &FakeSession{ID: id, Proc: fmt.Sprintf("%s@%d", id, time.Now().UnixNano()), c: c, log: lf, hasher: h,
		pubs: map[[2]string]*registryv1.Publisher{}, seen: map[string]uint64{}, inline: map[string]*registryv1.Datum{}, streams: map[string]bool{}}
	ln := Listen(t)
	f.pool = c.PoolAs(t, identity.RoleSession, id)
	f.gs = grpc.NewServer(rpc.ServerOptions(c.Creds(t, identity.RoleSession, id), tls.RequireAndVerifyClientCert, 16<<20)...)
	registryv1.RegisterSessionSyncServiceServer(f.gs, &fakeSync{f: f})
	f.agent, err = cluster.New(cluster.Config{
		NodeID: id, BindAddr: "127.0.0.1", Profile: "local", Join: c.GossipSeeds(), RetryJoin: 50 * time.Millisecond, Keys: c.GossipKeys(t),
		Meta: cluster.Meta{Role: cluster.RoleSession, GRPC: ln.Addr().String(), Proc: f.Proc},
	}, slog.New(slog.NewTextHandler(lf, nil)).With("node", id), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	t.Cleanup(f.Kill)
	f.wg.Add(3)
	go func() { defer f.wg.Done(); _ = f.gs.Serve(ln) }()
	go func() { defer f.wg.Done(); _ = f.agent.JoinLoop(ctx) }()
	go func() { defer f.wg.Done(); f.followDataNodes(ctx) }()
	// Be streaming to every data node that exists now before returning,
	// so a test's first write is covered by the lease.
	Eventually(t, DefaultWait, func() error {
		for _, n := range c.LiveData() {
			if !f.streaming(n.Server().GRPCAddr()) {
				return fmt.Errorf("%s has no change stream to %s yet", id, n.ID)
			}
		}
		return nil
	})
	return f
}

// followDataNodes opens a change stream to every data node alive in the
// gossip pool, including ones that join later, as a session does.
func (f *FakeSession) followDataNodes(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		for _, m := range f.agent.Members() {
			if m.Meta.Role != cluster.RoleData || m.State != cluster.StateAlive || m.Meta.GRPC == "" {
				continue
			}
			f.mu.Lock()
			_, ok := f.streams[m.Meta.GRPC]
			if !ok {
				f.streams[m.Meta.GRPC] = false
			}
			f.mu.Unlock()
			if !ok {
				id, addr := m.ID, m.Meta.GRPC
				f.wg.Add(1)
				go func() { defer f.wg.Done(); f.holdStream(ctx, id, addr) }()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (f *FakeSession) streaming(addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streams[addr]
}

// holdStream keeps a change stream open to one data node (its lease) and
// records what it is told.
func (f *FakeSession) holdStream(ctx context.Context, id, addr string) {
	for ctx.Err() == nil {
		conn, err := f.pool.Get(addr, identity.Peer{Role: identity.RoleData, Name: id})
		if err == nil {
			stream, err := registryv1.NewDataServiceClient(conn).WatchChanges(ctx, &registryv1.WatchChangesRequest{SessionId: f.Proc})
			if err == nil {
				// The server registers the stream before it sends anything;
				// its headers arriving means the lease holds.
				if _, err = stream.Header(); err == nil {
					f.mu.Lock()
					f.streams[addr] = true
					f.mu.Unlock()
				}
			}
			for err == nil {
				var b *registryv1.ChangeBatch
				if b, err = stream.Recv(); err == nil {
					f.mu.Lock()
					for _, c := range b.GetChanges() {
						f.seen[c.GetDataInfoId()] = max(f.seen[c.GetDataInfoId()], c.GetVersion())
					}
					for _, d := range b.GetDatums() {
						if old := f.inline[d.GetDataInfoId()]; old == nil || d.GetVersion() > old.GetVersion() {
							f.inline[d.GetDataInfoId()] = d
						}
					}
					f.mu.Unlock()
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Inline returns the newest datum of key that came with a change notice
// (nil if none did).
func (f *FakeSession) Inline(key string) *registryv1.Datum {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inline[key]
}

// Kill stops the session as a crash would: streams drop, gossip stops.
func (f *FakeSession) Kill() {
	f.mu.Lock()
	if f.stop {
		f.mu.Unlock()
		return
	}
	f.stop = true
	f.mu.Unlock()
	f.cancel()
	f.gs.Stop()
	f.wg.Wait()
	f.agent.Kill()
	_ = f.log.Close()
}

// Hold records p as this session's own without telling the data tier. Like
// a session, it owns p and stamps its register timestamp with its clock
// (the clock anti-entropy's as_of is read from).
func (f *FakeSession) Hold(p *registryv1.Publisher) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p.SessionId = f.Proc
	p.RegisterTimestamp = time.Now().UnixNano()
	f.pubs[[2]string{p.GetDataInfoId(), p.GetRegisterId()}] = p
}

// Forget drops a publisher from this session's list without telling the
// data tier.
func (f *FakeSession) Forget(key, registerID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.pubs, [2]string{key, registerID})
}

// Publish holds p and writes it to its slot leader, retrying while the
// table moves.
func (f *FakeSession) Publish(t testing.TB, p *registryv1.Publisher) {
	t.Helper()
	f.Hold(p)
	f.atLeader(t, p.GetDataInfoId(), func(ctx context.Context, dc registryv1.DataServiceClient, r Route) error {
		_, err := dc.Publish(ctx, &registryv1.PublishRequest{
			SessionId: f.Proc, TableEpoch: r.TableEpoch, SlotId: r.Slot, LeaderEpoch: r.LeaderEpoch, Puts: []*registryv1.Publisher{p},
		})
		return err
	})
}

// Subscribe reads key from its slot leader as this session, as a session
// with a subscriber does: the data node counts the key as this session's
// interest, so its changes come first, with the datum inline when small.
func (f *FakeSession) Subscribe(t testing.TB, key string) *registryv1.Datum {
	t.Helper()
	var d *registryv1.Datum
	f.atLeader(t, key, func(ctx context.Context, dc registryv1.DataServiceClient, _ Route) error {
		resp, err := dc.GetDatums(ctx, &registryv1.GetDatumsRequest{DataInfoIds: []string{key}, SessionId: f.Proc})
		if err != nil {
			return err
		}
		d = resp.GetDatums()[0]
		return nil
	})
	return d
}

// atLeader calls key's slot leader as this session until call succeeds.
func (f *FakeSession) atLeader(t testing.TB, key string, call func(context.Context, registryv1.DataServiceClient, Route) error) {
	t.Helper()
	Eventually(t, DefaultWait, func() error {
		r := f.c.RouteOf(t, key)
		if r.Leader == nil {
			return fmt.Errorf("no leader for slot %d", r.Slot)
		}
		conn, err := f.pool.Get(r.Leader.Server().GRPCAddr(), identity.Peer{Role: identity.RoleData, Name: r.Leader.ID})
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return call(ctx, registryv1.NewDataServiceClient(conn), r)
	})
}

func (f *FakeSession) bySlot(id uint32) []*registryv1.Publisher {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*registryv1.Publisher
	for _, p := range f.pubs {
		if uint32(f.hasher.Of(p.GetDataInfoId())) == id {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *registryv1.Publisher) int {
		return cmp.Or(cmp.Compare(a.GetDataInfoId(), b.GetDataInfoId()), cmp.Compare(a.GetRegisterId(), b.GetRegisterId()))
	})
	return out
}

type fakeSync struct {
	registryv1.UnimplementedSessionSyncServiceServer
	f *FakeSession
}

func (s *fakeSync) SlotDigests(ctx context.Context, req *registryv1.SessionSlotDigestsRequest) (*registryv1.SessionSlotDigestsResponse, error) {
	if s.f.muted() {
		return nil, status.Error(codes.Unavailable, "fake session: muted")
	}
	resp := &registryv1.SessionSlotDigestsResponse{SessionId: s.f.Proc}
	for _, id := range req.GetSlotIds() {
		var d publisher.Digest
		for _, p := range s.f.bySlot(id) {
			d.Add(p.GetRegisterId(), p.GetClientVersion(), p.GetRegisterTimestamp())
		}
		resp.Digests = append(resp.Digests, &registryv1.SessionSlotDigest{SlotId: id, Count: d.Count, Hash: d.Hash})
	}
	return resp, nil
}

func (s *fakeSync) SlotPublishers(ctx context.Context, req *registryv1.SessionSlotPublishersRequest) (*registryv1.SessionSlotPublishersResponse, error) {
	// as_of is read before the list: a record stamped later may be missing
	// from it, and must not be judged by it.
	asOf := time.Now().UnixNano()
	return &registryv1.SessionSlotPublishersResponse{SessionId: s.f.Proc, Publishers: s.f.bySlot(req.GetSlotId()), AsOf: asOf}, nil
}
