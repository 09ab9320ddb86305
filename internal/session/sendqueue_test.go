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
	q := newSendQueue(3)
	for i := range uint64(3) {
		if !q.tryPush(frameN(i)) {
			t.Fatalf("push %d refused below the bound", i)
		}
	}
	if q.tryPush(frameN(3)) {
		t.Fatal("a fourth frame was queued past the bound of 3")
	}
	select {
	case <-q.ready:
	default:
		t.Fatal("frames wait but ready holds no token")
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

func TestSendQueue_PushWaitsForRoom_OrGivesUp(t *testing.T) {
	q := newSendQueue(1)
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
