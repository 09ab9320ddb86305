package meta

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/slot"
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
	// Apply everything committed by earlier leaders before deciding
	// anything from the state.
	if err := s.raft.raft.Barrier(s.cfg.ApplyTimeout).Error(); err != nil {
		s.logger.Warn("leader barrier failed", "err", err)
		return
	}
	if !s.fsm.Current().Initialized() {
		id, err := newClusterID()
		if err != nil {
			s.logger.Error("create cluster id", "err", err)
			return
		}
		if err := s.propose(command{Op: opInit, Init: &initCmd{ClusterID: id, Settings: s.cfg.Settings()}}); err != nil {
			s.logger.Warn("initialize cluster", "err", err)
			return
		}
		s.logger.Info("cluster initialized", "cluster_id", id, "slots", s.cfg.Slots, "replicas", s.cfg.Replicas)
	} else if st := s.fsm.Current(); st.Settings.Count != s.cfg.Slots || st.Settings.Replicas != s.cfg.Replicas {
		s.logger.Warn("flags differ from the cluster's settings; the cluster keeps the settings it was created with",
			"cluster_slots", st.Settings.Count, "flag_slots", s.cfg.Slots,
			"cluster_replicas", st.Settings.Replicas, "flag_replicas", s.cfg.Replicas)
	}

	live := newLiveness(s.cfg.JoinGrace, s.cfg.DeadGrace)
	tick := s.clock.NewTicker(s.cfg.ReconcileInterval)
	defer tick.Stop()
	var lastArrange time.Time
	for {
		st, changed := s.fsm.Watch()
		s.reconcileVoters()
		s.reconcileMembers(live, st)
		if now := s.clock.Now(); now.Sub(lastArrange) >= s.cfg.ArrangeInterval {
			lastArrange = now
			s.runArranger()
		}
		select {
		case <-ctx.Done():
			return
		case <-s.agent.Changed():
		case <-s.arrange:
		case <-changed:
		case <-tick.C():
		}
	}
}

// reconcileVoters adds meta nodes found alive in the pool as Raft voters
// (or updates a voter's address) and removes those that left the pool
// gracefully. A meta node that merely died stays a voter: it is expected
// back, and removing it would shrink the quorum under the survivors.
func (s *Server) reconcileVoters() {
	fut := s.raft.raft.GetConfiguration()
	if err := fut.Error(); err != nil {
		s.logger.Warn("read raft configuration", "err", err)
		return
	}
	servers := map[raft.ServerID]raft.Server{}
	for _, srv := range fut.Configuration().Servers {
		servers[srv.ID] = srv
	}
	for _, m := range s.agent.Members() {
		if m.Meta.Role != cluster.RoleMeta || m.Meta.Raft == "" || m.ID == s.cfg.NodeID {
			continue
		}
		id := raft.ServerID(m.ID)
		have, ok := servers[id]
		switch m.State {
		case cluster.StateAlive:
			if ok && have.Address == raft.ServerAddress(m.Meta.Raft) && have.Suffrage == raft.Voter {
				continue
			}
			if err := s.raft.raft.AddVoter(id, raft.ServerAddress(m.Meta.Raft), 0, s.cfg.ApplyTimeout).Error(); err != nil {
				s.logger.Warn("add raft voter", "peer", m.ID, "addr", m.Meta.Raft, "err", err)
				continue
			}
			s.logger.Info("added raft voter", "peer", m.ID, "addr", m.Meta.Raft)
		case cluster.StateLeft:
			if !ok {
				continue
			}
			if err := s.raft.raft.RemoveServer(id, 0, s.cfg.ApplyTimeout).Error(); err != nil {
				s.logger.Warn("remove raft voter", "peer", m.ID, "err", err)
				continue
			}
			s.logger.Info("removed raft voter that left", "peer", m.ID)
		}
	}
}

// reconcileMembers applies the liveness plan.
func (s *Server) reconcileMembers(live *liveness, st *State) {
	upserts, removes := live.plan(s.clock.Now(), s.agent.Members(), st.Members)
	for _, m := range upserts {
		if err := s.propose(command{Op: opUpsert, Member: &m, Replace: true}); err != nil {
			s.logger.Warn("add member", "member", m.ID, "err", err)
			continue
		}
		s.logger.Info("member added from pool", "member", m.ID, "role", m.Role, "grpc", m.GRPC)
	}
	for _, id := range removes {
		if err := s.propose(command{Op: opRemove, NodeID: id}); err != nil {
			s.logger.Warn("remove member", "member", id, "err", err)
			continue
		}
		s.loads.forget(id)
		s.logger.Info("member removed", "member", id)
	}
}

// runArranger computes the next slot table and proposes it if it differs.
func (s *Server) runArranger() {
	st := s.fsm.Current()
	if !st.Initialized() {
		return
	}
	nodes := st.DataNodes()
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

// sortedIDs returns map keys sorted, for deterministic iteration.
func sortedIDs[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
