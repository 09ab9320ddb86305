package data

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/strata-registry/strata/internal/publisher"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Errors a data node returns; toStatus maps each to a gRPC code.
var (
	ErrNoTable   = errors.New("data: no slot table yet")
	ErrNotLeader = errors.New("data: not the slot leader")
	ErrStale     = errors.New("data: stale epoch")
	ErrAhead     = errors.New("data: caller's table is newer than this node's; retry")
	ErrMigrating = errors.New("data: slot is migrating; reads resume once it is rebuilt")
	ErrInvalid   = errors.New("data: invalid argument")
	ErrTooLarge  = errors.New("data: request too large")
	ErrDenied    = errors.New("data: permission denied")
)

// epochError refuses a request whose epochs are not this node's, carrying
// the node's view so the caller refreshes and retries.
type epochError struct {
	err error // ErrStale or ErrNotLeader
	cur *registryv1.EpochMismatch
}

func (e *epochError) Error() string {
	return fmt.Sprintf("%v: slot %d is at table epoch %d, leader %q, leader epoch %d",
		e.err, e.cur.GetSlotId(), e.cur.GetTableEpoch(), e.cur.GetLeader(), e.cur.GetLeaderEpoch())
}

func (e *epochError) Unwrap() error { return e.err }

func mismatch(err error, t slot.Table, id slot.ID) *epochError {
	cur := &registryv1.EpochMismatch{TableEpoch: t.Epoch, SlotId: uint32(id)}
	if int(id) < len(t.Slots) {
		cur.Leader, cur.LeaderEpoch = string(t.Slots[id].Leader), t.Slots[id].LeaderEpoch
	}
	return &epochError{err: err, cur: cur}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// service implements registryv1.DataServiceServer.
type service struct {
	registryv1.UnimplementedDataServiceServer
	s *Server
}

// anyEpoch, as leaderEpoch, accepts the slot's current leader epoch: reads
// need this node to lead the slot, writes need the exact epoch too.
const anyEpoch = ^uint64(0)

// leading returns the state of a slot this node leads at leaderEpoch (or
// at any, with anyEpoch), or an epoch error carrying this node's view.
func (s *Server) leading(id slot.ID, leaderEpoch uint64) (*slotState, error) {
	t, st := s.slots.view(id)
	if t.Slots == nil {
		return nil, ErrNoTable
	}
	if int(id) >= len(t.Slots) {
		return nil, invalid("slot %d out of range: the cluster has %d slots", id, len(t.Slots))
	}
	if st == nil || st.role != roleLeader {
		return nil, mismatch(ErrNotLeader, t, id)
	}
	if leaderEpoch != anyEpoch && leaderEpoch != st.leaderEpoch {
		return nil, mismatch(ErrStale, t, id)
	}
	return st, nil
}

// Publish applies one slot's batch from a session: the fenced write path.
func (v *service) Publish(ctx context.Context, req *registryv1.PublishRequest) (*registryv1.PublishResponse, error) {
	s := v.s
	if err := s.validatePublish(req); err != nil {
		return nil, toStatus(err)
	}
	if err := ownSession(ctx, req.GetSessionId()); err != nil {
		return nil, toStatus(err)
	}
	return v.apply(req)
}

// PublishSlots applies a session's batches for several slots, each as
// Publish would: every batch is checked first (a malformed one, a second
// batch of one slot, another session's batch or too many ops in all
// refuse the call, and nothing is applied), then each is applied on its
// own, its epoch or leadership mismatch refusing only it.
func (v *service) PublishSlots(ctx context.Context, req *registryv1.PublishSlotsRequest) (*registryv1.PublishSlotsResponse, error) {
	s := v.s
	batches := req.GetBatches()
	if len(batches) == 0 {
		return nil, toStatus(invalid("no batches"))
	}
	seen := make(map[uint32]bool, len(batches))
	ops := 0
	for i, b := range batches {
		if err := s.validatePublish(b); err != nil {
			return nil, toStatus(fmt.Errorf("batch %d: %w", i, err))
		}
		if seen[b.GetSlotId()] {
			return nil, toStatus(invalid("batch %d: a second batch for slot %d (one per slot)", i, b.GetSlotId()))
		}
		seen[b.GetSlotId()] = true
		if b.GetSessionId() != batches[0].GetSessionId() {
			return nil, toStatus(invalid("batch %d is session %q's, batch 0 session %q's (one session per call)", i, b.GetSessionId(), batches[0].GetSessionId()))
		}
		if ops += len(b.GetPuts()) + len(b.GetDeletes()); ops > s.cfg.MaxBatch {
			return nil, toStatus(fmt.Errorf("%w: more than %d puts and deletes in one call's batches", ErrTooLarge, s.cfg.MaxBatch))
		}
	}
	if err := ownSession(ctx, batches[0].GetSessionId()); err != nil {
		return nil, toStatus(err)
	}
	out := &registryv1.PublishSlotsResponse{Results: make([]*registryv1.PublishSlotResult, len(batches))}
	for i, b := range batches {
		resp, err := v.apply(b)
		st := status.Convert(err)
		out.Results[i] = &registryv1.PublishSlotResult{Code: int32(st.Code()), Message: st.Message(), Versions: resp.GetVersions()}
	}
	return out, nil
}

// apply writes one checked batch of a session it comes from on its slot,
// if this node leads the slot at the batch's epochs.
func (v *service) apply(req *registryv1.PublishRequest) (*registryv1.PublishResponse, error) {
	s := v.s
	t, _ := s.slots.view(slot.ID(req.GetSlotId()))
	switch {
	case t.Slots == nil:
		return nil, toStatus(ErrNoTable)
	case req.GetTableEpoch() < t.Epoch:
		s.metrics.rejected.Inc()
		return nil, toStatus(mismatch(ErrStale, t, slot.ID(req.GetSlotId())))
	case req.GetTableEpoch() > t.Epoch:
		return nil, toStatus(fmt.Errorf("%w (caller at %d, node at %d)", ErrAhead, req.GetTableEpoch(), t.Epoch))
	}
	st, err := s.leading(slot.ID(req.GetSlotId()), req.GetLeaderEpoch())
	if err != nil {
		s.metrics.rejected.Inc()
		return nil, toStatus(err)
	}
	s.leases.touch(req.GetSessionId())
	versions, ok := st.write(req.GetPuts(), req.GetDeletes())
	if !ok {
		// The assignment ended between the check and the write.
		t, _ := s.slots.view(st.id)
		s.metrics.rejected.Inc()
		return nil, toStatus(mismatch(ErrStale, t, st.id))
	}
	s.notices.publish(versions)
	s.metrics.writes.Add(float64(len(req.GetPuts()) + len(req.GetDeletes())))
	return &registryv1.PublishResponse{Versions: versions}, nil
}

func (s *Server) validatePublish(req *registryv1.PublishRequest) error {
	if req.GetSessionId() == "" || len(req.GetSessionId()) > publisher.MaxSessionIDBytes {
		return invalid("session id must be 1..%d bytes", publisher.MaxSessionIDBytes)
	}
	if n := len(req.GetPuts()) + len(req.GetDeletes()); n == 0 {
		return invalid("empty batch")
	} else if n > s.cfg.MaxBatch {
		return fmt.Errorf("%w: %d puts and deletes in one batch, at most %d allowed", ErrTooLarge, n, s.cfg.MaxBatch)
	}
	id := slot.ID(req.GetSlotId())
	if n, ok := s.slots.slotCount(); ok && int(id) >= n {
		return invalid("slot %d out of range: the cluster has %d slots (0..%d)", id, n, n-1)
	}
	for _, p := range req.GetPuts() {
		if err := publisher.Validate(p); err != nil {
			return err
		}
		if p.GetSessionId() != req.GetSessionId() {
			return invalid("publisher %s is owned by session %q, not the sender %q", p.GetRegisterId(), p.GetSessionId(), req.GetSessionId())
		}
		if err := s.checkSlot(p.GetDataInfoId(), id); err != nil {
			return err
		}
	}
	for _, d := range req.GetDeletes() {
		if err := publisher.ValidateUnpublish(d); err != nil {
			return err
		}
		if err := s.checkSlot(d.GetDataInfoId(), id); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) checkSlot(key string, id slot.ID) error {
	got, ok := s.slots.slotOf(key)
	if !ok {
		return ErrNoTable
	}
	if got != id {
		return invalid("%q belongs to slot %d, not slot %d", key, got, id)
	}
	return nil
}

// readable returns the slot state of key for a read: led here and not
// migrating.
func (s *Server) readable(key string) (*slotState, error) {
	id, ok := s.slots.slotOf(key)
	if !ok {
		return nil, ErrNoTable
	}
	st, err := s.leading(id, anyEpoch)
	if err != nil {
		return nil, err
	}
	if st.migrating.Load() {
		return nil, fmt.Errorf("%w (slot %d)", ErrMigrating, id)
	}
	return st, nil
}

// GetDatums reads whole datums from their slot leader.
func (v *service) GetDatums(ctx context.Context, req *registryv1.GetDatumsRequest) (*registryv1.GetDatumsResponse, error) {
	if err := validKeys(req.GetDataInfoIds(), v.s.cfg.MaxBatch); err != nil {
		return nil, toStatus(err)
	}
	if sid := req.GetSessionId(); sid != "" {
		if err := ownSession(ctx, sid); err != nil {
			return nil, toStatus(err)
		}
		// Recorded before reading: a change after the read is then
		// urgent for this session.
		v.s.notices.interested(sid, req.GetDataInfoIds())
	}
	resp := &registryv1.GetDatumsResponse{}
	for _, key := range req.GetDataInfoIds() {
		st, err := v.s.readable(key)
		if err != nil {
			return nil, toStatus(err)
		}
		resp.Datums = append(resp.Datums, v.s.readDatum(st, key))
	}
	resp.TableEpoch, _ = v.s.slots.epoch()
	return resp, nil
}

// GetVersions reads datum versions; keys this node cannot serve (not led,
// or migrating) come back in not_leader, and the caller asks elsewhere or
// later.
func (v *service) GetVersions(ctx context.Context, req *registryv1.GetVersionsRequest) (*registryv1.GetVersionsResponse, error) {
	if err := validKeys(req.GetDataInfoIds(), 100*v.s.cfg.MaxBatch); err != nil {
		return nil, toStatus(err)
	}
	resp := &registryv1.GetVersionsResponse{}
	for _, key := range req.GetDataInfoIds() {
		st, err := v.s.readable(key)
		if errors.Is(err, ErrNoTable) {
			return nil, toStatus(err)
		}
		if err != nil {
			resp.NotLeader = append(resp.NotLeader, key)
			continue
		}
		resp.Versions = append(resp.Versions, &registryv1.DatumVersion{DataInfoId: key, Version: st.store.Version(key)})
	}
	resp.TableEpoch, _ = v.s.slots.epoch()
	return resp, nil
}

func validKeys(keys []string, max int) error {
	if len(keys) == 0 {
		return invalid("no data info ids")
	}
	if len(keys) > max {
		return fmt.Errorf("%w: %d keys in one request, at most %d allowed", ErrTooLarge, len(keys), max)
	}
	for _, k := range keys {
		if _, _, _, err := record.ParseDataInfoID(k); err != nil {
			return err
		}
	}
	return nil
}

// SlotDigest summarises a led slot per owning session.
func (v *service) SlotDigest(ctx context.Context, req *registryv1.SlotDigestRequest) (*registryv1.SlotDigestResponse, error) {
	st, err := v.s.leading(slot.ID(req.GetSlotId()), anyEpoch)
	if err != nil {
		return nil, toStatus(err)
	}
	return &registryv1.SlotDigestResponse{SlotId: req.GetSlotId(), LeaderEpoch: st.leaderEpoch, Sessions: st.store.Digests()}, nil
}

// ListPublishers lists a led slot's publishers, optionally one session's.
func (v *service) ListPublishers(ctx context.Context, req *registryv1.ListPublishersRequest) (*registryv1.ListPublishersResponse, error) {
	st, err := v.s.leading(slot.ID(req.GetSlotId()), anyEpoch)
	if err != nil {
		return nil, toStatus(err)
	}
	return &registryv1.ListPublishersResponse{Publishers: st.store.Publishers(req.GetSessionId())}, nil
}

// MaxListLimit is the most entries one ListDataInfoIds answer holds.
const MaxListLimit = 1000

// ListDataInfoIds lists the keys of the requested slots this node leads
// and serves, merged in byte order and paged by the last key returned.
// Slots it does not lead, or leads while they migrate (their records may
// be incomplete), come back in not_served so the caller can tell a
// partial listing from a complete one.
func (v *service) ListDataInfoIds(ctx context.Context, req *registryv1.ListDataInfoIdsRequest) (*registryv1.ListDataInfoIdsResponse, error) {
	t, _ := v.s.slots.view(0)
	if t.Slots == nil {
		return nil, toStatus(ErrNoTable)
	}
	if err := validList(req, len(t.Slots)); err != nil {
		return nil, toStatus(err)
	}
	limit := int(req.GetLimit())
	resp := &registryv1.ListDataInfoIdsResponse{}
	for _, id := range req.GetSlotIds() {
		st, err := v.s.leading(slot.ID(id), anyEpoch)
		if err != nil || st.migrating.Load() {
			resp.NotServed = append(resp.NotServed, id)
			continue
		}
		entries, more := st.store.List(req.GetPrefix(), req.GetAfter(), limit)
		resp.Entries = append(resp.Entries, entries...)
		resp.More = resp.More || more
	}
	slices.SortFunc(resp.Entries, func(a, b *registryv1.DataInfoIdCount) int {
		return strings.Compare(a.GetDataInfoId(), b.GetDataInfoId())
	})
	if len(resp.Entries) > limit {
		resp.Entries, resp.More = resp.Entries[:limit], true
	}
	return resp, nil
}

// validList checks a listing request against a table of count slots.
func validList(req *registryv1.ListDataInfoIdsRequest, count int) error {
	if len(req.GetSlotIds()) == 0 {
		return invalid("no slot ids")
	}
	if len(req.GetSlotIds()) > count {
		return invalid("%d slot ids, the cluster has %d slots", len(req.GetSlotIds()), count)
	}
	seen := make(map[uint32]bool, len(req.GetSlotIds()))
	for _, id := range req.GetSlotIds() {
		if int(id) >= count {
			return invalid("slot %d out of range: the cluster has %d slots (0..%d)", id, count, count-1)
		}
		if seen[id] {
			return invalid("slot %d named twice", id)
		}
		seen[id] = true
	}
	if l := req.GetLimit(); l < 1 || l > MaxListLimit {
		return invalid("limit %d out of range 1..%d", l, MaxListLimit)
	}
	// (proto3 strings are valid UTF-8: gRPC refuses to decode others.)
	for _, f := range [...]struct{ name, v string }{{"prefix", req.GetPrefix()}, {"after", req.GetAfter()}} {
		if len(f.v) > record.MaxDataInfoIDBytes {
			return invalid("%s is %d bytes, at most %d", f.name, len(f.v), record.MaxDataInfoIDBytes)
		}
	}
	return nil
}

// WatchChanges streams datum versions that change in slots this node
// leads, to one session. Response headers are sent as soon as the session
// is subscribed; while the stream is open the session's lease holds.
func (v *service) WatchChanges(req *registryv1.WatchChangesRequest, stream grpc.ServerStreamingServer[registryv1.ChangeBatch]) error {
	session := req.GetSessionId()
	if session == "" || len(session) > publisher.MaxSessionIDBytes {
		return toStatus(invalid("session id must be 1..%d bytes", publisher.MaxSessionIDBytes))
	}
	if err := ownSession(stream.Context(), session); err != nil {
		return toStatus(err)
	}
	sub := v.s.notices.subscribe(session)
	defer v.s.notices.unsubscribe(sub)
	v.s.leases.open(session)
	defer v.s.leases.close(session)
	// Headers tell the session it is subscribed: every change from here on
	// reaches it, and its lease holds while the stream stays open.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	for {
		batch, urgent, ok := sub.next(stream.Context())
		if !ok {
			return stream.Context().Err()
		}
		if urgent {
			v.s.inlineDatums(batch)
		}
		if err := stream.Send(batch); err != nil {
			return err
		}
		v.s.metrics.notices.Add(float64(len(batch.GetChanges())))
	}
}

// Datums that ride along with their change notice: each at most
// maxInlineDatum bytes, at most maxInlineBatch bytes per batch. A session
// pushes them at once instead of fetching, which saves a round trip per
// change on the common case of small service lists.
const (
	maxInlineDatum = 4 << 10
	maxInlineBatch = 256 << 10
)

// inlineDatums attaches to b (a batch of the session's interest keys) the
// datums of its changed keys that this node would serve to GetDatums (it
// leads the slot, and the slot is not migrating) and that are small; a
// large datum is passed over without being built. Read at send time, each
// is at least as new as its change.
func (s *Server) inlineDatums(b *registryv1.ChangeBatch) {
	budget := maxInlineBatch
	for _, c := range b.GetChanges() {
		if budget <= 0 {
			return
		}
		st, err := s.readable(c.GetDataInfoId())
		if err != nil {
			continue
		}
		d := st.store.ReadAtMost(c.GetDataInfoId(), min(maxInlineDatum, budget))
		if d == nil || d.GetVersion() < c.GetVersion() {
			continue
		}
		d.InstanceStates = s.marks.of(c.GetDataInfoId())
		if n := proto.Size(d); n <= maxInlineDatum && n <= budget {
			budget -= n
			b.Datums = append(b.Datums, d)
		}
	}
}

// Replicate streams one led slot to a follower: a snapshot unless the
// follower can resume from its last op, then every op as it happens. The
// stream ends when this node's assignment for the slot ends.
func (v *service) Replicate(req *registryv1.ReplicateRequest, stream grpc.ServerStreamingServer[registryv1.ReplicateEvent]) error {
	if err := ownFollower(stream.Context(), req.GetFollowerId()); err != nil {
		return toStatus(err)
	}
	st, err := v.s.leading(slot.ID(req.GetSlotId()), req.GetLeaderEpoch())
	if err != nil {
		return toStatus(err)
	}
	const batch = 256
	seq := req.GetAfterSeq()
	pos := v.s.repl.add(st)
	defer v.s.repl.remove(pos)
	// needSnapshot: the follower starts afresh, or fell out of the log.
	needSnapshot := seq == 0
	caughtUp := false
	for {
		// Take the channel before reading, so no op slips between.
		changed := st.store.Changed()
		if needSnapshot {
			snap := st.store.Snapshot()
			for _, chunk := range chunkSnapshot(snap, snapshotChunkBytes) {
				if err := stream.Send(&registryv1.ReplicateEvent{Event: &registryv1.ReplicateEvent_Snapshot{Snapshot: chunk}}); err != nil {
					return err
				}
			}
			seq, needSnapshot, caughtUp = snap.GetSeq(), false, false
			pos.sent.Store(seq)
			v.s.metrics.snapshots.Inc()
		}
		ops, ok := st.store.OpsAfter(seq, batch)
		if !ok {
			needSnapshot = true
			continue
		}
		for _, op := range ops {
			if err := stream.Send(&registryv1.ReplicateEvent{Event: &registryv1.ReplicateEvent_Op{Op: op}}); err != nil {
				return err
			}
			seq = op.GetSeq()
			pos.sent.Store(seq)
		}
		if len(ops) == batch {
			continue // more waiting
		}
		// The follower has everything this node had a moment ago, unless
		// this node is itself still rebuilding the slot: then it waits.
		if !caughtUp && !st.migrating.Load() {
			if err := stream.Send(&registryv1.ReplicateEvent{CaughtUp: true}); err != nil {
				return err
			}
			caughtUp = true
		}
		var rebuilt <-chan struct{}
		if !caughtUp {
			rebuilt = st.rebuilt
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-st.done:
			return status.Error(codes.Unavailable, "data: slot assignment changed; follow the new table")
		case <-changed:
		case <-rebuilt:
		}
	}
}

// snapshotChunkBytes is the size a snapshot chunk aims at.
const snapshotChunkBytes = 1 << 20

// chunkSnapshot splits snap into pieces of about max bytes (a datum larger
// than max goes alone), every piece with the seq, all but the last marked
// more, tombstones in the last.
func chunkSnapshot(snap *registryv1.SlotSnapshot, max int) []*registryv1.SlotSnapshot {
	var out []*registryv1.SlotSnapshot
	cur := &registryv1.SlotSnapshot{Seq: snap.GetSeq()}
	size := 0
	for _, d := range snap.GetDatums() {
		n := proto.Size(d)
		if size > 0 && size+n > max {
			cur.More = true
			out = append(out, cur)
			cur, size = &registryv1.SlotSnapshot{Seq: snap.GetSeq()}, 0
		}
		cur.Datums = append(cur.Datums, d)
		size += n
	}
	cur.Tombstones = snap.GetTombstones()
	return append(out, cur)
}

// toStatus maps data errors to gRPC statuses; it is the only place that
// does. Epoch errors carry an EpochMismatch detail.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var ee *epochError
	switch {
	case errors.As(err, &ee):
		st := status.New(codes.FailedPrecondition, err.Error())
		if d, derr := st.WithDetails(ee.cur); derr == nil {
			st = d
		}
		return st.Err()
	case errors.Is(err, record.ErrTooLarge), errors.Is(err, ErrTooLarge):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, record.ErrInvalid), errors.Is(err, ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrDenied):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, ErrNoTable), errors.Is(err, ErrAhead), errors.Is(err, ErrMigrating):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// EpochOf extracts the EpochMismatch detail of a refused request, for
// callers (sessions, tests).
func EpochOf(err error) (*registryv1.EpochMismatch, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return nil, false
	}
	for _, d := range st.Details() {
		if em, ok := d.(*registryv1.EpochMismatch); ok {
			return em, true
		}
	}
	return nil, false
}
