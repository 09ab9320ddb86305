package data

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/clock"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

func dv(k string, v uint64) *registryv1.DatumVersion {
	return &registryv1.DatumVersion{DataInfoId: k, Version: v}
}

func TestNotifier_IdleStreamGetsChangeAtOnce_BusyStreamMergesPerKey(t *testing.T) {
	clk := clock.NewFake(time.Unix(1000, 0))
	n := newNotifier(100, clk)
	sub := n.subscribe("s")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// Idle: the first change is ready at once, alone.
	n.publish([]*registryv1.DatumVersion{dv("a", 1)})
	b, _, ok := sub.next(ctx)
	if !ok || len(b.GetChanges()) != 1 || b.GetChanges()[0].GetVersion() != 1 {
		t.Fatalf("first batch %v", b)
	}
	if got := b.GetFirstChangeUnixNano(); got != clk.Now().UnixNano() {
		t.Errorf("first batch stamped %d, want %d", got, clk.Now().UnixNano())
	}
	// Busy (the caller is "sending" and not in next): changes pile up and
	// merge per key, newest version wins, older never overwrites newer.
	clk.Advance(time.Second)
	oldest := clk.Now().UnixNano()
	n.publish([]*registryv1.DatumVersion{dv("a", 3), dv("b", 1)})
	clk.Advance(time.Second)
	n.publish([]*registryv1.DatumVersion{dv("a", 2), dv("b", 4)})
	n.publish([]*registryv1.DatumVersion{dv("c", 7)})
	b, _, ok = sub.next(ctx)
	if !ok {
		t.Fatal("no batch")
	}
	got := map[string]uint64{}
	for _, c := range b.GetChanges() {
		got[c.GetDataInfoId()] = c.GetVersion()
	}
	if len(got) != 3 || got["a"] != 3 || got["b"] != 4 || got["c"] != 7 || b.GetOverflow() {
		t.Fatalf("merged batch %v", got)
	}
	if b.GetFirstChangeUnixNano() != oldest {
		t.Errorf("merged batch stamped %d, want its oldest change's time %d", b.GetFirstChangeUnixNano(), oldest)
	}
	// Nothing pending: next waits until ctx ends.
	short, c2 := context.WithTimeout(ctx, 20*time.Millisecond)
	defer c2()
	if b, _, ok := sub.next(short); ok {
		t.Fatalf("batch with nothing pending: %v", b)
	}
}

func TestNotifier_PastTheCap_OneOverflowBatch_MemoryBounded(t *testing.T) {
	n := newNotifier(3, clock.Real{})
	sub := n.subscribe("s")
	for i := range 10 {
		n.publish([]*registryv1.DatumVersion{dv(string(rune('a'+i)), 1)})
	}
	sub.mu.Lock()
	pending := len(sub.urgent.pending) + len(sub.bulk.pending)
	sub.mu.Unlock()
	if pending > 3 {
		t.Fatalf("%d keys pending past a cap of 3", pending)
	}
	b, _, ok := sub.next(context.Background())
	if !ok || !b.GetOverflow() {
		t.Fatalf("want an overflow batch, got %v", b)
	}
	n.unsubscribe(sub)
	if n.count() != 0 {
		t.Fatal("unsubscribe left the subscriber")
	}
}

func TestNotifier_InterestKeysGoFirst_BulkInBoundedBatches(t *testing.T) {
	n := newNotifier(100_000, clock.Real{})
	sub := n.subscribe("s")
	other := n.subscribe("t")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.interested("s", []string{"watched"})
	// A storm of keys no subscriber of s watches, then one it watches.
	var storm []*registryv1.DatumVersion
	for i := range 3*bulkBatch + 5 {
		storm = append(storm, dv(fmt.Sprintf("k%05d", i), 1))
	}
	n.publish(storm)
	n.publish([]*registryv1.DatumVersion{dv("watched", 9)})

	b, urgent, ok := sub.next(ctx)
	if !ok || !urgent || len(b.GetChanges()) != 1 || b.GetChanges()[0].GetDataInfoId() != "watched" {
		t.Fatalf("first batch: urgent %v, %d changes, want the watched key alone ahead of the storm", urgent, len(b.GetChanges()))
	}
	seen := map[string]bool{}
	for len(seen) < len(storm) {
		b, urgent, ok := sub.next(ctx)
		if !ok {
			t.Fatalf("the bulk lane ended after %d of %d keys", len(seen), len(storm))
		}
		if urgent || len(b.GetChanges()) > bulkBatch {
			t.Fatalf("bulk batch: urgent %v, %d changes (at most %d)", urgent, len(b.GetChanges()), bulkBatch)
		}
		for _, c := range b.GetChanges() {
			if seen[c.GetDataInfoId()] {
				t.Fatalf("%s sent twice", c.GetDataInfoId())
			}
			seen[c.GetDataInfoId()] = true
		}
		if len(seen) < len(storm) {
			// An urgent change that comes mid-storm overtakes the rest.
			n.publish([]*registryv1.DatumVersion{dv("watched", uint64(10+len(seen)))})
			b, urgent, _ := sub.next(ctx)
			if !urgent || b.GetChanges()[0].GetDataInfoId() != "watched" {
				t.Fatalf("after %d bulk keys the watched key's change waited (urgent %v)", len(seen), urgent)
			}
		}
	}
	// The other session's interest is its own: everything is bulk for it,
	// and it still gets every change.
	b, urgent, _ = other.next(ctx)
	if urgent {
		t.Fatal("session t never read \"watched\" but got it urgent")
	}
	got := len(b.GetChanges())
	for got < len(storm)+1 {
		b, _, ok := other.next(ctx)
		if !ok {
			t.Fatalf("session t got %d of %d changes", got, len(storm)+1)
		}
		got += len(b.GetChanges())
	}
}

