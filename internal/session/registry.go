package session

import (
	"cmp"
	"encoding/binary"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/clock"
	"github.com/strata-registry/strata/internal/publisher"
	"github.com/strata-registry/strata/internal/slot"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// pubKey identifies a publication: (dataInfoID, registerID).
type pubKey struct{ key, registerID string }

// pubEntry is one of this session's publications, in compact form: a
// session holds every publication of its clients for as long as they are
// connected (a million on a few sessions), so an entry is one allocation
// of 112 bytes beside its register ID and its values, and what many
// entries share they share by pointer or by one interned copy.
// Entries are replaced, never mutated (but for their places in the
// slot's and the holder's lists, which publishers' lock guards).
type pubEntry struct {
	registerID string // the stored one, qualified by the owner (publisher.Owned)
	key        string // data info ID, one copy per key (publishers.keys)
	version    uint64
	stamp      int64   // register timestamp, unix nanos
	values     []byte  // packValues: every value in one allocation
	origin     *origin // zone, session and connection, shared
	holder     *holder // the client holding it
	owner      *owner  // the identity it counts against (one reservation while stored)
	slot       slot.ID
	slotAt     int32 // its place in its slot's list
	holderAt   int32 // its place in its holder's list
}

// origin is where publications come from: what a connection's (or the
// HTTP API's, per zone) entries share.
type origin struct{ zone, sessionID, connID string }

// holder is a client holding publications on this session, and its
// entries.
type holder struct {
	clientID string // the client's key (clientKey)
	entries  []*pubEntry
}

// publisher returns e as a publisher record (a new one: the data tier's
// and anti-entropy's wire form).
func (e *pubEntry) publisher() *registryv1.Publisher {
	return &registryv1.Publisher{RegisterId: e.registerID, DataInfoId: e.key, ClientVersion: e.version,
		RegisterTimestamp: e.stamp, Zone: e.origin.zone, Values: unpackValues(e.values),
		SessionId: e.origin.sessionID, ConnId: e.origin.connID}
}

func (e *pubEntry) pubKey() pubKey { return pubKey{e.key, e.registerID} }

// packValues lays values out in one allocation, each as its length
// (uvarint) and its bytes.
func packValues(vs [][]byte) []byte {
	n := 0
	for _, v := range vs {
		n += uvarintLen(len(v)) + len(v)
	}
	b := make([]byte, 0, n)
	for _, v := range vs {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}

// uvarintLen is how many bytes binary.AppendUvarint takes for n.
func uvarintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}

// unpackValues returns the values packValues laid out in b, sharing b's
// bytes (entries are never mutated, so neither are their values).
func unpackValues(b []byte) [][]byte {
	if len(b) == 0 {
		return nil
	}
	var out [][]byte
	for len(b) > 0 {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			panic("session: corrupt packed values") // packValues wrote them: cannot be
		}
		out = append(out, b[w:w+int(n):w+int(n)])
		b = b[w+int(n):]
	}
	return out
}

// errTaken refuses a client that registers a register ID another client of
// the same identity holds on this session.
var errTaken = status.Error(codes.PermissionDenied, "session: another client of this identity holds that register id; a publication belongs to the client that made it")

// publishers is the session's own record of its clients' publications:
// the source of truth that slot leaders compare against.
//
// Register timestamps are stamped (again) under mu as a publication is
// stored, and a slot's list is read with its as-of time under mu too, so
// a publication stored after a list was read carries a later timestamp
// than the list's as-of: a slot leader comparing the list with its
// records never takes such a publication (already forwarded to it by the
// time it compares) for one the session dropped. Stamped before the lock,
// a registration could be stamped, then the list read, then the
// publication stored and forwarded: the leader deleted it, and its
// tombstone refused every re-send (seen in a storm of a million).
//
// An entry is in the key index and in two lists, its slot's and its
// holder's, where it knows its place: it leaves either in O(1), the last
// one taking its place (no per-entry map entry but the key index's).
type publishers struct {
	now     func() int64 // unix nanos, the register timestamps' clock
	mu      sync.Mutex
	byKey   map[pubKey]*pubEntry
	slots   map[slot.ID]*slotPubs
	holders map[string]*holder // by client key
	// keys interns data info IDs (a service's thousand instances share
	// one copy of its key), origins the entries' origins.
	keys    interner[string]
	origins interner[origin]
}

