package data

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/strata-registry/strata/internal/publisher"
	"github.com/strata-registry/strata/internal/slot"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// VersionEpochShift lays out datum versions: a version is
// leaderEpoch<<VersionEpochShift | counter. Leader epochs only grow, so every
// version a new leader hands out is above any its predecessor did, with no
// clock. A leader may hand out 2^40 (about 10^12) versions per slot before
// its counter would reach the next epoch's range.
const VersionEpochShift = 40

// ErrOpOutOfOrder is returned by SlotStore.ApplyOp for an op whose seq does
// not follow the store's; the follower then asks for a snapshot.
var ErrOpOutOfOrder = errors.New("data: replication op out of order")

// ErrBadOp is returned by SlotStore.ApplyOp for an op that is neither a
// well-formed put nor a delete. Nothing is applied.
var ErrBadOp = errors.New("data: malformed replication op")

// SlotStore is one slot's datums: dataInfoID -> datum {version, publishers
// by register ID}, with the slot's bounded replication log and per-session
// digests. It is safe for concurrent use: writes take an exclusive lock, reads
// a shared one, and no method blocks on anything but that lock.
//
// Ownership: the store copies what it keeps from the messages passed in
// (Apply, ApplyOp, Restore), so callers may reuse them afterwards. Get,
// Snapshot and Publishers return deep copies the caller owns. Ops returned by
// OpsAfter are shared with the log and with the stored records: read-only.
//
// Memory: a publisher is a compact record (register ID, versions, values,
// and a pointer to an interned owner tuple of session, connection and zone,
// refcounted and dropped with its last record); datums keep their records in
// a slice sorted by register ID. Nothing grows without bound: the op log is a
// ring of logCap ops, and interned owners and sessions go with their last
// record.
type SlotStore struct {
	id     slot.ID
	logCap int

	mu sync.RWMutex
	// datums holds only datums with at least one publisher.
	datums map[string]*slotDatum
	// publishers counts records over all datums.
	publishers int
	// owners interns (session, conn, zone) tuples; an entry lives while a
	// record points at it.
	owners map[recOwnerKey]*recOwner
	// sessions holds one digest per owning session; an entry lives while an
	// owner points at it.
	sessions map[string]*slotSession
	// epoch is the leader epoch versions are generated for (SetLeaderEpoch).
	epoch uint64
	// last is the highest datum version handed out or seen (applied op,
	// restored snapshot). It is the slot-wide counter that keeps versions
	// increasing per key even when a datum is deleted and re-created.
	last uint64
	// seq is the seq of the last op appended.
	seq uint64
	// log is a ring of the last ops, at most logCap; logStart indexes the
	// oldest once the ring is full.
	log      []logOp
	logStart int
	// changed is closed (and replaced) whenever seq or the log changes.
	changed chan struct{}
	// tombs remembers the last TombstoneCap removals, oldest first in
	// tombOrder: a put that is not newer than the removal is ignored, so a
	// late or replayed write (a retried batch, anti-entropy reading a list
	// just before an unpublish) cannot bring the record back.
	tombs     map[tombKey]tomb
	tombOrder []tombKey
	// gone remembers the version at which recent datums lost their last
	// publisher (oldest first in goneOrder, at most GoneCap), so a reader
	// sees the deletion's version, as the change notice did, not 0.
	gone      map[string]uint64
	goneOrder []string
}

// GoneCap bounds the emptied datums each slot remembers the version of.
const GoneCap = 4096

// markGone records that key was emptied at version. Callers hold s.mu.
func (s *SlotStore) markGone(key string, version uint64) {
	if _, ok := s.gone[key]; !ok {
		if len(s.goneOrder) >= GoneCap {
			delete(s.gone, s.goneOrder[0])
			s.goneOrder = s.goneOrder[1:]
		}
		key = strings.Clone(key)
		s.goneOrder = append(s.goneOrder, key)
	}
	s.gone[key] = version
}

// TombstoneCap bounds the removals each slot remembers. A stale put would
// have to arrive after this many later removals in its slot to be taken.
const TombstoneCap = 1024

type tombKey struct{ key, registerID string }

type tomb struct {
	clientVersion uint64
	ts            int64
}

