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
	b, ok := sub.next(ctx)
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
	b, ok = sub.next(ctx)
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
	if b, ok := sub.next(short); ok {
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
	pending := len(sub.pending)
	sub.mu.Unlock()
	if pending > 3 {
		t.Fatalf("%d keys pending past a cap of 3", pending)
	}
	b, ok := sub.next(context.Background())
	if !ok || !b.GetOverflow() {
		t.Fatalf("want an overflow batch, got %v", b)
	}
	n.unsubscribe(sub)
	if n.count() != 0 {
		t.Fatal("unsubscribe left the subscriber")
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
