package slot

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestNext_FirstTable_BalancedAtOnce(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5} {
		for _, replicas := range []int{1, 2, 3} {
			t.Run(fmt.Sprintf("nodes=%d,replicas=%d", n, replicas), func(t *testing.T) {
				s := Settings{Count: 256, Replicas: replicas, MaxMoves: 32}
				live := nodeIDs("a", "b", "c", "d", "e")[:n]
				slices.Reverse(live) // order of live does not matter
				tbl := mustNext(t, Table{}, live, nil, s)
				if tbl.Epoch != 1 {
					t.Errorf("Epoch = %d, want 1", tbl.Epoch)
				}
				slices.Sort(live)
				want := min(replicas-1, n-1)
				for i, sl := range tbl.Slots {
					if sl.Leader != live[i%n] || sl.LeaderEpoch != 1 || len(sl.Followers) != want {
						t.Fatalf("slot %d = %+v, want leader %s (round-robin), leader epoch 1, %d followers", i, sl, live[i%n], want)
					}
				}
				maxL, minL, maxF, minF := spread(tbl, live)
				if maxL-minL > 1 || maxF-minF > 1 {
					t.Errorf("leaders per node %d..%d, followers %d..%d; want each within 1", minL, maxL, minF, maxF)
				}
				// Balanced already: nothing to do, synced or not.
				for _, synced := range []SyncState{nil, syncAll(tbl)} {
					if next := mustNext(t, tbl, live, synced, s); next.Epoch != tbl.Epoch || !next.Equal(tbl) {
						t.Errorf("second round changed a balanced first table (epoch %d -> %d)", tbl.Epoch, next.Epoch)
					}
				}
			})
		}
	}
}

func TestNext_NoLiveNodes(t *testing.T) {
	s := Settings{Count: 4, Replicas: 2, MaxMoves: 4}
	t.Run("zero table stays zero", func(t *testing.T) {
		got, err := Next(Table{}, nil, nil, s)
		if err != nil || got.Epoch != 0 || got.Slots != nil {
			t.Fatalf("Next(zero, no nodes) = %+v, %v; want the zero table", got, err)
		}
	})
	t.Run("everyone dies then one returns", func(t *testing.T) {
		live := nodeIDs("a", "b")
		tbl := mustNext(t, Table{}, live, nil, s)
		dark := mustNext(t, tbl, nil, syncAll(tbl), s)
		if dark.Epoch != tbl.Epoch+1 || dark.Leaderless() != s.Count {
			t.Fatalf("all dead: epoch %d -> %d, %d leaderless slots; want +1 and %d", tbl.Epoch, dark.Epoch, dark.Leaderless(), s.Count)
		}
		for i, sl := range dark.Slots {
			if sl.Followers != nil || sl.LeaderEpoch != tbl.Slots[i].LeaderEpoch {
				t.Fatalf("slot %d = %+v; want no followers and leader epoch kept at %d", i, sl, tbl.Slots[i].LeaderEpoch)
			}
		}
		if again := mustNext(t, dark, nil, nil, s); again.Epoch != dark.Epoch {
			t.Fatalf("still dark: epoch moved %d -> %d", dark.Epoch, again.Epoch)
		}
		back := mustNext(t, dark, nodeIDs("b"), nil, s)
		for i, sl := range back.Slots {
			if sl.Leader != "b" || sl.LeaderEpoch != dark.Slots[i].LeaderEpoch+1 {
				t.Fatalf("slot %d = %+v after b returned; want leader b, leader epoch %d", i, sl, dark.Slots[i].LeaderEpoch+1)
			}
		}
	})
}

