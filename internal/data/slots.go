package data

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/metaclient"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

type role int

const (
	roleNone role = iota
	roleLeader
	roleFollower
)

func (r role) String() string {
	switch r {
	case roleLeader:
		return "leader"
	case roleFollower:
		return "follower"
	}
	return "none"
}

// slotState is this node's part in one slot under one assignment (role,
// leader, leader epoch). A new assignment gets a new slotState sharing the
// store; done closes when the assignment ends, which ends the streams
// serving it.
type slotState struct {
	id          slot.ID
	store       *SlotStore
	role        role
	leader      slot.NodeID
	leaderEpoch uint64
	done        chan struct{}
	// mu is held (read) by a write from its fencing check through the
	// store write, and (write) by end, so no write lands in a store after
	// its assignment ended.
	mu    sync.RWMutex
	ended bool
	// migrating: the handover to this leader is in flight. Every new
	// leader starts so: one that never held a synced copy (a failover with
	// no synced follower left, or the first table) has a partial slot, and
	// even a caught-up follower may lack what the old leader accepted from
	// sessions still routing by the old table. It accepts writes but
	// refuses reads until an anti-entropy round with the handover barrier
	// (every live session on this table or newer, its older writes settled)
	// has compared every session's publishers, so no partial or stale datum
	// ever leaves it, and it tells no follower it is caught up.
	migrating atomic.Bool
	// partial: this leader did not hold a synced copy when it took over
	// (it rebuilds from the sessions rather than checks against them).
	partial bool
	// rebuilt is closed when migrating clears (at once if it never was).
	rebuilt     chan struct{}
	rebuiltOnce sync.Once
	// synced: as a follower, caught up with the leader at leaderEpoch.
	synced atomic.Bool
	// deferred counts, per session, the routine anti-entropy rounds in a
	// row that left this slot's repair for later (repairDeferred).
	deferMu  sync.Mutex
	deferred map[string]int
	cancel   context.CancelFunc
	// exited closes when the follower's replication loop has returned, so
	// a promotion never races a last replicated op into the store.
	exited chan struct{}
}

// slots tracks every slot this node holds and applies slot tables.
type slots struct {
	s    *Server
	base context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu     sync.RWMutex
	table  slot.Table
	count  int
	hasher *slot.Hasher
	byID   map[slot.ID]*slotState
}

func newSlots(s *Server) *slots {
	base, stop := context.WithCancel(context.Background())
	return &slots{s: s, base: base, stop: stop, byID: map[slot.ID]*slotState{}}
}

// apply moves every slot to its role in a new table. Called on the meta
// watch goroutine, tables in epoch order.
func (sl *slots) apply(pt *registryv1.SlotTable) {
	t, err := metaclient.Table(pt)
	if err != nil {
		sl.s.logger.Error("unusable slot table from meta", "err", err)
		return
	}
	me := slot.NodeID(sl.s.cfg.NodeID)
	var kick bool
	var leading, migrating, following, dropped int
	sl.mu.Lock()
	if sl.hasher == nil || sl.count != int(pt.GetSlotCount()) {
		h, err := slot.NewHasher(int(pt.GetSlotCount()))
		if err != nil {
			sl.mu.Unlock()
			sl.s.logger.Error("unusable slot table from meta", "epoch", t.Epoch, "err", err)
			return
		}
		sl.hasher, sl.count = h, int(pt.GetSlotCount())
	}
	sl.table = t
	for _, row := range t.Slots {
		want := roleNone
		switch {
		case row.Leader == me:
			want = roleLeader
		case slices.Contains(row.Followers, me):
			want = roleFollower
		}
		cur := sl.byID[row.ID]
		if want == roleNone {
			if cur != nil {
				sl.end(cur)
				delete(sl.byID, row.ID)
				dropped++
			}
			continue
		}
		if cur != nil && cur.role == want && cur.leader == row.Leader && cur.leaderEpoch == row.LeaderEpoch {
			continue
		}
		next := &slotState{id: row.ID, role: want, leader: row.Leader, leaderEpoch: row.LeaderEpoch, done: make(chan struct{}), rebuilt: make(chan struct{})}
		if cur != nil {
			next.store = cur.store
			sl.end(cur)
			if cur.exited != nil {
				<-cur.exited // cancelled above; returns promptly
			}
		} else {
			next.store = NewSlotStore(row.ID, sl.s.cfg.LogCap)
		}
		switch want {
		case roleLeader:
			// Only a follower that had caught up holds the whole slot; any
			// other new leader rebuilds it from the sessions first.
			hadCopy := cur != nil && cur.role == roleFollower && cur.synced.Load()
			next.store.SetLeaderEpoch(row.LeaderEpoch)
			next.store.SetLogCap(sl.s.cfg.LogCap)
			next.store.ResetLog()
			leading++
			// Either way reads wait for the handover barrier: a synced copy
			// may still miss writes the old leader took from sessions on
			// the old table (docs/architecture.md "Roles and fencing").
			next.partial = !hadCopy
			next.migrating.Store(true)
			kick = true
			if !hadCopy {
				migrating++
			}
			sl.s.logger.Debug("leading slot", "slot", row.ID, "leader_epoch", row.LeaderEpoch, "partial", !hadCopy)
		case roleFollower:
			following++
			next.store.SetLogCap(0) // nothing reads a follower's log
			ctx, cancel := context.WithCancel(sl.base)
			next.cancel = cancel
			next.exited = make(chan struct{})
			sl.wg.Add(1)
			go func() {
				defer sl.wg.Done()
				defer close(next.exited)
				sl.follow(ctx, next)
			}()
		}
		sl.byID[row.ID] = next
	}
	sl.mu.Unlock()
	sl.s.logger.Info("slot table applied", "epoch", t.Epoch, "new_leader_slots", leading, "rebuilding", migrating,
		"new_follower_slots", following, "dropped_slots", dropped)
	if kick {
		sl.s.kickAntiEntropy()
	}
}

