package session

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/strata-registry/strata/internal/slot"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// forwarder carries publications to their slot leaders: writes queue per
// slot (the newest op per publication wins), go out in per-slot batches
// (one call per leader carries the batches of several of its slots),
// and are retried after a failure (a stale epoch, a leader change, a node
// down) until they land or are superseded. Nothing is dropped while the
// client is alive; the queue holds at most one op per publication.
//
// Bulkheads: each slot has at most one batch in flight, and each data node
// at most PerNodeCalls; a flush never waits for a send, so a frozen data
// node holds only the slots it leads (their batches wait out CallTimeout)
// while every other slot's writes go on at once. A slot whose send failed
// retries after a delay that doubles from RetryInterval/16 up to
// RetryInterval (a leader that is a moment behind the session's table is
// retried quickly; a dead one is not hammered), or at once on a new slot
// table. A new table that replaces a slot's leader also cancels the batch
// still waiting on the old one (routedCalls), so a frozen leader holds
// its slots' writes until meta moves them, not for a whole CallTimeout.
type forwarder struct {
	s *Server

	mu      sync.Mutex
	pending map[slot.ID]map[pubKey]fwdOp
	// inflight is the batch each slot has on the wire.
	inflight map[slot.ID]*flight
	// perNode counts batches in flight to each data node.
	perNode map[slot.NodeID]int
	// backoff holds slots whose last sends failed until their retry time.
	backoff map[slot.ID]retry
	// hot holds the slots with urgent ops queued: their batches start
	// first, urgent ops first in them.
	hot map[slot.ID]bool
	// oneSlot holds the leaders that answered PublishSlots as
	// unimplemented (data nodes older than the call), until when they get
	// one slot per call (Publish).
	oneSlot map[slot.NodeID]time.Time
	seq     uint64
	wakeCh  chan struct{}
	wg      sync.WaitGroup
	// waiting holds the applied-level acks (AckLevel APPLIED) of each
	// publication, each waiting for an op at or past its seq to be acked
	// by the slot leader. A superseded op's waiters are answered by the op
	// that superseded it: the leader then holds a newer state.
	waiting map[pubKey][]waiter
}

// waiter is one applied-level ack: fn runs once an op of its publication
// at or past seq has landed.
type waiter struct {
	seq uint64
	fn  func()
}

// retry is a slot's failed sends in a row and when it may send again.
type retry struct {
	failures int
	until    time.Time
}

// flight is one batch on its way to a slot leader. epoch is the slot
// table epoch the batch was stamped with; done closes when the call has
// returned and the batch is settled (acked, or requeued).
type flight struct {
	epoch uint64
	done  chan struct{}
	// ops is the batch (read-only once on the wire).
	ops map[pubKey]fwdOp
}

// ForwardBatchBytes bounds the bytes of one write to a slot leader (a
// single publisher larger than that still goes, alone): the data node's
// request limit (data.MaxRequestBytes) leaves room for one whole publisher
// on top.
const ForwardBatchBytes = 8 << 20

// PerNodeCalls bounds the writes in flight to one data node: the slots it
// leads share them, so a slow node queues its own slots' writes and no
// one else's.
const PerNodeCalls = 8

// fwdOp is a put or a delete of one publication; seq orders ops, so a
// failed batch does not overwrite a newer op queued meanwhile. size is
// about what the op adds to a write's encoded size, computed once, when
// it is queued (a publisher may be 4 MiB).
type fwdOp struct {
	seq  uint64
	size int
	put  *registryv1.Publisher
	del  *registryv1.Unpublish
	// urgent: news for subscribers (an update or a client's removal of a
	// publication), not the bulk of new registrations. Pushes first: an
	// urgent op goes in its slot's next batch, and that slot's batch
	// starts before the others, so a registration storm's backlog delays
	// it by at most the batches already in flight.
	urgent bool
}

func newForwarder(s *Server) *forwarder {
	return &forwarder{s: s, pending: map[slot.ID]map[pubKey]fwdOp{}, inflight: map[slot.ID]*flight{},
		perNode: map[slot.NodeID]int{}, backoff: map[slot.ID]retry{}, oneSlot: map[slot.NodeID]time.Time{}, wakeCh: make(chan struct{}, 1),
		waiting: map[pubKey][]waiter{}, hot: map[slot.ID]bool{}}
}

