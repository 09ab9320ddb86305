package meta_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/meta"
	"github.com/strata-registry/strata/internal/metaclient"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/internal/testcluster"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// fullTable checks that every slot has a live leader and min(replicas-1,
// nodes-1) followers on distinct live data nodes, and that leaders and
// followers per node are within ceil(mean)+1.
func fullTable(st *meta.State) error {
	nodes := st.DataNodes()
	if len(nodes) == 0 {
		return errors.New("no data nodes")
	}
	if len(st.Table.Slots) != st.Settings.Count {
		return fmt.Errorf("table has %d slots, want %d", len(st.Table.Slots), st.Settings.Count)
	}
	wantF := min(st.Settings.Replicas-1, len(nodes)-1)
	leaders, followers := map[slot.NodeID]int{}, map[slot.NodeID]int{}
	for _, s := range st.Table.Slots {
		if !slices.Contains(nodes, s.Leader) {
			return fmt.Errorf("slot %d led by %q, not a live data node", s.ID, s.Leader)
		}
		if len(s.Followers) != wantF {
			return fmt.Errorf("slot %d has %d followers, want %d", s.ID, len(s.Followers), wantF)
		}
		seen := map[slot.NodeID]bool{s.Leader: true}
		for _, f := range s.Followers {
			if seen[f] || !slices.Contains(nodes, f) {
				return fmt.Errorf("slot %d: follower %q repeated or not live", s.ID, f)
			}
			seen[f] = true
			followers[f]++
		}
		leaders[s.Leader]++
	}
	n := len(nodes)
	maxL := (st.Settings.Count+n-1)/n + 1
	maxF := (st.Settings.Count*wantF+n-1)/n + 1
	for _, id := range nodes {
		if leaders[id] > maxL || followers[id] > maxF {
			return fmt.Errorf("unbalanced: %s leads %d (max %d), follows %d (max %d)", id, leaders[id], maxL, followers[id], maxF)
		}
	}
	return nil
}

// syncedDataPeers starts n data peers (data-0...) that report every slot
// they follow synced.
func syncedDataPeers(t *testing.T, c *testcluster.Cluster, n int) []*testcluster.Peer {
	t.Helper()
	var data []*testcluster.Peer
	for i := range n {
		p := c.StartPeer(t, fmt.Sprintf("data-%d", i), cluster.RoleData)
		p.SetSynced(true)
		data = append(data, p)
	}
	return data
}

