package session

import (
	"sort"
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

// pubEntry is one of this session's publications. p's register ID is the
// stored one, qualified by the owner (publisher.Owned).
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
type publishers struct {
	now      func() int64 // unix nanos, the register timestamps' clock
	mu       sync.Mutex
	byKey    map[pubKey]*pubEntry
	bySlot   map[slot.ID]map[pubKey]*pubEntry
	byClient map[string]map[pubKey]struct{}
	// keys interns data info IDs: every stored publication of a key
	// shares one copy of it (a service's thousand instances, one string),
	// counted so the last one out takes it.
	keys map[string]keyRef
}

// keyRef is one interned data info ID and how many stored publications
// share it.
type keyRef struct {
	s string
	n int
}

func newPublishers(clk clock.Clock) *publishers {
	return &publishers{now: func() int64 { return clk.Now().UnixNano() }, byKey: map[pubKey]*pubEntry{},
		bySlot: map[slot.ID]map[pubKey]*pubEntry{}, byClient: map[string]map[pubKey]struct{}{}, keys: map[string]keyRef{}}
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
	if now := ps.now(); now > e.p.GetRegisterTimestamp() {
		e.p.RegisterTimestamp = now
	}
	if ref, ok := ps.keys[e.p.GetDataInfoId()]; ok {
		e.p.DataInfoId = ref.s
	}
	k := pubKey{e.p.GetDataInfoId(), e.p.GetRegisterId()}
	old, ok := ps.byKey[k]
	if ok && old.clientID != e.clientID {
		return false, errTaken
	}
	if ok && !publisher.Newer(e.p.GetClientVersion(), e.p.GetRegisterTimestamp(), old.p.GetClientVersion(), old.p.GetRegisterTimestamp()) {
		return false, nil
	}
	if !ok {
		if err := reserve(len(ps.byClient[e.clientID])); err != nil {
			return false, err
		}
	}
	if !ok {
		ref := ps.keys[k.key]
		ps.keys[k.key] = keyRef{s: k.key, n: ref.n + 1}
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
	if ref := ps.keys[k.key]; ref.n > 1 {
		ps.keys[k.key] = keyRef{s: ref.s, n: ref.n - 1}
	} else {
		delete(ps.keys, k.key)
	}
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

// inSlot returns the publishers in a slot, sorted (after letting go of
// the lock, which every registration takes), and the time as of which the
// list is complete: a publication stored later is stamped later.
func (ps *publishers) inSlot(id slot.ID) ([]*registryv1.Publisher, int64) {
	ps.mu.Lock()
	asOf := ps.now()
	out := make([]*registryv1.Publisher, 0, len(ps.bySlot[id]))
	for _, e := range ps.bySlot[id] {
		out = append(out, e.p)
	}
	ps.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].GetDataInfoId() != out[j].GetDataInfoId() {
			return out[i].GetDataInfoId() < out[j].GetDataInfoId()
		}
		return out[i].GetRegisterId() < out[j].GetRegisterId()
	})
	return out, asOf
}

// digestOf is the digest of the publishers in a slot (order does not
// matter to a digest: nothing is copied or sorted).
func (ps *publishers) digestOf(id slot.ID) publisher.Digest {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var d publisher.Digest
	for _, e := range ps.bySlot[id] {
		d.Add(e.p.GetRegisterId(), e.p.GetClientVersion(), e.p.GetRegisterTimestamp())
	}
	return d
}

func (ps *publishers) count() int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return len(ps.byKey)
}