// addTomb records a removal at (cv, ts). Callers hold s.mu.
func (s *SlotStore) addTomb(key, registerID string, cv uint64, ts int64) {
	k := tombKey{strings.Clone(key), strings.Clone(registerID)}
	if old, ok := s.tombs[k]; ok {
		if publisher.Newer(cv, ts, old.clientVersion, old.ts) {
			s.tombs[k] = tomb{cv, ts}
		}
		return
	}
	if len(s.tombOrder) >= TombstoneCap {
		delete(s.tombs, s.tombOrder[0])
		s.tombOrder = s.tombOrder[1:]
	}
	s.tombs[k] = tomb{cv, ts}
	s.tombOrder = append(s.tombOrder, k)
}

// buried reports whether a put at (cv, ts) is not newer than a removal of
// the same registration. Callers hold s.mu.
func (s *SlotStore) buried(key, registerID string, cv uint64, ts int64) bool {
	t, ok := s.tombs[tombKey{key, registerID}]
	return ok && !publisher.Newer(cv, ts, t.clientVersion, t.ts)
}

// datum is one dataInfoID's publishers at a version.
type slotDatum struct {
	// key is the datum's key, the string its map entry holds (and the
	// log shares).
	key     string
	version uint64
	// recs is sorted by registerID.
	recs []*slotRec
}

// rec is one stored publisher. Its strings and value slices are never
// mutated in place (an update replaces them), so ops in the log may share
// them.
type slotRec struct {
	registerID    string
	clientVersion uint64
	ts            int64
	owner         *recOwner
	values        [][]byte
}

type recOwnerKey struct {
	session, conn, zone string
}

// owner is an interned (session, conn, zone) tuple.
type recOwner struct {
	recOwnerKey
	sess *slotSession
	refs int
}

// slotSession is one owning session's digest over its records in the slot.
type slotSession struct {
	id     string
	digest publisher.Digest
	owners int
}

// NewSlotStore returns an empty store for slot id whose op log keeps the
// last logCap ops (a negative logCap counts as 0: every follower that falls
// behind needs a snapshot). Its leader epoch is 0 until SetLeaderEpoch.
func NewSlotStore(id slot.ID, logCap int) *SlotStore {
	return &SlotStore{
		id:       id,
		logCap:   max(logCap, 0),
		datums:   make(map[string]*slotDatum),
		owners:   make(map[recOwnerKey]*recOwner),
		sessions: make(map[string]*slotSession),
		changed:  make(chan struct{}),
		tombs:    make(map[tombKey]tomb),
		gone:     make(map[string]uint64),
	}
}

// ID returns the slot this store holds. Safe for concurrent use.
func (s *SlotStore) ID() slot.ID { return s.id }

// SetLeaderEpoch makes this store generate versions for leader epoch e from
// now on: the next version of any datum is max(last+1, e<<VersionEpochShift|1),
// where last is the highest version the store has handed out or seen. Call it
// when this node becomes the slot's leader, before its first Apply. Safe for
// concurrent use.
func (s *SlotStore) SetLeaderEpoch(e uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch = e
}

