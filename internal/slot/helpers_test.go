package slot

import (
	"fmt"
	"slices"
	"testing"
)

func nodeIDs(names ...string) []NodeID {
	out := make([]NodeID, len(names))
	for i, n := range names {
		out[i] = NodeID(n)
	}
	return out
}

func mustNext(t testing.TB, prev Table, live []NodeID, synced SyncState, s Settings) Table {
	t.Helper()
	next, err := Next(prev, live, synced, s)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	if err := next.Check(live, s); err != nil {
		t.Fatalf("Next returned a broken table: %v", err)
	}
	return next
}

// syncAll reports every follower of t as synced.
func syncAll(t Table) SyncState {
	out := SyncState{}
	for _, s := range t.Slots {
		for _, f := range s.Followers {
			markSynced(out, s.ID, f)
		}
	}
	return out
}

func markSynced(st SyncState, id ID, n NodeID) {
	if st[id] == nil {
		st[id] = map[NodeID]bool{}
	}
	st[id][n] = true
}

// converge runs rounds with every follower synced until Next returns its
// input unchanged, failing after maxRounds. It returns the table and the
// number of rounds that changed it.
func converge(t testing.TB, tbl Table, live []NodeID, s Settings, maxRounds int) (Table, int) {
	t.Helper()
	for round := 0; round <= maxRounds; round++ {
		synced := syncAll(tbl)
		next := mustNext(t, tbl, live, synced, s)
		if err := checkStep(tbl, next, live, synced, s); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if next.Epoch == tbl.Epoch {
			if !next.Equal(tbl) {
				t.Fatalf("round %d: same epoch %d but a different table", round, next.Epoch)
			}
			return next, round
		}
		tbl = next
	}
	t.Fatalf("no fixed point after %d rounds", maxRounds)
	return tbl, maxRounds
}

// spread returns the highest and lowest leader and follower counts over the
// live nodes.
func spread(tbl Table, live []NodeID) (maxL, minL, maxF, minF int) {
	loads := tbl.Loads()
	minL, minF = 1<<30, 1<<30
	for _, n := range live {
		l := loads[n]
		maxL, minL = max(maxL, l.Leaders), min(minL, l.Leaders)
		maxF, minF = max(maxF, l.Followers), min(minF, l.Followers)
	}
	return maxL, minL, maxF, minF
}

