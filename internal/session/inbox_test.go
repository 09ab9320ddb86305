package session

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

func inFrameN(id uint64, size int, rated bool) inFrame {
	return inFrame{f: &registryv1.ClientFrame{Id: id}, size: size, rated: rated}
}

// TestInbox_KeepsOrder_RefusesPastTheRatedLimit_WaitsForBytes: frames
// come out in the order they went in; a rated frame past the limit is
// refused at once (an unrated one is not); a frame that would pass
// inboxBytes waits for room, and gives up when done closes.
func TestInbox_KeepsOrder_RefusesPastTheRatedLimit_WaitsForBytes(t *testing.T) {
	q := newInbox()
	never := make(chan struct{})
	limit := func() int { return 2 }
	for i, rated := range []bool{true, false, true} {
		if ok, full := q.put(inFrameN(uint64(i+1), 10, rated), limit, never); !ok || full {
			t.Fatalf("frame %d: ok %v full %v", i+1, ok, full)
		}
	}
	if ok, full := q.put(inFrameN(4, 10, true), limit, never); ok || !full {
		t.Fatalf("a third rated frame with a limit of 2: ok %v full %v, want refused", ok, full)
	}
	if ok, _ := q.put(inFrameN(5, 10, false), limit, never); !ok {
		t.Fatal("an unrated frame refused")
	}
	var got []uint64
	for {
		in, ok := q.take()
		if !ok {
			break
		}
		got = append(got, in.f.GetId())
	}
	if fmt.Sprint(got) != "[1 2 3 5]" {
		t.Fatalf("took %v, want [1 2 3 5]", got)
	}
	if q.bytes != 0 || q.rated != 0 || q.frames != nil {
		t.Fatalf("empty inbox holds %d bytes, %d rated, %d frames", q.bytes, q.rated, len(q.frames))
	}

	// Bytes: a frame alone may be larger than the bound; the next waits.
	if ok, _ := q.put(inFrameN(1, inboxBytes+1, false), limit, never); !ok {
		t.Fatal("a large frame alone refused")
	}
	done := make(chan struct{})
	put := make(chan bool)
	go func() {
		ok, _ := q.put(inFrameN(2, 10, false), limit, done)
		put <- ok
	}()
	if in, _ := q.take(); in.f.GetId() != 1 {
		t.Fatalf("took %d, want 1", in.f.GetId())
	}
	if !<-put {
		t.Fatal("the waiting frame was not put once room came")
	}
	if ok, _ := q.put(inFrameN(3, inboxBytes, false), limit, closed()); ok {
		t.Fatal("a frame past inboxBytes was put though done had closed")
	}
}

func closed() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

// TestOwner_Reserve_ConcurrentNeverPassesMax: 64 goroutines reserving
// against a max of 10 get exactly 10; unreserve makes room again.
func TestOwner_Reserve_ConcurrentNeverPassesMax(t *testing.T) {
	o := &owner{}
	var got atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			if o.reserve(10) {
				got.Add(1)
			}
		})
	}
	wg.Wait()
	if got.Load() != 10 || o.held.Load() != 10 {
		t.Fatalf("%d reservations granted, %d held, want 10", got.Load(), o.held.Load())
	}
	o.unreserve(1)
	if !o.reserve(10) || o.reserve(10) {
		t.Fatal("after one unreserve, want exactly one more reservation")
	}
}

// TestOwners_Sweep_ForgetsOnlyIdentitiesHoldingNothing: an identity is
// kept while it has a stream open, a registration (one kept through a
// disconnect grace), or a rate bucket it has drawn on; once it holds none
// of these a sweep forgets it, and its next stream starts afresh.
func TestOwners_Sweep_ForgetsOnlyIdentitiesHoldingNothing(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	os := newOwners(10)
	o, ok := os.acquire("alice", 2)
	if !ok || !o.reserve(5) {
		t.Fatal("acquire or reserve refused")
	}
	os.sweep(now)
	if os.len() != 1 {
		t.Fatal("an identity with a stream open was forgotten")
	}
	os.release(o) // its publication stays, in grace
	os.sweep(now)
	if os.len() != 1 {
		t.Fatal("an identity holding a registration was forgotten")
	}
	o.unreserve(1)
	if !o.limiter.AllowN(now, 5) {
		t.Fatal("the bucket refused")
	}
	os.sweep(now)
	if os.len() != 1 {
		t.Fatal("an identity that had drawn on its rate was forgotten: reconnecting would refill it")
	}
	os.sweep(now.Add(time.Second)) // 10 a second: refilled
	if os.len() != 0 {
		t.Fatalf("%d owners kept, want the idle identity forgotten", os.len())
	}
	if o2, ok := os.acquire("alice", 2); !ok || o2 == o || o2.held.Load() != 0 {
		t.Fatal("the next stream did not start with a new owner")
	}
}