// Apply is the leader's write path for one batch, applied in order: puts,
// then deletes. A put replaces the stored registration with the same register
// ID only if (client_version, register_timestamp) is strictly newer (older or
// equal is ignored); a newer put identical in values, zone, session and conn
// updates the stored versions without bumping the datum version. A delete
// removes the registration unless the stored one is newer than it (or, for a
// delete with a session_id, unless another session owns it). Every
// change to a datum's publishers gives it a new version from the slot-wide
// counter, so a datum deleted and re-created never goes back in version.
//
// It returns one DatumVersion per distinct dataInfoID in the batch, in order
// of first appearance, with its version after the batch: for a datum the
// batch emptied (and so deleted) the version of that deletion, 0 for a key
// that has no datum and was not changed. Every effective change is appended
// to the op log with consecutive seqs, and Changed fires if there was any.
//
// Callers validate input first (publisher.Validate and
// publisher.ValidateUnpublish); Apply skips nil entries and entries without a
// data_info_id or register_id rather than panic. It does not check that keys
// belong to this slot. Safe for concurrent use.
func (s *SlotStore) Apply(puts []*registryv1.Publisher, dels []*registryv1.Unpublish) []*registryv1.DatumVersion {
	s.mu.Lock()
	defer s.mu.Unlock()

	var t touchedKeys
	before := s.seq
	for _, p := range puts {
		if p == nil || p.GetDataInfoId() == "" || p.GetRegisterId() == "" {
			continue
		}
		key := p.GetDataInfoId()
		t.note(key)
		d := s.datums[key]
		var v uint64
		if s.buried(key, p.GetRegisterId(), p.GetClientVersion(), p.GetRegisterTimestamp()) {
			continue
		}
		if r := d.get(p.GetRegisterId()); r != nil {
			if !publisher.Newer(p.GetClientVersion(), p.GetRegisterTimestamp(), r.clientVersion, r.ts) {
				continue
			}
			if r.sameContent(p) {
				v = d.version
			}
		}
		if v == 0 {
			v = s.nextVersion()
		}
		k, r := s.put(key, p, v)
		s.appendOp(newPutOp(k, v, r))
	}
	for _, u := range dels {
		if u == nil || u.GetDataInfoId() == "" || u.GetRegisterId() == "" {
			continue
		}
		key := u.GetDataInfoId()
		t.note(key)
		r := s.datums[key].get(u.GetRegisterId())
		if r == nil || publisher.Newer(r.clientVersion, r.ts, u.GetClientVersion(), u.GetRegisterTimestamp()) {
			continue
		}
		if u.GetSessionId() != "" && r.owner.session != u.GetSessionId() {
			// Conditional delete: the registration moved to another
			// session, which now owns it.
			continue
		}
		v := s.nextVersion()
		if s.remove(key, u.GetRegisterId(), v) {
			t.deleted(key, v)
		}
		s.addTomb(key, u.GetRegisterId(), u.GetClientVersion(), u.GetRegisterTimestamp())
		s.appendOp(newDeleteOp(key, v, u.GetRegisterId(), u.GetClientVersion(), u.GetRegisterTimestamp()))
	}
	if s.seq != before {
		s.notifyLocked()
	}
	return t.versions(s)
}

// Touch gives key a new version without changing its records, for a
// change that lives outside the store (an operator's instance marks), and
// returns it; nil when key has no publishers (nothing to push). The bump
// is not an op: followers need not see it, since a new leader's versions
// start above every version of earlier leader epochs. Safe for concurrent
// use.
func (s *SlotStore) Touch(key string) *registryv1.DatumVersion {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.datums[key]
	if d == nil {
		return nil
	}
	d.version = s.nextVersion()
	return &registryv1.DatumVersion{DataInfoId: key, Version: d.version}
}

// RemoveSession is the leader's path for a dead session's lease: it removes
// every publisher owned by session, as ops, like deletes through Apply, and returns the versions of the
// datums it changed (as Apply does; nil if the session owns nothing here).
// A registration since re-registered through another session is not owned
// by session any more, so it stays. Safe for concurrent use.
func (s *SlotStore) RemoveSession(session string) []*registryv1.DatumVersion {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[session]; !ok {
		return nil
	}
	var t touchedKeys
	for _, key := range s.sortedKeys() {
		d := s.datums[key]
		var gone []*slotRec
		for _, r := range d.recs {
			if r.owner.session == session {
				gone = append(gone, r)
			}
		}
		for _, r := range gone {
			t.note(key)
			v := s.nextVersion()
			if s.remove(key, r.registerID, v) {
				t.deleted(key, v)
			}
			s.addTomb(key, r.registerID, r.clientVersion, r.ts)
			s.appendOp(newDeleteOp(key, v, r.registerID, r.clientVersion, r.ts))
		}
	}
	if len(t.keys) > 0 {
		s.notifyLocked()
	}
	return t.versions(s)
}