// checkBalanced checks the balance bounds of a converged table.
func checkBalanced(tbl Table, live []NodeID, s Settings) error {
	n := len(slices.Compact(slices.Sorted(slices.Values(live))))
	if n == 0 {
		return nil
	}
	want := min(s.Replicas-1, n-1)
	maxL, minL, maxF, minF := spread(tbl, live)
	if limit := ceilDiv(s.Count, n) + 1; maxL > limit {
		return fmt.Errorf("a node leads %d slots, limit %d", maxL, limit)
	}
	if limit := ceilDiv(s.Count*want, n) + 1; maxF > limit {
		return fmt.Errorf("a node follows %d slots, limit %d", maxF, limit)
	}
	if maxL-minL > 1 || maxF-minF > 1 {
		return fmt.Errorf("leaders per node range %d..%d, followers %d..%d; want each within 1", minL, maxL, minF, maxF)
	}
	for _, sl := range tbl.Slots {
		if len(sl.Followers) != want {
			return fmt.Errorf("slot %d has %d followers after convergence, want %d", sl.ID, len(sl.Followers), want)
		}
	}
	return nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// voluntaryMoves counts the leader transfers and balance additions between
// prev and next, as Settings.MaxMoves caps them: a leader change while the
// old leader is still live, and every new follower beyond those needed to
// bring the slot back to min(Replicas-1, live-1).
func voluntaryMoves(prev, next Table, live []NodeID, s Settings) int {
	if len(prev.Slots) == 0 {
		return 0
	}
	isLive := map[NodeID]bool{}
	for _, n := range live {
		isLive[n] = true
	}
	want := max(0, min(s.Replicas-1, len(isLive)-1))
	moves := 0
	for i, p := range prev.Slots {
		q := next.Slots[i]
		if q.Leader != p.Leader && isLive[p.Leader] {
			moves++
		}
		kept, added := 0, 0
		for _, f := range q.Followers {
			if f == p.Leader || slices.Contains(p.Followers, f) {
				kept++
			} else {
				added++
			}
		}
		moves += max(0, added-max(0, want-kept))
	}
	return moves
}

// checkStep checks every per-round invariant of Next between prev and next.
func checkStep(prev, next Table, live []NodeID, synced SyncState, s Settings) error {
	if err := next.Check(live, s); err != nil {
		return err
	}
	isLive := map[NodeID]bool{}
	for _, n := range live {
		isLive[n] = true
	}
	changed := len(prev.Slots) != len(next.Slots)
	for i := range next.Slots {
		if i >= len(prev.Slots) {
			break
		}
		p, q := prev.Slots[i], next.Slots[i]
		if p.Leader != q.Leader || !slices.Equal(p.Followers, q.Followers) || p.LeaderEpoch != q.LeaderEpoch {
			changed = true
		}
	}
	switch {
	case changed && next.Epoch != prev.Epoch+1:
		return fmt.Errorf("table changed but epoch went %d -> %d", prev.Epoch, next.Epoch)
	case !changed && next.Epoch != prev.Epoch:
		return fmt.Errorf("table unchanged but epoch went %d -> %d", prev.Epoch, next.Epoch)
	}
	if len(isLive) > 0 && len(next.Slots) != s.Count {
		return fmt.Errorf("%d slots with live nodes, want %d", len(next.Slots), s.Count)
	}
	want := max(0, min(s.Replicas-1, len(isLive)-1))
	for i := range next.Slots {
		q := next.Slots[i]
		var p Slot
		if i < len(prev.Slots) {
			p = prev.Slots[i]
		}
		if len(isLive) > 0 && q.Leader == "" {
			return fmt.Errorf("slot %d has no leader with %d live nodes", i, len(isLive))
		}
		if q.LeaderEpoch < p.LeaderEpoch {
			return fmt.Errorf("slot %d leader epoch went back %d -> %d", i, p.LeaderEpoch, q.LeaderEpoch)
		}
		switch {
		case q.Leader != p.Leader && q.Leader != "" && q.LeaderEpoch != p.LeaderEpoch+1:
			return fmt.Errorf("slot %d leader %q -> %q but leader epoch %d -> %d", i, p.Leader, q.Leader, p.LeaderEpoch, q.LeaderEpoch)
		case q.Leader == p.Leader && q.LeaderEpoch != p.LeaderEpoch:
			return fmt.Errorf("slot %d leader kept but leader epoch %d -> %d", i, p.LeaderEpoch, q.LeaderEpoch)
		}
		wasSynced := func(n NodeID) bool {
			return slices.Contains(p.Followers, n) && synced.Synced(ID(i), n)
		}
		var syncedLive []NodeID
		for _, f := range p.Followers {
			if isLive[f] && wasSynced(f) {
				syncedLive = append(syncedLive, f)
			}
		}
		if q.Leader != p.Leader && q.Leader != "" {
			if isLive[p.Leader] && !wasSynced(q.Leader) {
				return fmt.Errorf("slot %d moved from live %q to %q, which was not a synced follower", i, p.Leader, q.Leader)
			}
			if !isLive[p.Leader] && len(syncedLive) > 0 && !slices.Contains(syncedLive, q.Leader) {
				return fmt.Errorf("slot %d lost leader %q; new leader %q is not one of the synced followers %v", i, p.Leader, q.Leader, syncedLive)
			}
		}
		// Copies with the data that survive: never fewer than could be kept.
		holders := syncedLive
		if isLive[p.Leader] {
			holders = append(slices.Clone(holders), p.Leader)
		}
		kept := 0
		for _, h := range holders {
			if q.Has(h) {
				kept++
			}
		}
		if limit := min(len(holders), want+1); kept < limit {
			return fmt.Errorf("slot %d keeps %d of the copies with data %v, want at least %d: %+v", i, kept, holders, limit, q)
		}
	}
	if m := voluntaryMoves(prev, next, live, s); m > s.MaxMoves {
		return fmt.Errorf("%d voluntary moves, cap %d", m, s.MaxMoves)
	}
	return nil
}