// TestNext_DeadLeader_Failover covers who takes over a slot whose leader died.
// Slot 0 is the one under test; slot 1 gives c one leader already.
func TestNext_DeadLeader_Failover(t *testing.T) {
	s := Settings{Count: 2, Replicas: 3, MaxMoves: 1}
	table := func(f0 ...string) Table {
		return Table{Epoch: 7, Slots: []Slot{
			{ID: 0, Leader: "a", LeaderEpoch: 3, Followers: nodeIDs(f0...)},
			{ID: 1, Leader: "c", LeaderEpoch: 5, Followers: nodeIDs("a", "b")},
		}}
	}
	for _, tc := range []struct {
		name   string
		prev   Table
		live   []NodeID
		synced []NodeID // followers of slot 0 that report it synced
		want   NodeID
	}{
		{"the synced follower, though not first by ID", table("b", "d"), nodeIDs("b", "c", "d"), nodeIDs("d"), "d"},
		{"synced followers: the one leading fewest", table("c", "d"), nodeIDs("b", "c", "d"), nodeIDs("c", "d"), "d"},
		{"synced followers, tie: smallest ID", table("b", "d"), nodeIDs("b", "c", "d"), nodeIDs("b", "d"), "b"},
		{"no synced follower: a surviving follower, not a fresh node", table("c", "d"), nodeIDs("b", "c", "d"), nil, "d"},
		{"synced follower dead too: the unsynced survivor", table("c", "d"), nodeIDs("b", "c"), nodeIDs("d"), "c"},
		{"no follower survives: the live node leading fewest", table("d"), nodeIDs("b", "c"), nodeIDs("d"), "b"},
		{"stale report from a node that was not a follower", table("c"), nodeIDs("b", "c"), nodeIDs("b"), "c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synced := SyncState{}
			for _, n := range tc.synced {
				markSynced(synced, 0, n)
			}
			next := mustNext(t, tc.prev, tc.live, synced, s)
			if err := checkStep(tc.prev, next, tc.live, synced, s); err != nil {
				t.Fatal(err)
			}
			got := next.Slots[0]
			if got.Leader != tc.want || got.LeaderEpoch != 4 || next.Epoch != 8 {
				t.Fatalf("slot 0 = %+v, epoch %d; want leader %s, leader epoch 4, epoch 8", got, next.Epoch, tc.want)
			}
			if slices.Contains(got.Followers, tc.want) || slices.Contains(got.Followers, "a") {
				t.Fatalf("slot 0 followers %v still list the new or the dead leader", got.Followers)
			}
		})
	}
}

func TestNext_Failover_NotCappedByMaxMoves(t *testing.T) {
	s := Settings{Count: 256, Replicas: 2, MaxMoves: 1}
	live := nodeIDs("a", "b", "c")
	tbl, _ := converge(t, Table{}, live, s, 2)
	next := mustNext(t, tbl, live[1:], syncAll(tbl), s)
	if err := checkStep(tbl, next, live[1:], syncAll(tbl), s); err != nil {
		t.Fatal(err)
	}
	for _, sl := range next.Slots {
		if len(sl.Followers) != 1 {
			t.Fatalf("slot %d = %+v; want a leader and one follower in the same round", sl.ID, sl)
		}
	}
}

// TestNext_JoiningNode_FollowsFirst_LeadsOnlyWhenSynced: a fourth node is
// given copies first, leads nothing while it reports nothing synced (and the
// table settles rather than churning), then takes its share of leaders, each
// only once it had reported that slot synced.
func TestNext_JoiningNode_FollowsFirst_LeadsOnlyWhenSynced(t *testing.T) {
	s := Settings{Count: 256, Replicas: 2, MaxMoves: 32}
	live := nodeIDs("a", "b", "c")
	tbl, _ := converge(t, Table{}, live, s, 2)
	live = append(live, "d")

	settled := false
	for round := range 20 {
		synced := syncAll(tbl)
		for id := range synced {
			delete(synced[id], "d")
		}
		next := mustNext(t, tbl, live, synced, s)
		if err := checkStep(tbl, next, live, synced, s); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if l := next.Loads()["d"]; l.Leaders != 0 {
			t.Fatalf("round %d: d leads %d slots before reporting any synced", round, l.Leaders)
		}
		if next.Epoch == tbl.Epoch {
			settled = true
			break
		}
		tbl = next
	}
	if !settled {
		t.Fatal("table kept changing while d was syncing")
	}
	if l := tbl.Loads()["d"]; l.Followers == 0 {
		t.Fatal("d got no copies to sync")
	}

	tbl, rounds := converge(t, tbl, live, s, 64) // checkStep: d only takes synced slots
	if err := checkBalanced(tbl, live, s); err != nil {
		t.Fatalf("after %d synced rounds: %v", rounds, err)
	}
	if l := tbl.Loads()["d"]; l.Leaders != 64 || l.Followers != 64 {
		t.Fatalf("d carries %+v, want 64 leaders and 64 followers", l)
	}
}

