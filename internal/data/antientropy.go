package data

import (
	"context"
	"fmt"
	"sync"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/publisher"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// kickAntiEntropy asks for a round now (a slot started migrating).
func (s *Server) kickAntiEntropy() {
	select {
	case s.aeKick <- struct{}{}:
	default:
	}
}

// antiEntropyLoop runs a round every AntiEntropyInterval, at once when
// kicked, and every RetryInterval while a slot this node leads is still
// migrating (its reads wait on a complete round).
func (s *Server) antiEntropyLoop(ctx context.Context) error {
	t := s.clock.NewTicker(s.cfg.AntiEntropyInterval)
	defer t.Stop()
	retry := s.clock.NewTicker(s.cfg.RetryInterval)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		case <-s.aeKick:
		case <-retry.C():
			if !s.anyMigrating() {
				continue
			}
		}
		s.antiEntropyRound(ctx)
	}
}

func (s *Server) anyMigrating() bool {
	for _, st := range s.slots.led() {
		if st.migrating.Load() {
			return true
		}
	}
	return false
}

// antiEntropyRound compares every slot this node leads with every live
// session. Sessions are the source of truth for their clients'
// publishers: where a session's digest for a slot differs from the
// leader's record of that session, the leader fetches the session's list
// and repairs its own records (adds or updates what the session has,
// removes what the session no longer has).
//
// A round that some slot's handover waits on carries the node's table
// epoch: each session answers only once it routes by that table or a
// newer one and its writes under older tables have settled (the handover
// barrier), so what it reports includes everything an old leader
// acknowledged to it. A migrating slot becomes readable once a round that
// started after it began migrating has heard so from every live session.
// Sessions are asked in parallel, each with its own deadline: a frozen
// session costs the round its call timeout, not one per session.
func (s *Server) antiEntropyRound(ctx context.Context) {
	led := s.slots.led()
	if len(led) == 0 {
		return
	}
	// Before this node has joined the pool it sees no sessions, and
	// "heard from every session" would be vacuously true.
	if !s.Agent().Joined() {
		return
	}
	var migrating []*slotState
	ids := make([]uint32, 0, len(led))
	byID := make(map[uint32]*slotState, len(led))
	for _, st := range led {
		ids = append(ids, uint32(st.id))
		byID[uint32(st.id)] = st
		if st.migrating.Load() {
			migrating = append(migrating, st)
		}
	}
	var barrier uint64
	if len(migrating) > 0 {
		barrier, _ = s.slots.epoch()
		if !s.marks.ready() {
			// A handover finishes only once the operators' marks are
			// here: the slot must not serve a datum without them.
			migrating = nil
		}
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		complete = true
		sem      = make(chan struct{}, sessionSyncParallel)
	)
	for _, m := range s.Agent().Members() {
		if m.Meta.Role != cluster.RoleSession || m.State != cluster.StateAlive || m.Meta.GRPC == "" || m.Meta.Proc == "" {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := s.syncWithSession(ctx, m, ids, byID, barrier); err != nil {
				mu.Lock()
				complete = false
				mu.Unlock()
				if ctx.Err() == nil {
					s.logger.Warn("anti-entropy with session failed", "session", m.ID, "err", err)
				}
			}
		}()
	}
	wg.Wait()
	if !complete {
		s.metrics.roundsIncomplete.Inc()
		return
	}
	s.metrics.rounds.Inc()
	var rebuilt, fenced []uint32
	var readable []*registryv1.DatumVersion
	// Marked keys get their new versions before the slots serve reads, so
	// no read returns a version sessions already hold with new marks.
	s.touchMarked(migrating)
	for _, st := range migrating {
		if !st.markRebuilt() {
			continue
		}
		readable = append(readable, st.store.Versions()...)
		if st.partial {
			rebuilt = append(rebuilt, uint32(st.id))
		} else {
			fenced = append(fenced, uint32(st.id))
		}
	}
	// Every key of a slot that now serves reads, as a change notice: a
	// session whose fetch was refused while the slot migrated (or went
	// to the old leader) fetches again at once instead of after its
	// backoff, and small datums come inlined, sparing the fetch.
	s.notices.publish(readable)
	if len(rebuilt) > 0 {
		s.logger.Info("slots rebuilt from sessions; serving reads", "slots", len(rebuilt), "first", rebuilt[0], "table_epoch", barrier)
	}
	if len(fenced) > 0 {
		s.logger.Info("slot handovers checked against every session; serving reads", "slots", len(fenced), "first", fenced[0], "table_epoch", barrier)
	}
}

