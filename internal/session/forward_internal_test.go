package session

import (
	"fmt"
	"testing"
	"time"

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
	b, _ := f.takeBatch(5, cfg.ForwardBatch, ForwardBatchBytes, true)
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