func TestNext_MaxMoves_CapsVoluntaryChangesPerRound(t *testing.T) {
	for _, cap := range []int{1, 3, 32} {
		t.Run(fmt.Sprint(cap), func(t *testing.T) {
			s := Settings{Count: 64, Replicas: 3, MaxMoves: cap}
			live := nodeIDs("a", "b", "c", "d")
			tbl, _ := converge(t, Table{}, live, s, 2)
			live = append(live, "e", "f")
			hit := false
			for round := range 500 {
				synced := syncAll(tbl)
				next := mustNext(t, tbl, live, synced, s)
				moves := voluntaryMoves(tbl, next, live, s)
				if moves > cap {
					t.Fatalf("round %d: %d voluntary moves, cap %d", round, moves, cap)
				}
				hit = hit || moves == cap
				if next.Epoch == tbl.Epoch {
					if !hit {
						t.Fatal("the cap was never reached, so the test proves nothing")
					}
					if err := checkBalanced(next, live, s); err != nil {
						t.Fatal(err)
					}
					return
				}
				tbl = next
			}
			t.Fatal("did not settle in 500 rounds")
		})
	}
}

// TestNext_FollowerMove_KeepsOldCopyUntilNewSynced: b follows three slots,
// c none; one copy moves from b to c, make-before-break.
func TestNext_FollowerMove_KeepsOldCopyUntilNewSynced(t *testing.T) {
	s := Settings{Count: 4, Replicas: 2, MaxMoves: 4}
	live := nodeIDs("a", "b", "c")
	prev := Table{Epoch: 10, Slots: []Slot{
		{ID: 0, Leader: "a", LeaderEpoch: 1, Followers: nodeIDs("b")},
		{ID: 1, Leader: "b", LeaderEpoch: 1, Followers: nodeIDs("a")},
		{ID: 2, Leader: "c", LeaderEpoch: 1, Followers: nodeIDs("b")},
		{ID: 3, Leader: "a", LeaderEpoch: 1, Followers: nodeIDs("b")},
	}}

	adding := mustNext(t, prev, live, syncAll(prev), s)
	if adding.Epoch != 11 || !slices.Equal(adding.Slots[0].Followers, nodeIDs("b", "c")) {
		t.Fatalf("round 1: slot 0 = %+v, epoch %d; want followers [b c] (c added, b kept), epoch 11", adding.Slots[0], adding.Epoch)
	}
	for _, i := range []int{1, 2, 3} {
		if !adding.Slots[i].Equal(prev.Slots[i]) {
			t.Fatalf("round 1: slot %d changed to %+v; one move was enough", i, adding.Slots[i])
		}
	}

	synced := syncAll(prev) // c has not caught up yet
	waiting := mustNext(t, adding, live, synced, s)
	if waiting.Epoch != adding.Epoch {
		t.Fatalf("round 2: table changed (epoch %d -> %d) while c was still syncing: %+v", adding.Epoch, waiting.Epoch, waiting.Slots[0])
	}

	markSynced(synced, 0, "c")
	done := mustNext(t, waiting, live, synced, s)
	if done.Epoch != 12 || !slices.Equal(done.Slots[0].Followers, nodeIDs("c")) || done.Slots[0].Leader != "a" {
		t.Fatalf("round 3: slot 0 = %+v, epoch %d; want leader a, followers [c], epoch 12", done.Slots[0], done.Epoch)
	}
	if again := mustNext(t, done, live, syncAll(done), s); again.Epoch != done.Epoch {
		t.Fatalf("round 4: settled table changed: %+v", again)
	}
}

