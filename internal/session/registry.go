package session

import (
	"context"
	"sort"
	"sync"

	"github.com/strata-registry/strata/internal/record"
	"github.com/strata-registry/strata/internal/slot"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// pubKey identifies a publication: (dataInfoID, registerID).
type pubKey struct{ key, registerID string }

// pubEntry is one of this session's publications. p's register ID is the
// stored one, qualified by the owner (record.Owned).
type pubEntry struct {
	p        *registryv1.Publisher // owned; replaced, never mutated
	slot     slot.ID
	clientID string // the client's key (clientKey)
	// owner is the identity the publication counts against (its held
	// count has one reservation for the entry while it is stored).
	owner *owner
}

// errTaken refuses a client that registers a register ID another client of
// the same identity holds on this session.
var errTaken = status.Error(codes.PermissionDenied, "session: another client of this identity holds that register id; a publication belongs to the client that made it")

// publishers is the session's own record of its clients' publications:
// the source of truth that slot leaders compare against.
type publishers struct {
	mu       sync.Mutex
	byKey    map[pubKey]*pubEntry
	bySlot   map[slot.ID]map[pubKey]*pubEntry
	byClient map[string]map[pubKey]struct{}
}

func newPublishers() *publishers {
	return &publishers{byKey: map[pubKey]*pubEntry{}, bySlot: map[slot.ID]map[pubKey]*pubEntry{},
		byClient: map[string]map[pubKey]struct{}{}}
}

// put stores e unless the stored one is newer or equal, and reports
// whether it stored it. A publication held for another client (of the
// same identity: the register ID is qualified by its owner) is not
// replaced: errTaken.
//
// A publication the client does not hold yet is one more registration:
// put calls reserve first, with ps.mu held and the number of publications
// the client holds, and stores e only if it returns nil (having counted
// e against e.owner's quota). The check and the insert are one step, so
// two streams of one client cannot both take the last place, and an
// update of a held publication never meets the quotas. reserve must not
// call back into ps.
func (ps *publishers) put(e *pubEntry, reserve func(clientPubs int) error) (bool, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	k := pubKey{e.p.GetDataInfoId(), e.p.GetRegisterId()}
	old, ok := ps.byKey[k]
	if ok && old.clientID != e.clientID {
		return false, errTaken
	}
	if ok && !record.Newer(e.p.GetClientVersion(), e.p.GetRegisterTimestamp(), old.p.GetClientVersion(), old.p.GetRegisterTimestamp()) {
		return false, nil
	}
	if !ok {
		if err := reserve(len(ps.byClient[e.clientID])); err != nil {
			return false, err
		}
	}
	ps.byKey[k] = e
	if ps.bySlot[e.slot] == nil {
		ps.bySlot[e.slot] = map[pubKey]*pubEntry{}
	}
	ps.bySlot[e.slot][k] = e
	if ps.byClient[e.clientID] == nil {
		ps.byClient[e.clientID] = map[pubKey]struct{}{}
	}
	ps.byClient[e.clientID][k] = struct{}{}
	return true, nil
}

func (ps *publishers) unindexClient(clientID string, k pubKey) {
	delete(ps.byClient[clientID], k)
	if len(ps.byClient[clientID]) == 0 {
		delete(ps.byClient, clientID)
	}
}

// withClient runs f with ps.mu held and the number of publications
// client holds: a subscriber's quota check and insert, made atomic with
// the client's publications (f must not call back into ps).
func (ps *publishers) withClient(clientID string, f func(clientPubs int) error) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return f(len(ps.byClient[clientID]))
}

// removeClient removes every publication of client and returns them.
func (ps *publishers) removeClient(clientID string) []*pubEntry {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make([]*pubEntry, 0, len(ps.byClient[clientID]))
	for k := range ps.byClient[clientID] {
		if e := ps.removeLocked(k, nil); e != nil {
			out = append(out, e)
		}
	}
	return out
}

// removeOwn removes a publication only if client holds it, and returns it
// (nil if unknown or another client's).
func (ps *publishers) removeOwn(k pubKey, clientID string) *pubEntry {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.removeLocked(k, &clientID)
}

// removeLocked removes k (if client is set, only when that client holds
// it). Callers hold ps.mu.
func (ps *publishers) removeLocked(k pubKey, client *string) *pubEntry {
	e := ps.byKey[k]
	if e == nil || (client != nil && e.clientID != *client) {
		return nil
	}
	delete(ps.byKey, k)
	delete(ps.bySlot[e.slot], k)
	if len(ps.bySlot[e.slot]) == 0 {
		delete(ps.bySlot, e.slot)
	}
	ps.unindexClient(e.clientID, k)
	e.owner.unreserve(1)
	return e
}

// ofClientCount returns how many publications a client has.
func (ps *publishers) ofClientCount(clientID string) int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return len(ps.byClient[clientID])
}

// inSlot returns copies of the publishers in a slot, sorted.
func (ps *publishers) inSlot(id slot.ID) []*registryv1.Publisher {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make([]*registryv1.Publisher, 0, len(ps.bySlot[id]))
	for _, e := range ps.bySlot[id] {
		out = append(out, e.p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].GetDataInfoId() != out[j].GetDataInfoId() {
			return out[i].GetDataInfoId() < out[j].GetDataInfoId()
		}
		return out[i].GetRegisterId() < out[j].GetRegisterId()
	})
	return out
}

