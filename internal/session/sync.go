package session

import (
	"context"

	"github.com/strata-registry/strata/internal/node"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// policy is who may call each of the session's gRPC methods (node.Policy):
// clients connect; slot leaders compare and repair.
var policy = node.Policy{
	registryv1.SessionService_Connect_FullMethodName:            {identity.RoleClient},
	registryv1.SessionService_ListServices_FullMethodName:       {identity.RoleClient},
	registryv1.SessionSyncService_SlotDigests_FullMethodName:    {identity.RoleData},
	registryv1.SessionSyncService_SlotPublishers_FullMethodName: {identity.RoleData},
}

// syncService implements SessionSyncService: slot leaders compare their
// records of this session with its own (the source of truth) and repair.
type syncService struct {
	registryv1.UnimplementedSessionSyncServiceServer
	s *Server
}

// SlotDigests summarises this session's publishers per requested slot.
//
// With a table epoch it is also the handover barrier: it answers only
// once this session routes by that table or a newer one and no write it
// sent to those slots under an older table is still in flight. A new slot
// leader that has heard from every session so has everything any old
// leader acknowledged: what an old leader accepted before the barrier is
// in this session's publishers (digested below), and after it this
// session writes those slots only to the new leaders.
func (v *syncService) SlotDigests(ctx context.Context, req *registryv1.SessionSlotDigestsRequest) (*registryv1.SessionSlotDigestsResponse, error) {
	if e := req.GetTableEpoch(); e > 0 {
		// Bounded here too: a caller without a deadline (or one far ahead)
		// holds this handler no longer than one call timeout.
		ctx, cancel := context.WithTimeout(ctx, v.s.cfg.CallTimeout)
		defer cancel()
		if err := v.s.waitTable(ctx, e); err != nil {
			return nil, err
		}
		if err := v.s.fwd.settled(ctx, req.GetSlotIds(), e); err != nil {
			return nil, err
		}
	}
	resp := &registryv1.SessionSlotDigestsResponse{SessionId: v.s.proc}
	for _, id := range req.GetSlotIds() {
		d := v.s.pubs.digestOf(slot.ID(id))
		resp.Digests = append(resp.Digests, &registryv1.SessionSlotDigest{SlotId: id, Count: d.Count, Hash: d.Hash,
			Writing: v.s.fwd.writing(slot.ID(id))})
	}
	return resp, nil
}

// SlotPublishers lists this session's publishers in a slot. as_of is read
// with the list, under the lock registrations are stamped under, on the
// clock register timestamps are stamped with: a publication stamped later
// may be missing and must not be judged by it; one stamped earlier is in
// the list unless the session no longer holds it.
func (v *syncService) SlotPublishers(ctx context.Context, req *registryv1.SessionSlotPublishersRequest) (*registryv1.SessionSlotPublishersResponse, error) {
	pubs, asOf := v.s.pubs.inSlot(slot.ID(req.GetSlotId()))
	return &registryv1.SessionSlotPublishersResponse{SessionId: v.s.proc, Publishers: pubs, AsOf: asOf}, nil
}
