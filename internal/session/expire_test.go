package session

import (
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/clock"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// TestConns_Expire_QueuesRemovalsBeforeAReconnectCanRegister: when a
// client's grace ends, expire removes its publications and queues their
// removal on the data tier before a reconnect can come in, so the put of
// a publication the client registers again supersedes the removal in the
// forwarder (which keeps the newest op per publication) instead of being
// superseded by it: session and data node end up holding it alike.
func TestConns_Expire_QueuesRemovalsBeforeAReconnectCanRegister(t *testing.T) {
	clk := clock.NewFake(time.Unix(1000, 0))
	s := &Server{clock: clk, proc: "sess-1", pubs: newPublishers(clk), conns: newConns()}
	s.fwd = newForwarder(s)
	o, _ := newOwners(10).acquire("alice", 10)
	reserve := func(int) error { o.reserve(100); return nil }
	k := pubKey{"k", "alice r1"}
	old := &registryv1.Publisher{DataInfoId: k.key, RegisterId: k.registerID, ClientVersion: 1, RegisterTimestamp: 1}
	if _, err := s.pubs.put(old, 0, "alice c", o, reserve); err != nil {
		t.Fatal(err)
	}
	s.conns.gone["alice c"] = clk.Now()

	gone := s.conns.expire(clk.Now(), s.pubs, func(e *pubEntry) { s.forwardDelete(e, true) })
	if gone["alice c"] != 1 || s.pubs.count() != 0 {
		t.Fatalf("expire removed %v, session holds %d", gone, s.pubs.count())
	}
	if op := s.fwd.pending[0][k]; op.del == nil {
		t.Fatalf("after expire the removal is not queued: %+v", op)
	}

	// The client reconnects and registers the publication again.
	clk.Advance(time.Millisecond)
	again := &registryv1.Publisher{DataInfoId: k.key, RegisterId: k.registerID, ClientVersion: 1, RegisterTimestamp: clk.Now().UnixNano()}
	if stored, err := s.pubs.put(again, 0, "alice c", o, reserve); err != nil || !stored {
		t.Fatal(stored, err)
	}
	s.fwd.enqueue(0, k, fwdOp{put: again}, nil)
	if op := s.fwd.pending[0][k]; op.put == nil {
		t.Fatalf("the forwarder will send %+v, not the client's new publication", op)
	}
}