// ApplyOp is the follower's write path: it applies an op from the leader's
// log exactly as the leader did, setting the datum version to op.Version, and
// appends it to this store's own log (if it keeps one: SetLogCap). Ops must come in seq order: an op whose
// seq is not Seq()+1 returns an error wrapping ErrOpOutOfOrder, and a
// malformed op one wrapping ErrBadOp; either way nothing changes and the
// follower should ask for a snapshot. The store copies what it keeps from
// op. Safe for concurrent use.
func (s *SlotStore) ApplyOp(op *registryv1.ReplicateOp) error {
	if op == nil {
		return fmt.Errorf("%w: nil op", ErrBadOp)
	}
	key := op.GetDataInfoId()
	put := op.GetPut()
	switch {
	case key == "":
		return fmt.Errorf("%w: op %d has no data_info_id", ErrBadOp, op.GetSeq())
	case put != nil && op.GetDeleteRegisterId() != "":
		return fmt.Errorf("%w: op %d is both put and delete", ErrBadOp, op.GetSeq())
	case put != nil && (put.GetRegisterId() == "" || (put.GetDataInfoId() != "" && put.GetDataInfoId() != key)):
		return fmt.Errorf("%w: op %d puts a publisher without register_id or of another key", ErrBadOp, op.GetSeq())
	case put == nil && op.GetDeleteRegisterId() == "":
		return fmt.Errorf("%w: op %d is neither put nor delete", ErrBadOp, op.GetSeq())
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if op.GetSeq() != s.seq+1 {
		return fmt.Errorf("%w: got seq %d, want %d", ErrOpOutOfOrder, op.GetSeq(), s.seq+1)
	}
	if put != nil {
		k, r := s.put(key, put, op.GetVersion())
		s.appendOp(newPutOp(k, op.GetVersion(), r))
	} else {
		if !s.remove(key, op.GetDeleteRegisterId(), op.GetVersion()) {
			if d := s.datums[key]; d != nil {
				d.version = op.GetVersion()
			}
		}
		s.addTomb(key, op.GetDeleteRegisterId(), op.GetDeleteClientVersion(), op.GetDeleteRegisterTimestamp())
		s.appendOp(newDeleteOp(key, op.GetVersion(), op.GetDeleteRegisterId(), op.GetDeleteClientVersion(), op.GetDeleteRegisterTimestamp()))
	}
	s.last = max(s.last, op.GetVersion())
	s.notifyLocked()
	return nil
}

// Snapshot returns a deep copy of every datum, sorted by dataInfoID with
// publishers sorted by register ID, and the seq of the last op it includes.
// Safe for concurrent use.
func (s *SlotStore) Snapshot() *registryv1.SlotSnapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	keys := s.sortedKeys()
	snap := &registryv1.SlotSnapshot{Datums: make([]*registryv1.Datum, 0, len(keys)), Seq: s.seq}
	for _, key := range keys {
		snap.Datums = append(snap.Datums, s.datums[key].toProto(key, true))
	}
	// Emptied datums travel as empty datums, so a promoted follower reports
	// their deletion versions too.
	gone := make([]string, 0, len(s.gone))
	for key := range s.gone {
		if _, live := s.datums[key]; !live {
			gone = append(gone, key)
		}
	}
	slices.Sort(gone)
	for _, key := range gone {
		snap.Datums = append(snap.Datums, &registryv1.Datum{DataInfoId: key, Version: s.gone[key]})
	}
	for _, k := range s.tombOrder {
		t := s.tombs[k]
		snap.Tombstones = append(snap.Tombstones, &registryv1.Unpublish{DataInfoId: k.key, RegisterId: k.registerID,
			ClientVersion: t.clientVersion, RegisterTimestamp: t.ts})
	}
	return snap
}

// Restore replaces the store's contents with snap (follower catch-up): its
// datums, and Seq becomes snap.Seq with an empty log. Datums without
// publishers are skipped; a nil snap empties the store. The version counter
// never goes back, and the leader epoch stays. Changed fires. Safe for
// concurrent use.
func (s *SlotStore) Restore(snap *registryv1.SlotSnapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.datums = make(map[string]*slotDatum, len(snap.GetDatums()))
	s.owners = make(map[recOwnerKey]*recOwner)
	s.sessions = make(map[string]*slotSession)
	s.publishers = 0
	s.gone, s.goneOrder = map[string]uint64{}, nil
	for _, d := range snap.GetDatums() {
		key := d.GetDataInfoId()
		if key == "" {
			continue
		}
		if len(d.GetPublishers()) == 0 {
			s.markGone(key, d.GetVersion())
			s.last = max(s.last, d.GetVersion())
			continue
		}
		for _, p := range d.GetPublishers() {
			if p.GetRegisterId() != "" {
				s.put(key, p, d.GetVersion())
			}
		}
		s.last = max(s.last, d.GetVersion())
	}
	s.tombs, s.tombOrder = map[tombKey]tomb{}, nil
	for _, u := range snap.GetTombstones() {
		s.addTomb(u.GetDataInfoId(), u.GetRegisterId(), u.GetClientVersion(), u.GetRegisterTimestamp())
	}
	s.seq = snap.GetSeq()
	s.clearLog()
	s.notifyLocked()
}

