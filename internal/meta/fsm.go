package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/slot"
)

// Member is a data or session node as the FSM records it. Meta nodes are not
// members: they are Raft peers.
type Member struct {
	ID   string       `json:"id"`
	Role cluster.Role `json:"role"`
	GRPC string       `json:"grpc"`
	HTTP string       `json:"http,omitempty"`
	Zone string       `json:"zone,omitempty"`
	// Proc is the node's running process; a change means a restart.
	Proc string `json:"proc,omitempty"`
}

// State is the replicated state at one Raft index. A published State is
// immutable: Apply builds a new one and swaps the pointer, so readers never
// lock and never see a half-applied command.
type State struct {
	// ClusterID is set once, by the first leader.
	ClusterID string `json:"cluster_id"`
	// Settings are fixed when the cluster is created (MaxMoves excepted).
	Settings slot.Settings `json:"settings"`
	// Members are the live data and session nodes, by ID.
	Members map[string]Member `json:"members"`
	// Table is the current slot table; zero until the first data node.
	Table slot.Table `json:"table"`
	// Sync records which followers reported a complete copy of which slot,
	// at the slot's current leader epoch.
	Sync slot.SyncState `json:"sync"`
	// Index is the Raft index of the last applied command.
	Index uint64 `json:"index"`
	// Marks are operators' marks on instances (registryctl drain), by
	// dataInfoID then address; StatesIndex is the Raft index of their
	// last change (states.go).
	Marks       map[string]map[string]Mark `json:"marks,omitempty"`
	StatesIndex uint64                     `json:"states_index,omitempty"`

	// history holds the last few tables, oldest first, ending with Table,
	// so a watcher a few epochs behind still sees every epoch in order. It
	// is not part of snapshots: after a restore it starts again at Table.
	history []slot.Table
}

// Initialized reports whether the first leader has set the cluster up.
func (s *State) Initialized() bool { return s.ClusterID != "" }

// DataNodes returns the IDs of data members, sorted.
func (s *State) DataNodes() []slot.NodeID {
	var out []slot.NodeID
	for _, m := range s.Members {
		if m.Role == cluster.RoleData {
			out = append(out, slot.NodeID(m.ID))
		}
	}
	slices.Sort(out)
	return out
}

// TablesAfter returns what a watcher that has seen epoch should receive,
// oldest first. A new watcher (resume false) gets the current table alone.
// A resuming watcher gets every newer table the state still holds, so it
// sees each epoch in order; one too far behind gets the current table alone.
func (s *State) TablesAfter(epoch uint64, resume bool) []slot.Table {
	if s.Table.Epoch <= epoch {
		return nil
	}
	if resume && len(s.history) > 0 && s.history[0].Epoch <= epoch+1 {
		var out []slot.Table
		for _, t := range s.history {
			if t.Epoch > epoch {
				out = append(out, t)
			}
		}
		return out
	}
	return []slot.Table{s.Table}
}

// tableHistory bounds State.history.
const tableHistory = 64

// Commands are JSON in the Raft log: readable with any bolt viewer, and
// small (membership and sync changes are rare; the table is a few KiB).
type op string

const (
	opInit   op = "init"
	opUpsert op = "upsert"
	opRemove op = "remove"
	opSync   op = "sync"
	opTable  op = "table"
	opMark   op = "mark"
)

type command struct {
	Op     op       `json:"op"`
	Init   *initCmd `json:"init,omitempty"`
	Member *Member  `json:"member,omitempty"`
	// Replace allows an upsert to change an existing member's address: the
	// leader sets it after the pool confirmed the node lives there now.
	Replace bool      `json:"replace,omitempty"`
	NodeID  string    `json:"node_id,omitempty"`
	Sync    []syncRow `json:"sync,omitempty"`
	Table   *tableCmd `json:"table,omitempty"`
	Mark    *markCmd  `json:"mark,omitempty"`
}

type initCmd struct {
	ClusterID string        `json:"cluster_id"`
	Settings  slot.Settings `json:"settings"`
}

