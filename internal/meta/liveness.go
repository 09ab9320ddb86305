package meta

import (
	"slices"
	"time"

	"github.com/strata-registry/strata/internal/cluster"
)

// liveness turns the gossip pool into member removals, with flap damping:
// a member stops being one only after it has been dead, or missing from the
// pool, for deadGrace. A member that leaves gracefully is removed at once:
// it said it was going.
//
// The pool only ever removes. A node becomes a member by RegisterNode,
// which its certificate proves; what gossip says of a node that never
// registered (or of an address it moved to) admits nothing.
//
// It is the leader's soft state: a new leader starts it afresh, which only
// delays removals (never hastens them) by at most deadGrace.
type liveness struct {
	deadGrace time.Duration
	// missingSince is when the leader first saw a member absent from the
	// pool (neither alive, dead nor left: never joined, or forgotten).
	missingSince map[string]time.Time
}

func newLiveness(deadGrace time.Duration) *liveness {
	return &liveness{deadGrace: deadGrace, missingSince: map[string]time.Time{}}
}

// removals returns the ids of the members to remove, given the pool now
// and the FSM's members.
func (l *liveness) removals(now time.Time, pool []cluster.Member, members map[string]Member) (removes []string) {
	seen := make(map[string]cluster.Member, len(pool))
	for _, p := range pool {
		if p.Meta.Role == cluster.RoleData || p.Meta.Role == cluster.RoleSession {
			seen[p.ID] = p
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
	slices.Sort(removes)
	return removes
}
