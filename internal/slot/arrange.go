package slot

import (
	"cmp"
	"fmt"
	"slices"
)

// Next computes the table that should follow prev, given the live data nodes
// and what they report as synced. It is deterministic and pure.
//
// Inputs: prev is the zero Table (the cluster has never had a data node) or
// a table with exactly s.Count slots, Slots[i].ID == i; anything else is an
// error wrapping ErrBadTable. live lists the live data nodes in any order;
// duplicates are ignored, an empty NodeID is an error wrapping ErrBadNode.
// synced holds the data nodes' reports (nil: nothing synced). A report
// counts only from a node that followed the slot in prev, so a stale report
// cannot make a node leader; meta should still drop a dead node's reports.
// Bad settings give s.Validate's error. A prev that breaks the table's
// invariants in other ways (unsorted or duplicate followers, the leader
// listed as a follower) is repaired, never a panic.
//
// Output: if nothing changes, prev itself (same Epoch). Otherwise a new
// table with Epoch prev.Epoch+1, in which
//   - every slot has a live leader whenever any node is live; with no live
//     node, every slot has Leader "" and no followers, and keeps its
//     LeaderEpoch (no node holds it, so there is nothing to fence; the next
//     leader gets LeaderEpoch+1). The zero prev with no live node stays the
//     zero Table;
//   - a slot's LeaderEpoch grows by exactly one when its Leader changes, and
//     otherwise stays;
//   - a dead leader's slot goes to a surviving follower that reported it
//     synced if there is one (fewest leaders first, then smallest NodeID);
//     else to any surviving follower, which holds at least part of the data
//     (the data tier must rebuild the slot from the sessions before it
//     serves reads, as for a migrating slot); else to the live node leading
//     fewest slots;
//   - a live leader only ever hands its slot to a follower that reported it
//     synced; the old leader becomes a follower (it has the data), though it
//     may be dropped as surplus at once like any other copy;
//   - followers are live, distinct, never the leader, sorted by NodeID, and
//     at least want = min(Replicas-1, live-1) of them. A slot has more while
//     a make-before-break copy syncs or waits to be promoted. A copy with
//     the data is dropped only while more than want followers hold it, so a
//     slot never keeps fewer synced copies than it could;
//   - at most s.MaxMoves voluntary moves: leader transfers to live nodes and
//     followers added beyond want for balance. Failover and restoring want
//     followers are never capped, and dropping a surplus copy is no move.
//
// Convergence: with stable membership and sync reports that stop changing,
// Next reaches a fixed point (it returns prev) in a bounded number of rounds,
// and stays there. If every follower reports synced between rounds, the
// fixed point is balanced: leaders per node within one of each other, and
// followers per node too (at worst ceil(Count*want/live)+1 where a node's
// own leaderships leave no better placement). The tests check both, over
// randomized membership churn and followers that never finish syncing.
func Next(prev Table, live []NodeID, synced SyncState, s Settings) (Table, error) {
	if err := s.Validate(); err != nil {
		return Table{}, err
	}
	nodes, err := liveSet(live)
	if err != nil {
		return Table{}, err
	}
	if len(prev.Slots) != 0 && len(prev.Slots) != s.Count {
		return Table{}, fmt.Errorf("%w: table has %d slots, settings say %d", ErrBadTable, len(prev.Slots), s.Count)
	}
	for i, sl := range prev.Slots {
		if sl.ID != ID(i) {
			return Table{}, fmt.Errorf("%w: slot at index %d has ID %d", ErrBadTable, i, sl.ID)
		}
	}
	if len(prev.Slots) == 0 && len(nodes) == 0 {
		// Still no data node: nothing to arrange yet.
		return prev, nil
	}
	a := newArranger(prev, nodes, synced, s)
	a.failover()
	a.restore()
	a.balanceLeaders()
	a.dropSurplus()
	a.balanceFollowers()
	return a.table(), nil
}