// enqueue queues op for publication k in slot id; onApplied, if not nil,
// runs once the slot leader has acked it (or an op that superseded it).
func (f *forwarder) enqueue(id slot.ID, k pubKey, op fwdOp, onApplied func()) {
	op.size = op.encodedSize() // before the lock: it walks the publisher
	f.mu.Lock()
	f.seq++
	op.seq = f.seq
	if f.pending[id] == nil {
		f.pending[id] = map[pubKey]fwdOp{}
	}
	f.pending[id][k] = op
	if op.urgent {
		f.hot[id] = true
	}
	if onApplied != nil {
		f.waiting[k] = append(f.waiting[k], waiter{seq: op.seq, fn: onApplied})
	}
	f.mu.Unlock()
	f.wake()
}

// whenApplied runs fn once the op queued or in flight for publication k
// in slot id has landed, or at once if none is (what the session holds
// of k has landed already).
func (f *forwarder) whenApplied(id slot.ID, k pubKey, fn func()) {
	f.mu.Lock()
	op, ok := f.pending[id][k]
	if !ok {
		if fl := f.inflight[id]; fl != nil {
			op, ok = fl.ops[k]
		}
	}
	if ok {
		f.waiting[k] = append(f.waiting[k], waiter{seq: op.seq, fn: fn})
	}
	f.mu.Unlock()
	if !ok {
		fn()
	}
}

// landed takes the waiters that batch b answers. Callers hold f.mu and
// run the result after letting go.
func (f *forwarder) landed(b map[pubKey]fwdOp) []func() {
	var done []func()
	for k, op := range b {
		ws := f.waiting[k]
		if len(ws) == 0 {
			continue
		}
		keep := ws[:0]
		for _, w := range ws {
			if w.seq <= op.seq {
				done = append(done, w.fn)
			} else {
				keep = append(keep, w)
			}
		}
		if len(keep) == 0 {
			delete(f.waiting, k)
		} else {
			clear(ws[len(keep):])
			f.waiting[k] = keep
		}
	}
	return done
}

func (f *forwarder) wake() {
	select {
	case f.wakeCh <- struct{}{}:
	default:
	}
}

// retryNow lets every backed-off slot go again at once (a new slot table may have
// given them a leader) and wakes the forwarder.
func (f *forwarder) retryNow() {
	f.mu.Lock()
	for id, r := range f.backoff {
		r.until = time.Time{}
		f.backoff[id] = r
	}
	f.mu.Unlock()
	f.wake()
}

// retryBase is the first retry delay after a failed send.
func (f *forwarder) retryBase() time.Duration { return max(f.s.cfg.RetryInterval/16, time.Millisecond) }

// writing reports whether slot id has ops queued or a batch in flight.
func (f *forwarder) writing(id slot.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending[id]) > 0 || f.inflight[id] != nil
}

// backlog returns the number of queued ops (in flight not counted).
func (f *forwarder) backlog() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range f.pending {
		n += len(m)
	}
	return n
}

// run starts batches whenever woken, and looks for slots whose retry
// time has come every retryBase. It returns when ctx ends and every send
// has returned.
func (f *forwarder) run(ctx context.Context) error {
	t := f.s.clock.NewTicker(f.retryBase())
	defer t.Stop()
	defer f.wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.wakeCh:
		case <-t.C():
			if !f.retryDue() {
				continue
			}
		}
		f.flush(ctx)
	}
}

// retryDue reports whether a backed-off slot with queued ops may send.
func (f *forwarder) retryDue() bool {
	now := f.s.clock.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, r := range f.backoff {
		if f.pending[id] != nil && !now.Before(r.until) {
			return true
		}
	}
	return false
}

