package session

import (
	"slices"
	"testing"
	"time"

	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

func frameN(n uint64) outFrame {
	return outFrame{f: &registryv1.ServerFrame{Body: &registryv1.ServerFrame_Ack{Ack: &registryv1.Ack{Id: n}}}}
}

func ids(frames []outFrame) []uint64 {
	var out []uint64
	for _, o := range frames {
		out = append(out, o.f.GetAck().GetId())
	}
	return out
}

func TestSendQueue_BoundedInOrder_TakeMakesRoom(t *testing.T) {
	q := newSendQueue(3, func() {})
	for i := range uint64(3) {
		if !q.tryPush(frameN(i)) {
			t.Fatalf("push %d refused below the bound", i)
		}
	}
	if q.tryPush(frameN(3)) {
		t.Fatal("a fourth frame was queued past the bound of 3")
	}
	got := q.take(nil)
	if want := []uint64{0, 1, 2}; !slices.Equal(ids(got), want) {
		t.Fatalf("took %v, want %v", ids(got), want)
	}
	if !q.tryPush(frameN(3)) {
		t.Fatal("no room after take")
	}
	if got := q.take(got); len(got) != 1 || got[0].f.GetAck().GetId() != 3 {
		t.Fatalf("second take %v, want [3]", ids(got))
	}
}

// A writer starts with the first frame, runs while frames wait (pushes
// meanwhile start no other), and stops at the first empty take; the next
// frame starts a new one. After close, none starts.
func TestSendQueue_WriterStartsWithFrames_StopsWhenEmpty(t *testing.T) {
	starts := 0
	q := newSendQueue(8, func() { starts++ })
	if q.tryPush(frameN(0)); starts != 1 {
		t.Fatalf("%d writers started by the first frame, want 1", starts)
	}
	q.tryPush(frameN(1))
	if got := q.take(nil); len(got) != 2 || starts != 1 {
		t.Fatalf("took %v with %d writers started, want two frames and one writer", ids(got), starts)
	}
	if q.tryPush(frameN(2)); starts != 1 {
		t.Fatalf("a frame pushed while the writer runs started another (%d starts)", starts)
	}
	q.take(nil)
	if got := q.take(nil); len(got) != 0 {
		t.Fatalf("empty queue gave %v", ids(got))
	}
	if q.tryPush(frameN(3)); starts != 2 {
		t.Fatalf("%d starts after the writer stopped and a frame came, want 2", starts)
	}
	q.take(nil)
	q.take(nil) // the writer stops
	q.close()
	if !q.tryPush(frameN(4)) || starts != 2 {
		t.Fatalf("after close: %d starts, want still 2 (the frame is queued, no writer)", starts)
	}
}

func TestSendQueue_PushWaitsForRoom_OrGivesUp(t *testing.T) {
	q := newSendQueue(1, func() {})
	if !q.tryPush(frameN(0)) {
		t.Fatal("first push refused")
	}
	done := make(chan struct{})
	pushed := make(chan bool, 1)
	go func() { pushed <- q.push(frameN(1), done) }()
	select {
	case <-pushed:
		t.Fatal("push returned while the queue was full")
	case <-time.After(20 * time.Millisecond): // a wait that must not end: bounded, not a poll
	}
	q.take(nil)
	if ok := <-pushed; !ok {
		t.Fatal("push gave up though the writer made room")
	}
	// Full again, and the connection ends: push gives up.
	go func() { pushed <- q.push(frameN(2), done) }()
	close(done)
	if ok := <-pushed; ok {
		t.Fatal("push reported success after done closed on a full queue")
	}
}