// liveSet returns live sorted and without duplicates.
func liveSet(live []NodeID) ([]NodeID, error) {
	nodes := slices.Clone(live)
	for _, n := range nodes {
		if n == "" {
			return nil, fmt.Errorf("%w: empty node ID in live set", ErrBadNode)
		}
	}
	slices.Sort(nodes)
	return slices.Compact(nodes), nil
}

// How Next works. Each call is one round of five steps over a working copy
// of the table (an arranger). Counts ("load") are per node: slots led, and
// slots followed (surplus copies included).
//
//  1. failover: dead nodes leave every slot; a slot without a live leader
//     gets one by the preference order in Next's doc. With no holder at all
//     (the first table), that spreads leaders round-robin.
//  2. restore: slots with fewer than want followers get the nodes following
//     fewest slots. These copies hold no data yet, so a short pass then
//     moves some of them for free if greedy placement left counts apart by
//     more than one (a node cannot follow a slot it leads).
//  3. balanceLeaders (capped): while the most and least loaded nodes differ
//     by more than one leader, the most loaded gives a slot to a synced
//     follower leading at least two fewer (a move). If the only such
//     followers are still syncing, the transfer is "pending": counted in the
//     planned load, nothing done, it happens in a later round. If there is
//     no such follower at all, a light node is added as an extra follower
//     (a move), to be promoted once synced.
//  4. dropSurplus: a slot with more than want followers drops the copy with
//     data on the node following most slots, while more than want followers
//     have the data. It never drops a follower that step 3 would promote
//     (one leading two fewer slots than the leader), nor one still syncing:
//     that would undo a move in flight.
//  5. balanceFollowers (capped): the same for follower copies. A copy moves
//     from the heaviest node to a light one by adding an extra follower
//     (make-before-break); step 4 drops the old copy once the new one syncs.
//     Copies that step 4 will drop count as gone in the source's planned
//     load, so a pending move is not repeated every round; the target is
//     judged by all its copies, so that step 4 later drops the source's copy
//     and not the new one (see balanceFollowers).
//
// A slot takes part in at most one of: failover, transfer, extra follower
// (row.busy), so a leader changes at most once per round. Every choice is
// made in a fixed order (slots by ID, nodes by load then NodeID), never by
// map iteration.

// arranger holds one round's working state. Nodes are handled by their index
// in the sorted live set, so "ascending index" means "ascending NodeID".
type arranger struct {
	s      Settings
	prev   Table
	synced SyncState
	nodes  []NodeID
	want   int
	rows   []row
	// leaders and followers count, per node, the slots it leads and follows
	// (surplus followers included). They are kept current by every step.
	leaders   []int
	followers []int
	moves     int
}

// row is one slot being arranged.
type row struct {
	leader    int   // -1 when no node is live
	followers []int // ascending, never contains leader
	// prevLeader is prev's leader if still live, else -1.
	prevLeader int
	// prevFollowers are prev's followers that are still live, ascending.
	prevFollowers []int
	// busy marks a slot that already changed this round (failover, transfer
	// or extra follower), so no later step changes it again.
	busy bool
}

func newArranger(prev Table, nodes []NodeID, synced SyncState, s Settings) *arranger {
	a := &arranger{
		s:         s,
		prev:      prev,
		synced:    synced,
		nodes:     nodes,
		want:      max(0, min(s.Replicas-1, len(nodes)-1)),
		rows:      make([]row, s.Count),
		leaders:   make([]int, len(nodes)),
		followers: make([]int, len(nodes)),
	}
	for i := range a.rows {
		r := &a.rows[i]
		r.leader, r.prevLeader = -1, -1
		if len(prev.Slots) == 0 {
			continue
		}
		p := prev.Slots[i]
		r.prevLeader = a.index(p.Leader)
		for _, f := range p.Followers {
			if n := a.index(f); n >= 0 && n != r.prevLeader {
				r.prevFollowers = append(r.prevFollowers, n)
			}
		}
		// prev may be unsorted or hold duplicates if it was built by hand;
		// normalising here heals it (and bumps the epoch).
		slices.Sort(r.prevFollowers)
		r.prevFollowers = slices.Compact(r.prevFollowers)
	}
	return a
}