func TestMeta_DataNodes_BalancedTable_FollowerFirst_RemovalPromotes(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3})
	leader := c.WaitLeader(t)
	state := func() *meta.State { return c.WaitLeader(t).Server().State() }

	data := syncedDataPeers(t, c, 3)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error { return fullTable(state()) })
	_ = leader

	// A fourth node that has not synced anything is only ever a follower.
	late := c.StartPeer(t, "data-3", cluster.RoleData)
	var epoch uint64
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		st := state()
		epoch = st.Table.Epoch
		n := 0
		for _, s := range st.Table.Slots {
			if s.Leader == "data-3" {
				return fmt.Errorf("slot %d led by data-3 before it reported any sync", s.ID)
			}
			if slices.Contains(s.Followers, "data-3") {
				n++
			}
		}
		if n < 32 {
			return fmt.Errorf("data-3 follows %d slots, want it to take its share", n)
		}
		return nil
	})
	// Not in any epoch, either: the peer has seen every table in order.
	waitSeen(t, late, epoch) // the watch delivers tables after meta commits them
	for _, tb := range late.Tables() {
		for _, s := range tb.GetSlots() {
			if s.GetLeader() == "data-3" {
				t.Fatalf("epoch %d: slot %d led by data-3 before it reported any sync", tb.GetEpoch(), s.GetId())
			}
		}
	}

	// Once it reports its copies synced it takes leaders, and the table
	// balances over four nodes.
	late.SetSynced(true)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		st := state()
		epoch = st.Table.Epoch
		if len(st.DataNodes()) != 4 {
			return fmt.Errorf("%d data nodes", len(st.DataNodes()))
		}
		led := 0
		for _, s := range st.Table.Slots {
			if s.Leader == "data-3" {
				led++
			}
		}
		if led < 256/4-1 {
			return fmt.Errorf("data-3 leads %d slots", led)
		}
		return fullTable(st)
	})
	// Every slot data-3 came to lead, it followed in the table before.
	waitSeen(t, late, epoch) // as above: the check covers the tables up to the converged one
	checkFollowerFirst(t, late.Tables(), "data-3")

	// Removing a node: its slots are led by their followers, and no table
	// ever has a slot without a leader.
	before := state().Table
	watcher := data[1]
	from := len(watcher.Tables())
	data[0].Kill()
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		st := state()
		if _, ok := st.Members["data-0"]; ok {
			return errors.New("data-0 still a member")
		}
		for _, s := range st.Table.Slots {
			if s.Has("data-0") {
				return fmt.Errorf("slot %d still on data-0", s.ID)
			}
		}
		return fullTable(st)
	})
	after := state().Table
	for _, s := range before.Slots {
		if s.Leader != "data-0" {
			continue
		}
		got := after.Slots[s.ID]
		if got.LeaderEpoch <= s.LeaderEpoch {
			t.Errorf("slot %d: leader epoch %d did not increase from %d", s.ID, got.LeaderEpoch, s.LeaderEpoch)
		}
	}
	// The watch delivers the table after meta committed it: wait until the
	// watcher has seen the one the state converged to (reading its tables
	// at once failed on a loaded machine).
	var tables []*registryv1.SlotTable
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		tables = watcher.Tables()[from:]
		if len(tables) == 0 || tables[len(tables)-1].GetEpoch() < after.Epoch {
			return fmt.Errorf("watcher saw %d tables after the removal, not yet epoch %d", len(tables), after.Epoch)
		}
		return nil
	})
	prev := before
	for _, pt := range tables {
		tb, err := metaclient.Table(pt)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range tb.Slots {
			if s.Leader == "" {
				t.Fatalf("epoch %d: slot %d has no leader", tb.Epoch, s.ID)
			}
			old := prev.Slots[s.ID]
			if old.Leader == "data-0" && s.Leader != "data-0" && !slices.Contains(old.Followers, s.Leader) {
				t.Fatalf("epoch %d: slot %d moved from dead data-0 to %s, which did not hold it (followers %v)", tb.Epoch, s.ID, s.Leader, old.Followers)
			}
		}
		prev = tb
	}
}

// waitSeen waits until peer p has received the table of epoch (or a later
// one): meta commits a table before any watch delivers it.
func waitSeen(t *testing.T, p *testcluster.Peer, epoch uint64) {
	t.Helper()
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		if got := p.Table().GetEpoch(); got < epoch {
			return fmt.Errorf("%s has seen epoch %d, not yet %d", p.ID, got, epoch)
		}
		return nil
	})
}

// checkFollowerFirst fails if node became leader of a slot it did not
// follow in the previous table.
func checkFollowerFirst(t *testing.T, tables []*registryv1.SlotTable, node string) {
	t.Helper()
	for i := 1; i < len(tables); i++ {
		prev, cur := tables[i-1], tables[i]
		if cur.GetEpoch() <= prev.GetEpoch() {
			t.Fatalf("tables out of order: epoch %d after %d", cur.GetEpoch(), prev.GetEpoch())
		}
		for j, s := range cur.GetSlots() {
			p := prev.GetSlots()[j]
			if s.GetLeader() == node && p.GetLeader() != node && !slices.Contains(p.GetFollowers(), node) {
				t.Fatalf("epoch %d: %s leads slot %d without having followed it at epoch %d", cur.GetEpoch(), node, s.GetId(), prev.GetEpoch())
			}
		}
	}
}