// TestNext_LeaderTransfer_OldLeaderStaysFollower: with replicas 2 and two
// nodes, b holds every slot as a follower; once synced it takes half of the
// leaders, a staying on as follower of each.
func TestNext_LeaderTransfer_OldLeaderStaysFollower(t *testing.T) {
	s := Settings{Count: 8, Replicas: 2, MaxMoves: 8}
	prev := mustNext(t, Table{}, nodeIDs("a"), nil, s)
	live := nodeIDs("a", "b")
	joined := mustNext(t, prev, live, nil, s)
	for _, sl := range joined.Slots {
		if sl.Leader != "a" || !slices.Equal(sl.Followers, nodeIDs("b")) {
			t.Fatalf("after join: slot %+v; want leader a, follower b", sl)
		}
	}
	if again := mustNext(t, joined, live, nil, s); again.Epoch != joined.Epoch {
		t.Fatal("table changed while b had synced nothing")
	}
	moved := mustNext(t, joined, live, syncAll(joined), s)
	transfers := 0
	for i, sl := range moved.Slots {
		if sl.Leader == "b" {
			transfers++
			if !slices.Equal(sl.Followers, nodeIDs("a")) || sl.LeaderEpoch != joined.Slots[i].LeaderEpoch+1 {
				t.Fatalf("transferred slot %+v; want follower a, leader epoch %d", sl, joined.Slots[i].LeaderEpoch+1)
			}
		}
	}
	if transfers != 4 {
		t.Fatalf("%d slots moved to b, want 4", transfers)
	}
}

func TestNext_ReplicasOne_MovesLeaderViaExtraCopy(t *testing.T) {
	s := Settings{Count: 4, Replicas: 1, MaxMoves: 4}
	prev := mustNext(t, Table{}, nodeIDs("a"), nil, s)
	live := nodeIDs("a", "b")
	copying := mustNext(t, prev, live, nil, s)
	extras := 0
	for _, sl := range copying.Slots {
		if sl.Leader != "a" {
			t.Fatalf("slot %+v moved to b before b had the data", sl)
		}
		extras += len(sl.Followers)
	}
	if extras != 2 {
		t.Fatalf("%d extra copies on b, want 2", extras)
	}
	tbl, _ := converge(t, copying, live, s, 4)
	for _, sl := range tbl.Slots {
		if len(sl.Followers) != 0 {
			t.Fatalf("settled slot %+v keeps an extra copy", sl)
		}
	}
	if l := tbl.Loads(); l["a"].Leaders != 2 || l["b"].Leaders != 2 {
		t.Fatalf("loads %v, want 2 leaders each", l)
	}
}

// TestNext_StuckFollower_SettlesWithoutChurn: followers that never finish
// syncing some slots must not make the arranger move copies back and forth:
// with sync reports that stop changing, the table reaches a fixed point.
func TestNext_StuckFollower_SettlesWithoutChurn(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for trial := range 60 {
		s := Settings{Count: []int{3, 33, 256}[rng.IntN(3)], Replicas: 1 + rng.IntN(4), MaxMoves: 1 + rng.IntN(40)}
		var live []NodeID
		for i := range 1 + rng.IntN(6) {
			live = append(live, NodeID(fmt.Sprintf("n%d", i)))
		}
		tbl, _ := converge(t, Table{}, live, s, 2)
		live = append(live[rng.IntN(2):], "y", "z")
		type copyOf struct {
			id ID
			n  NodeID
		}
		never := map[copyOf]bool{} // copies that never finish syncing
		for i := range s.Count {
			for _, n := range live {
				// z never syncs anything; the others miss a fifth of slots.
				if n == "z" || rng.IntN(5) == 0 {
					never[copyOf{ID(i), n}] = true
				}
			}
		}
		for round := 0; ; round++ {
			if round == 1000 {
				t.Fatalf("trial %d (%+v): still changing after 1000 rounds", trial, s)
			}
			synced := SyncState{}
			for _, sl := range tbl.Slots {
				for _, f := range sl.Followers {
					if !never[copyOf{sl.ID, f}] {
						markSynced(synced, sl.ID, f)
					}
				}
			}
			next := mustNext(t, tbl, live, synced, s)
			if err := checkStep(tbl, next, live, synced, s); err != nil {
				t.Fatalf("trial %d round %d: %v", trial, round, err)
			}
			if next.Epoch == tbl.Epoch {
				break
			}
			tbl = next
		}
	}
}