// slotPubs is the entries of one slot.
type slotPubs struct{ entries []*pubEntry }

func newPublishers(clk clock.Clock) *publishers {
	return &publishers{now: func() int64 { return clk.Now().UnixNano() }, byKey: map[pubKey]*pubEntry{},
		slots: map[slot.ID]*slotPubs{}, holders: map[string]*holder{},
		keys: newInterner[string](), origins: newInterner[origin]()}
}

// put stores p (of client clientID, counted against o, in slot id)
// unless the stored one is newer or equal, and reports whether it stored
// it. p gets the register timestamp it is stored with and the interned
// copy of its data info ID, so it is what to forward. A publication held
// for another client (of the same identity: the register ID is qualified
// by its owner) is not replaced: errTaken.
//
// A publication the client does not hold yet is one more registration:
// put calls reserve first, with ps.mu held and the number of publications
// the client holds, and stores p only if it returns nil (having counted
// it against o's quota). The check and the insert are one step, so two
// streams of one client cannot both take the last place, and an update of
// a held publication never meets the quotas. reserve must not call back
// into ps.
func (ps *publishers) put(p *registryv1.Publisher, id slot.ID, clientID string, o *owner, reserve func(clientPubs int) error) (bool, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if now := ps.now(); now > p.GetRegisterTimestamp() {
		p.RegisterTimestamp = now
	}
	if key, ok := ps.keys.lookup(p.GetDataInfoId()); ok {
		p.DataInfoId = key
	}
	k := pubKey{p.GetDataInfoId(), p.GetRegisterId()}
	old, ok := ps.byKey[k]
	if ok && old.holder.clientID != clientID {
		return false, errTaken
	}
	if ok && !publisher.Newer(p.GetClientVersion(), p.GetRegisterTimestamp(), old.version, old.stamp) {
		return false, nil
	}
	h := ps.holders[clientID]
	if !ok {
		n := 0
		if h != nil {
			n = len(h.entries)
		}
		if err := reserve(n); err != nil {
			return false, err
		}
	}
	e := &pubEntry{registerID: k.registerID, version: p.GetClientVersion(), stamp: p.GetRegisterTimestamp(),
		values: packValues(p.GetValues()), owner: o, slot: id,
		origin: ps.origins.take(origin{zone: p.GetZone(), sessionID: p.GetSessionId(), connID: p.GetConnId()})}
	if ok {
		// The update takes the old entry's places; its key is the old's.
		e.key, e.holder, e.slot = old.key, old.holder, old.slot
		ps.origins.drop(*old.origin)
		// (A key's slot is its hash's: id is old.slot.)
		e.slotAt, e.holderAt = old.slotAt, old.holderAt
		ps.slots[e.slot].entries[e.slotAt] = e
		e.holder.entries[e.holderAt] = e
		ps.byKey[k] = e
		return true, nil
	}
	e.key = *ps.keys.take(k.key)
	if h == nil {
		h = &holder{clientID: clientID}
		ps.holders[clientID] = h
	}
	e.holder = h
	e.holderAt = int32(len(h.entries))
	h.entries = append(h.entries, e)
	ps.enslot(e)
	ps.byKey[k] = e
	return true, nil
}

// enslot adds e to its slot's list.
func (ps *publishers) enslot(e *pubEntry) {
	sp := ps.slots[e.slot]
	if sp == nil {
		sp = &slotPubs{}
		ps.slots[e.slot] = sp
	}
	e.slotAt = int32(len(sp.entries))
	sp.entries = append(sp.entries, e)
}

// unslot takes e out of its slot's list.
func (ps *publishers) unslot(e *pubEntry) {
	sp := ps.slots[e.slot]
	sp.entries = cutAt(sp.entries, int(e.slotAt), func(moved *pubEntry, at int) { moved.slotAt = int32(at) })
	if len(sp.entries) == 0 {
		delete(ps.slots, e.slot)
	}
}

// cutAt removes es[i], moving the last entry into its place (moved is
// told its new place), and gives back memory once a list has shrunk to a
// quarter of its capacity: a storm's lists do not stay at their peak.
func cutAt(es []*pubEntry, i int, moved func(e *pubEntry, at int)) []*pubEntry {
	last := len(es) - 1
	if i != last {
		es[i] = es[last]
		moved(es[i], i)
	}
	es[last] = nil
	es = es[:last]
	if cap(es) > 64 && len(es) < cap(es)/4 {
		es = slices.Clone(es)
	}
	return es
}

