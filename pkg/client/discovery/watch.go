package discovery

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/strata-registry/strata/pkg/client"
)

// Set is the whole current list of a service's instances.
type Set struct {
	// Version increases with every change of the service's records (as
	// client.Snapshot.Version); a Watcher never reports a lower one.
	Version uint64
	// Instances are every registered instance, possibly none, sorted by
	// Addr, then Zone, then registration (so equal lists compare equal).
	// Two registrations of one address are both listed.
	Instances []Instance
	// Cached is true for a list read from the client's disk cache
	// (client.WithCacheDir) before any session answered: possibly out of
	// date.
	Cached bool
	// Skipped counts records under the service's key that are not
	// instances (raw values other clients published, or instances that
	// fail validation); they are left out of Instances.
	Skipped int
}

// Watcher follows the instances of one service: Next returns the current
// Set, then each change. It keeps following across reconnects and session
// failures (a lost connection never shows as an empty list) until Close.
// Safe for concurrent use; changes that come faster than they are read
// merge into the newest Set.
type Watcher struct {
	service string
	sub     *client.Subscription
	logger  *slog.Logger

	updatesOnce sync.Once
	updates     chan Set
	wg          sync.WaitGroup // the Updates goroutine

	mu sync.Mutex
	// skippedLogged lists the publishers of the skipped records last
	// logged, so the same bad records are logged once, not on every change.
	skippedLogged string
}

// Watch starts following service's instances. opts are those of
// client.Subscribe (client.WithGroup and client.WithInstanceID must match
// the registrations'; client.WithScope narrows to the client's zone).
// While the client is connected it returns once a session has accepted the
// subscription; otherwise at once, and the first Set comes when a session
// answers (or from the disk cache).
//
// Errors: those of client.Subscribe.
func (d *Discovery) Watch(ctx context.Context, service string, opts ...client.RegisterOption) (*Watcher, error) {
	s, err := d.c.Subscribe(ctx, service, opts...)
	if err != nil {
		return nil, err
	}
	return &Watcher{service: service, sub: s, logger: d.logger}, nil
}

// Service returns the watched service's name.
func (w *Watcher) Service() string { return w.service }

// Next returns the current Set on its first call (once there is one:
// possibly empty, possibly Cached), then blocks until the instances change
// and returns the new Set. It returns client.ErrClosed once the Watcher or
// the client is closed, and ctx's error when ctx ends first.
func (w *Watcher) Next(ctx context.Context) (Set, error) {
	snap, err := w.sub.Next(ctx)
	if err != nil {
		return Set{}, err
	}
	return w.set(snap), nil
}

// Updates returns a channel of Sets (the first is the current one), closed
// by Close or the client's Close. A reader that falls behind receives the
// newest Set when it catches up, not every one in between. It shares the
// Watcher's position with Next: use one or the other.
func (w *Watcher) Updates() <-chan Set {
	w.updatesOnce.Do(func() {
		w.updates = make(chan Set)
		in := w.sub.Updates()
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			defer close(w.updates)
			// Hold at most one unsent Set, replaced by newer ones, while
			// still watching in: it closes when the subscription ends,
			// even if nobody reads.
			var pending *Set
			for {
				var out chan Set
				var next Set
				if pending != nil {
					out, next = w.updates, *pending
				}
				select {
				case snap, ok := <-in:
					if !ok {
						return
					}
					s := w.set(snap)
					pending = &s
				case out <- next:
					pending = nil
				}
			}
		}()
	})
	return w.updates
}

// Close stops the Watcher: Next returns client.ErrClosed and the Updates
// channel closes. Closing twice returns client.ErrClosed.
func (w *Watcher) Close() error {
	err := w.sub.Close()
	w.wg.Wait()
	return err
}

// set decodes a snapshot's values into a Set, logging skipped records
// when they differ from the last ones logged.
func (w *Watcher) set(snap client.Snapshot) Set {
	type entry struct {
		inst Instance
		id   string
		i    int
	}
	entries := make([]entry, 0, len(snap.Values))
	var bad []string
	for i, v := range snap.Values {
		inst, err := decode(v.Data, v.Zone)
		if err != nil {
			bad = append(bad, v.PublisherID)
			continue
		}
		entries = append(entries, entry{inst, v.PublisherID, i})
	}
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(strings.Compare(a.inst.Addr, b.inst.Addr), strings.Compare(a.inst.Zone, b.inst.Zone),
			strings.Compare(a.id, b.id), cmp.Compare(a.i, b.i))
	})
	set := Set{Version: snap.Version, Cached: snap.Cached, Skipped: len(bad), Instances: make([]Instance, len(entries))}
	marks := make(map[string]State, len(snap.InstanceStates))
	for _, m := range snap.InstanceStates {
		marks[m.Addr] = State(m.State)
	}
	for i, e := range entries {
		if m, ok := marks[e.inst.Addr]; ok {
			e.inst.State = e.inst.State.under(m)
		}
		set.Instances[i] = e.inst
	}
	slices.Sort(bad)
	key := strings.Join(bad, ",")
	w.mu.Lock()
	changed := key != w.skippedLogged
	w.skippedLogged = key
	w.mu.Unlock()
	if changed && len(bad) > 0 {
		w.logger.Warn("strata discovery: skipping records that are not service instances",
			"service", w.service, "count", len(bad), "publishers", bad)
	}
	return set
}
