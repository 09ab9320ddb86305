package meta

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// leadershipLoop runs leaderLoop for as long as this node is the Raft
// leader, and stops it when leadership is lost.
func (s *Server) leadershipLoop(ctx context.Context, notify <-chan bool) error {
	var (
		stop func()
		wg   sync.WaitGroup
	)
	end := func() {
		if stop != nil {
			stop()
			wg.Wait()
			stop = nil
		}
	}
	defer end()
	for {
		select {
		case <-ctx.Done():
			return nil
		case leader := <-notify:
			end()
			if !leader {
				s.logger.Info("lost leadership")
				continue
			}
			s.logger.Info("became leader")
			lctx, cancel := context.WithCancel(ctx)
			stop = cancel
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.leaderLoop(lctx)
			}()
		}
	}
}

// leaderLoop is everything only the leader does: set the cluster up once,
// then reconcile the pool against Raft voters and members and run the
// arranger, whenever the pool changes, sync status changes, or on a tick.
func (s *Server) leaderLoop(ctx context.Context) {
	defer s.leaderReady.Store(false)
	tick := s.clock.NewTicker(s.cfg.ReconcileInterval)
	defer tick.Stop()
	// Setup retries until it succeeds or leadership ends: a leader that
	// gave up here would hold the role and do none of its work.
	for !s.leaderSetup() {
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
		}
	}
	s.handovers.retain(s.fsm.Current())
	s.leaderReady.Store(true)

	live := newLiveness(s.cfg.DeadGrace)
	waits := newProofWaits()
	// The arranger runs at most every ArrangeInterval; this ticker brings
	// a round that was throttled back within one interval.
	arrangeTick := s.clock.NewTicker(s.cfg.ArrangeInterval)
	defer arrangeTick.Stop()
	var lastArrange time.Time
	for {
		st, changed := s.fsm.Watch()
		pool := s.Agent().Changed()
		voters := s.reconcileVoters(ctx, waits)
		s.reconcileMembers(live, st, voters)
		if now := s.clock.Now(); now.Sub(lastArrange) >= s.cfg.ArrangeInterval {
			lastArrange = now
			s.runArranger()
		}
		select {
		case <-ctx.Done():
			return
		case <-pool:
		case <-s.arrange:
		case <-changed:
		case <-tick.C():
		case <-arrangeTick.C():
		}
	}
}

// leaderSetup applies everything earlier leaders committed (so decisions
// start from the whole state) and initializes a new cluster. It reports
// whether the leader may start its work.
func (s *Server) leaderSetup() bool {
	if err := s.raft.raft.Barrier(s.cfg.ApplyTimeout).Error(); err != nil {
		s.logger.Warn("leader barrier failed; retrying", "err", err)
		return false
	}
	st := s.fsm.Current()
	if st.Initialized() {
		if st.Settings.Count != s.cfg.Slots || st.Settings.Replicas != s.cfg.Replicas {
			s.logger.Warn("flags differ from the cluster's settings; the cluster keeps the settings it was created with",
				"cluster_slots", st.Settings.Count, "flag_slots", s.cfg.Slots,
				"cluster_replicas", st.Settings.Replicas, "flag_replicas", s.cfg.Replicas)
		}
		return true
	}
	id, err := newClusterID()
	if err != nil {
		s.logger.Error("create cluster id; retrying", "err", err)
		return false
	}
	if err := s.propose(command{Op: opInit, Init: &initCmd{ClusterID: id, Settings: s.cfg.Settings()}}); err != nil {
		s.logger.Warn("initialize cluster; retrying", "err", err)
		return false
	}
	s.logger.Info("cluster initialized", "cluster_id", id, "slots", s.cfg.Slots, "replicas", s.cfg.Replicas)
	return true
}

// promoteLag is how far behind the leader's commit index a non-voter may be
// and still be promoted.
const promoteLag = 64

