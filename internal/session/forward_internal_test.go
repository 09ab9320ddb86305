package session

import (
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/strata-registry/strata/internal/clock"
	"github.com/strata-registry/strata/internal/slot"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// TestForwarder_UrgentOpsFirst_PastAStormsBacklog: pushes first in the
// forwarder. Behind thousands of queued new registrations, an update of a
// held publication goes in its slot's next batch, that slot is flushed
// before the others, and once it has gone the slot is no longer first.
func TestForwarder_UrgentOpsFirst_PastAStormsBacklog(t *testing.T) {
	clk := clock.NewFake(time.Unix(1000, 0))
	cfg := DefaultConfig()
	s := &Server{cfg: cfg, clock: clk, proc: "sess-1"}
	f := newForwarder(s)
	put := func(key, reg string) *registryv1.Publisher {
		return &registryv1.Publisher{DataInfoId: key, RegisterId: reg, ClientVersion: 1, RegisterTimestamp: 1}
	}
	for sl := range slot.ID(8) {
		for i := range 3 * cfg.ForwardBatch {
			k := pubKey{fmt.Sprintf("svc%d", sl), fmt.Sprintf("new-%d", i)}
			f.enqueue(sl, k, fwdOp{put: put(k.key, k.registerID)}, nil)
		}
	}
	probe := pubKey{"svc5", "probe"}
	f.enqueue(5, probe, fwdOp{put: put(probe.key, probe.registerID), urgent: true}, nil)

	f.mu.Lock()
	defer f.mu.Unlock()
	if order := f.flushOrder(); order[0] != 5 {
		t.Fatalf("flush order starts with slot %d, want the urgent op's slot 5 (%v)", order[0], order)
	}
	b := f.takeBatch(5)
	if _, ok := b[probe]; !ok || len(b) != cfg.ForwardBatch {
		t.Fatalf("slot 5's next batch: %d ops, probe in it: %v; want a full batch with the probe", len(b), ok)
	}
	if f.hot[5] {
		t.Fatal("slot 5 still counts as urgent with its one urgent op on the wire")
	}
	// Bulk only from here: no slot goes first.
	if order := f.flushOrder(); len(order) != 8 {
		t.Fatalf("%d slots queued, want 8", len(order))
	}
}

// TestPublishers_InternsDataInfoIDs_ForgetsTheLastOne: every stored
// publication of a key shares one copy of its data info ID, and the
// table forgets a key once nothing of it is stored.
func TestPublishers_InternsDataInfoIDs_ForgetsTheLastOne(t *testing.T) {
	clk := clock.NewFake(time.Unix(1000, 0))
	ps := newPublishers(clk)
	o, _ := newOwners(10).acquire("alice", 10)
	reserve := func(int) error { o.reserve(1); return nil }
	mk := func(reg string) *pubEntry {
		key := string([]byte("com.example.svc#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP")) // a fresh copy each time
		return &pubEntry{p: &registryv1.Publisher{DataInfoId: key, RegisterId: reg, ClientVersion: 1, RegisterTimestamp: 1}, clientID: "alice c", owner: o}
	}
	a, b := mk("r1"), mk("r2")
	for _, e := range []*pubEntry{a, b} {
		if _, err := ps.put(e, reserve); err != nil {
			t.Fatal(err)
		}
	}
	if unsafe.StringData(a.p.GetDataInfoId()) != unsafe.StringData(b.p.GetDataInfoId()) {
		t.Fatal("two publications of one key hold two copies of it")
	}
	ps.mu.Lock()
	ps.removeLocked(pubKey{a.p.GetDataInfoId(), "r1"}, nil)
	n := ps.keys[b.p.GetDataInfoId()].n
	ps.removeLocked(pubKey{b.p.GetDataInfoId(), "r2"}, nil)
	left := len(ps.keys)
	ps.mu.Unlock()
	if n != 1 || left != 0 {
		t.Fatalf("after the removals: %d then %d keys interned, want 1 then 0", n, left)
	}
}
