package meta

import (
	"fmt"
	"testing"

	"github.com/strata-registry/strata/internal/slot"
)

// settledState returns a state whose table is the arranger's fixed point
// for nodes with every follower synced, and the table history of the
// rounds that led there.
func settledState(t testing.TB, count int, nodes []slot.NodeID) *State {
	t.Helper()
	settings := slot.Settings{Count: count, Replicas: 2, MaxMoves: slot.DefaultMaxMoves}
	st := &State{ClusterID: "c", Settings: settings, Members: map[string]Member{}, Sync: slot.SyncState{}}
	for range 200 {
		next, err := slot.Next(st.Table, nodes, st.Sync, settings)
		if err != nil {
			t.Fatal(err)
		}
		if next.Epoch == st.Table.Epoch {
			return st
		}
		st = withTable(st, next)
		st.Sync = syncedAll(st.Table)
	}
	t.Fatal("the arranger did not settle in 200 rounds")
	return nil
}

// withTable returns st with t as its new table, as opTable applies it.
func withTable(st *State, t slot.Table) *State {
	next := *st
	next.Table = t
	next.history = append(append([]slot.Table(nil), st.history...), t)
	return &next
}

func syncedAll(t slot.Table) slot.SyncState {
	out := slot.SyncState{}
	for _, s := range t.Slots {
		for _, f := range s.Followers {
			if out[s.ID] == nil {
				out[s.ID] = map[slot.NodeID]bool{}
			}
			out[s.ID][f] = true
		}
	}
	return out
}

func ids(names ...string) []slot.NodeID {
	out := make([]slot.NodeID, len(names))
	for i, n := range names {
		out[i] = slot.NodeID(n)
	}
	return out
}

func TestMotionCounts_SettledIsZero_NewNodeAndUnsyncedCopiesCount(t *testing.T) {
	three := ids("d0", "d1", "d2")
	st := settledState(t, 16, three)
	if p, s, err := motionCounts(st, three, slot.DefaultMaxMoves); p != 0 || s != 0 || err != nil {
		t.Fatalf("settled table: %d pending, %d syncing, err %v; want 0, 0", p, s, err)
	}

	// A fourth node joins: the next round moves slots to it, capped.
	four := ids("d0", "d1", "d2", "d3")
	p32, _, err := motionCounts(st, four, slot.DefaultMaxMoves)
	if err != nil || p32 == 0 {
		t.Fatalf("a node joined: %d pending moves, err %v; want some", p32, err)
	}
	if p1, _, _ := motionCounts(st, four, 1); p1 == 0 || p1 > 2 || p1 >= p32 {
		t.Errorf("MaxMoves 1: %d pending rows, want 1 or 2 (a move and its drop), fewer than uncapped %d", p1, p32)
	}

	// A follower's report is dropped: one copy syncing, and nothing to
	// move while it syncs.
	unsynced := *st
	unsynced.Sync = syncedAll(st.Table)
	row := st.Table.Slots[5]
	delete(unsynced.Sync[row.ID], row.Followers[0])
	if p, s, err := motionCounts(&unsynced, three, slot.DefaultMaxMoves); s != 1 || err != nil {
		t.Errorf("one copy unsynced: %d pending, %d syncing, err %v; want 1 syncing", p, s, err)
	}

	// A dead node (missing from the live list): its slots fail over.
	if p, _, _ := motionCounts(st, ids("d0", "d1"), slot.DefaultMaxMoves); p == 0 {
		t.Error("a node gone: no pending moves")
	}

	// No table yet, a data node present: the first table is all pending.
	empty := &State{ClusterID: "c", Settings: st.Settings, Members: map[string]Member{}}
	if p, _, _ := motionCounts(empty, three, slot.DefaultMaxMoves); p != 16 {
		t.Errorf("before the first table: %d pending, want 16", p)
	}
	if p, s, err := motionCounts(empty, nil, slot.DefaultMaxMoves); p != 0 || s != 0 || err != nil {
		t.Errorf("no data node, no table: %d, %d, %v; want nothing", p, s, err)
	}
}

func TestMotionCache_RecomputesOnlyWhenStateNodesOrCapChange(t *testing.T) {
	three := ids("d0", "d1", "d2")
	st := settledState(t, 16, three)
	var c motionCache
	if p, _, _ := c.counts(st, three, 32); p != 0 {
		t.Fatalf("settled: %d pending", p)
	}
	// The same state pointer with other nodes must not answer from the
	// cache, nor another state, nor another cap.
	if p, _, _ := c.counts(st, ids("d0", "d1", "d2", "d3"), 32); p == 0 {
		t.Error("new node list answered from the cache")
	}
	if p, _, _ := c.counts(st, three, 32); p != 0 {
		t.Error("back to the old node list: stale answer")
	}
	unsynced := *st
	unsynced.Sync = slot.SyncState{}
	if _, s, _ := c.counts(&unsynced, three, 32); s == 0 {
		t.Error("a new state answered from the cache")
	}
	four := ids("d0", "d1", "d2", "d3")
	p32, _, _ := c.counts(st, four, 32)
	if p1, _, _ := c.counts(st, four, 1); p1 >= p32 {
		t.Errorf("a new cap answered from the cache: %d pending with cap 1, %d with 32", p1, p32)
	}
}