// reconcileVoters brings the Raft configuration in line with the meta nodes
// in the pool, and returns the voters' IDs.
//
//   - A meta node alive in the pool and not in the configuration joins as a
//     non-voter; once it reports a commit index close to the leader's it is
//     promoted. A node that cannot be reached never raises the quorum.
//   - A server whose address changed (a restart elsewhere) is updated.
//   - A node that left the pool gracefully is removed. One that merely died
//     stays a voter: it is expected back, and removing it would shrink the
//     quorum under the survivors.
func (s *Server) reconcileVoters(ctx context.Context, waits *proofWaits) []raft.ServerID {
	fut := s.raft.raft.GetConfiguration()
	if err := fut.Error(); err != nil {
		s.logger.Warn("read raft configuration", "err", err)
		return nil
	}
	servers := map[raft.ServerID]raft.Server{}
	var voters []raft.ServerID
	for _, srv := range fut.Configuration().Servers {
		servers[srv.ID] = srv
		if srv.Suffrage == raft.Voter {
			voters = append(voters, srv.ID)
		}
	}
	r := s.raft.raft
	members := s.Agent().Members()
	waits.forget(members)
	for _, m := range members {
		if m.Meta.Role != cluster.RoleMeta || m.Meta.Raft == "" || m.ID == s.cfg.NodeID {
			continue
		}
		id, addr := raft.ServerID(m.ID), raft.ServerAddress(m.Meta.Raft)
		have, ok := servers[id]
		switch {
		case m.State == cluster.StateAlive && !ok:
			if err := s.provenMeta(ctx, m, waits); err != nil {
				s.logger.Warn("not adding a meta node that cannot prove itself", "peer", m.ID, "grpc", m.Meta.GRPC, "err", err)
				continue
			}
			if err := r.AddNonvoter(id, addr, 0, s.cfg.ApplyTimeout).Error(); err != nil {
				s.logger.Warn("add raft non-voter", "peer", m.ID, "addr", addr, "err", err)
				continue
			}
			s.logger.Info("added raft non-voter; promoted once caught up", "peer", m.ID, "addr", addr)
		case m.State == cluster.StateAlive && have.Suffrage == raft.Voter && have.Address != addr:
			if err := s.provenMeta(ctx, m, waits); err != nil {
				s.logger.Warn("not moving a voter whose new address cannot prove itself", "peer", m.ID, "grpc", m.Meta.GRPC, "err", err)
				continue
			}
			if err := r.AddVoter(id, addr, 0, s.cfg.ApplyTimeout).Error(); err != nil {
				s.logger.Warn("update raft voter address", "peer", m.ID, "addr", addr, "err", err)
				continue
			}
			s.logger.Info("raft voter moved", "peer", m.ID, "from", have.Address, "to", addr)
		case m.State == cluster.StateAlive && have.Suffrage != raft.Voter:
			if !s.caughtUp(ctx, m.ID, m.Meta.GRPC) {
				continue
			}
			if err := r.AddVoter(id, addr, 0, s.cfg.ApplyTimeout).Error(); err != nil {
				s.logger.Warn("promote raft non-voter", "peer", m.ID, "err", err)
				continue
			}
			s.logger.Info("promoted raft non-voter to voter", "peer", m.ID)
		case m.State == cluster.StateLeft && ok:
			if err := r.RemoveServer(id, 0, s.cfg.ApplyTimeout).Error(); err != nil {
				s.logger.Warn("remove raft server", "peer", m.ID, "err", err)
				continue
			}
			s.logger.Info("removed raft server that left", "peer", m.ID)
		}
	}
	return voters
}

// provenMeta asks a meta node found in the pool to prove who it is before
// it joins the Raft configuration: a call to its gRPC address must reach a
// server whose certificate names that meta node. (Its Raft port admits only
// meta certificates too.) Without TLS nothing can be proven and every node
// passes, as gossip and Raft then trust anyone anyway.
//
// A node that fails is not asked again until its backoff passes (doubling
// from ReconcileInterval to maxProofWait): each attempt costs the leader
// loop up to a second, and whoever holds the gossip key could announce
// many meta nodes that never answer.
func (s *Server) provenMeta(ctx context.Context, m cluster.Member, waits *proofWaits) error {
	if !s.Secure() {
		return nil
	}
	key := m.ID + "|" + m.Meta.GRPC
	now := s.clock.Now()
	if w, ok := waits.by[key]; ok && now.Before(w.until) {
		return fmt.Errorf("failed to prove itself; not asked again until %s", w.until.Format(time.RFC3339))
	}
	if _, err := s.askMeta(ctx, m.ID, m.Meta.GRPC); err != nil {
		wait := 2 * waits.by[key].wait
		wait = min(max(wait, s.cfg.ReconcileInterval), maxProofWait)
		waits.by[key] = proofWait{until: now.Add(wait), wait: wait}
		return err
	}
	delete(waits.by, key)
	return nil
}

