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
type notifier struct {
	maxKeys int
	clock   clock.Clock

	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

type subscriber struct {
	session string
	maxKeys int
	clock   clock.Clock

	mu       sync.Mutex
	pending  map[string]uint64
	overflow bool
	// since is when the oldest pending change came in (unix nanos), sent
	// with the batch so the session can measure push latency from it.
	since int64
	wake  chan struct{} // capacity 1: "something is pending"
}

func newNotifier(maxKeys int, clk clock.Clock) *notifier {
	return &notifier{maxKeys: maxKeys, clock: clk, subs: map[*subscriber]struct{}{}}
}

func (n *notifier) subscribe(session string) *subscriber {
	sub := &subscriber{session: session, maxKeys: n.maxKeys, clock: n.clock, pending: map[string]uint64{}, wake: make(chan struct{}, 1)}
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

// publish queues changes for every subscriber.
func (n *notifier) publish(changes []*registryv1.DatumVersion) {
	if len(changes) == 0 {
		return
	}
	n.mu.Lock()
	subs := make([]*subscriber, 0, len(n.subs))
	for s := range n.subs {
		subs = append(subs, s)
	}
	n.mu.Unlock()
	for _, s := range subs {
		s.add(changes)
	}
}

func (s *subscriber) add(changes []*registryv1.DatumVersion) {
	s.mu.Lock()
	if s.since == 0 {
		s.since = s.clock.Now().UnixNano()
	}
	if !s.overflow {
		for _, c := range changes {
			if c.GetVersion() > s.pending[c.GetDataInfoId()] {
				s.pending[c.GetDataInfoId()] = c.GetVersion()
			}
		}
		if len(s.pending) > s.maxKeys {
			s.overflow = true
			clear(s.pending)
		}
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// next blocks until something is pending (or ctx ends) and takes it all.
func (s *subscriber) next(ctx context.Context) (*registryv1.ChangeBatch, bool) {
	for {
		s.mu.Lock()
		if len(s.pending) > 0 || s.overflow {
			b := &registryv1.ChangeBatch{Overflow: s.overflow, FirstChangeUnixNano: s.since, Changes: make([]*registryv1.DatumVersion, 0, len(s.pending))}
			for k, v := range s.pending {
				b.Changes = append(b.Changes, &registryv1.DatumVersion{DataInfoId: k, Version: v})
			}
			s.pending = map[string]uint64{}
			s.overflow = false
			s.since = 0
			s.mu.Unlock()
			return b, true
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, false
		case <-s.wake:
		}
	}
}