// index returns n's position in the live set, or -1 if n is not live.
func (a *arranger) index(n NodeID) int {
	if i, ok := slices.BinarySearch(a.nodes, n); ok {
		return i
	}
	return -1
}

func (r *row) holds(n int) bool {
	return r.leader == n || slices.Contains(r.followers, n)
}

func (r *row) addFollower(n int) {
	i, _ := slices.BinarySearch(r.followers, n)
	r.followers = slices.Insert(r.followers, i, n)
}

func (r *row) removeFollower(n int) {
	if i, ok := slices.BinarySearch(r.followers, n); ok {
		r.followers = slices.Delete(r.followers, i, i+1)
	}
}

// canLead reports whether n may take slot i over: it followed the slot in
// prev and reports it synced.
func (a *arranger) canLead(i, n int) bool {
	return slices.Contains(a.rows[i].prevFollowers, n) && a.synced.Synced(ID(i), a.nodes[n])
}

// hasData reports whether n holds a complete copy of slot i: it led the slot
// in prev, or may lead it now.
func (a *arranger) hasData(i, n int) bool {
	return a.rows[i].prevLeader == n || a.canLead(i, n)
}

// wantsToLead reports whether follower n of slot i is one that leader
// balancing would promote: it leads at least two slots fewer than the
// slot's leader. Such a follower is never dropped as surplus.
func (a *arranger) wantsToLead(i, n int) bool {
	l := a.rows[i].leader
	return l >= 0 && a.leaders[n]+2 <= a.leaders[l]
}

// failover keeps live leaders, drops dead nodes, and gives every slot
// without a live leader a new one.
func (a *arranger) failover() {
	for i := range a.rows {
		r := &a.rows[i]
		r.leader = r.prevLeader
		r.followers = slices.Clone(r.prevFollowers)
		if r.leader >= 0 {
			a.leaders[r.leader]++
		}
	}
	if len(a.nodes) == 0 {
		return
	}
	fewestLeaders := func(cands []int, ok func(int) bool) int {
		best := -1
		for _, n := range cands {
			if ok(n) && (best < 0 || a.leaders[n] < a.leaders[best]) {
				best = n
			}
		}
		return best
	}
	all := make([]int, len(a.nodes))
	for n := range all {
		all[n] = n
	}
	anyone := func(int) bool { return true }
	for i := range a.rows {
		r := &a.rows[i]
		if r.leader >= 0 {
			continue
		}
		n := fewestLeaders(r.followers, func(n int) bool { return a.canLead(i, n) })
		if n < 0 {
			n = fewestLeaders(r.followers, anyone)
		}
		if n < 0 {
			n = fewestLeaders(all, anyone)
		}
		r.removeFollower(n)
		r.leader = n
		r.busy = true
		a.leaders[n]++
	}
	for i := range a.rows {
		for _, f := range a.rows[i].followers {
			a.followers[f]++
		}
	}
}

// restore brings every slot up to want followers, then evens out the
// copies it just placed: nobody holds their data yet, so moving them costs
// nothing and needs no make-before-break.
func (a *arranger) restore() {
	placed := make([][]int, len(a.nodes)) // slots each node was added to here
	for i := range a.rows {
		r := &a.rows[i]
		for len(r.followers) < a.want {
			best := -1
			for n := range a.nodes {
				if !r.holds(n) && (best < 0 || a.followers[n] < a.followers[best]) {
					best = n
				}
			}
			if best < 0 {
				break // cannot happen: want <= live-1
			}
			r.addFollower(best)
			a.followers[best]++
			placed[best] = append(placed[best], i)
		}
	}
	// Greedy placement can strand the last slots on loaded nodes (a node
	// cannot follow a slot it leads). Each step moves a fresh copy from a
	// node to one following at least two slots fewer, which lowers the sum
	// of squared counts, so the loop ends.
	for a.moveFresh(placed) {
	}
}

