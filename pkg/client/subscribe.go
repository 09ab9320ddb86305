package client

import (
	"context"
	"errors"
	"sync"

	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Value is one published value as a subscriber sees it.
type Value struct {
	// Data is the published bytes.
	Data []byte `json:"data"`
	// Zone is the publishing client's zone.
	Zone string `json:"zone,omitempty"`
	// PublisherID is the publication's register ID: the values of one
	// publication share it.
	PublisherID string `json:"publisher_id"`
}

// Snapshot is the whole current list of a subscribed key. Treat it as
// read-only: its Values (and their Data) may be shared with other
// subscriptions of the same key and with later calls of Next.
type Snapshot struct {
	// Version increases with every change of the key; a subscription
	// never reports a lower one than it already reported (except that live
	// data replaces a cached snapshot whatever its version).
	Version uint64 `json:"version"`
	// Values are every publisher's values, possibly none.
	Values []Value `json:"values"`
	// InstanceStates are operators' marks on the key's instances
	// (registryctl drain), sorted by address; package discovery applies
	// them to the instances it decodes from Values.
	InstanceStates []InstanceState `json:"instance_states,omitempty"`
	// Cached is true for a snapshot read from WithCacheDir before any
	// session answered: possibly out of date.
	Cached bool `json:"cached,omitempty"`
}

// InstanceState is an operator's mark on the instance at Addr of a key:
// "draining" (send it no new traffic) or "disabled" (send it nothing). It
// overrides what the instance's owner published, without changing it.
type InstanceState struct {
	Addr  string `json:"addr"`
	State string `json:"state"`
}

// Subscription follows one key: Next returns its current snapshot, then
// each change. It keeps following across reconnects and session failures
// (serving the last snapshot meanwhile) until Close. Safe for concurrent
// use; changes that come faster than Next is called merge into the newest
// snapshot (nothing queues without bound).
type Subscription struct {
	c          *Client
	registerID string
	dataID     string
	instanceID string
	group      string
	scope      registryv1.Scope
	key        string

	mu       sync.Mutex
	latest   *Snapshot
	reported uint64 // version last returned by Next
	returned bool   // Next has returned a snapshot
	// reportedCached: the last snapshot Next returned was the cached one,
	// so the first live one is news whatever its version.
	reportedCached bool
	wake           chan struct{}
	closed         bool
	updates        chan Snapshot
	closeOnce      sync.Once
	done           chan struct{}
}

// Subscribe starts following dataID. While the client is connected it
// returns once the session has registered the subscription (so bad input
// and limits are reported here); while it is not, it returns at once and
// the subscription registers when a session is reached, serving the
// WithCacheDir snapshot meanwhile, if there is one.
func (c *Client) Subscribe(ctx context.Context, dataID string, opts ...RegisterOption) (*Subscription, error) {
	var o regOptions
	for _, opt := range opts {
		opt(&o)
	}
	scope := registryv1.Scope_SCOPE_GLOBAL
	switch o.scope {
	case ScopeGlobal:
	case ScopeZone:
		scope = registryv1.Scope_SCOPE_ZONE
	case ScopeDatacenter:
		scope = registryv1.Scope_SCOPE_DATACENTER
	default:
		return nil, &localError{ErrInvalidArgument, errors.New("unknown scope")}
	}
	key := record.DataInfoID(dataID, o.instanceID, o.group)
	if _, _, _, err := record.ParseDataInfoID(key); err != nil {
		return nil, recordError(err)
	}
	s := &Subscription{c: c, registerID: newID(), dataID: dataID, instanceID: o.instanceID, group: o.group,
		scope: scope, key: key, wake: make(chan struct{}), done: make(chan struct{})}
	if snap, ok := c.readCache(key); ok {
		s.latest = snap
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.subs[s.registerID] = s
	c.mu.Unlock()
	drop := func() {
		c.mu.Lock()
		delete(c.subs, s.registerID)
		c.mu.Unlock()
		s.finish()
	}
	for {
		st := c.connected()
		if st == nil {
			return s, nil // registered on connect (replay)
		}
		ch, err := st.start(s.register(), nil)
		if err == nil {
			var a *registryv1.Ack
			if a, err = wait(ctx, ch); err == nil {
				if err := fromCode(codeOf(a), a.GetMessage()); err != nil {
					drop()
					return nil, err
				}
				return s, nil
			}
		}
		if !errors.Is(err, errStreamEnded) {
			drop()
			// The registration may have reached the session: take it back.
			_ = st.send(s.unregister())
			return nil, err
		}
		<-st.done // connected() no longer hands it out
	}
}

// Key returns the subscribed key (dataID#@#instanceID#@#group).
func (s *Subscription) Key() string { return s.key }

// Next returns the current snapshot on its first call (once there is one:
// possibly empty, possibly Cached), then blocks until a newer version
// arrives and returns it. It returns ErrClosed once the subscription or
// the client is closed, ErrUnauthenticated while the sessions refuse the
// client, and ctx's error when ctx ends first.
func (s *Subscription) Next(ctx context.Context) (Snapshot, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return Snapshot{}, ErrClosed
		}
		if l := s.latest; l != nil && (!s.returned || l.Version > s.reported || (s.reportedCached && !l.Cached)) {
			s.returned, s.reported, s.reportedCached = true, l.Version, l.Cached
			snap := *l
			s.mu.Unlock()
			return snap, nil
		}
		wake := s.wake
		s.mu.Unlock()
		// A client the sessions refuse will never get data: say so rather
		// than wait (a cached snapshot, if any, was returned above).
		s.c.mu.Lock()
		refused, changed := s.c.refused, s.c.changed
		s.c.mu.Unlock()
		if refused != nil {
			return Snapshot{}, refused
		}
		select {
		case <-wake:
		case <-changed:
		case <-ctx.Done():
			return Snapshot{}, ctx.Err()
		}
	}
}

