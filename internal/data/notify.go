package data

import (
	"context"
	"sync"

	"github.com/strata-registry/strata/internal/clock"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// notifier fans datum version changes out to every session's change
// stream. Nothing waits: a change goes out at once when the stream is idle,
// and changes that arrive while a send is in flight merge per key (newest
// version wins) into the next batch. A session whose pending keys pass the
// cap gets one overflow batch instead and scans versions itself, so memory
// per session is bounded.
//
// Pushes first: each stream has two lanes. A key the session has read for
// its subscribers (GetDatums with its session id: its interest) changes in
// the urgent lane, whose batch goes out before any other and carries the
// small datums inline, so the session pushes without a fetch. Every other
// change (keys no subscriber of that session watches, the bulk of a
// registration storm) waits in the bulk lane and goes out in batches of at
// most bulkBatch keys, so an urgent change waits behind at most one
// bounded bulk send. Interest only orders and inlines: every change still
// reaches every session, so a session whose interest this node does not
// know yet (it read from the slot's previous leader) loses nothing; its
// next fetch from here records the key.
type notifier struct {
	maxKeys int
	clock   clock.Clock

	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

// bulkBatch bounds the keys of one bulk-lane batch.
const bulkBatch = 1024

// lane is one queue of a stream: pending versions per key and when the
// oldest came in (unix nanos, sent with the batch so the session can
// measure push latency from it).
type lane struct {
	pending map[string]uint64
	since   int64
}

func (l *lane) add(key string, version uint64, now int64) {
	if l.since == 0 {
		l.since = now
	}
	if version > l.pending[key] {
		l.pending[key] = version
	}
}

// take moves up to max pending keys (all, for max <= 0) into a batch.
func (l *lane) take(max int) *registryv1.ChangeBatch {
	n := len(l.pending)
	if max > 0 && n > max {
		n = max
	}
	b := &registryv1.ChangeBatch{FirstChangeUnixNano: l.since, Changes: make([]*registryv1.DatumVersion, 0, n)}
	for k, v := range l.pending {
		if len(b.Changes) == n {
			break
		}
		b.Changes = append(b.Changes, &registryv1.DatumVersion{DataInfoId: k, Version: v})
		delete(l.pending, k)
	}
	if len(l.pending) == 0 {
		l.since = 0
	}
	return b
}

type subscriber struct {
	session string
	maxKeys int
	clock   clock.Clock

	mu sync.Mutex
	// urgent holds changes of interest keys, bulk every other change;
	// together at most maxKeys keys.
	urgent, bulk lane
	overflow     bool
	overflowAt   int64
	// interest is the keys the session reads for its subscribers (at most
	// maxKeys; a full set starts again).
	interest map[string]struct{}
	wake     chan struct{} // capacity 1: "something is pending"
}

func newNotifier(maxKeys int, clk clock.Clock) *notifier {
	return &notifier{maxKeys: maxKeys, clock: clk, subs: map[*subscriber]struct{}{}}
}

func (n *notifier) subscribe(session string) *subscriber {
	sub := &subscriber{session: session, maxKeys: n.maxKeys, clock: n.clock,
		urgent: lane{pending: map[string]uint64{}}, bulk: lane{pending: map[string]uint64{}},
		interest: map[string]struct{}{}, wake: make(chan struct{}, 1)}
	n.mu.Lock()
	n.subs[sub] = struct{}{}
	n.mu.Unlock()
	return sub
}

func (n *notifier) unsubscribe(sub *subscriber) {
	n.mu.Lock()
	delete(n.subs, sub)
	n.mu.Unlock()
}

// closeAll drops every subscriber (their streams end with the server).
func (n *notifier) closeAll() {
	n.mu.Lock()
	clear(n.subs)
	n.mu.Unlock()
}

// count returns the number of open change streams.
func (n *notifier) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.subs)
}

func (n *notifier) snapshot() []*subscriber {
	n.mu.Lock()
	defer n.mu.Unlock()
	subs := make([]*subscriber, 0, len(n.subs))
	for s := range n.subs {
		subs = append(subs, s)
	}
	return subs
}

// publish queues changes for every subscriber.
func (n *notifier) publish(changes []*registryv1.DatumVersion) {
	if len(changes) == 0 {
		return
	}
	for _, s := range n.snapshot() {
		s.add(changes)
	}
}

// interested records keys as session's interest on its open streams (a
// session reading before its stream is open records nothing: its keys'
// next changes come in the bulk lane, and its next read records them).
func (n *notifier) interested(session string, keys []string) {
	for _, s := range n.snapshot() {
		if s.session != session {
			continue
		}
		s.mu.Lock()
		for _, k := range keys {
			if len(s.interest) >= s.maxKeys {
				// Full (a long-lived session that read many keys over
				// time): start again. A key it still watches comes back
				// with its next read, which its next bulk notice brings.
				clear(s.interest)
			}
			s.interest[k] = struct{}{}
		}
		s.mu.Unlock()
	}
}

func (s *subscriber) add(changes []*registryv1.DatumVersion) {
	now := s.clock.Now().UnixNano()
	s.mu.Lock()
	if s.overflow {
		s.mu.Unlock()
		return
	}
	for _, c := range changes {
		k := c.GetDataInfoId()
		if _, ok := s.interest[k]; ok {
			s.urgent.add(k, c.GetVersion(), now)
			delete(s.bulk.pending, k) // the urgent lane's version is at least as new
		} else {
			s.bulk.add(k, c.GetVersion(), now)
		}
	}
	if len(s.urgent.pending)+len(s.bulk.pending) > s.maxKeys {
		s.overflow = true
		s.overflowAt = min(nonZero(s.urgent.since), nonZero(s.bulk.since))
		s.urgent = lane{pending: map[string]uint64{}}
		s.bulk = lane{pending: map[string]uint64{}}
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// nonZero maps an unset stamp (0) above every set one, for min.
func nonZero(ns int64) int64 {
	if ns == 0 {
		return 1<<63 - 1
	}
	return ns
}

// next blocks until something is pending (or ctx ends) and takes the next
// batch: an overflow, else every urgent change, else up to bulkBatch bulk
// changes. urgent reports that the batch is of interest keys (the caller
// inlines their datums).
func (s *subscriber) next(ctx context.Context) (b *registryv1.ChangeBatch, urgent, ok bool) {
	for {
		s.mu.Lock()
		b, urgent = nil, false
		switch {
		case s.overflow:
			b = &registryv1.ChangeBatch{Overflow: true, FirstChangeUnixNano: s.overflowAt}
			s.overflow, s.overflowAt = false, 0
		case len(s.urgent.pending) > 0:
			b, urgent = s.urgent.take(0), true
		case len(s.bulk.pending) > 0:
			b = s.bulk.take(bulkBatch)
		}
		// A bulk lane longer than one batch (or a change that came in
		// meanwhile): the next call goes on without a wake-up.
		more := len(s.urgent.pending) > 0 || len(s.bulk.pending) > 0
		s.mu.Unlock()
		if b != nil {
			if more {
				select {
				case s.wake <- struct{}{}:
				default:
				}
			}
			return b, urgent, true
		}
		select {
		case <-ctx.Done():
			return nil, false, false
		case <-s.wake:
		}
	}
}