func (ps *publishers) count() int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return len(ps.byKey)
}

// forwarder carries publications to their slot leaders: writes queue per
// slot (the newest op per publication wins), go out in per-slot batches,
// and are retried after a failure (a stale epoch, a leader change, a node
// down) until they land or are superseded. Nothing is dropped while the
// client is alive; the queue holds at most one op per publication.
type forwarder struct {
	s *Server

	mu      sync.Mutex
	pending map[slot.ID]map[pubKey]fwdOp
	seq     uint64
	wakeCh  chan struct{}
}

// ForwardBatchBytes bounds the bytes of one write to a slot leader (a
// single publisher larger than that still goes, alone): the data node's
// request limit (data.MaxRequestBytes) leaves room for one whole publisher
// on top.
const ForwardBatchBytes = 8 << 20

// fwdOp is a put or a delete of one publication; seq orders ops, so a
// failed batch does not overwrite a newer op queued meanwhile. size is
// about what the op adds to a write's encoded size, computed once, when
// it is queued (a publisher may be 4 MiB).
type fwdOp struct {
	seq  uint64
	size int
	put  *registryv1.Publisher
	del  *registryv1.Unpublish
}

func newForwarder(s *Server) *forwarder {
	return &forwarder{s: s, pending: map[slot.ID]map[pubKey]fwdOp{}, wakeCh: make(chan struct{}, 1)}
}

// enqueue queues op for publication k in slot id.
func (f *forwarder) enqueue(id slot.ID, k pubKey, op fwdOp) {
	op.size = op.encodedSize() // before the lock: it walks the publisher
	f.mu.Lock()
	f.seq++
	op.seq = f.seq
	if f.pending[id] == nil {
		f.pending[id] = map[pubKey]fwdOp{}
	}
	f.pending[id][k] = op
	f.mu.Unlock()
	f.wake()
}

func (f *forwarder) wake() {
	select {
	case f.wakeCh <- struct{}{}:
	default:
	}
}

// backlog returns the number of queued ops.
func (f *forwarder) backlog() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range f.pending {
		n += len(m)
	}
	return n
}

// run sends queued ops whenever woken, and retries every RetryInterval.
func (f *forwarder) run(ctx context.Context) error {
	t := f.s.clock.NewTicker(f.s.cfg.RetryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.wakeCh:
		case <-t.C():
		}
		f.flush(ctx)
	}
}

// flush sends every slot's queued ops, one batch per slot, slots in
// parallel (bounded).
func (f *forwarder) flush(ctx context.Context) {
	f.mu.Lock()
	batches := make(map[slot.ID]map[pubKey]fwdOp, len(f.pending))
	for id, ops := range f.pending {
		b := map[pubKey]fwdOp{}
		size := 0
		for k, op := range ops {
			if len(b) == f.s.cfg.ForwardBatch || (len(b) > 0 && size+op.size > ForwardBatchBytes) {
				break
			}
			b[k] = op
			size += op.size
			delete(ops, k)
		}
		if len(ops) == 0 {
			delete(f.pending, id)
		}
		batches[id] = b
	}
	f.mu.Unlock()
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for id, b := range batches {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f.send(ctx, id, b); err != nil {
				f.requeue(id, b)
			}
		}()
	}
	wg.Wait()
	if f.backlog() > 0 {
		f.wake() // a full batch left more behind
	}
}

// requeue puts a failed batch back, except ops superseded meanwhile.
func (f *forwarder) requeue(id slot.ID, b map[pubKey]fwdOp) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending[id] == nil {
		f.pending[id] = map[pubKey]fwdOp{}
	}
	for k, op := range b {
		if cur, ok := f.pending[id][k]; !ok || cur.seq < op.seq {
			f.pending[id][k] = op
		}
	}
}

// send writes one slot's batch to its leader.
func (f *forwarder) send(ctx context.Context, id slot.ID, b map[pubKey]fwdOp) error {
	tv := f.s.table.Load()
	if tv == nil || int(id) >= len(tv.t.Slots) {
		return errNoTable
	}
	row := tv.t.Slots[id]
	req := &registryv1.PublishRequest{SessionId: f.s.proc, TableEpoch: tv.t.Epoch, SlotId: uint32(id), LeaderEpoch: row.LeaderEpoch}
	for _, op := range b {
		if op.put != nil {
			req.Puts = append(req.Puts, op.put)
		} else {
			req.Deletes = append(req.Deletes, op.del)
		}
	}
	conn, err := f.s.dataConn(row.Leader)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, f.s.cfg.CallTimeout)
	defer cancel()
	_, err = registryv1.NewDataServiceClient(conn).Publish(cctx, req)
	if err != nil {
		f.s.logger.Debug("write to slot leader failed; retrying", "slot", id, "leader", row.Leader, "err", err)
		return err
	}
	return nil
}

// encodedSize is about what op adds to a write's encoded size.
func (op fwdOp) encodedSize() int {
	if op.put != nil {
		return proto.Size(op.put) + 8
	}
	return proto.Size(op.del) + 8
}
