package strata

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/go-kratos/kratos/v2/registry"

	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/discovery"
)

// ErrWatcherStopped is what Next returns after Stop. It matches
// context.Canceled too (errors.Is), which is how Kratos' gRPC resolver
// knows to end its watch loop rather than retry.
var ErrWatcherStopped = fmt.Errorf("strata kratos: watcher stopped: %w", context.Canceled)

// watcher is Registry.Watch's registry.Watcher.
type watcher struct {
	r    *Registry
	name string
	dw   *discovery.Watcher

	// ctx is Watch's context, canceled by Stop; ending it closes dw.
	ctx       context.Context
	cancel    context.CancelFunc
	stopAfter func() bool // unregisters the close on ctx's end
	stopped   atomic.Bool
	stopOnce  sync.Once

	// mu serialises Next and guards what it compares with.
	mu sync.Mutex
	// last is the list Next last returned (none before the first), kept
	// apart from the caller's copy.
	last    []*registry.ServiceInstance
	lastBad int
}

func newWatcher(ctx context.Context, r *Registry, name string, dw *discovery.Watcher) *watcher {
	w := &watcher{r: r, name: name, dw: dw}
	w.ctx, w.cancel = context.WithCancel(ctx)
	// A watcher whose context ends without Stop still lets go of its
	// subscription.
	w.stopAfter = context.AfterFunc(w.ctx, func() { _ = dw.Close() })
	return w
}

// Next returns the service's instances the first time once the list is
// not empty, then blocks until Kratos' view of them changes (a change
// that Kratos cannot see, such as a drained instance going disabled,
// does not wake it) and returns the new list, possibly empty. Each call
// returns a new list the caller may keep. Calls from several goroutines
// take turns.
//
// Errors: ErrWatcherStopped after Stop (also while Next is blocked);
// Watch's context's error once it ends; an error matching
// client.ErrClosed once the Strata client is closed;
// client.ErrUnauthenticated while the sessions refuse the client. Every
// error after which the watcher can never return a list again (the first
// three) matches context.Canceled: Kratos' resolvers end their watch
// loops on context.Canceled and retry every second on anything else.
func (w *watcher) Next() ([]*registry.ServiceInstance, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		if w.stopped.Load() {
			return nil, ErrWatcherStopped
		}
		set, err := w.dw.Next(w.ctx)
		if err != nil {
			return nil, w.nextError(err)
		}
		list, bad := serviceInstances(w.name, set)
		if bad != w.lastBad {
			w.lastBad = bad
			w.r.logBad(w.name, bad)
		}
		// last starts empty, so the first list counts only when it is not
		// empty, as Kratos' contract has it.
		if sameLists(list, w.last) {
			continue
		}
		w.last = list
		return cloneList(list), nil
	}
}

// nextError explains why the discovery watcher's Next failed.
func (w *watcher) nextError(err error) error {
	switch {
	case w.stopped.Load():
		return ErrWatcherStopped
	case w.ctx.Err() != nil:
		return ended(fmt.Errorf("strata kratos: watch %s: %w", w.name, w.ctx.Err()))
	case errors.Is(err, client.ErrClosed):
		return ended(fmt.Errorf("strata kratos: watch %s: %w", w.name, err))
	default:
		return fmt.Errorf("strata kratos: watch %s: %w", w.name, err)
	}
}

// ended makes err, after which a watcher can return nothing more, match
// context.Canceled.
func ended(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w; the watch has ended (%w)", err, context.Canceled)
}

// Stop ends the watcher: a Next blocked in another goroutine returns
// ErrWatcherStopped, and so does every later one. It returns once the
// subscription is closed. Stopping again does nothing and returns nil.
func (w *watcher) Stop() error {
	var err error
	w.stopOnce.Do(func() {
		w.stopped.Store(true)
		w.stopAfter()
		w.cancel()
		// ErrClosed: closed already, by the client's Close or when ctx
		// ended.
		if cerr := w.dw.Close(); cerr != nil && !errors.Is(cerr, client.ErrClosed) {
			err = fmt.Errorf("strata kratos: stop watching %s: %w", w.name, cerr)
		}
	})
	return err
}