// maxRepairDeferrals bounds the routine rounds in a row that leave a
// slot whose session is still writing to it (at the default interval,
// 90 s): a record the leader lost is repaired by then even under a storm
// that never ends.
const maxRepairDeferrals = 3

// repairDeferred counts a routine round that leaves the slot's repair
// from session proc for later (deferring) and reports whether it may, or
// resets the count (a round that found them equal, or repaired).
func (st *slotState) repairDeferred(proc string, deferring bool) bool {
	st.deferMu.Lock()
	defer st.deferMu.Unlock()
	if !deferring {
		delete(st.deferred, proc)
		return false
	}
	if st.deferred[proc] >= maxRepairDeferrals {
		delete(st.deferred, proc)
		return false
	}
	if st.deferred == nil {
		st.deferred = map[string]int{}
	}
	st.deferred[proc]++
	return true
}

// sessionSyncParallel bounds the sessions one round talks to at once.
const sessionSyncParallel = 8

func (s *Server) syncWithSession(ctx context.Context, m cluster.Member, ids []uint32, byID map[uint32]*slotState, barrier uint64) error {
	conn, err := s.Pool().Get(m.Meta.GRPC, identity.Peer{Role: identity.RoleSession, Name: m.ID})
	if err != nil {
		return err
	}
	client := registryv1.NewSessionSyncServiceClient(conn)
	call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, s.cfg.CallTimeout) }
	cctx, cancel := call()
	resp, err := client.SlotDigests(cctx, &registryv1.SessionSlotDigestsRequest{SlotIds: ids, TableEpoch: barrier})
	cancel()
	if err != nil {
		return err
	}
	proc := resp.GetSessionId()
	theirs := make(map[uint32]*registryv1.SessionSlotDigest, len(resp.GetDigests()))
	for _, d := range resp.GetDigests() {
		theirs[d.GetSlotId()] = d
	}
	for _, id := range ids {
		st := byID[id]
		var mine *registryv1.SessionDigest
		for _, d := range st.store.Digests() {
			if d.GetSessionId() == proc {
				mine = d
			}
		}
		t := theirs[id]
		if mine.GetCount() == t.GetCount() && mine.GetHash() == t.GetHash() {
			st.repairDeferred(proc, false)
			continue
		}
		// A session still writing to the slot (a registration storm)
		// differs by its writes in flight: its full list would be read
		// and compared for nothing, every round. A routine round leaves
		// such a slot for a later one, at most maxRepairDeferrals in a row;
		// a handover's round (barrier) never does.
		if barrier == 0 && t.GetWriting() && st.repairDeferred(proc, true) {
			s.metrics.repairsDeferred.Inc()
			continue
		}
		cctx, cancel := call()
		pubs, err := client.SlotPublishers(cctx, &registryv1.SessionSlotPublishersRequest{SlotId: id})
		cancel()
		if err != nil {
			return err
		}
		if pubs.GetSessionId() != proc {
			// The session restarted between the two calls: this round has
			// not heard from the process that owns the records.
			return fmt.Errorf("session %s restarted during the round (%s, then %s)", m.ID, proc, pubs.GetSessionId())
		}
		s.repair(st, proc, pubs)
	}
	return nil
}

// repair makes a slot's records of one session match the session's list.
func (s *Server) repair(st *slotState, proc string, list *registryv1.SessionSlotPublishersResponse) {
	var puts []*registryv1.Publisher
	want := map[[2]string]bool{}
	for _, p := range list.GetPublishers() {
		if publisher.Validate(p) != nil || p.GetSessionId() != proc {
			continue
		}
		if id, ok := s.slots.slotOf(p.GetDataInfoId()); !ok || uint32(id) != uint32(st.id) {
			continue
		}
		want[[2]string{p.GetDataInfoId(), p.GetRegisterId()}] = true
		puts = append(puts, p)
	}
	var dels []*registryv1.Unpublish
	for _, h := range st.store.Publishers(proc) {
		// A record stamped after the session read its list is not judged
		// by that list: it may be on its way.
		if want[[2]string{h.GetDataInfoId(), h.GetRegisterId()}] || h.GetRegisterTimestamp() > list.GetAsOf() {
			continue
		}
		dels = append(dels, &registryv1.Unpublish{DataInfoId: h.GetDataInfoId(), RegisterId: h.GetRegisterId(),
			ClientVersion: h.GetClientVersion(), RegisterTimestamp: h.GetRegisterTimestamp()})
	}
	versions := st.store.Apply(puts, dels)
	s.notices.publish(versions)
	s.metrics.repaired.Add(float64(len(puts) + len(dels)))
	s.logger.Info("anti-entropy repaired a slot from its session", "slot", st.id, "session", proc, "puts", len(puts), "deletes", len(dels))
}