// moveFresh moves one copy placed by restore from the most loaded node that
// can give one to the least loaded node that can take it, and reports
// whether it found one.
func (a *arranger) moveFresh(placed [][]int) bool {
	froms := byLoad(a.followers, len(a.rows))
	slices.Reverse(froms)
	for _, from := range froms {
		for _, to := range byLoad(a.followers, a.followers[from]-2) {
			for k, i := range placed[from] {
				r := &a.rows[i]
				if r.holds(to) {
					continue
				}
				r.removeFollower(from)
				r.addFollower(to)
				a.followers[from]--
				a.followers[to]++
				placed[from] = slices.Delete(placed[from], k, k+1)
				placed[to] = append(placed[to], i)
				return true
			}
		}
	}
	return false
}

// argmax returns the node with the highest load among those not excluded,
// ties to the smaller index, or -1.
func argmax(load []int, excluded []bool) int {
	best := -1
	for n, l := range load {
		if !excluded[n] && (best < 0 || l > load[best]) {
			best = n
		}
	}
	return best
}

// argmin returns the node with the lowest load, ties to the smaller index.
func argmin(load []int) int {
	best := 0
	for n, l := range load {
		if l < load[best] {
			best = n
		}
	}
	return best
}

// byLoad returns the nodes whose load is at most limit, least loaded first,
// ties by index.
func byLoad(load []int, limit int) []int {
	var out []int
	for n, l := range load {
		if l <= limit {
			out = append(out, n)
		}
	}
	slices.SortStableFunc(out, func(x, y int) int { return cmp.Compare(load[x], load[y]) })
	return out
}

// balanceLeaders is step 3. planned counts leaders as they will be once the
// transfers decided now or pending (to followers still syncing) are done.
func (a *arranger) balanceLeaders() {
	if len(a.nodes) < 2 {
		return
	}
	planned := slices.Clone(a.leaders)
	led := make([][]int, len(a.nodes)) // slots each node may give away this round
	for i := range a.rows {
		if r := &a.rows[i]; !r.busy {
			led[r.leader] = append(led[r.leader], i)
		}
	}
	exhausted := make([]bool, len(a.nodes))
	for {
		from := argmax(planned, exhausted)
		if from < 0 || planned[from]-planned[argmin(planned)] <= 1 {
			return
		}
		limit := planned[from] - 2
		// The best follower to take over one of from's slots, synced ones
		// first, then the least loaded, then the smallest index and slot.
		slot, to, ready := -1, -1, false
		for _, i := range led[from] {
			r := &a.rows[i]
			if r.busy {
				continue
			}
			for _, f := range r.followers {
				if planned[f] > limit {
					continue
				}
				ok := a.canLead(i, f)
				if to < 0 || (ok && !ready) || (ok == ready && planned[f] < planned[to]) {
					slot, to, ready = i, f, ok
				}
			}
		}
		switch {
		case to >= 0 && ready:
			if a.moves >= a.s.MaxMoves {
				return
			}
			a.transfer(slot, to)
			a.moves++
		case to >= 0:
			// Pending: to is syncing and is promoted in a later round.
		default:
			slot, to = a.extraFor(led[from], byLoad(planned, limit))
			if to < 0 {
				exhausted[from] = true
				continue
			}
			if a.moves >= a.s.MaxMoves {
				return
			}
			a.rows[slot].addFollower(to)
			a.followers[to]++
			a.moves++
		}
		a.rows[slot].busy = true
		planned[from]--
		planned[to]++
	}
}

// transfer makes follower to the leader of slot i; the old leader stays on
// as a follower, since it has the data.
func (a *arranger) transfer(i, to int) {
	r := &a.rows[i]
	from := r.leader
	r.removeFollower(to)
	r.addFollower(from)
	r.leader = to
	a.leaders[from]--
	a.leaders[to]++
	a.followers[from]++
	a.followers[to]--
}

// extraFor picks a slot among slots (not busy, no surplus) and a node among
// targets (in order of preference) that does not hold it, for a new extra
// follower. It returns -1, -1 if there is none.
func (a *arranger) extraFor(slots, targets []int) (slot, to int) {
	for _, t := range targets {
		for _, i := range slots {
			r := &a.rows[i]
			if !r.busy && len(r.followers) <= a.want && !r.holds(t) {
				return i, t
			}
		}
	}
	return -1, -1
}