// Updates returns a channel of snapshots (the first is the current one),
// fed by Next and closed by Close. A reader that falls behind receives the
// newest snapshot when it catches up, not every one in between.
func (s *Subscription) Updates() <-chan Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.updates != nil {
		return s.updates
	}
	s.updates = make(chan Snapshot)
	ch := s.updates
	if s.closed {
		close(ch)
		return ch
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.c.wg.Add(1)
	go func() {
		defer s.c.wg.Done()
		defer close(ch)
		defer cancel()
		go func() {
			select {
			case <-s.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		for {
			snap, err := s.Next(ctx)
			if err != nil {
				return
			}
			select {
			case ch <- snap:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// Close stops the subscription: the session stops pushing it, Next returns
// ErrClosed and Updates' channel closes. Closing twice returns ErrClosed.
func (s *Subscription) Close() error {
	s.c.mu.Lock()
	_, live := s.c.subs[s.registerID]
	delete(s.c.subs, s.registerID)
	s.c.mu.Unlock()
	if !s.finish() || !live {
		return ErrClosed
	}
	if st := s.c.connected(); st != nil {
		// No ack to wait for: the registration is gone from this client,
		// and a session that missed this drops it with the connection.
		_ = st.send(s.unregister())
	}
	return nil
}

func (s *Subscription) unregister() *registryv1.ClientFrame {
	return &registryv1.ClientFrame{Body: &registryv1.ClientFrame_UnregisterSubscriber{
		UnregisterSubscriber: &registryv1.UnregisterSubscriber{RegisterId: s.registerID}}}
}

// finish marks the subscription closed and wakes its readers; it reports
// whether this call closed it.
func (s *Subscription) finish() bool {
	first := false
	s.closeOnce.Do(func() {
		first = true
		s.mu.Lock()
		s.closed = true
		close(s.wake)
		s.mu.Unlock()
		close(s.done)
	})
	return first
}

// register builds the subscription's registration, asking only for data
// newer than what it already has.
func (s *Subscription) register() *registryv1.ClientFrame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.registerLocked()
}

func (s *Subscription) registerLocked() *registryv1.ClientFrame {
	var have uint64
	if s.latest != nil && !s.latest.Cached {
		have = s.latest.Version
	}
	return &registryv1.ClientFrame{Body: &registryv1.ClientFrame_RegisterSubscriber{RegisterSubscriber: &registryv1.RegisterSubscriber{
		RegisterId: s.registerID, DataId: s.dataID, InstanceId: s.instanceID, Group: s.group,
		Scope: s.scope, PushedVersion: have,
	}}}
}

// replay implements replayer. Under s.mu, so it cannot pass Close's
// unregister on the stream.
func (s *Subscription) replay(st *stream) <-chan *registryv1.Ack {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	ch, _ := st.start(s.registerLocked(), nil)
	return ch
}

// offer takes a push: a newer version (or any live data over a cached
// snapshot) becomes the latest and wakes Next; older ones are ignored.
// snap's slices are shared, read-only, with the other subscriptions the
// push was for.
func (s *Subscription) offer(snap *Snapshot) {
	s.mu.Lock()
	if s.closed || (s.latest != nil && !s.latest.Cached && snap.Version <= s.latest.Version) {
		s.mu.Unlock()
		return
	}
	s.latest = snap
	close(s.wake)
	s.wake = make(chan struct{})
	s.mu.Unlock()
	s.c.writeCache(s.key, snap)
}