// SetLogCap makes the op log keep the last n ops from now on (n <= 0:
// none) and drops the ops it holds; Seq is kept. Only a leader's log is
// read, by its followers' replication streams: a follower's store keeps
// none (a copy of every op it applied, ~120 bytes each, for nothing), and
// a store that becomes leader resets its log anyway. Changed fires. Safe
// for concurrent use.
func (s *SlotStore) SetLogCap(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logCap = max(n, 0)
	s.clearLog()
	s.notifyLocked()
}

// LogLen returns how many ops the op log holds. Safe for concurrent use.
func (s *SlotStore) LogLen() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.log)
}

// ResetLog clears the op log and sets Seq to 0, keeping the datums. Seq
// spaces are per leader epoch: call it when the slot's leader epoch changes.
// Changed fires. Safe for concurrent use.
func (s *SlotStore) ResetLog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq = 0
	s.clearLog()
	s.notifyLocked()
}

// Seq returns the seq of the last op applied or appended (0 if none since
// the last ResetLog). Safe for concurrent use.
func (s *SlotStore) Seq() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.seq
}

// OpsAfter returns the ops with seqs after seq, oldest first, at most limit
// of them (limit <= 0: no limit). ok is false when the log no longer holds op
// seq+1 (it fell out of the ring) or seq is beyond Seq() (a seq from another
// leader epoch): the follower needs a snapshot. An empty result with ok true
// means the caller is up to date; wait on Changed. The ops are shared with
// the store: read-only. Safe for concurrent use.
func (s *SlotStore) OpsAfter(seq uint64, limit int) (ops []*registryv1.ReplicateOp, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if seq > s.seq {
		return nil, false
	}
	if seq == s.seq {
		return nil, true
	}
	oldest := s.seq - uint64(len(s.log)) + 1
	if seq+1 < oldest {
		return nil, false
	}
	n := s.seq - seq
	if limit > 0 && n > uint64(limit) {
		n = uint64(limit)
	}
	ops = make([]*registryv1.ReplicateOp, n)
	first := int(seq + 1 - oldest)
	for i := range ops {
		ops[i] = s.log[(s.logStart+first+i)%len(s.log)].op()
	}
	return ops, true
}

// Changed returns a channel that is closed at the next change of Seq or of
// the log: an op appended (Apply, RemoveSession, ApplyOp), Restore or
// ResetLog. Each call after that returns a new channel (broadcast style):
// read Changed, then Seq/OpsAfter, then wait, so no change is missed. Safe
// for concurrent use.
func (s *SlotStore) Changed() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

// Get returns a deep copy of the datum for dataInfoID, publishers sorted by
// register ID, or nil if it has no publishers. Safe for concurrent use.
func (s *SlotStore) Get(dataInfoID string) *registryv1.Datum {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d := s.datums[dataInfoID]
	if d == nil {
		return nil
	}
	return d.toProto(dataInfoID, true)
}

// Version returns the datum version of dataInfoID, 0 if it has no
// publishers. Safe for concurrent use.
func (s *SlotStore) Version(dataInfoID string) uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if d := s.datums[dataInfoID]; d != nil {
		return d.version
	}
	return s.gone[dataInfoID]
}

// Read returns the datum of dataInfoID as readers see it, or, when it has
// no publishers, an empty datum at the version that emptied it (0 if it
// never had any or that is forgotten). Its publishers are new, but their
// values share the store's (never changed in place): it is for sending,
// not for changing; Get makes a deep copy. Safe for concurrent use.
func (s *SlotStore) Read(dataInfoID string) *registryv1.Datum {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if d := s.datums[dataInfoID]; d != nil {
		return d.toProto(dataInfoID, false)
	}
	return &registryv1.Datum{DataInfoId: dataInfoID, Version: s.gone[dataInfoID]}
}