func TestMeta_WatchSlotTable_EveryEpochInOrder_ReconnectGetsCurrent(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3})
	follower := c.LiveMetas()[0]
	if follower.Server().IsLeader() {
		follower = c.LiveMetas()[1]
	}
	client := metaClient(t, c, follower.Server().GRPCAddr())
	ctx := ctxT(t)
	stream, err := client.WatchSlotTable(ctx, &registryv1.WatchSlotTableRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// Membership changes make epochs; the watcher must see every one.
	for i := range 3 {
		c.StartPeer(t, fmt.Sprintf("data-%d", i), cluster.RoleData).SetSynced(true)
	}
	final := c.WaitEpoch(t, 1)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		st := c.WaitLeader(t).Server().State()
		final = st.Table
		return fullTable(st)
	})
	var last uint64
	for last < final.Epoch {
		tb, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if tb.GetEpoch() != last+1 {
			t.Fatalf("watcher got epoch %d after %d: skipped or reordered", tb.GetEpoch(), last)
		}
		if len(tb.GetSlots()) != 256 || tb.GetSlotCount() != 256 {
			t.Fatalf("epoch %d has %d slots", tb.GetEpoch(), len(tb.GetSlots()))
		}
		last = tb.GetEpoch()
	}

	// A watcher that reconnects gets the current table at once.
	st := c.WaitLeader(t).Server().State()
	c.WaitEpoch(t, st.Table.Epoch) // the follower serves the watch from its replica, which applies the leader's table a moment later
	again, err := client.WatchSlotTable(ctx, &registryv1.WatchSlotTableRequest{AfterEpoch: 0})
	if err != nil {
		t.Fatal(err)
	}
	tb, err := again.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if tb.GetEpoch() < st.Table.Epoch {
		t.Fatalf("reconnected watcher got epoch %d first, current is %d", tb.GetEpoch(), st.Table.Epoch)
	}
	// Resuming after a known epoch sends only what is newer.
	resumed, err := client.WatchSlotTable(ctx, &registryv1.WatchSlotTableRequest{AfterEpoch: final.Epoch - 1})
	if err != nil {
		t.Fatal(err)
	}
	if tb, err := resumed.Recv(); err != nil || tb.GetEpoch() != final.Epoch {
		t.Fatalf("resumed watch: got epoch %d, err %v; want %d", tb.GetEpoch(), err, final.Epoch)
	}
}

// A data node the pool shows dead loses its leaderships at once, to
// followers that hold the slot, though it stays a member until the dead
// grace (a minute here) has passed: keys on it wait for failure detection,
// not for the flap damping too.
func TestMeta_DeadDataNode_LeadershipsFailOverWithinTheDeadGrace(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, MetaConfig: func(_ int, cfg *meta.Config) { cfg.DeadGrace = time.Minute }})
	state := func() *meta.State { return c.WaitLeader(t).Server().State() }
	data := syncedDataPeers(t, c, 3)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error { return fullTable(state()) })
	before := state().Table
	data[0].Kill()
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		st := state()
		if _, ok := st.Members["data-0"]; !ok {
			return errors.New("data-0 was removed: the test is about the time before the dead grace")
		}
		for _, s := range st.Table.Slots {
			if s.Leader == "data-0" {
				return fmt.Errorf("slot %d still led by data-0", s.ID)
			}
		}
		return nil
	})
	after := state().Table
	for _, s := range before.Slots {
		if s.Leader == "data-0" && !slices.Contains(s.Followers, after.Slots[s.ID].Leader) {
			t.Errorf("slot %d moved from dead data-0 to %s, which did not follow it (%v)", s.ID, after.Slots[s.ID].Leader, s.Followers)
		}
	}
	if _, ok := state().Members["data-0"]; !ok {
		t.Fatal("data-0 removed before its dead grace")
	}
}