func TestNotifier_KeyBecomesInteresting_MovesToTheUrgentLane(t *testing.T) {
	n := newNotifier(100, clock.Real{})
	sub := n.subscribe("s")
	n.publish([]*registryv1.DatumVersion{dv("a", 1), dv("b", 1)})
	n.interested("s", []string{"a"})
	n.interested("nobody", []string{"b"}) // no such stream: nothing recorded
	n.publish([]*registryv1.DatumVersion{dv("a", 2)})
	b, urgent, _ := sub.next(context.Background())
	if !urgent || len(b.GetChanges()) != 1 || b.GetChanges()[0].GetVersion() != 2 {
		t.Fatalf("urgent batch %v (urgent %v), want a at 2", b.GetChanges(), urgent)
	}
	b, urgent, _ = sub.next(context.Background())
	if urgent || len(b.GetChanges()) != 1 || b.GetChanges()[0].GetDataInfoId() != "b" {
		t.Fatalf("bulk batch %v (urgent %v), want b alone (a's older version left the bulk lane)", b.GetChanges(), urgent)
	}
}

func TestChunkSnapshot_PiecesUnderTheSize_TombstonesLast(t *testing.T) {
	snap := &registryv1.SlotSnapshot{Seq: 42, Tombstones: []*registryv1.Unpublish{{DataInfoId: "k", RegisterId: "r"}}}
	for i := range 10 {
		snap.Datums = append(snap.Datums, &registryv1.Datum{DataInfoId: fmt.Sprintf("k%d", i), Version: 1,
			Publishers: []*registryv1.Publisher{{RegisterId: "r", Values: [][]byte{make([]byte, 300)}}}})
	}
	chunks := chunkSnapshot(snap, 1000)
	if len(chunks) < 3 {
		t.Fatalf("%d chunks for ~3 KB at 1 KB each", len(chunks))
	}
	n := 0
	for i, c := range chunks {
		if c.GetSeq() != 42 || c.GetMore() != (i < len(chunks)-1) {
			t.Fatalf("chunk %d: seq %d more %v", i, c.GetSeq(), c.GetMore())
		}
		if (len(c.GetTombstones()) > 0) != (i == len(chunks)-1) {
			t.Fatalf("chunk %d carries %d tombstones", i, len(c.GetTombstones()))
		}
		n += len(c.GetDatums())
	}
	if n != 10 {
		t.Fatalf("chunks carry %d datums, want 10", n)
	}
	// An empty slot is one chunk.
	if c := chunkSnapshot(&registryv1.SlotSnapshot{Seq: 1}, 1000); len(c) != 1 || c[0].GetMore() {
		t.Fatalf("empty snapshot: %v", c)
	}
}

func TestSlotState_RepairDeferred_AtMostThreeRoutineRoundsInARow(t *testing.T) {
	st := &slotState{}
	for round := range maxRepairDeferrals {
		if !st.repairDeferred("s1", true) {
			t.Fatalf("round %d: a writing session's repair was not deferred", round+1)
		}
	}
	if st.repairDeferred("s1", true) {
		t.Fatalf("repair deferred %d rounds in a row, at most %d allowed", maxRepairDeferrals+1, maxRepairDeferrals)
	}
	// That round repaired: the count starts again, per session.
	if !st.repairDeferred("s1", true) || !st.repairDeferred("s2", true) {
		t.Fatal("after a repair the next round may defer again, and another session has its own count")
	}
	// A round that found them equal resets it too.
	st.repairDeferred("s1", false)
	for range maxRepairDeferrals {
		if !st.repairDeferred("s1", true) {
			t.Fatal("the count did not start again after an equal round")
		}
	}
}

func TestNotifier_FullInterest_StartsAgain_NewKeysStillUrgent(t *testing.T) {
	n := newNotifier(4, clock.Real{})
	sub := n.subscribe("s")
	n.interested("s", []string{"a", "b", "c", "d"})
	n.interested("s", []string{"e"}) // past the cap: the set starts again with e
	n.publish([]*registryv1.DatumVersion{dv("e", 1)})
	b, urgent, _ := sub.next(context.Background())
	if !urgent || b.GetChanges()[0].GetDataInfoId() != "e" {
		t.Fatalf("a key read after the interest set filled is not urgent: %v (urgent %v)", b.GetChanges(), urgent)
	}
	sub.mu.Lock()
	size := len(sub.interest)
	sub.mu.Unlock()
	if size > 4 {
		t.Fatalf("interest holds %d keys past a cap of 4", size)
	}
}
