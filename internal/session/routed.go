package session

import (
	"context"
	"errors"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/slot"
)

// routedCalls are the calls in flight to slot leaders (forwarded writes,
// push fetches), each tagged with the slot and the leader it was routed
// to. When a new slot table gives a slot another leader, or the same
// node under a new leader epoch, the calls still waiting on the old one
// are cancelled with errLeaderReplaced, and their callers retry at once
// against the new leader instead of waiting out a call timeout on a node
// that is frozen, cut off or gone (a bulkhead across a handover: the
// slot's writes and pushes stall only until the table moves, not until
// the old leader answers).
//
// Why this is safe: a cancelled write may still land at the old leader
// (its bytes may be on the wire). That value is already in this
// session's publishers, which the new leader's handover barrier reads
// (SlotDigests), and the old leader can no longer hand it to anyone who
// matters: followers replicate from the leader their own table names,
// and anything it pushes carries its old leader epoch in the version,
// below every version the new leader serves.
type routedCalls struct {
	// table returns the table the session routes by now (nil before the
	// first): a call routed by an older one is cancelled as it starts.
	table func() *slot.Table

	mu    sync.Mutex
	calls map[*routedCall]struct{}
}

type routedCall struct {
	slot        slot.ID
	leader      slot.NodeID
	leaderEpoch uint64
	cancel      context.CancelCauseFunc
}

// errLeaderReplaced ends a call whose slot has a new leader; the caller
// retries at once.
var errLeaderReplaced = status.Error(codes.Unavailable, "session: the slot's leader changed while the call was in flight; retrying at the new leader")

func newRoutedCalls(table func() *slot.Table) *routedCalls {
	return &routedCalls{table: table, calls: map[*routedCall]struct{}{}}
}

// start registers a call to leader (at leaderEpoch) for slot id and
// returns its context; done must be called when the call returns.
//
// A table stored after the caller routed but before this registers would
// be missed by its retarget, so start checks the current table itself,
// under the lock retarget takes: the session stores a table before it
// retargets, so either start sees the new table or retarget sees the call.
func (r *routedCalls) start(ctx context.Context, id slot.ID, leader slot.NodeID, leaderEpoch uint64) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	c := &routedCall{slot: id, leader: leader, leaderEpoch: leaderEpoch, cancel: cancel}
	r.mu.Lock()
	if t := r.table(); t != nil && !c.routedBy(*t) {
		cancel(errLeaderReplaced)
	} else {
		r.calls[c] = struct{}{}
	}
	r.mu.Unlock()
	return ctx, func() {
		r.mu.Lock()
		delete(r.calls, c)
		r.mu.Unlock()
		cancel(nil)
	}
}

// retarget cancels every call whose slot t gives to another leader or
// leader epoch (or to none), and returns how many.
func (r *routedCalls) retarget(t slot.Table) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for c := range r.calls {
		if c.routedBy(t) {
			continue
		}
		c.cancel(errLeaderReplaced)
		delete(r.calls, c)
		n++
	}
	return n
}

// routedBy reports whether t still gives c's slot to c's leader, at the
// same leader epoch.
func (c *routedCall) routedBy(t slot.Table) bool {
	if int(c.slot) >= len(t.Slots) {
		return false
	}
	row := t.Slots[c.slot]
	return row.Leader == c.leader && row.LeaderEpoch == c.leaderEpoch
}

// replaced reports whether ctx (from start) ended because its slot's
// leader was replaced.
func replaced(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errLeaderReplaced)
}
