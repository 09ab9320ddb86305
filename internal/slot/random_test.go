package slot

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestNext_RandomChurn_KeepsInvariantsAndConverges drives Next through a few
// hundred rounds of random joins, leaves, total outages and partial sync
// reports, checking every per-round invariant, then holds membership stable
// with full sync and checks that the table settles, balanced, and stays put.
func TestNext_RandomChurn_KeepsInvariantsAndConverges(t *testing.T) {
	for _, tc := range []struct {
		replicas, moves int
		seed            uint64
	}{
		{replicas: 1, moves: 4, seed: 1},
		{replicas: 2, moves: 8, seed: 2},
		{replicas: 2, moves: 1, seed: 3},
		{replicas: 3, moves: 8, seed: 4},
		{replicas: 4, moves: 16, seed: 5},
	} {
		t.Run(fmt.Sprintf("replicas=%d,moves=%d", tc.replicas, tc.moves), func(t *testing.T) {
			randomChurn(t, tc.replicas, tc.moves, tc.seed)
		})
	}
}

func randomChurn(t *testing.T, replicas, moves int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5107))
	s := Settings{Count: 256, Replicas: replicas, MaxMoves: moves}
	names := nodeIDs("n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7")
	up := map[NodeID]bool{}
	var tbl Table
	synced := SyncState{}
	for step := range 300 {
		// Mostly rounds where only sync reports change, some joins and
		// leaves, and now and then every data node gone at once.
		switch r := rng.IntN(60); {
		case r == 0:
			clear(up)
		case r < 15:
			up[names[rng.IntN(len(names))]] = true
		case r < 25:
			delete(up, names[rng.IntN(len(names))])
		}
		var live []NodeID
		for _, n := range names {
			if up[n] {
				live = append(live, n)
				if rng.IntN(4) == 0 {
					live = append(live, n) // duplicates are allowed
				}
			}
		}
		rng.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })

		next := mustNext(t, tbl, live, synced, s)
		if err := checkStep(tbl, next, live, synced, s); err != nil {
			t.Fatalf("step %d (live %v): %v", step, live, err)
		}
		if step%4 == 0 && !mustNext(t, tbl, live, synced, s).Equal(next) {
			t.Fatalf("step %d: same inputs, different tables", step)
		}
		tbl = next
		synced = partialSync(rng, tbl, synced, up)
	}

	// Stable membership, full sync: settles, balanced, then stays put.
	live := nodeIDs("n1", "n2", "n4", "n6", "n7")
	s.MaxMoves = 32
	settled, rounds := converge(t, tbl, live, s, 64)
	if err := checkBalanced(settled, live, s); err != nil {
		t.Fatalf("after %d rounds: %v", rounds, err)
	}
	t.Logf("settled in %d rounds", rounds)
	for range 3 {
		if next := mustNext(t, settled, live, syncAll(settled), s); next.Epoch != settled.Epoch {
			t.Fatalf("settled table changed: epoch %d -> %d", settled.Epoch, next.Epoch)
		}
	}
}

// partialSync plays the data nodes between rounds: a follower that had
// synced stays synced while it follows the slot and lives; others catch up
// with probability 1/2. Dead nodes' reports are dropped, as meta does.
func partialSync(rng *rand.Rand, tbl Table, old SyncState, up map[NodeID]bool) SyncState {
	out := SyncState{}
	for _, sl := range tbl.Slots {
		for _, f := range sl.Followers {
			if up[f] && (old.Synced(sl.ID, f) || rng.IntN(2) == 0) {
				markSynced(out, sl.ID, f)
			}
		}
	}
	return out
}

// TestNext_Converges_AcrossShapes checks the balance bound from a first
// table and after a join and a leave, for a range of cluster shapes.
func TestNext_Converges_AcrossShapes(t *testing.T) {
	for _, count := range []int{1, 7, 64, 256} {
		for replicas := 1; replicas <= 4; replicas++ {
			for n := 1; n <= 8; n++ {
				s := Settings{Count: count, Replicas: replicas, MaxMoves: 32}
				var live []NodeID
				for i := range n {
					live = append(live, NodeID(fmt.Sprintf("node-%02d", i)))
				}
				t.Run(fmt.Sprintf("count=%d,replicas=%d,nodes=%d", count, replicas, n), func(t *testing.T) {
					tbl, _ := converge(t, Table{}, live, s, 2)
					if err := checkBalanced(tbl, live, s); err != nil {
						t.Fatalf("first table: %v", err)
					}
					grown := append(slices.Clone(live), "node-99")
					tbl, rounds := converge(t, tbl, grown, s, 64+2*count/s.MaxMoves)
					if err := checkBalanced(tbl, grown, s); err != nil {
						t.Fatalf("after a join (%d rounds): %v", rounds, err)
					}
					shrunk := grown[1:]
					tbl, rounds = converge(t, tbl, shrunk, s, 64+2*count/s.MaxMoves)
					if err := checkBalanced(tbl, shrunk, s); err != nil {
						t.Fatalf("after a leave (%d rounds): %v", rounds, err)
					}
				})
			}
		}
	}
}