// ReadAtMost is Read for a datum whose publishers' identifiers and values
// come to at most max bytes (a lower bound of its encoded size), nil for a
// larger one, which it passes over without building.
func (s *SlotStore) ReadAtMost(dataInfoID string, max int) *registryv1.Datum {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d := s.datums[dataInfoID]
	if d == nil {
		return &registryv1.Datum{DataInfoId: dataInfoID, Version: s.gone[dataInfoID]}
	}
	n := 0
	for _, r := range d.recs {
		n += len(r.registerID) + len(dataInfoID) + len(r.owner.session) + len(r.owner.conn) + len(r.owner.zone)
		for _, v := range r.values {
			n += len(v)
		}
		if n > max {
			return nil
		}
	}
	return d.toProto(dataInfoID, false)
}

// Digests returns one publisher.Digest per session owning publishers in the
// slot, sorted by session ID. They are maintained as records change, so
// this costs O(sessions). Safe for concurrent use.
func (s *SlotStore) Digests() []*registryv1.SessionDigest {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*registryv1.SessionDigest, 0, len(s.sessions))
	for _, st := range s.sessions {
		out = append(out, &registryv1.SessionDigest{SessionId: st.id, Count: st.digest.Count, Hash: st.digest.Hash})
	}
	slices.SortFunc(out, func(a, b *registryv1.SessionDigest) int { return strings.Compare(a.SessionId, b.SessionId) })
	return out
}

// Publishers returns deep copies of the publishers owned by session ("" for
// all), sorted by (data_info_id, register_id). Safe for concurrent use.
func (s *SlotStore) Publishers(session string) []*registryv1.Publisher {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if session != "" {
		if _, ok := s.sessions[session]; !ok {
			return nil
		}
	}
	var out []*registryv1.Publisher
	for _, key := range s.sortedKeys() {
		for _, r := range s.datums[key].recs {
			if session == "" || r.owner.session == session {
				out = append(out, r.toProto(key, true))
			}
		}
	}
	return out
}

// Stats returns the number of datums and of publishers in the slot. Safe
// for concurrent use.
func (s *SlotStore) Stats() (datums, publishers int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.datums), s.publishers
}

// Versions returns the current version of every key with publishers,
// sorted by key.
func (s *SlotStore) Versions() []*registryv1.DatumVersion {
	s.mu.RLock()
	defer s.mu.RUnlock()
	keys := s.sortedKeys()
	out := make([]*registryv1.DatumVersion, 0, len(keys))
	for _, k := range keys {
		out = append(out, &registryv1.DatumVersion{DataInfoId: k, Version: s.datums[k].version})
	}
	return out
}