type syncRow struct {
	Slot        slot.ID `json:"slot"`
	LeaderEpoch uint64  `json:"leader_epoch"`
	Synced      bool    `json:"synced"`
}

type tableCmd struct {
	// Expect is the epoch the leader computed from; Apply refuses the
	// table if the state moved on meanwhile (compare-and-swap).
	Expect uint64     `json:"expect"`
	Table  slot.Table `json:"table"`
}

func encode(c command) ([]byte, error) { return json.Marshal(c) }

// fsm is Strata's raft.FSM. Raft calls Apply, Snapshot and Restore from one
// goroutine; readers use Current and Watch from any goroutine.
//
// Apply is deterministic: it reads nothing but the command and the state
// (never the clock), so every replica computes the same State.
type fsm struct {
	state atomic.Pointer[State]

	mu sync.Mutex
	// changed is closed, and replaced, whenever a new State is published.
	changed chan struct{}
}

func newFSM() *fsm {
	f := &fsm{changed: make(chan struct{})}
	f.state.Store(&State{Members: map[string]Member{}, Sync: slot.SyncState{}})
	return f
}

// Current returns the latest state. Callers must not modify it.
func (f *fsm) Current() *State { return f.state.Load() }

// Watch returns the latest state and a channel closed when a newer one is
// published.
func (f *fsm) Watch() (*State, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state.Load(), f.changed
}

func (f *fsm) publish(s *State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state.Store(s)
	close(f.changed)
	f.changed = make(chan struct{})
}

// Apply applies one committed command and returns nil or an error, which
// the proposer receives through ApplyFuture.Response.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	var c command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		// A log entry this version cannot read; refuse it without
		// changing anything, on every replica alike.
		return fmt.Errorf("meta: undecodable command at index %d: %w", l.Index, err)
	}
	cur := f.state.Load()
	next, err := apply(cur, c)
	if err != nil {
		return err
	}
	next.Index = l.Index
	if c.Op == opMark {
		next.StatesIndex = l.Index
	}
	f.publish(next)
	return nil
}

// apply returns the state after c, sharing every part c does not change.
func apply(cur *State, c command) (*State, error) {
	next := *cur
	switch c.Op {
	case opInit:
		if c.Init == nil {
			return nil, invalid("init without body")
		}
		if cur.Initialized() {
			return &next, nil // first leader wins; later inits are no-ops
		}
		next.ClusterID = c.Init.ClusterID
		next.Settings = c.Init.Settings
	case opUpsert:
		m := c.Member
		if m == nil {
			return nil, invalid("upsert without member")
		}
		if old, ok := cur.Members[m.ID]; ok && old.GRPC != m.GRPC && !c.Replace {
			return nil, fmt.Errorf("%w: %s is at %s, not %s", ErrDuplicateNode, m.ID, old.GRPC, m.GRPC)
		}
		next.Members = maps.Clone(cur.Members)
		next.Members[m.ID] = *m
	case opRemove:
		if _, ok := cur.Members[c.NodeID]; !ok {
			return &next, nil
		}
		next.Members = maps.Clone(cur.Members)
		delete(next.Members, c.NodeID)
		next.Sync = pruneSync(cur.Sync, func(s slot.ID, n slot.NodeID) bool { return string(n) != c.NodeID })
	case opSync:
		if _, ok := cur.Members[c.NodeID]; !ok {
			return nil, fmt.Errorf("%w: %s", ErrUnknownNode, c.NodeID)
		}
		next.Sync = applySync(cur, slot.NodeID(c.NodeID), c.Sync)
	case opTable:
		if c.Table == nil {
			return nil, invalid("table command without table")
		}
		if !cur.Initialized() {
			return nil, ErrNotInitialized
		}
		if cur.Table.Epoch != c.Table.Expect {
			return nil, fmt.Errorf("%w: computed from epoch %d, now %d", ErrStaleTable, c.Table.Expect, cur.Table.Epoch)
		}
		t := c.Table.Table
		if t.Epoch <= cur.Table.Epoch || len(t.Slots) != cur.Settings.Count {
			return nil, invalid("table epoch %d with %d slots cannot follow epoch %d with %d slots", t.Epoch, len(t.Slots), cur.Table.Epoch, cur.Settings.Count)
		}
		next.Table = t
		next.history = append(slices.Clone(cur.history), t)
		if len(next.history) > tableHistory {
			next.history = next.history[len(next.history)-tableHistory:]
		}
		// A report holds for one leader epoch of a slot and a node that
		// follows it. When the leader changes, every follower must catch
		// up with the new leader and report again: a copy synced from the
		// old leader lacks what the new one accepted since.
		next.Sync = pruneSync(cur.Sync, func(s slot.ID, n slot.NodeID) bool {
			return int(s) < len(t.Slots) && int(s) < len(cur.Table.Slots) &&
				cur.Table.Slots[s].LeaderEpoch == t.Slots[s].LeaderEpoch &&
				slices.Contains(t.Slots[s].Followers, n)
		})
	case opMark:
		if c.Mark == nil {
			return nil, invalid("mark command without mark")
		}
		marks, err := applyMark(cur.Marks, *c.Mark)
		if err != nil {
			return nil, err
		}
		next.Marks = marks
	default:
		return nil, invalid("unknown command %q", c.Op)
	}
	return &next, nil
}