func TestHandoversInFlight_ReportsHoldForTheirLeadershipOnly(t *testing.T) {
	three := ids("d0", "d1", "d2")
	base := settledState(t, 8, three)
	e0 := base.Table.Epoch
	// Move slot 3's leadership to its follower in a new table (epoch e0+1),
	// as a planned move does.
	moved := base.Table.Clone()
	moved.Epoch++
	sl := &moved.Slots[3]
	oldLeader := sl.Leader
	sl.Leader, sl.Followers = sl.Followers[0], []slot.NodeID{oldLeader}
	sl.LeaderEpoch++
	st := withTable(base, moved)
	newLeader := string(st.Table.Slots[3].Leader)
	leadsOf := func(n string) (out []slot.ID) {
		for _, s := range st.Table.Slots {
			if string(s.Leader) == n {
				out = append(out, s.ID)
			}
		}
		return out
	}
	report := func(epoch uint64, slots ...slot.ID) handoverReport {
		r := handoverReport{epoch: epoch, slots: map[slot.ID]bool{}}
		for _, s := range slots {
			r.slots[s] = true
		}
		return r
	}
	// reportsAll has every node report nothing in flight at epoch, except
	// override.
	reportsAll := func(epoch uint64, override map[string]handoverReport) map[string]handoverReport {
		out := map[string]handoverReport{}
		for _, n := range three {
			out[string(n)] = report(epoch)
		}
		for k, v := range override {
			out[k] = v
		}
		return out
	}
	other := leadsOf(newLeader)[0]
	if other == 3 {
		other = leadsOf(newLeader)[1]
	}
	for _, tc := range []struct {
		name                 string
		reports              map[string]handoverReport
		reported, unreported int
	}{
		{"every leader reports nothing at the current table", reportsAll(e0+1, nil), 0, 0},
		{"the new leader reports slot 3 in flight", reportsAll(e0+1, map[string]handoverReport{newLeader: report(e0+1, 3)}), 1, 0},
		{"the new leader reported before the move: slot 3 not reported yet",
			reportsAll(e0, nil), 0, 1},
		{"a report before the move still holds for an unchanged leadership",
			reportsAll(e0, map[string]handoverReport{newLeader: report(e0, other)}), 1, 1},
		{"a slot listed that the node does not lead counts nothing",
			reportsAll(e0+1, map[string]handoverReport{string(oldLeader): report(e0+1, 3)}), 0, 0},
		{"no report from a leader: all its slots unreported",
			func() map[string]handoverReport { r := reportsAll(e0+1, nil); delete(r, newLeader); return r }(), 0, len(leadsOf(newLeader))},
		{"a report older than the table history: unreported",
			reportsAll(e0+1, map[string]handoverReport{newLeader: report(1)}), 0, len(leadsOf(newLeader))},
		{"epoch 0 (no table, or a node without the field) says nothing",
			reportsAll(e0+1, map[string]handoverReport{newLeader: report(0, 3)}), 0, 0},
		{"a report ahead of this table is taken as it is",
			reportsAll(e0+1, map[string]handoverReport{newLeader: report(e0+5, 3)}), 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := st
			if tc.name == "a report older than the table history: unreported" {
				// Only the last table is held, as after a snapshot restore.
				cp := *st
				cp.history = cp.history[len(cp.history)-1:]
				st = &cp
			}
			r, u := handoversInFlight(st, tc.reports)
			if r != tc.reported || u != tc.unreported {
				t.Errorf("reported %d, unreported %d; want %d, %d", r, u, tc.reported, tc.unreported)
			}
		})
	}
	// A slot without a leader is nobody's handover.
	noLeader := moved.Clone()
	noLeader.Epoch++
	noLeader.Slots[3].Leader, noLeader.Slots[3].Followers = "", nil
	if r, u := handoversInFlight(withTable(st, noLeader), map[string]handoverReport{}); r != 0 || u != len(noLeader.Slots)-1 {
		t.Errorf("no reports, one slot without leader: %d reported, %d unreported; want 0, %d", r, u, len(noLeader.Slots)-1)
	}
}

// BenchmarkMotionCounts is the cost of /readyz's slot counts without the
// cache: one arranger round plus a pass over the table.
func BenchmarkMotionCounts(b *testing.B) {
	nodes := ids("d0", "d1", "d2", "d3", "d4")
	for _, count := range []int{256, slot.MaxCount} {
		st := settledState(b, count, nodes)
		b.Run(fmt.Sprintf("slots=%d", count), func(b *testing.B) {
			for b.Loop() {
				if _, _, err := motionCounts(st, nodes, slot.DefaultMaxMoves); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