// maxProofWait bounds the wait between proofs asked of one meta node.
const maxProofWait = time.Minute

// proofWaits holds the leader loop's backoff per (meta node, address) that
// failed to prove itself; only that loop uses it.
type proofWaits struct{ by map[string]proofWait }

type proofWait struct {
	until time.Time
	wait  time.Duration
}

func newProofWaits() *proofWaits { return &proofWaits{by: map[string]proofWait{}} }

// forget drops the waits of nodes no longer in the pool, so the map stays
// as small as the pool.
func (w *proofWaits) forget(members []cluster.Member) {
	live := map[string]bool{}
	for _, m := range members {
		live[m.ID+"|"+m.Meta.GRPC] = true
	}
	maps.DeleteFunc(w.by, func(k string, _ proofWait) bool { return !live[k] })
}

// caughtUp asks a peer for its commit index and compares it with ours.
func (s *Server) caughtUp(ctx context.Context, id, addr string) bool {
	info, err := s.askMeta(ctx, id, addr)
	return err == nil && info.GetCommitIndex()+promoteLag >= s.raft.raft.CommitIndex()
}

// askMeta asks the meta node id at addr for its cluster info, bounded by a
// second; the server's certificate must name that meta node.
func (s *Server) askMeta(ctx context.Context, id, addr string) (*registryv1.GetClusterInfoResponse, error) {
	conn, err := s.Pool().Get(addr, identity.Peer{Role: identity.RoleMeta, Name: id})
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return registryv1.NewMetaServiceClient(conn).GetClusterInfo(cctx, &registryv1.GetClusterInfoRequest{})
}

// poolHasQuorum reports whether a majority of the voters is alive in this
// node's view of the pool. Without it, the leader's own gossip is cut off
// (or never joined) and "missing from the pool" says nothing about members.
func (s *Server) poolHasQuorum(voters []raft.ServerID) bool {
	if len(voters) == 0 {
		return false
	}
	alive := map[string]bool{s.cfg.NodeID: true}
	for _, m := range s.Agent().Members() {
		if m.Meta.Role == cluster.RoleMeta && m.State == cluster.StateAlive {
			alive[m.ID] = true
		}
	}
	n := 0
	for _, v := range voters {
		if alive[string(v)] {
			n++
		}
	}
	return n > len(voters)/2
}

// reconcileMembers removes the members the pool shows gone (liveness).
// Removals wait while this node's pool view lacks a quorum of voters.
func (s *Server) reconcileMembers(live *liveness, st *State, voters []raft.ServerID) {
	removes := live.removals(s.clock.Now(), s.Agent().Members(), st.Members)
	if len(removes) > 0 && !s.poolHasQuorum(voters) {
		s.logger.Warn("not removing members: this leader sees too few meta voters in the gossip pool", "pending", removes)
		removes = nil
	}
	for _, id := range removes {
		if err := s.propose(command{Op: opRemove, NodeID: id}); err != nil {
			s.logger.Warn("remove member", "member", id, "err", err)
			continue
		}
		s.loads.forget(id)
		s.handovers.forget(id)
		s.logger.Info("member removed", "member", id)
	}
}

// runArranger computes the next slot table and proposes it if it differs.
func (s *Server) runArranger() {
	st := s.fsm.Current()
	if !st.Initialized() {
		return
	}
	nodes := s.arrangeable(st)
	if len(nodes) == 0 && len(st.Table.Slots) == 0 {
		return // nothing to arrange until the first data node
	}
	settings := st.Settings
	settings.MaxMoves = s.cfg.MaxMoves
	next, err := slot.Next(st.Table, nodes, st.Sync, settings)
	if err != nil {
		s.logger.Error("slot arranger", "err", err)
		return
	}
	if next.Epoch == st.Table.Epoch {
		return
	}
	err = s.propose(command{Op: opTable, Table: &tableCmd{Expect: st.Table.Epoch, Table: next}})
	if errors.Is(err, ErrStaleTable) {
		s.signalArrange() // the state moved on: compute again from it
		return
	}
	if err != nil {
		s.logger.Warn("propose slot table", "epoch", next.Epoch, "err", err)
		return
	}
	s.logger.Info("slot table changed", "epoch", next.Epoch, "data_nodes", len(nodes))
}

