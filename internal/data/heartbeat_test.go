package data

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/strata-registry/strata/internal/slot"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// The heartbeat tells meta which led slots are still migrating, as of the
// table epoch it names; a slot leaves the list once its handover is done.
// (Follower rows are covered by the cluster tests: following starts
// replication goroutines this bare server cannot run.)
func TestData_Heartbeat_ReportsLedSlotsWhileTheirHandoverIsInFlight(t *testing.T) {
	s := &Server{logger: slog.New(slog.DiscardHandler), aeKick: make(chan struct{}, 1)}
	s.cfg.NodeID = "data-0"
	s.slots = newSlots(s)
	t.Cleanup(func() { s.slots.stopAll(); s.slots.wait() })

	heartbeat := func() *registryv1.HeartbeatRequest {
		req := &registryv1.HeartbeatRequest{NodeId: "data-0"}
		s.fillHeartbeat(req)
		return req
	}
	if req := heartbeat(); req.GetTableEpoch() != 0 || len(req.GetHandoverSlots()) != 0 {
		t.Fatalf("before any table: %v", req)
	}

	row := func(id uint32, leader string) *registryv1.Slot {
		return &registryv1.Slot{Id: id, Leader: leader, LeaderEpoch: 1}
	}
	s.slots.apply(&registryv1.SlotTable{Epoch: 7, SlotCount: 4, Replicas: 1, Slots: []*registryv1.Slot{
		row(0, "data-0"), row(1, "data-1"), row(2, "data-0"), row(3, "data-1"),
	}})
	req := heartbeat()
	if req.GetTableEpoch() != 7 || !slices.Equal(req.GetHandoverSlots(), []uint32{0, 2}) {
		t.Fatalf("new leader of slots 0 and 2 at epoch 7 reports epoch %d, handovers %v", req.GetTableEpoch(), req.GetHandoverSlots())
	}

	_, st := s.slots.view(slot.ID(0))
	st.markRebuilt()
	if req := heartbeat(); !slices.Equal(req.GetHandoverSlots(), []uint32{2}) {
		t.Fatalf("slot 0's handover done: handovers %v, want [2]", req.GetHandoverSlots())
	}
	_, st = s.slots.view(slot.ID(2))
	st.markRebuilt()
	if req := heartbeat(); req.GetTableEpoch() != 7 || len(req.GetHandoverSlots()) != 0 {
		t.Fatalf("every handover done: epoch %d, handovers %v", req.GetTableEpoch(), req.GetHandoverSlots())
	}

	// A new table that hands slot 1 to this node: a new handover, at the
	// new epoch.
	s.slots.apply(&registryv1.SlotTable{Epoch: 8, SlotCount: 4, Replicas: 1, Slots: []*registryv1.Slot{
		row(0, "data-0"), {Id: 1, Leader: "data-0", LeaderEpoch: 2}, row(2, "data-0"), row(3, "data-1"),
	}})
	if req := heartbeat(); req.GetTableEpoch() != 8 || !slices.Equal(req.GetHandoverSlots(), []uint32{1}) {
		t.Fatalf("slot 1 moved here at epoch 8: epoch %d, handovers %v", req.GetTableEpoch(), req.GetHandoverSlots())
	}
}