func TestNext_Deterministic(t *testing.T) {
	s := Settings{Count: 256, Replicas: 3, MaxMoves: 8}
	live := nodeIDs("n1", "n2", "n3", "n4", "n5")
	tbl, _ := converge(t, Table{}, live, s, 2)
	// A node leaves and one joins, with half the followers synced.
	rng := rand.New(rand.NewPCG(1, 2))
	synced := partialSync(rng, tbl, SyncState{}, map[NodeID]bool{"n1": true, "n2": true, "n3": true, "n4": true, "n5": true})
	live = nodeIDs("n2", "n3", "n4", "n5", "n6")
	want := mustNext(t, tbl, live, synced, s)
	for range 20 {
		shuffled := append(slices.Clone(live), live[rng.IntN(len(live))])
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		// Rebuild synced so that its maps are filled in another order.
		copied := SyncState{}
		for id, m := range synced {
			for n, ok := range m {
				if ok {
					markSynced(copied, id, n)
				}
			}
		}
		if got := mustNext(t, tbl, shuffled, copied, s); !got.Equal(want) {
			t.Fatalf("live %v gave a different table", shuffled)
		}
	}
}

func TestNext_DoesNotModifyInputs(t *testing.T) {
	s := Settings{Count: 16, Replicas: 3, MaxMoves: 8}
	live := nodeIDs("c", "a", "b")
	tbl, _ := converge(t, Table{}, live, s, 2)
	before, liveBefore := tbl.Clone(), slices.Clone(live)
	mustNext(t, tbl, append(live, "d"), syncAll(tbl), s)
	if !tbl.Equal(before) || !slices.Equal(live, liveBefore) {
		t.Fatal("Next modified its inputs")
	}
}

func TestNext_BadInputs(t *testing.T) {
	good := Settings{Count: 4, Replicas: 2, MaxMoves: 1}
	four, _ := converge(t, Table{}, nodeIDs("a", "b"), good, 2)
	swapped := four.Clone()
	swapped.Slots[1], swapped.Slots[2] = swapped.Slots[2], swapped.Slots[1]
	for _, tc := range []struct {
		name string
		prev Table
		live []NodeID
		s    Settings
		want error
	}{
		{"zero settings", Table{}, nodeIDs("a"), Settings{}, ErrBadCount},
		{"count too big", Table{}, nodeIDs("a"), Settings{Count: MaxCount + 1, Replicas: 2, MaxMoves: 1}, ErrBadCount},
		{"no replicas", Table{}, nodeIDs("a"), Settings{Count: 4, Replicas: 0, MaxMoves: 1}, ErrBadReplicas},
		{"too many replicas", Table{}, nodeIDs("a"), Settings{Count: 4, Replicas: MaxReplicas + 1, MaxMoves: 1}, ErrBadReplicas},
		{"no moves", Table{}, nodeIDs("a"), Settings{Count: 4, Replicas: 2, MaxMoves: 0}, ErrBadMaxMoves},
		{"table for another count", four, nodeIDs("a"), Settings{Count: 8, Replicas: 2, MaxMoves: 1}, ErrBadTable},
		{"slots out of order", swapped, nodeIDs("a"), good, ErrBadTable},
		{"empty node ID", four, nodeIDs("a", ""), good, ErrBadNode},
		{"empty node ID, no table", Table{}, nodeIDs(""), good, ErrBadNode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Next(tc.prev, tc.live, nil, tc.s)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Next error = %v, want %v", err, tc.want)
			}
			if got.Slots != nil {
				t.Fatalf("Next returned a table with an error: %+v", got)
			}
		})
	}
}

// TestNext_MalformedTable_Heals: a table that breaks the invariants (as a
// hand edit or an old bug might leave) is repaired in one round, never a
// panic.
func TestNext_MalformedTable_Heals(t *testing.T) {
	s := Settings{Count: 3, Replicas: 3, MaxMoves: 1}
	prev := Table{Epoch: 4, Slots: []Slot{
		{ID: 0, Leader: "a", LeaderEpoch: 2, Followers: nodeIDs("c", "a", "b", "c", "")},
		{ID: 1, Leader: "", LeaderEpoch: 9, Followers: nodeIDs("zz", "b")},
		{ID: 2, Leader: "gone", Followers: nil},
	}}
	live := nodeIDs("a", "b", "c")
	next := mustNext(t, prev, live, nil, s)
	if next.Epoch != 5 {
		t.Fatalf("Epoch = %d, want 5", next.Epoch)
	}
	if got := next.Slots[0]; got.Leader != "a" || got.LeaderEpoch != 2 || !slices.Equal(got.Followers, nodeIDs("b", "c")) {
		t.Fatalf("slot 0 = %+v; want a [b c], leader epoch kept", got)
	}
	if got := next.Slots[1]; got.Leader != "b" || got.LeaderEpoch != 10 {
		t.Fatalf("slot 1 = %+v; want its surviving follower b, leader epoch 10", got)
	}
}