// end finishes an assignment: writes in progress finish first, later ones
// are refused, streams serving it stop, its replication loop stops. Callers
// hold sl.mu (lock order: sl.mu, then st.mu; follow never takes sl.mu, so
// waiting for it to exit under sl.mu cannot deadlock).
func (sl *slots) end(st *slotState) {
	st.mu.Lock()
	st.ended = true
	st.mu.Unlock()
	close(st.done)
	if st.cancel != nil {
		st.cancel()
	}
}

// write applies a batch unless the assignment has ended; ok is false if it
// has, and nothing was written.
func (st *slotState) write(puts []*registryv1.Publisher, dels []*registryv1.Unpublish) (_ []*registryv1.DatumVersion, ok bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	if st.ended {
		return nil, false
	}
	return st.store.Apply(puts, dels), true
}

// markRebuilt clears migrating and wakes replication streams waiting for it.
func (st *slotState) markRebuilt() bool {
	cleared := st.migrating.CompareAndSwap(true, false)
	st.rebuiltOnce.Do(func() { close(st.rebuilt) })
	return cleared
}

// stopAll ends every assignment; wait then waits for the loops.
func (sl *slots) stopAll() {
	sl.stop()
	sl.mu.Lock()
	defer sl.mu.Unlock()
	for id, st := range sl.byID {
		sl.end(st)
		delete(sl.byID, id)
	}
}

func (sl *slots) wait() { sl.wg.Wait() }

// view returns the table, the hasher and the state of a slot (nil if this
// node does not hold it).
func (sl *slots) view(id slot.ID) (slot.Table, *slotState) {
	sl.mu.RLock()
	defer sl.mu.RUnlock()
	return sl.table, sl.byID[id]
}

// slotOf maps a key to its slot; ok is false before the first table.
func (sl *slots) slotOf(key string) (slot.ID, bool) {
	sl.mu.RLock()
	defer sl.mu.RUnlock()
	if sl.hasher == nil {
		return 0, false
	}
	return sl.hasher.Of(key), true
}

// led returns the slots this node leads.
func (sl *slots) led() []*slotState {
	sl.mu.RLock()
	defer sl.mu.RUnlock()
	var out []*slotState
	for _, st := range sl.byID {
		if st.role == roleLeader {
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(a, b *slotState) int { return int(a.id) - int(b.id) })
	return out
}

// all returns every slot this node holds, sorted.
func (sl *slots) all() []*slotState {
	sl.mu.RLock()
	defer sl.mu.RUnlock()
	out := make([]*slotState, 0, len(sl.byID))
	for _, st := range sl.byID {
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b *slotState) int { return int(a.id) - int(b.id) })
	return out
}

// slotCount returns the cluster's slot count; ok is false before the first
// table.
func (sl *slots) slotCount() (int, bool) {
	sl.mu.RLock()
	defer sl.mu.RUnlock()
	return sl.count, sl.hasher != nil
}

// epoch returns the current table epoch and whether a table has arrived.
func (sl *slots) epoch() (uint64, bool) {
	sl.mu.RLock()
	defer sl.mu.RUnlock()
	return sl.table.Epoch, sl.hasher != nil
}

// syncReport is the heartbeat's per-slot status: every followed slot.
func (sl *slots) syncReport() []*registryv1.SlotSync {
	var out []*registryv1.SlotSync
	for _, st := range sl.all() {
		if st.role == roleFollower {
			out = append(out, &registryv1.SlotSync{SlotId: uint32(st.id), LeaderEpoch: st.leaderEpoch, Synced: st.synced.Load()})
		}
	}
	return out
}

