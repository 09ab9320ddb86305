package data

import (
	"slices"
	"strings"
	"sync"

	"github.com/strata-registry/strata/internal/slot"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// marks is this node's copy of the operators' instance marks (registryctl
// drain), followed from meta (WatchInstanceStates). A leader attaches a
// key's marks to every datum it serves and, when they change, bumps the
// key's version and publishes the change, so subscribers are pushed it as
// they are pushed a publish. Marks are not records: they are not in the
// op log, snapshots or anti-entropy; every data node follows meta's copy,
// so a new leader serves the same marks at once.
type marks struct {
	mu    sync.RWMutex
	byKey map[string][]*registryv1.InstanceState
	// received is set by the first set from meta: until then a slot's
	// handover does not finish (antiEntropyRound), so no datum is served
	// without the marks it should carry.
	received bool
}

// ready reports whether the first set from meta has arrived.
func (m *marks) ready() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.received
}

// keys returns the keys that have marks.
func (m *marks) keys() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.byKey))
	for k := range m.byKey {
		out = append(out, k)
	}
	return out
}

// of returns key's marks, sorted by address (nil when none). The slice is
// shared: callers must not modify it.
func (m *marks) of(key string) []*registryv1.InstanceState {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.byKey[key]
}

// replace installs the whole set and returns the keys whose marks changed.
func (m *marks) replace(set *registryv1.InstanceStates) []string {
	next := map[string][]*registryv1.InstanceState{}
	for _, e := range set.GetEntries() {
		next[e.GetDataInfoId()] = append(next[e.GetDataInfoId()], &registryv1.InstanceState{Addr: e.GetAddr(), State: e.GetState()})
	}
	for _, l := range next {
		slices.SortFunc(l, func(a, b *registryv1.InstanceState) int { return strings.Compare(a.GetAddr(), b.GetAddr()) })
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var changed []string
	for key, l := range next {
		if !sameMarks(m.byKey[key], l) {
			changed = append(changed, key)
		}
	}
	for key := range m.byKey {
		if _, ok := next[key]; !ok {
			changed = append(changed, key)
		}
	}
	m.byKey = next
	m.received = true
	slices.Sort(changed)
	return changed
}

func sameMarks(a, b []*registryv1.InstanceState) bool {
	return slices.EqualFunc(a, b, func(x, y *registryv1.InstanceState) bool {
		return x.GetAddr() == y.GetAddr() && x.GetState() == y.GetState()
	})
}

// applyMarks is the WatchInstanceStates callback: it installs the set and
// bumps, in the slots this node leads, the version of every key whose
// marks changed, publishing the new versions as change notices.
func (s *Server) applyMarks(set *registryv1.InstanceStates) {
	changed := s.marks.replace(set)
	var versions []*registryv1.DatumVersion
	for _, key := range changed {
		id, ok := s.slots.slotOf(key)
		if !ok {
			continue
		}
		if st, err := s.leading(id, anyEpoch); err == nil {
			if v := st.store.Touch(key); v != nil {
				versions = append(versions, v)
			}
		}
	}
	if len(changed) > 0 {
		s.logger.Info("instance marks changed", "keys", len(changed), "bumped", len(versions), "index", set.GetIndex())
	}
	s.notices.publish(versions)
}

// touchMarked gives every marked key of the slots in sts a new version,
// as they finish their handover: a mark that changed while this node did
// not lead a slot (it followed, or the slot had no leader) bumped nothing,
// and the versions a slot carries over are ones sessions have already
// fetched, so without this the change would never be pushed. The new
// versions are of this node's leader epoch, above any an earlier leader
// handed out (also one that touched a key before it applied the table
// that took the slot away). One pass over the marks for all the slots.
func (s *Server) touchMarked(sts []*slotState) {
	if len(sts) == 0 {
		return
	}
	byID := make(map[slot.ID]*slotState, len(sts))
	for _, st := range sts {
		byID[st.id] = st
	}
	for _, key := range s.marks.keys() {
		if id, ok := s.slots.slotOf(key); ok {
			if st := byID[id]; st != nil {
				st.store.Touch(key)
			}
		}
	}
}

// readDatum reads key from st's store with its marks attached: what
// GetDatums and inlined change notices serve.
func (s *Server) readDatum(st *slotState, key string) *registryv1.Datum {
	d := st.store.Read(key)
	d.InstanceStates = s.marks.of(key)
	return d
}
