package data

import (
	"context"
	"sync"
	"time"

	"github.com/strata-registry/strata/internal/clock"
	"github.com/strata-registry/strata/internal/cluster"
)

// leases tracks when each session process was last heard from. A session
// is heard from while it keeps a change stream open and whenever it
// publishes.
type leases struct {
	clock clock.Clock

	mu       sync.Mutex
	lastSeen map[string]time.Time
	streams  map[string]int
}

func newLeases(c clock.Clock) *leases {
	return &leases{clock: c, lastSeen: map[string]time.Time{}, streams: map[string]int{}}
}

func (l *leases) touch(session string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastSeen[session] = l.clock.Now()
}

func (l *leases) open(session string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.streams[session]++
	l.lastSeen[session] = l.clock.Now()
}

func (l *leases) close(session string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastSeen[session] = l.clock.Now()
	if l.streams[session]--; l.streams[session] <= 0 {
		delete(l.streams, session)
	}
}

// silentFor returns how long session has been silent: 0 while it holds a
// stream. A session never heard from starts its lease now (a new leader
// gives every owner a full lease to show up).
func (l *leases) silentFor(session string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.streams[session] > 0 {
		return 0
	}
	now := l.clock.Now()
	seen, ok := l.lastSeen[session]
	if !ok {
		l.lastSeen[session] = now
		return 0
	}
	return now.Sub(seen)
}

// streaming reports whether session holds a change stream now.
func (l *leases) streaming(session string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.streams[session] > 0
}

// prune drops the entries of sessions that are not in keep and hold no
// stream.
func (l *leases) prune(keep map[string]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for session := range l.lastSeen {
		if !keep[session] && l.streams[session] == 0 {
			delete(l.lastSeen, session)
		}
	}
}

// leaseLoop removes, from every slot this node leads, the publishers of
// sessions that are gone: silent for SessionLease, or shown dead or left in
// the gossip pool for SessionGrace. (A session restarted under its node id
// is a new process; the old one falls silent and its lease runs out.) A record
// re-registered through another session has that session as its owner and
// is untouched. Removals notify like any change.
func (s *Server) leaseLoop(ctx context.Context) error {
	t := s.clock.NewTicker(s.cfg.LeaseCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
		gone := s.goneSessions()
		owners := map[string]bool{}
		for _, st := range s.slots.led() {
			for _, d := range st.store.Digests() {
				owners[d.GetSessionId()] = true
			}
		}
		// Bookkeeping for sessions that own nothing here and hold no
		// stream is dropped, so the map is bounded by live owners.
		s.leases.prune(owners)
		for _, st := range s.slots.led() {
			for _, d := range st.store.Digests() {
				session := d.GetSessionId()
				why, ok := gone[session]
				if ok && s.leases.streaming(session) {
					ok = false // an open stream outweighs a gossip verdict
				}
				if !ok {
					if silent := s.leases.silentFor(session); silent >= s.cfg.SessionLease {
						why = "silent for " + silent.Round(time.Millisecond).String()
					} else {
						continue
					}
				}
				_, before := st.store.Stats()
				versions := st.store.RemoveSession(session)
				_, after := st.store.Stats()
				s.notices.publish(versions)
				s.metrics.expired.Add(float64(before - after))
				s.logger.Info("removed publishers of a gone session", "slot", st.id, "session", session, "publishers", before-after, "why", why)
			}
		}
	}
}

// goneSessions returns the session processes the pool has shown dead or
// left for SessionGrace.
func (s *Server) goneSessions() map[string]string {
	now := s.clock.Now()
	gone := map[string]string{}
	for _, m := range s.Agent().Members() {
		if m.Meta.Role != cluster.RoleSession || m.Meta.Proc == "" {
			continue
		}
		if m.State != cluster.StateAlive && now.Sub(m.Since) >= s.cfg.SessionGrace {
			gone[m.Meta.Proc] = "gossip: " + m.State.String()
		}
	}
	return gone
}
