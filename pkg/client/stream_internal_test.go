package client

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// newTestStream is a stream with no connection: frames queue in out.
func newTestStream() *stream {
	return &stream{pending: map[uint64]pendingAck{}, kick: make(chan struct{}, 1), done: make(chan struct{})}
}

func sentVersion(t *testing.T, f *registryv1.ClientFrame) uint64 {
	t.Helper()
	switch b := f.GetBody().(type) {
	case *registryv1.ClientFrame_RegisterPublisher:
		return b.RegisterPublisher.GetVersion()
	case *registryv1.ClientFrame_UnregisterPublisher:
		return b.UnregisterPublisher.GetVersion()
	}
	t.Fatalf("frame %T carries no publication version", f.GetBody())
	return 0
}

// A publication frame still waiting for its ack when its stream ends may
// yet be applied by that session, late: the next registration goes out
// one version higher (once per such stream end), so the late copy loses.
// A frame the session acked raises nothing; Version stays the caller's.
func TestPublication_FrameUnackedAtStreamEnd_RaisesTheNextVersionOnce(t *testing.T) {
	p := &Publication{registerID: "r", dataID: "d", version: 1, values: [][]byte{[]byte("v")}}
	start := func(st *stream) (*registryv1.ClientFrame, <-chan *registryv1.Ack) {
		t.Helper()
		p.mu.Lock()
		defer p.mu.Unlock()
		f := p.register()
		ch, err := st.start(f, &p.unsure)
		if err != nil {
			t.Fatal(err)
		}
		return f, ch
	}

	// Acked, then the stream ends: nothing raised.
	st := newTestStream()
	f, ch := start(st)
	st.acked(&registryv1.Ack{Id: f.GetId()})
	if _, err := wait(t.Context(), ch); err != nil {
		t.Fatal(err)
	}
	st.end(errors.New("gone"))
	f, _ = start(newTestStream())
	if v := sentVersion(t, f); v != 1 {
		t.Fatalf("after an acked frame the registration carries version %d, want 1", v)
	}

	// Unacked at the end: the next frame, and only it, is raised.
	st = newTestStream()
	_, ch = start(st)
	st.end(errors.New("frozen"))
	if _, err := wait(t.Context(), ch); !errors.Is(err, errStreamEnded) {
		t.Fatalf("wait on an ended stream: %v, want errStreamEnded", err)
	}
	next := newTestStream()
	f, ch = start(next)
	if v := sentVersion(t, f); v != 2 {
		t.Fatalf("after an unacked frame the registration carries version %d, want 2", v)
	}
	next.acked(&registryv1.Ack{Id: f.GetId()})
	<-ch
	f, _ = start(newTestStream())
	if v := sentVersion(t, f); v != 2 {
		t.Fatalf("the raise applied twice: version %d, want 2", v)
	}
	p.mu.Lock()
	p.version++ // an Update
	if v := sentVersion(t, p.register()); v != 3 {
		t.Fatalf("an update after the raise carries version %d, want 3", v)
	}
	if v := sentVersion(t, p.unregister()); v != 3 {
		t.Fatalf("the removal carries version %d, want 3", v)
	}
	p.mu.Unlock()
	if v := p.Version(); v != 2 {
		t.Fatalf("Version() = %d, want the caller's 2", v)
	}
}