// List returns up to limit keys that start with prefix and sort strictly
// after after, in byte order, with their publisher counts, and whether
// more such keys remain. It scans every key of the slot (a page costs
// the slot's size, not the page's): it serves enumeration by operators
// and clients, not a hot path.
func (s *SlotStore) List(prefix, after string, limit int) (entries []*registryv1.DataInfoIdCount, more bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var keys []string
	for k := range s.datums {
		if strings.HasPrefix(k, prefix) && k > after {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if len(keys) > limit {
		keys, more = keys[:limit], true
	}
	entries = make([]*registryv1.DataInfoIdCount, 0, len(keys))
	for _, k := range keys {
		entries = append(entries, &registryv1.DataInfoIdCount{DataInfoId: k, Publishers: uint32(len(s.datums[k].recs))})
	}
	return entries, more
}

// Keys returns the dataInfoIDs that have publishers, sorted. Safe for
// concurrent use.
func (s *SlotStore) Keys() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sortedKeys()
}

// --- internals; every method below runs with s.mu held (write for
// mutations) ---

// nextVersion hands out the next datum version for the current epoch.
func (s *SlotStore) nextVersion() uint64 {
	v := s.last + 1
	if floor := s.epoch<<VersionEpochShift | 1; v < floor {
		v = floor
	}
	s.last = v
	return v
}

// put stores p under key as is (the caller decided it wins), sets the datum
// version to version and returns the stored record. Values are copied unless
// equal to the stored ones, strings are cloned or interned, so nothing of p
// is retained.
func (s *SlotStore) put(key string, p *registryv1.Publisher, version uint64) (string, *slotRec) {
	d := s.datums[key]
	if d == nil {
		d = &slotDatum{key: strings.Clone(key)}
		s.datums[d.key] = d
	}
	o := s.acquireOwner(p.GetSessionId(), p.GetConnId(), p.GetZone())
	i, found := d.find(p.GetRegisterId())
	var r *slotRec
	if found {
		old := d.recs[i]
		old.owner.sess.digest.Remove(old.registerID, old.clientVersion, old.ts)
		s.releaseOwner(old.owner)
		// A new record, not the old one changed: the log may hold the
		// old one.
		r = &slotRec{registerID: old.registerID, values: old.values}
		if !sameValues(old.values, p.GetValues()) {
			r.values = cloneValues(p.GetValues())
		}
		d.recs[i] = r
	} else {
		r = &slotRec{registerID: strings.Clone(p.GetRegisterId()), values: cloneValues(p.GetValues())}
		d.recs = slices.Insert(d.recs, i, r)
		s.publishers++
	}
	r.owner = o
	r.clientVersion = p.GetClientVersion()
	r.ts = p.GetRegisterTimestamp()
	o.sess.digest.Add(r.registerID, r.clientVersion, r.ts)
	d.version = version
	return d.key, r
}

// remove deletes registerID from key's datum, if there, and reports whether
// that emptied (and so deleted) the datum; otherwise the datum takes version.
func (s *SlotStore) remove(key, registerID string, version uint64) (emptied bool) {
	d := s.datums[key]
	if d == nil {
		return false
	}
	i, found := d.find(registerID)
	if !found {
		return false
	}
	r := d.recs[i]
	r.owner.sess.digest.Remove(r.registerID, r.clientVersion, r.ts)
	s.releaseOwner(r.owner)
	d.recs[i] = nil
	d.recs = slices.Delete(d.recs, i, i+1)
	s.publishers--
	if len(d.recs) == 0 {
		delete(s.datums, key)
		s.markGone(key, version)
		return true
	}
	d.version = version
	return false
}

func (s *SlotStore) acquireOwner(session, conn, zone string) *recOwner {
	if o := s.owners[recOwnerKey{session, conn, zone}]; o != nil {
		o.refs++
		return o
	}
	st := s.sessions[session]
	if st == nil {
		st = &slotSession{id: strings.Clone(session)}
		s.sessions[st.id] = st
	}
	st.owners++
	o := &recOwner{recOwnerKey: recOwnerKey{st.id, strings.Clone(conn), strings.Clone(zone)}, sess: st, refs: 1}
	s.owners[o.recOwnerKey] = o
	return o
}

func (s *SlotStore) releaseOwner(o *recOwner) {
	o.refs--
	if o.refs > 0 {
		return
	}
	delete(s.owners, o.recOwnerKey)
	o.sess.owners--
	if o.sess.owners == 0 {
		delete(s.sessions, o.sess.id)
	}
}

// appendOp gives op the next seq and puts it in the ring.
func (s *SlotStore) appendOp(op logOp) {
	s.seq++
	op.seq = s.seq
	switch {
	case s.logCap == 0:
	case len(s.log) < s.logCap:
		s.log = append(s.log, op)
	default:
		s.log[s.logStart] = op
		s.logStart = (s.logStart + 1) % s.logCap
	}
}

func (s *SlotStore) clearLog() {
	s.log = nil
	s.logStart = 0
}

// notifyLocked wakes everyone waiting on Changed.
func (s *SlotStore) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *SlotStore) sortedKeys() []string {
	keys := make([]string, 0, len(s.datums))
	for k := range s.datums {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// get returns the record for registerID; d may be nil.
func (d *slotDatum) get(registerID string) *slotRec {
	if d == nil {
		return nil
	}
	if i, ok := d.find(registerID); ok {
		return d.recs[i]
	}
	return nil
}

func (d *slotDatum) find(registerID string) (int, bool) {
	return slices.BinarySearchFunc(d.recs, registerID, func(r *slotRec, id string) int {
		return strings.Compare(r.registerID, id)
	})
}

func (d *slotDatum) toProto(key string, deep bool) *registryv1.Datum {
	out := &registryv1.Datum{DataInfoId: key, Version: d.version, Publishers: make([]*registryv1.Publisher, len(d.recs))}
	for i, r := range d.recs {
		out.Publishers[i] = r.toProto(key, deep)
	}
	return out
}

// toProto builds the wire form of r; with deep, its values are copies,
// otherwise they share r's (for the read-only op log).
func (r *slotRec) toProto(key string, deep bool) *registryv1.Publisher {
	vals := r.values
	if deep {
		vals = cloneValues(vals)
	}
	return &registryv1.Publisher{
		RegisterId:        r.registerID,
		DataInfoId:        key,
		ClientVersion:     r.clientVersion,
		RegisterTimestamp: r.ts,
		Zone:              r.owner.zone,
		Values:            vals,
		SessionId:         r.owner.session,
		ConnId:            r.owner.conn,
	}
}

// sameContent reports whether p carries what r holds apart from the
// versions: values, zone, session and conn.
func (r *slotRec) sameContent(p *registryv1.Publisher) bool {
	return r.owner.session == p.GetSessionId() && r.owner.conn == p.GetConnId() &&
		r.owner.zone == p.GetZone() && sameValues(r.values, p.GetValues())
}

func sameValues(a, b [][]byte) bool {
	return slices.EqualFunc(a, b, bytes.Equal)
}

// cloneValues copies values into one allocation shared by the slices (values
// are never mutated in place, so sharing the backing array is safe). An
// empty value is stored as empty, not nil, so a round trip keeps it.
func cloneValues(vals [][]byte) [][]byte {
	if len(vals) == 0 {
		return nil
	}
	total := 0
	for _, v := range vals {
		total += len(v)
	}
	buf := make([]byte, 0, total)
	out := make([][]byte, len(vals))
	for i, v := range vals {
		start := len(buf)
		buf = append(buf, v...)
		out[i] = buf[start:len(buf):len(buf)]
	}
	return out
}

// logOp is one op of the replication log in compact form, built into
// its wire form (op) only when a follower reads it: a put points at the
// record it stored (a logged record is replaced by an update, never
// changed: put copies on write) under the datum's own key string, a
// delete holds what it removed. About 72 bytes instead of a ReplicateOp
// and a Publisher (~280).
type logOp struct {
	key          string
	seq, version uint64
	put          *slotRec
	delID        string
	delCV        uint64
	delTS        int64
}

func (o logOp) op() *registryv1.ReplicateOp {
	if o.put != nil {
		return &registryv1.ReplicateOp{Seq: o.seq, DataInfoId: o.key, Version: o.version, Put: o.put.toProto(o.key, false)}
	}
	return &registryv1.ReplicateOp{Seq: o.seq, DataInfoId: o.key, Version: o.version, DeleteRegisterId: o.delID,
		DeleteClientVersion: o.delCV, DeleteRegisterTimestamp: o.delTS}
}

// newPutOp logs r, just stored under key, which must be the datum's own
// key string (slotDatum.key), so the log holds no copy of it.
func newPutOp(key string, version uint64, r *slotRec) logOp {
	return logOp{key: key, version: version, put: r}
}

func newDeleteOp(key string, version uint64, registerID string, cv uint64, ts int64) logOp {
	return logOp{key: strings.Clone(key), version: version, delID: strings.Clone(registerID), delCV: cv, delTS: ts}
}

// touchedKeys collects the keys of one write, in order of first appearance, and
// the deletion versions of datums the write emptied.
type touchedKeys struct {
	keys    []string
	seen    map[string]struct{}
	deleteV map[string]uint64
}

func (t *touchedKeys) note(key string) {
	if t.seen == nil {
		t.seen = make(map[string]struct{})
	}
	if _, ok := t.seen[key]; ok {
		return
	}
	t.seen[key] = struct{}{}
	t.keys = append(t.keys, key)
}

func (t *touchedKeys) deleted(key string, version uint64) {
	if t.deleteV == nil {
		t.deleteV = make(map[string]uint64)
	}
	t.deleteV[key] = version
}

// versions reads each key's version after the write, from s (locked).
func (t *touchedKeys) versions(s *SlotStore) []*registryv1.DatumVersion {
	if len(t.keys) == 0 {
		return nil
	}
	out := make([]*registryv1.DatumVersion, len(t.keys))
	for i, key := range t.keys {
		v := t.deleteV[key]
		if d := s.datums[key]; d != nil {
			v = d.version
		}
		out[i] = &registryv1.DatumVersion{DataInfoId: key, Version: v}
	}
	return out
}