// TestNext_GarbageTables_NeverPanic feeds random, mostly invalid tables and
// inputs; Next must return an error or a table that passes Check.
func TestNext_GarbageTables_NeverPanic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pool := nodeIDs("", "a", "b", "c", "d", "e")
	pick := func() []NodeID {
		out := make([]NodeID, rng.IntN(5))
		for i := range out {
			out[i] = pool[rng.IntN(len(pool))]
		}
		return out
	}
	for range 2000 {
		s := Settings{Count: rng.IntN(6), Replicas: rng.IntN(5), MaxMoves: rng.IntN(3)}
		var prev Table
		if rng.IntN(4) != 0 {
			prev.Epoch = rng.Uint64()
			prev.Slots = make([]Slot, rng.IntN(6))
			for i := range prev.Slots {
				prev.Slots[i] = Slot{ID: ID(i), Leader: pool[rng.IntN(len(pool))], LeaderEpoch: rng.Uint64N(10), Followers: pick()}
				if rng.IntN(20) == 0 {
					prev.Slots[i].ID = ID(rng.IntN(8))
				}
			}
		}
		synced := SyncState{}
		for range rng.IntN(10) {
			markSynced(synced, ID(rng.IntN(6)), pool[rng.IntN(len(pool))])
		}
		live := pick()
		next, err := Next(prev, live, synced, s)
		if err != nil {
			continue
		}
		if err := next.Check(live, s); err != nil {
			t.Fatalf("Next(%+v, %v, %v) = %+v, which fails Check: %v", prev, live, s, next, err)
		}
	}
}

// BenchmarkNext: 256 slots on five nodes, one of which leaves.
func BenchmarkNext(b *testing.B) {
	s := DefaultSettings()
	live := nodeIDs("n1", "n2", "n3", "n4", "n5")
	tbl, _ := converge(b, Table{}, live, s, 2)
	synced := syncAll(tbl)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Next(tbl, live[1:], synced, s); err != nil {
			b.Fatal(err)
		}
	}
}

// TestNext_DropSurplus_KeepsFollowerWaitingToLead: c has synced extra copies
// of slots 0 and 1, added so it can take them from a, which leads five of six
// slots. MaxMoves allows one transfer per round; the other slot's extra copy
// must survive the surplus drop (though c follows the most slots) so that
// the slot can change hands next round instead of being copied again.
func TestNext_DropSurplus_KeepsFollowerWaitingToLead(t *testing.T) {
	s := Settings{Count: 6, Replicas: 2, MaxMoves: 1}
	live := nodeIDs("a", "b", "c")
	prev := Table{Epoch: 1, Slots: []Slot{
		{ID: 0, Leader: "a", LeaderEpoch: 1, Followers: nodeIDs("b", "c")},
		{ID: 1, Leader: "a", LeaderEpoch: 1, Followers: nodeIDs("b", "c")},
		{ID: 2, Leader: "a", LeaderEpoch: 1, Followers: nodeIDs("c")},
		{ID: 3, Leader: "a", LeaderEpoch: 1, Followers: nodeIDs("c")},
		{ID: 4, Leader: "b", LeaderEpoch: 1, Followers: nodeIDs("c")},
		{ID: 5, Leader: "a", LeaderEpoch: 1, Followers: nodeIDs("b")},
	}}
	next := mustNext(t, prev, live, syncAll(prev), s)
	if got := next.Slots[0]; got.Leader != "c" {
		t.Fatalf("slot 0 = %+v; want it transferred to its synced follower c", got)
	}
	if got := next.Slots[1]; got.Leader != "a" || !slices.Contains(got.Followers, "c") {
		t.Fatalf("slot 1 = %+v; want leader a (cap reached) and c kept as its follower", got)
	}
	then := mustNext(t, next, live, syncAll(next), s)
	if got := then.Slots[1]; got.Leader == "a" {
		t.Fatalf("next round slot 1 = %+v; want it transferred to a synced follower", got)
	}
}