// flush starts calls to every slot leader with a free call, each call
// carrying the batches of as many of the leader's slots as fit in one
// (ForwardBatch ops, ForwardBatchBytes): slots with queued ops, none in
// flight and no failure waiting out its retry, those with urgent ops
// first. It does not wait for them.
//
// One call per leader rather than one per slot: in a storm every slot of
// a leader has a few ops, and a call per slot spent most of a session's
// and a data node's CPU on the calls themselves (TLS records, HTTP/2
// frames, a syscall each way), not on the ops.
func (f *forwarder) flush(ctx context.Context) {
	tv := f.s.table.Load()
	now := f.s.clock.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	var leaders []slot.NodeID
	ready := map[slot.NodeID][]slot.ID{}
	for _, id := range f.flushOrder() {
		if f.inflight[id] != nil || now.Before(f.backoff[id].until) {
			continue
		}
		if tv == nil || int(id) >= len(tv.t.Slots) {
			f.failed(id, now) // no table yet: one comes with retryNow
			continue
		}
		l := tv.t.Slots[id].Leader
		if ready[l] == nil {
			leaders = append(leaders, l)
		}
		ready[l] = append(ready[l], id)
	}
	for _, l := range leaders {
		for ids := ready[l]; len(ids) > 0; {
			// Bulk calls leave each leader one call for urgent ones (a
			// call with urgent ops has them in its first slot).
			limit := PerNodeCalls - 1
			if f.hot[ids[0]] {
				limit = PerNodeCalls
			}
			if f.perNode[l] >= limit {
				break // started again when one of its calls returns
			}
			ids = f.startCall(ctx, tv, l, ids)
		}
	}
}

// callPart is one slot's batch in a call to its leader.
type callPart struct {
	id slot.ID
	fl *flight
}

// startCall sends one call to leader with the batches of the first of
// ids (all led by it, ready to send) that fit, and returns the ids it did
// not take. A slot whose queue holds more than fits is in flight with
// what did: the rest waits for its next batch. Callers hold f.mu.
func (f *forwarder) startCall(ctx context.Context, tv *tableView, leader slot.NodeID, ids []slot.ID) []slot.ID {
	var parts []callPart
	ops, bytes := f.s.cfg.ForwardBatch, ForwardBatchBytes
	one := f.s.clock.Now().Before(f.oneSlot[leader])
	for len(ids) > 0 && ops > 0 && (!one || len(parts) == 0) {
		id := ids[0]
		b, size := f.takeBatch(id, ops, bytes, len(parts) == 0)
		if len(b) == 0 {
			break // its next op does not fit in this call
		}
		ids = ids[1:]
		fl := &flight{epoch: tv.t.Epoch, done: make(chan struct{}), ops: b}
		f.inflight[id] = fl
		parts = append(parts, callPart{id: id, fl: fl})
		ops, bytes = ops-len(b), bytes-size
		if f.pending[id] != nil {
			break // the call is full
		}
	}
	f.perNode[leader]++
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		errs := f.send(ctx, tv, leader, parts)
		f.settle(leader, parts, errs)
	}()
	return ids
}

// flushOrder lists the slots with queued ops, those with urgent ops
// first: they take the leaders' free calls. Callers hold f.mu.
func (f *forwarder) flushOrder() []slot.ID {
	order := make([]slot.ID, 0, len(f.pending))
	for id := range f.hot {
		if f.pending[id] != nil {
			order = append(order, id)
		}
	}
	for id := range f.pending {
		if !f.hot[id] {
			order = append(order, id)
		}
	}
	return order
}

// takeBatch moves the next batch of slot id out of its queue: its urgent
// ops first, then others, up to maxOps ops and maxBytes bytes (alone, the
// first op goes whatever its size), and returns it with its size.
// Callers hold f.mu.
func (f *forwarder) takeBatch(id slot.ID, maxOps, maxBytes int, alone bool) (map[pubKey]fwdOp, int) {
	ops := f.pending[id]
	b := map[pubKey]fwdOp{}
	size := 0
	// take moves ops (only urgent ones, with urgentOnly) into b until it
	// is full, and reports whether it filled.
	take := func(urgentOnly bool) (full bool) {
		for k, op := range ops {
			if urgentOnly && !op.urgent {
				continue
			}
			if len(b) == maxOps || size+op.size > maxBytes && (len(b) > 0 || !alone) {
				return true
			}
			b[k] = op
			size += op.size
			delete(ops, k)
		}
		return false
	}
	if f.hot[id] && !take(true) {
		delete(f.hot, id) // every urgent op is in this batch
	}
	take(false)
	if len(ops) == 0 {
		delete(f.pending, id)
		delete(f.hot, id)
	}
	return b, size
}