// Frames queue for the writer in order and never block the sender; one
// heartbeat at a time waits; an ended stream refuses frames and drops
// those it had not written.
func TestStream_QueuesInOrder_OneHeartbeat_EndDropsTheRest(t *testing.T) {
	st := newTestStream()
	st.heartbeat()
	st.heartbeat()
	if err := st.send(&registryv1.ClientFrame{Body: &registryv1.ClientFrame_UnregisterSubscriber{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.start(&registryv1.ClientFrame{Body: &registryv1.ClientFrame_RegisterSubscriber{}}, nil); err != nil {
		t.Fatal(err)
	}
	st.heartbeat()
	var kinds []string
	for _, f := range st.out {
		switch f.GetBody().(type) {
		case *registryv1.ClientFrame_Heartbeat:
			if f.GetId() == 0 {
				t.Error("a heartbeat without an ID: the session would not answer it")
			}
			kinds = append(kinds, "heartbeat")
		case *registryv1.ClientFrame_UnregisterSubscriber:
			kinds = append(kinds, "unsubscribe")
		case *registryv1.ClientFrame_RegisterSubscriber:
			kinds = append(kinds, "subscribe")
		}
	}
	if want := []string{"heartbeat", "unsubscribe", "subscribe"}; !slices.Equal(kinds, want) {
		t.Fatalf("queued %v, want %v", kinds, want)
	}
	if len(st.kick) != 1 {
		t.Fatal("the writer was not woken")
	}
	st.end(errors.New("gone"))
	if len(st.out) != 0 || !st.ended() {
		t.Fatalf("after end: %d frames queued, ended %v", len(st.out), st.ended())
	}
	if err := st.send(&registryv1.ClientFrame{}); !errors.Is(err, errStreamEnded) {
		t.Fatalf("send after end: %v", err)
	}
	if _, err := st.start(&registryv1.ClientFrame{}, nil); !errors.Is(err, errStreamEnded) {
		t.Fatalf("start after end: %v", err)
	}
}

// Held push acks stay out of the queue until the writer's delay, unless
// they reach the count or byte cap: then they are queued at once, as one
// frame. A newer ack for the same subscribers replaces the held one; a
// session that names no delay gets each ack at once; an ended stream
// drops what it held.
func TestStream_PushAcks_HeldUpToTheCaps_NewerReplacesOlder(t *testing.T) {
	ack := func(id string, v uint64) *registryv1.PushAck {
		return &registryv1.PushAck{RegisterId: id, Version: v}
	}
	st := newTestStream()
	st.welcome = &registryv1.Welcome{PushAckDelayMs: 20}
	st.ackPushes([]*registryv1.PushAck{ack("a", 1)}, 10)
	st.ackPushes([]*registryv1.PushAck{ack("a", 2), ack("b", 1)}, 10)
	if len(st.out) != 0 || len(st.held) != 2 || st.held[0].ack.GetVersion() != 2 {
		t.Fatalf("queued %d, held %d (first at version %d): want none queued, a@2 and b@1 held",
			len(st.out), len(st.held), st.held[0].ack.GetVersion())
	}
	if len(st.kick) != 1 {
		t.Fatal("the writer was not woken to time the delay")
	}

	// The count cap: the 256th distinct ack sends them all, as one frame.
	for i := len(st.held); i < maxHeldAcks; i++ {
		st.ackPushes([]*registryv1.PushAck{ack(fmt.Sprint("s", i), 1)}, 1)
	}
	if len(st.out) != 1 || len(st.held) != 0 {
		t.Fatalf("at the count cap: %d frames queued, %d held; want 1 and 0", len(st.out), len(st.held))
	}
	if n := len(st.out[0].GetPushAcks().GetAcks()); n != maxHeldAcks {
		t.Fatalf("the frame carries %d acks, want %d", n, maxHeldAcks)
	}
	// The byte cap: one big push is acked at once.
	st.ackPushes([]*registryv1.PushAck{ack("big", 1)}, maxHeldAckBytes)
	if len(st.out) != 2 || st.out[1].GetPushAck().GetRegisterId() != "big" {
		t.Fatalf("after a push of %d bytes: %d frames queued, want its ack queued alone", maxHeldAckBytes, len(st.out))
	}

	// Held acks are dropped with the stream.
	st.ackPushes([]*registryv1.PushAck{ack("late", 1)}, 1)
	st.end(errors.New("gone"))
	if len(st.held) != 0 {
		t.Fatalf("%d acks held after the end", len(st.held))
	}

	// No delay named: an ack per push, at once.
	st = newTestStream()
	st.welcome = &registryv1.Welcome{}
	st.ackPushes([]*registryv1.PushAck{ack("a", 1)}, 1)
	if len(st.out) != 1 || len(st.held) != 0 {
		t.Fatalf("without a delay: %d frames queued, %d held; want 1 and 0", len(st.out), len(st.held))
	}
}
