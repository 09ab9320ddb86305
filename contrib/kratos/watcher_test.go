package strata_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-kratos/kratos/v2/registry"

	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/discovery"

	strata "github.com/strata-registry/strata/contrib/kratos"
)

// offline returns a Registry over a client whose only session never
// answers (nothing listens on port 1), so watches have no list and
// registrations wait: what the contract says of Next, Stop and errors
// is checked without a cluster.
func offline(t *testing.T) (*strata.Registry, *client.Client) {
	t.Helper()
	c, err := client.New(t.Context(), client.WithSessions("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return strata.New(discovery.New(c)), c
}

// next runs w.Next in a goroutine; the channel receives its error.
func next(w registry.Watcher) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := w.Next()
		ch <- err
	}()
	return ch
}

// waitErr returns the error ch receives within a few seconds.
func waitErr(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: Next still blocked after 5s", what)
		return nil
	}
}

func TestWatcher_StopUnblocksNext_ThenNextReturnsCanceled_StopTwiceIsNil(t *testing.T) {
	r, _ := offline(t)
	w, err := r.Watch(t.Context(), "com.example.Echo")
	if err != nil {
		t.Fatal(err)
	}
	ch := next(w)
	select {
	case err := <-ch:
		t.Fatalf("Next returned (%v) with no list to return", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := w.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for _, err := range []error{waitErr(t, ch, "after Stop"), waitErr(t, next(w), "called after Stop")} {
		if !errors.Is(err, strata.ErrWatcherStopped) || !errors.Is(err, context.Canceled) {
			t.Errorf("Next after Stop: %v, want ErrWatcherStopped matching context.Canceled (Kratos' resolver ends its loop on it)", err)
		}
	}
	if err := w.Stop(); err != nil {
		t.Errorf("second Stop: %v, want nil", err)
	}
}

func TestWatcher_WatchContextEnds_NextReturnsItsError_MatchingCanceled(t *testing.T) {
	r, _ := offline(t)
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"canceled", func() (context.Context, context.CancelFunc) { return context.WithCancel(t.Context()) }, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(t.Context(), 100*time.Millisecond)
		},
			context.DeadlineExceeded},
	} {
		ctx, cancel := tc.ctx()
		w, err := r.Watch(ctx, "com.example.Echo")
		if err != nil {
			t.Fatal(err)
		}
		ch := next(w)
		if tc.want == context.Canceled {
			cancel()
		}
		err = waitErr(t, ch, tc.name)
		if !errors.Is(err, tc.want) || !errors.Is(err, context.Canceled) {
			t.Errorf("%s: Next: %v, want %v, matching context.Canceled too", tc.name, err, tc.want)
		}
		if err := w.Stop(); err != nil {
			t.Errorf("%s: Stop after the context ended: %v", tc.name, err)
		}
		cancel()
	}
}

func TestWatcher_ClientClosed_NextEndsForGood(t *testing.T) {
	r, c := offline(t)
	w, err := r.Watch(t.Context(), "com.example.Echo")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ch := next(w)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	err = waitErr(t, ch, "after the client's Close")
	if !errors.Is(err, client.ErrClosed) || !errors.Is(err, context.Canceled) {
		t.Errorf("Next: %v, want client.ErrClosed matching context.Canceled too", err)
	}
}

func TestRegistry_RefusesBadInstancesAtOnce(t *testing.T) {
	r, _ := offline(t)
	// No session answers, so anything that reached the network would
	// wait out this context instead of failing at once.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, si := range []*registry.ServiceInstance{
		nil,
		{Name: "s", Endpoints: []string{"grpc://127.0.0.1:9000"}},
		{ID: "a", Name: "s", Endpoints: []string{"grpc://127.0.0.1:9000", "grpc://127.0.0.1"}},
		{ID: "a", Name: "s", Metadata: map[string]string{strata.MetadataVersion: "v9"}, Endpoints: []string{"grpc://127.0.0.1:9000"}},
	} {
		if err := r.Register(ctx, si); !errors.Is(err, client.ErrInvalidArgument) {
			t.Errorf("Register(%+v): %v, want client.ErrInvalidArgument", si, err)
		}
	}
	if err := r.Deregister(ctx, &registry.ServiceInstance{Name: "s"}); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("Deregister without an ID: %v, want client.ErrInvalidArgument", err)
	}
	if err := r.Deregister(ctx, &registry.ServiceInstance{ID: "never", Name: "s"}); err != nil {
		t.Errorf("Deregister of an ID never registered: %v, want nil", err)
	}
}

func TestRegistry_WaitsForTheClusterBoundedByContext(t *testing.T) {
	r, _ := offline(t)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := r.GetService(ctx, "com.example.Echo"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("GetService with no session: %v, want context.DeadlineExceeded", err)
	}
	si := &registry.ServiceInstance{ID: "a", Name: "com.example.Echo", Endpoints: []string{"grpc://127.0.0.1:9000"}}
	if err := r.Register(ctx, si); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Register with no session: %v, want context.DeadlineExceeded", err)
	}
}