// dropOrder returns the followers of slot i that may be dropped as surplus,
// best to drop first: those with the data, then those on the nodes following
// most slots, then by index.
func (a *arranger) dropOrder(i int) []int {
	var out []int
	for _, f := range a.rows[i].followers {
		if !a.wantsToLead(i, f) {
			out = append(out, f)
		}
	}
	slices.SortStableFunc(out, func(x, y int) int {
		if hx, hy := a.hasData(i, x), a.hasData(i, y); hx != hy {
			if hx {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.followers[y], a.followers[x])
	})
	return out
}

// balanceFollowers is step 5.
//
// planned counts each node's copies as they will be once every surplus
// still waiting for a sync has been dropped (the first copies in dropOrder).
// A copy moves from the node with the highest planned count to a node whose
// current count, every copy included, is at least two below it. Comparing
// the target's full count with the source's planned one is what keeps the
// move from being undone: when the new copy has synced, dropSurplus drops
// the copy on the node following most slots, and by then that is the
// source. (Comparing planned with planned would undo moves forever when a
// stuck follower keeps a slot's surplus from ever being dropped.)
func (a *arranger) balanceFollowers() {
	if a.want == 0 || a.moves >= a.s.MaxMoves {
		return
	}
	planned := slices.Clone(a.followers)
	followed := make([][]int, len(a.nodes)) // slots whose copy each node may hand over
	for i := range a.rows {
		r := &a.rows[i]
		if extra := len(r.followers) - a.want; extra > 0 {
			order := a.dropOrder(i)
			for _, f := range order[:min(extra, len(order))] {
				planned[f]--
			}
			continue
		}
		if !r.busy {
			for _, f := range r.followers {
				followed[f] = append(followed[f], i)
			}
		}
	}
	exhausted := make([]bool, len(a.nodes))
	for a.moves < a.s.MaxMoves {
		from := argmax(planned, exhausted)
		if from < 0 {
			return
		}
		slot, to := a.extraFor(followed[from], byLoad(a.followers, planned[from]-2))
		if to < 0 {
			exhausted[from] = true
			continue
		}
		a.rows[slot].addFollower(to)
		a.rows[slot].busy = true
		a.followers[to]++
		a.moves++
		planned[from]--
		planned[to]++
	}
}

// dropSurplus is step 4. It runs before balanceFollowers, whose counts then
// already reflect this round's drops.
func (a *arranger) dropSurplus() {
	for i := range a.rows {
		r := &a.rows[i]
		for len(r.followers) > a.want {
			withData := 0
			for _, f := range r.followers {
				if a.hasData(i, f) {
					withData++
				}
			}
			if withData <= a.want {
				break
			}
			order := a.dropOrder(i)
			if len(order) == 0 || !a.hasData(i, order[0]) {
				break
			}
			r.removeFollower(order[0])
			a.followers[order[0]]--
		}
	}
}

// table turns the rows into the next table, or returns prev if nothing
// changed.
func (a *arranger) table() Table {
	out := Table{Epoch: a.prev.Epoch + 1, Slots: make([]Slot, len(a.rows))}
	changed := len(a.prev.Slots) == 0
	for i := range a.rows {
		r := &a.rows[i]
		var p Slot
		if len(a.prev.Slots) != 0 {
			p = a.prev.Slots[i]
		}
		sl := Slot{ID: ID(i), LeaderEpoch: p.LeaderEpoch}
		if r.leader >= 0 {
			sl.Leader = a.nodes[r.leader]
		}
		if sl.Leader != p.Leader && sl.Leader != "" {
			sl.LeaderEpoch++
		}
		if len(r.followers) > 0 {
			sl.Followers = make([]NodeID, len(r.followers))
			for j, f := range r.followers {
				sl.Followers[j] = a.nodes[f]
			}
		}
		if !sl.Equal(p) {
			changed = true
		}
		out.Slots[i] = sl
	}
	if !changed {
		return a.prev
	}
	return out
}
