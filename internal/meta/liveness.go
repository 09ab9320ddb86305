package meta

import (
	"slices"
	"strings"
	"time"

	"github.com/strata-registry/strata/internal/cluster"
)

// liveness turns the gossip pool into membership changes, with flap
// damping: a data or session node becomes a member only after it has been
// alive in the pool for joinGrace, and stops being one only after it has
// been dead, or missing, for deadGrace. A node that leaves gracefully is
// removed at once: it said it was going.
//
// It is the leader's soft state: a new leader starts it afresh, which only
// delays removals (never hastens them) by at most deadGrace.
type liveness struct {
	joinGrace time.Duration
	deadGrace time.Duration
	// missingSince is when the leader first saw a member absent from the
	// pool (neither alive, dead nor left: never joined, or forgotten).
	missingSince map[string]time.Time
}

func newLiveness(joinGrace, deadGrace time.Duration) *liveness {
	return &liveness{joinGrace: joinGrace, deadGrace: deadGrace, missingSince: map[string]time.Time{}}
}

// plan returns the members to add or update and the ids to remove, given
// the pool now and the FSM's members.
func (l *liveness) plan(now time.Time, pool []cluster.Member, members map[string]Member) (upserts []Member, removes []string) {
	seen := make(map[string]cluster.Member, len(pool))
	for _, p := range pool {
		if p.Meta.Role != cluster.RoleData && p.Meta.Role != cluster.RoleSession {
			continue
		}
		seen[p.ID] = p
		if p.State != cluster.StateAlive {
			continue
		}
		want := Member{ID: p.ID, Role: p.Meta.Role, GRPC: p.Meta.GRPC, HTTP: p.Meta.HTTP, Zone: p.Meta.Zone, Proc: p.Meta.Proc}
		if have, ok := members[p.ID]; ok && have == want {
			continue
		}
		if now.Sub(p.Since) >= l.joinGrace && want.GRPC != "" {
			upserts = append(upserts, want)
		}
	}
	for id := range members {
		p, inPool := seen[id]
		switch {
		case inPool && p.State == cluster.StateAlive:
			delete(l.missingSince, id)
		case inPool && p.State == cluster.StateLeft:
			delete(l.missingSince, id)
			removes = append(removes, id)
		case inPool && p.State == cluster.StateDead:
			delete(l.missingSince, id)
			if now.Sub(p.Since) >= l.deadGrace {
				removes = append(removes, id)
			}
		default:
			since, ok := l.missingSince[id]
			if !ok {
				l.missingSince[id] = now
				since = now
			}
			if now.Sub(since) >= l.deadGrace {
				delete(l.missingSince, id)
				removes = append(removes, id)
			}
		}
	}
	for id := range l.missingSince {
		if _, ok := members[id]; !ok {
			delete(l.missingSince, id)
		}
	}
	slices.SortFunc(upserts, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	slices.Sort(removes)
	return upserts, removes
}
