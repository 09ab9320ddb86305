// Package slot holds Strata's pure slot math: which slot a data key falls in,
// and which data nodes lead and follow each slot.
//
// Nothing here does I/O, starts goroutines or reads the clock; every function
// returns the same answer for the same inputs, so the meta FSM and tests can
// call it freely.
package slot

import (
	"errors"
	"fmt"
	"slices"

	"github.com/buraksezer/consistent"
	"github.com/cespare/xxhash/v2"
)

// ID identifies a slot: a shard of the key space, 0 <= ID < slot count.
type ID uint32

// NodeID identifies a data node.
type NodeID string

// Defaults and bounds for the cluster-wide settings fixed at creation.
const (
	DefaultCount    = 256
	DefaultReplicas = 2
	DefaultMaxMoves = 32
	// MaxCount bounds the slot count: past it the table stops being something
	// meta can ship to every node on every change.
	MaxCount = 16384
	// MaxReplicas bounds copies per slot (leader included).
	MaxReplicas = 7
)

// Errors returned for bad settings or inputs.
var (
	ErrBadCount    = errors.New("slot: slot count out of range")
	ErrBadReplicas = errors.New("slot: replica count out of range")
	ErrBadMaxMoves = errors.New("slot: max moves must be positive")
	ErrBadTable    = errors.New("slot: table does not match settings")
	ErrBadNode     = errors.New("slot: bad node ID")
)

// Settings are the cluster-wide parameters of the slot table. Count and
// Replicas are fixed when the cluster is created; MaxMoves may change.
type Settings struct {
	// Count is the number of slots (default 256).
	Count int
	// Replicas is the number of copies of each slot, leader included
	// (default 2: a leader and one follower).
	Replicas int
	// MaxMoves caps the voluntary changes (leader transfers and follower
	// additions made to rebalance) per call to Next. Failover and restoring
	// a missing replica are never capped.
	MaxMoves int
}

// DefaultSettings returns the production defaults.
func DefaultSettings() Settings {
	return Settings{Count: DefaultCount, Replicas: DefaultReplicas, MaxMoves: DefaultMaxMoves}
}

// Validate checks each field and their combination.
func (s Settings) Validate() error {
	if s.Count < 1 || s.Count > MaxCount {
		return fmt.Errorf("%w: %d (want 1..%d)", ErrBadCount, s.Count, MaxCount)
	}
	if s.Replicas < 1 || s.Replicas > MaxReplicas {
		return fmt.Errorf("%w: %d (want 1..%d)", ErrBadReplicas, s.Replicas, MaxReplicas)
	}
	if s.MaxMoves < 1 {
		return fmt.Errorf("%w: %d", ErrBadMaxMoves, s.MaxMoves)
	}
	return nil
}

// Slot is one row of the table.
type Slot struct {
	ID ID
	// Leader is the only node that accepts writes for the slot; empty when no
	// data node is alive.
	Leader NodeID
	// LeaderEpoch increases every time Leader changes. Writes carry it so a
	// deposed leader's requests are fenced off.
	LeaderEpoch uint64
	// Followers replicate from the leader, sorted by NodeID. During a
	// make-before-break move a slot briefly has more than Replicas-1.
	Followers []NodeID
}

// Has reports whether n leads or follows the slot.
func (s Slot) Has(n NodeID) bool {
	return s.Leader == n || slices.Contains(s.Followers, n)
}

// Table maps every slot to its nodes. Epoch increases with every change.
type Table struct {
	Epoch uint64
	// Slots is indexed by ID: Slots[i].ID == i.
	Slots []Slot
}

// Clone returns a deep copy, so callers may keep a table while the original
// is replaced.
func (t Table) Clone() Table {
	if t.Slots == nil {
		return Table{Epoch: t.Epoch}
	}
	out := Table{Epoch: t.Epoch, Slots: make([]Slot, len(t.Slots))}
	for i, s := range t.Slots {
		s.Followers = slices.Clone(s.Followers)
		out.Slots[i] = s
	}
	return out
}

// Equal reports whether two tables assign the same nodes with the same epochs.
func (t Table) Equal(o Table) bool {
	if t.Epoch != o.Epoch || len(t.Slots) != len(o.Slots) {
		return false
	}
	for i := range t.Slots {
		if !t.Slots[i].Equal(o.Slots[i]) {
			return false
		}
	}
	return true
}

// Equal reports whether two rows name the same slot, nodes and leader epoch.
// A nil and an empty follower list are equal.
func (s Slot) Equal(o Slot) bool {
	return s.ID == o.ID && s.Leader == o.Leader && s.LeaderEpoch == o.LeaderEpoch && slices.Equal(s.Followers, o.Followers)
}

// SyncState records which followers hold a complete, caught-up copy of a
// slot, as the data nodes report it: SyncState[slot][node] == true. A slot's
// leader counts as holding its data whether or not it appears here.
type SyncState map[ID]map[NodeID]bool

// Synced reports whether node n has reported slot id as synced.
func (s SyncState) Synced(id ID, n NodeID) bool {
	return s[id][n]
}

// Hasher maps data keys to slots: xxhash of the key, through
// buraksezer/consistent's partitioning, modulo the slot count. It depends on
// the slot count alone, never on membership, so a key's slot never changes.
// A Hasher is safe for concurrent use.
type Hasher struct {
	ring *consistent.Consistent
}

type xxhasher struct{}

func (xxhasher) Sum64(b []byte) uint64 { return xxhash.Sum64(b) }

// NewHasher returns a Hasher for count slots. Use only Hashers it returns:
// the zero Hasher panics in Of.
func NewHasher(count int) (*Hasher, error) {
	if count < 1 || count > MaxCount {
		return nil, fmt.Errorf("%w: %d (want 1..%d)", ErrBadCount, count, MaxCount)
	}
	// consistent panics on a nil Hasher, and when it has members whose load
	// cannot fit; with no members nothing is distributed, and
	// FindPartitionID needs only the hasher and the partition count.
	ring := consistent.New(nil, consistent.Config{
		PartitionCount:    count,
		ReplicationFactor: 1,
		Load:              1.25,
		Hasher:            xxhasher{},
	})
	return &Hasher{ring: ring}, nil
}

// Of returns the slot of a dataInfoID.
func (h *Hasher) Of(dataInfoID string) ID {
	return ID(h.ring.FindPartitionID([]byte(dataInfoID)))
}
