// Package push is a session node's push engine: it turns change notices for
// a dataInfoID into pushes of the whole publisher list to every local
// subscriber of that key, tracks acks, retries with backoff, drops
// superseded pushes and caps the bytes in flight per client connection.
//
// The engine never blocks on a client and never fetches the same key twice
// at once: a quiet key's first change is fetched at once, changes that
// arrive while that fetch (or its fan-out) is in flight merge into one
// follow-up, and a failed fetch keeps the last good datum and retries, so a
// migrating slot or a dead data node never shows up as an empty or shrunken
// list at a client.
//
// The session owns the connections and implements Fetcher and Conn; the
// engine only imports the protobuf types.
package push

import (
	"context"
	"sync"

	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Scope selects which publishers of a datum a subscriber is pushed.
type Scope uint8

const (
	// ScopeZone carries only publishers whose Zone equals the zone of the
	// subscriber's connection.
	ScopeZone Scope = iota
	// ScopeDatacenter carries every publisher. Strata runs in a single
	// datacenter for now, so it equals ScopeGlobal.
	ScopeDatacenter
	// ScopeGlobal carries every publisher.
	ScopeGlobal
)

// String returns the scope's name as used in the data model.
func (s Scope) String() string {
	switch s {
	case ScopeZone:
		return "zone"
	case ScopeDatacenter:
		return "datacenter"
	case ScopeGlobal:
		return "global"
	}
	return "unknown"
}

// Fetcher reads datums from the data tier. The session implements it against
// the slot leaders.
type Fetcher interface {
	// Fetch returns the whole current datum of key: a non-nil Datum whose
	// Version is the data node's version of the key (0 and no publishers
	// when it has none). When the datum cannot be read whole right now (slot
	// migrating, leader down, epoch mismatch) Fetch returns an error; it
	// never returns a partial datum. The engine then keeps its last good
	// datum and retries with backoff.
	//
	// Fetch may block up to Config.FetchTimeout (ctx carries that deadline
	// and the engine's shutdown). It is called from up to
	// Config.FetchWorkers goroutines at once, never twice at once for the
	// same key. The engine keeps the returned Datum and shares its
	// publishers, read-only, with every Push; Fetch must not modify it
	// after returning.
	Fetch(ctx context.Context, key string) (*registryv1.Datum, error)
}

// Conn is one client connection of the session.
type Conn interface {
	// ID identifies the connection; the engine keys its state by it, so
	// the same ID must always come with the same Conn. ID and Zone return
	// constants and are called with the engine's lock held.
	ID() string
	// Zone is the client's zone, used by ScopeZone.
	Zone() string
	// Send hands a push to the connection's writer. It must not block and
	// must not call back into the Engine: the engine calls it while
	// holding its lock, which also keeps the pushes to one subscriber in
	// version order. The writer owns its own bounded queue; when the
	// connection is gone or that queue is full, Send returns an error and
	// the engine treats the connection as disconnected (drops its state and
	// calls Close). The connection owns p after Send; p.Publishers is shared
	// with other pushes and must not be modified.
	Send(p *Push) error
	// Close disconnects the client. The engine calls it once, without
	// holding its lock, after it has dropped the connection's state because
	// the client stalled past Config.MaxInflightBytes or Send failed. It
	// may block briefly and may call back into the Engine (RemoveConn is
	// then a no-op).
	Close(reason string)
}

// Push is one push of a datum to one or more subscribers on a connection:
// those of one list (key, version and scope) that a fan-out reached
// together. Each subscriber acks it on its own, with (its ID, Version),
// through Engine.Ack.
type Push struct {
	// SubscriberIDs are the subscribers' register IDs on the connection;
	// at least one. The connection owns the slice after Send.
	SubscriberIDs []string
	// Key is the dataInfoID.
	Key string
	// Version is the datum version; pushes to one subscriber never go
	// backwards in version (a retry repeats the same version).
	Version uint64
	// Publishers is the whole list for the subscriber's scope, possibly
	// empty (nil). It is shared by every push of this version and scope:
	// read-only.
	Publishers []*registryv1.Publisher
	// InstanceStates are the operators' marks on the key's instances at
	// Version (shared, read-only), sent with the list.
	InstanceStates []*registryv1.InstanceState
	// Size is the approximate encoded size of the list in bytes, counted
	// once per Push against the connection's in-flight cap until acked.
	Size int
	// Shared is one per list (version and scope), like Publishers: a Conn
	// may keep there what it derives from the list (its wire form), so it
	// is built once for every subscriber the list goes to.
	Shared *Shared
}

// Shared holds one value derived from a push's publisher list, built once
// by the first Conn that asks. Safe for concurrent use.
type Shared struct {
	once sync.Once
	v    any
}

// Get returns the value, calling build the first time.
func (s *Shared) Get(build func() any) any {
	if s == nil {
		return build()
	}
	s.once.Do(func() { s.v = build() })
	return s.v
}