// withClient runs f with ps.mu held and the number of publications
// client holds: a subscriber's quota check and insert, made atomic with
// the client's publications (f must not call back into ps).
func (ps *publishers) withClient(clientID string, f func(clientPubs int) error) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return f(ps.heldBy(clientID))
}

// heldBy is how many publications client holds. Callers hold ps.mu.
func (ps *publishers) heldBy(clientID string) int {
	if h := ps.holders[clientID]; h != nil {
		return len(h.entries)
	}
	return 0
}

// removeClient removes every publication of client and returns them.
func (ps *publishers) removeClient(clientID string) []*pubEntry {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	h := ps.holders[clientID]
	if h == nil {
		return nil
	}
	out := slices.Clone(h.entries)
	for _, e := range slices.Backward(out) { // from the end: each leaves without a move
		ps.removeLocked(e)
	}
	return out
}

// removeOwn removes a publication only if client holds it, and returns it
// (nil if unknown or another client's).
func (ps *publishers) removeOwn(k pubKey, clientID string) *pubEntry {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	e := ps.byKey[k]
	if e == nil || e.holder.clientID != clientID {
		return nil
	}
	ps.removeLocked(e)
	return e
}

// removeLocked removes e, a stored entry. Callers hold ps.mu.
func (ps *publishers) removeLocked(e *pubEntry) {
	delete(ps.byKey, e.pubKey())
	ps.keys.drop(e.key)
	ps.origins.drop(*e.origin)
	ps.unslot(e)
	h := e.holder
	h.entries = cutAt(h.entries, int(e.holderAt), func(moved *pubEntry, at int) { moved.holderAt = int32(at) })
	if len(h.entries) == 0 {
		delete(ps.holders, h.clientID)
	}
	e.owner.unreserve(1)
}

// ofClientCount returns how many publications a client has.
func (ps *publishers) ofClientCount(clientID string) int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.heldBy(clientID)
}

// inSlot returns the publishers in a slot, sorted (built and sorted after
// letting go of the lock, which every registration takes), and the time
// as of which the list is complete: a publication stored later is
// stamped later.
func (ps *publishers) inSlot(id slot.ID) ([]*registryv1.Publisher, int64) {
	ps.mu.Lock()
	asOf := ps.now()
	var es []*pubEntry
	if sp := ps.slots[id]; sp != nil {
		es = slices.Clone(sp.entries)
	}
	ps.mu.Unlock()
	slices.SortFunc(es, func(a, b *pubEntry) int {
		return cmp.Or(strings.Compare(a.key, b.key), strings.Compare(a.registerID, b.registerID))
	})
	out := make([]*registryv1.Publisher, len(es))
	for i, e := range es {
		out[i] = e.publisher()
	}
	return out, asOf
}

// digestOf is the digest of the publishers in a slot (order does not
// matter to a digest: nothing is copied or sorted).
func (ps *publishers) digestOf(id slot.ID) publisher.Digest {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var d publisher.Digest
	if sp := ps.slots[id]; sp != nil {
		for _, e := range sp.entries {
			d.Add(e.registerID, e.version, e.stamp)
		}
	}
	return d
}

func (ps *publishers) count() int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return len(ps.byKey)
}

// interner keeps one copy of each value of T in use, counted, so the
// last holder to drop it takes it. Its user locks.
type interner[T comparable] struct{ m map[T]*counted[T] }

type counted[T any] struct {
	v T
	n int
}

func newInterner[T comparable]() interner[T] { return interner[T]{m: map[T]*counted[T]{}} }

// lookup returns the interned copy of v, if there is one (nothing taken).
func (in interner[T]) lookup(v T) (T, bool) {
	if c := in.m[v]; c != nil {
		return c.v, true
	}
	return v, false
}

// take returns the interned copy of v (a copy of v itself, the first
// time) and counts one more holder.
func (in interner[T]) take(v T) *T {
	c := in.m[v]
	if c == nil {
		c = &counted[T]{v: v}
		in.m[v] = c
	}
	c.n++
	return &c.v
}

// drop counts one holder of v fewer, forgetting v with the last.
func (in interner[T]) drop(v T) {
	if c := in.m[v]; c != nil {
		if c.n--; c.n <= 0 {
			delete(in.m, v)
		}
	}
}

// len is how many values are interned.
func (in interner[T]) len() int { return len(in.m) }