// failed backs slot id off after a failure: RetryInterval/16, doubling
// with each failure in a row, at most RetryInterval. Callers hold f.mu.
func (f *forwarder) failed(id slot.ID, now time.Time) {
	r := f.backoff[id]
	r.failures++
	d := f.s.cfg.RetryInterval
	if r.failures < 5 {
		d = min(d, f.retryBase()<<(r.failures-1))
	}
	r.until = now.Add(d)
	f.backoff[id] = r
}

// settle ends a call: each slot's failed batch goes back (except ops
// superseded meanwhile) and its slot backs off; either way the slots and
// their leader's call are free again. errs holds each part's outcome.
func (f *forwarder) settle(leader slot.NodeID, parts []callPart, errs []error) {
	f.mu.Lock()
	var answered []func()
	for i, p := range parts {
		answered = append(answered, f.settleSlot(p.id, p.fl, errs[i])...)
	}
	if f.perNode[leader]--; f.perNode[leader] <= 0 {
		delete(f.perNode, leader)
	}
	f.mu.Unlock()
	for _, fn := range answered {
		fn()
	}
	f.wake() // more of these slots, or slots waiting for this node's call
}

// settleSlot ends one slot's flight and returns the waiters it answers
// (to run once f.mu is let go). Callers hold f.mu.
func (f *forwarder) settleSlot(id slot.ID, fl *flight, err error) []func() {
	var answered []func()
	if err == nil {
		answered = f.landed(fl.ops)
	}
	if err == nil || errors.Is(err, errLeaderReplaced) {
		// Done, or cut short by a new table: either way nothing to wait
		// out (a replaced leader's batch goes back to the queue below).
		delete(f.backoff, id)
	}
	if err != nil {
		if f.pending[id] == nil {
			f.pending[id] = map[pubKey]fwdOp{}
		}
		for k, op := range fl.ops {
			if cur, ok := f.pending[id][k]; !ok || cur.seq < op.seq {
				f.pending[id][k] = op
				if op.urgent {
					f.hot[id] = true
				}
			}
		}
		if !errors.Is(err, errLeaderReplaced) {
			f.failed(id, f.s.clock.Now())
		}
	}
	delete(f.inflight, id)
	close(fl.done)
	return answered
}

// send writes a call's batches to their leader in table tv and returns
// each one's outcome: one slot's batch alone goes as a Publish, several
// as one PublishSlots (each batch answered on its own). A call cut short
// by a new table that gives one of its slots another leader fails for
// all of them with errLeaderReplaced: they go again at once.
func (f *forwarder) send(ctx context.Context, tv *tableView, leader slot.NodeID, parts []callPart) []error {
	errs := make([]error, len(parts))
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	batches := make([]*registryv1.PublishRequest, len(parts))
	for i, p := range parts {
		row := tv.t.Slots[p.id]
		req := &registryv1.PublishRequest{SessionId: f.s.proc, TableEpoch: tv.t.Epoch, SlotId: uint32(p.id), LeaderEpoch: row.LeaderEpoch}
		for _, op := range p.fl.ops {
			if op.put != nil {
				req.Puts = append(req.Puts, op.put)
			} else {
				req.Deletes = append(req.Deletes, op.del)
			}
		}
		batches[i] = req
	}
	conn, err := f.s.dataConn(leader)
	if err != nil {
		return fail(err)
	}
	cctx, cancel := context.WithTimeout(ctx, f.s.cfg.CallTimeout)
	defer cancel()
	for _, p := range parts {
		var done func()
		cctx, done = f.s.routed.start(cctx, p.id, leader, tv.t.Slots[p.id].LeaderEpoch)
		defer done()
	}
	client := registryv1.NewDataServiceClient(conn)
	if len(batches) == 1 {
		_, err = client.Publish(cctx, batches[0])
	} else {
		var resp *registryv1.PublishSlotsResponse
		resp, err = client.PublishSlots(cctx, &registryv1.PublishSlotsRequest{Batches: batches})
		if status.Code(err) == codes.Unimplemented {
			return f.publishEach(cctx, client, leader, parts, batches)
		}
		if err == nil {
			if len(resp.GetResults()) != len(batches) {
				return fail(status.Errorf(codes.Internal, "session: %s answered %d results for %d batches", leader, len(resp.GetResults()), len(batches)))
			}
			for i, r := range resp.GetResults() {
				if r.GetCode() != 0 {
					errs[i] = status.Error(codes.Code(r.GetCode()), r.GetMessage())
					f.s.logger.Debug("write to slot leader refused; retrying", "slot", parts[i].id, "leader", leader, "err", errs[i])
				}
			}
			return errs
		}
	}
	if err != nil {
		if replaced(cctx) {
			f.s.logger.Debug("write to a replaced slot leader cancelled; retrying at the new one", "leader", leader, "slots", len(parts))
			return fail(errLeaderReplaced)
		}
		f.s.logger.Debug("write to slot leader failed; retrying", "leader", leader, "slots", len(parts), "err", err)
		return fail(err)
	}
	return errs
}