// reportApplies says whether a sync report counts: it must name a slot the
// node follows, at the slot's current leader epoch.
func reportApplies(cur *State, node slot.NodeID, r syncRow) bool {
	if int(r.Slot) >= len(cur.Table.Slots) {
		return false
	}
	s := cur.Table.Slots[r.Slot]
	return r.LeaderEpoch == s.LeaderEpoch && slices.Contains(s.Followers, node)
}

// applySync records the reports that apply.
func applySync(cur *State, node slot.NodeID, rows []syncRow) slot.SyncState {
	out := cloneSync(cur.Sync)
	for _, r := range rows {
		if !reportApplies(cur, node, r) {
			continue
		}
		if r.Synced {
			if out[r.Slot] == nil {
				out[r.Slot] = map[slot.NodeID]bool{}
			}
			out[r.Slot][node] = true
		} else if out[r.Slot] != nil {
			delete(out[r.Slot], node)
			if len(out[r.Slot]) == 0 {
				delete(out, r.Slot)
			}
		}
	}
	return out
}

// syncChanges returns the rows of a report that would change the state, so
// the leader proposes nothing when a heartbeat repeats what is known.
func syncChanges(cur *State, node slot.NodeID, rows []syncRow) []syncRow {
	var out []syncRow
	for _, r := range rows {
		if reportApplies(cur, node, r) && cur.Sync.Synced(r.Slot, node) != r.Synced {
			out = append(out, r)
		}
	}
	return out
}

func cloneSync(s slot.SyncState) slot.SyncState {
	out := make(slot.SyncState, len(s))
	for id, nodes := range s {
		out[id] = maps.Clone(nodes)
	}
	return out
}

func pruneSync(s slot.SyncState, keep func(slot.ID, slot.NodeID) bool) slot.SyncState {
	out := make(slot.SyncState, len(s))
	for id, nodes := range s {
		for n, ok := range nodes {
			if ok && keep(id, n) {
				if out[id] == nil {
					out[id] = map[slot.NodeID]bool{}
				}
				out[id][n] = true
			}
		}
	}
	return out
}

// Snapshot captures the current state. The state is immutable, so Persist
// may run concurrently with later Applies.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{state: f.state.Load()}, nil
}

// Restore replaces the state with a snapshot.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var s State
	if err := json.NewDecoder(rc).Decode(&s); err != nil {
		return fmt.Errorf("meta: decode snapshot: %w", err)
	}
	if s.Members == nil {
		s.Members = map[string]Member{}
	}
	if s.Sync == nil {
		s.Sync = slot.SyncState{}
	}
	if len(s.Table.Slots) > 0 {
		s.history = []slot.Table{s.Table}
	}
	f.publish(&s)
	return nil
}

type fsmSnapshot struct{ state *State }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.state); err != nil {
		return errors.Join(fmt.Errorf("meta: write snapshot: %w", err), sink.Cancel())
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