// follow replicates one slot from its leader until the assignment ends:
// a snapshot first, then the op stream; after a break it resumes from the
// last op, or takes a new snapshot if the leader's log moved past it.
func (sl *slots) follow(ctx context.Context, st *slotState) {
	t := sl.s.clock.NewTicker(sl.s.cfg.RetryInterval)
	defer t.Stop()
	var after uint64
	for ctx.Err() == nil {
		if addr := sl.s.addressOf(st.leader); addr != "" {
			after = sl.replicate(ctx, st, addr, after)
		}
		select {
		case <-ctx.Done():
		case <-t.C():
		}
	}
}

// replicate runs one Replicate stream and returns the seq to resume from.
func (sl *slots) replicate(ctx context.Context, st *slotState, addr string, after uint64) uint64 {
	conn, err := sl.s.Pool().Get(addr, identity.Peer{Role: identity.RoleData, Name: string(st.leader)})
	if err != nil {
		return after
	}
	stream, err := registryv1.NewDataServiceClient(conn).Replicate(ctx, &registryv1.ReplicateRequest{
		SlotId: uint32(st.id), LeaderEpoch: st.leaderEpoch, FollowerId: sl.s.cfg.NodeID, AfterSeq: after,
	})
	if err != nil {
		return after
	}
	// staged gathers a snapshot's chunks until the last one.
	var staged *registryv1.SlotSnapshot
	for {
		ev, err := stream.Recv()
		if err != nil {
			// Cut off from the leader, this copy falls behind with every
			// write: it is not synced until a stream says caught_up again.
			st.synced.Store(false)
			if ctx.Err() == nil {
				sl.s.logger.Debug("replication stream ended", "slot", st.id, "leader", st.leader, "err", err)
			}
			return after
		}
		switch e := ev.GetEvent().(type) {
		case *registryv1.ReplicateEvent_Snapshot:
			st.synced.Store(false)
			if staged == nil {
				staged = &registryv1.SlotSnapshot{Seq: e.Snapshot.GetSeq()}
			}
			staged.Datums = append(staged.Datums, e.Snapshot.GetDatums()...)
			staged.Tombstones = append(staged.Tombstones, e.Snapshot.GetTombstones()...)
			if e.Snapshot.GetMore() {
				continue
			}
			snap := staged
			staged = nil
			if snap.GetSeq() < after {
				// The leader's slot went backwards within one leader
				// epoch (it lost its data): keep this copy rather than
				// take an emptier one, and wait for meta to move the slot.
				sl.s.logger.Error("leader offered an older snapshot than this copy; keeping the copy",
					"slot", st.id, "leader", st.leader, "leader_epoch", st.leaderEpoch, "have_seq", after, "offered_seq", snap.GetSeq())
				return after
			}
			st.store.Restore(snap)
			after = snap.GetSeq()
		case *registryv1.ReplicateEvent_Op:
			if err := st.store.ApplyOp(e.Op); err != nil {
				sl.s.logger.Warn("replicated op out of order; asking for a snapshot", "slot", st.id, "err", err)
				st.synced.Store(false)
				return 0
			}
			after = e.Op.GetSeq()
		}
		if ev.GetCaughtUp() && !st.synced.Load() {
			st.synced.Store(true)
			sl.s.logger.Debug("slot caught up with its leader", "slot", st.id, "leader", st.leader, "seq", after)
		}
	}
}

// addressOf returns the gRPC address of a data node from the gossip pool.
func (s *Server) addressOf(id slot.NodeID) string {
	for _, m := range s.Agent().Members() {
		if m.ID == string(id) && m.Meta.Role == cluster.RoleData && m.State == cluster.StateAlive {
			return m.Meta.GRPC
		}
	}
	return ""
}

// replStreams tracks the replication streams this node serves as leader,
// for the lag gauge: how many ops each follower has yet to be sent.
type replStreams struct {
	mu      sync.Mutex
	streams map[*replPos]struct{}
}

type replPos struct {
	st   *slotState
	sent atomic.Uint64
}

func (r *replStreams) add(st *slotState) *replPos {
	p := &replPos{st: st}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.streams == nil {
		r.streams = map[*replPos]struct{}{}
	}
	r.streams[p] = struct{}{}
	return p
}

func (r *replStreams) remove(p *replPos) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.streams, p)
}

// lag returns the ops not yet sent, summed over streams.
func (r *replStreams) lag() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n uint64
	for p := range r.streams {
		if seq, sent := p.st.store.Seq(), p.sent.Load(); seq > sent {
			n += seq - sent
		}
	}
	return n
}