// slotsRecheck is how long a leader that answered PublishSlots as
// unimplemented gets one slot per call before the call is tried again: a
// data node upgraded meanwhile soon gets batched calls, and one still old
// costs one refused call a minute.
const slotsRecheck = time.Minute

// publishEach sends a call's batches one Publish each, to a leader that
// does not know PublishSlots (a data node older than the session: rolling
// upgrades need not go data nodes first), and gives it one slot per call
// for slotsRecheck.
func (f *forwarder) publishEach(ctx context.Context, client registryv1.DataServiceClient, leader slot.NodeID, parts []callPart, batches []*registryv1.PublishRequest) []error {
	f.mu.Lock()
	if _, known := f.oneSlot[leader]; !known {
		f.s.logger.Info("slot leader does not take PublishSlots (an older data node): one call per slot for a while", "leader", leader)
	}
	f.oneSlot[leader] = f.s.clock.Now().Add(slotsRecheck)
	f.mu.Unlock()
	errs := make([]error, len(batches))
	for i, b := range batches {
		if _, err := client.Publish(ctx, b); err != nil {
			if replaced(ctx) {
				err = errLeaderReplaced
			}
			f.s.logger.Debug("write to slot leader failed; retrying", "slot", parts[i].id, "leader", leader, "err", err)
			errs[i] = err
		}
	}
	return errs
}

// settled waits until no batch for slots ids stamped with a table older
// than epoch is in flight. Callers first make sure this session's own
// table is at epoch or newer, so no new such batch can start.
func (f *forwarder) settled(ctx context.Context, ids []uint32, epoch uint64) error {
	for {
		var wait []chan struct{}
		f.mu.Lock()
		for _, id := range ids {
			if fl := f.inflight[slot.ID(id)]; fl != nil && fl.epoch < epoch {
				wait = append(wait, fl.done)
			}
		}
		f.mu.Unlock()
		if len(wait) == 0 {
			return nil
		}
		for _, ch := range wait {
			select {
			case <-ch:
			case <-ctx.Done():
				return status.Errorf(codes.Unavailable, "session: writes sent under a slot table older than epoch %d are still in flight", epoch)
			}
		}
	}
}

// encodedSize is about what op adds to a write's encoded size.
func (op fwdOp) encodedSize() int {
	if op.put != nil {
		return proto.Size(op.put) + 8
	}
	return proto.Size(op.del) + 8
}

// nodeGate bounds the calls of one kind in flight to each data node, so a
// stuck node holds at most its share of a pool shared across nodes (the
// push engine's fetch workers). Acquire does not wait: a full node is
// refused, and the caller retries later as after any failed call.
type nodeGate struct {
	limit int
	mu    sync.Mutex
	n     map[slot.NodeID]int
}

func newNodeGate(limit int) *nodeGate {
	return &nodeGate{limit: max(1, limit), n: map[slot.NodeID]int{}}
}

// acquire takes a call to node id, or reports false if it has limit.
func (g *nodeGate) acquire(id slot.NodeID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n[id] >= g.limit {
		return false
	}
	g.n[id]++
	return true
}

func (g *nodeGate) release(id slot.NodeID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n[id]--; g.n[id] <= 0 {
		delete(g.n, id)
	}
}
