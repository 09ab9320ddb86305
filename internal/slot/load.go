package slot

import (
	"fmt"
	"slices"
)

// Load is what one data node carries in a table.
type Load struct {
	// Leaders is the number of slots the node leads.
	Leaders int
	// Followers is the number of slots the node follows, including extra
	// copies that a make-before-break move has not dropped yet.
	Followers int
}

// Loads returns the load of every node named in t. Nodes that hold no slot
// are absent; live nodes the caller knows of count as zero.
func (t Table) Loads() map[NodeID]Load {
	out := make(map[NodeID]Load)
	for _, s := range t.Slots {
		if s.Leader != "" {
			l := out[s.Leader]
			l.Leaders++
			out[s.Leader] = l
		}
		for _, f := range s.Followers {
			l := out[f]
			l.Followers++
			out[f] = l
		}
	}
	return out
}

// Leaderless returns the number of slots without a leader.
func (t Table) Leaderless() int {
	n := 0
	for _, s := range t.Slots {
		if s.Leader == "" {
			n++
		}
	}
	return n
}

// Check reports the first way t breaks the invariants that Next guarantees
// for the given live nodes and settings, as an error wrapping ErrBadTable;
// nil if there is none. The zero Table passes when no node is live. It checks
// shape only (one slot per ID, a live leader for every slot when any node is
// live, followers live, distinct, sorted, never the leader, at least
// min(Replicas-1, live-1) of them), not balance.
func (t Table) Check(live []NodeID, s Settings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	nodes, err := liveSet(live)
	if err != nil {
		return err
	}
	if len(t.Slots) == 0 && len(nodes) == 0 {
		return nil
	}
	if len(t.Slots) != s.Count {
		return fmt.Errorf("%w: table has %d slots, settings say %d", ErrBadTable, len(t.Slots), s.Count)
	}
	isLive := func(n NodeID) bool { _, ok := slices.BinarySearch(nodes, n); return ok }
	want := max(0, min(s.Replicas-1, len(nodes)-1))
	for i, sl := range t.Slots {
		switch {
		case sl.ID != ID(i):
			return fmt.Errorf("%w: slot at index %d has ID %d", ErrBadTable, i, sl.ID)
		case len(nodes) == 0 && (sl.Leader != "" || len(sl.Followers) != 0):
			return fmt.Errorf("%w: slot %d has nodes but none is live", ErrBadTable, i)
		case len(nodes) == 0:
			continue
		case !isLive(sl.Leader):
			return fmt.Errorf("%w: slot %d leader %q is not live", ErrBadTable, i, sl.Leader)
		case !slices.IsSorted(sl.Followers):
			return fmt.Errorf("%w: slot %d followers %v not sorted", ErrBadTable, i, sl.Followers)
		case len(sl.Followers) < want:
			return fmt.Errorf("%w: slot %d has %d followers, want at least %d", ErrBadTable, i, len(sl.Followers), want)
		}
		for j, f := range sl.Followers {
			switch {
			case !isLive(f):
				return fmt.Errorf("%w: slot %d follower %q is not live", ErrBadTable, i, f)
			case f == sl.Leader:
				return fmt.Errorf("%w: slot %d leader %q is also a follower", ErrBadTable, i, f)
			case j > 0 && f == sl.Followers[j-1]:
				return fmt.Errorf("%w: slot %d follower %q listed twice", ErrBadTable, i, f)
			}
		}
	}
	return nil
}