// arrangeable is the data members the arranger may place slots on: every
// member but those the gossip pool shows dead. A dead member keeps its
// membership for the dead grace (flap damping: a brief outage does not
// forget it), but its slots fail over at once to their followers, so keys
// on a dead node wait for failure detection only, not for the grace too.
// When it answers again it is placed like any member (as a follower first,
// since its copies are behind). While this leader's own pool view lacks a
// quorum of the voters its "dead" says nothing, and every member counts.
func (s *Server) arrangeable(st *State) []slot.NodeID {
	nodes := st.DataNodes()
	dead := map[slot.NodeID]bool{}
	for _, m := range s.Agent().Members() {
		if m.Meta.Role == cluster.RoleData && m.State == cluster.StateDead {
			dead[slot.NodeID(m.ID)] = true
		}
	}
	if len(dead) == 0 || !s.poolHasQuorum(s.voterIDs()) {
		return nodes
	}
	return slices.DeleteFunc(nodes, func(id slot.NodeID) bool { return dead[id] })
}

// voterIDs returns the Raft voters (none if the configuration cannot be
// read).
func (s *Server) voterIDs() []raft.ServerID {
	fut := s.raft.raft.GetConfiguration()
	if fut.Error() != nil {
		return nil
	}
	var out []raft.ServerID
	for _, srv := range fut.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			out = append(out, srv.ID)
		}
	}
	return out
}

func (s *Server) signalArrange() {
	select {
	case s.arrange <- struct{}{}:
	default:
	}
}

// propose replicates c and returns the FSM's verdict. Only the leader may
// call it; elsewhere it returns ErrNotLeader.
func (s *Server) propose(c command) error {
	b, err := encode(c)
	if err != nil {
		return fmt.Errorf("meta: encode %s command: %w", c.Op, err)
	}
	fut := s.raft.raft.Apply(b, s.cfg.ApplyTimeout)
	if err := fut.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return ErrNotLeader
		}
		if errors.Is(err, raft.ErrRaftShutdown) {
			return ErrShuttingDown
		}
		return fmt.Errorf("meta: replicate %s: %w", c.Op, err)
	}
	if err, ok := fut.Response().(error); ok {
		return err
	}
	return nil
}

// sessionLoads is the leader's soft state of session client counts, from
// heartbeats. It is not replicated: it changes every few seconds, and a new
// leader relearns it within one heartbeat interval.
type sessionLoads struct {
	mu     sync.Mutex
	counts map[string]uint32
}

func newSessionLoads() *sessionLoads { return &sessionLoads{counts: map[string]uint32{}} }

func (l *sessionLoads) set(id string, n uint32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[id] = n
}

func (l *sessionLoads) get(id string) uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[id]
}

func (l *sessionLoads) forget(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.counts, id)
}

// handoverReports is the leader's soft state of the slot handovers data
// nodes report in flight, from heartbeats. Like sessionLoads it is not
// replicated: it changes with every move, and a new leader relearns it
// within one heartbeat interval (until a node has reported, its
// leaderships count as not yet reported: see handoversInFlight).
type handoverReports struct {
	mu sync.Mutex
	by map[string]handoverReport
}

// handoverReport is one data node's latest report.
type handoverReport struct {
	// epoch is the table epoch the node had applied when it reported; 0
	// from a node that has no table yet or predates the field.
	epoch uint64
	// slots are the slots it leads whose handover is in flight.
	slots map[slot.ID]bool
}

func newHandoverReports() *handoverReports {
	return &handoverReports{by: map[string]handoverReport{}}
}

// set records id's report; slots are already validated (in range, at
// most the slot count).
func (h *handoverReports) set(id string, epoch uint64, slots []uint32) {
	r := handoverReport{epoch: epoch, slots: make(map[slot.ID]bool, len(slots))}
	for _, s := range slots {
		r.slots[slot.ID(s)] = true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.by[id] = r
}

// snapshot returns the reports; a report is never modified once set, so
// the copy shares them.
func (h *handoverReports) snapshot() map[string]handoverReport {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.by)
}

func (h *handoverReports) forget(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.by, id)
}

// retain drops the reports of nodes that are not data members of st: the
// nodes that left while this node was not the leader (the leader forgets
// a node it removes itself).
func (h *handoverReports) retain(st *State) {
	h.mu.Lock()
	defer h.mu.Unlock()
	maps.DeleteFunc(h.by, func(id string, _ handoverReport) bool {
		m, ok := st.Members[id]
		return !ok || m.Role != cluster.RoleData
	})
}

// sortedIDs returns map keys sorted, for deterministic iteration.
func sortedIDs[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
