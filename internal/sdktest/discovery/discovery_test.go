package discovery_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/sdktest"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/discovery"
)

const wait = testcluster.DefaultWait

// nextUntil reads Sets until want holds, failing on a version going back.
func nextUntil(t *testing.T, w *discovery.Watcher, want func(discovery.Set) bool) discovery.Set {
	t.Helper()
	ctx := sdktest.Ctx(t)
	var last uint64
	for {
		set, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if !set.Cached && set.Version < last {
			t.Fatalf("version went back from %d to %d", last, set.Version)
		}
		last = set.Version
		if want(set) {
			return set
		}
	}
}

func holds(want ...discovery.Instance) func(discovery.Set) bool {
	return func(s discovery.Set) bool {
		return len(s.Instances) == len(want) && (len(want) == 0 || reflect.DeepEqual(s.Instances, want))
	}
}

func TestDiscovery_RegisterWatchUpdateDeregister(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 2})
	c.WaitDataSettled(t)
	ctx := sdktest.Ctx(t)
	s0, s1 := c.Session(0).Server().GRPCAddr(), c.Session(1).Server().GRPCAddr()
	// Two servers on two sessions in two zones, and a caller on either.
	one := discovery.New(sdktest.New(t, c, client.WithSessions(s0), client.WithZone("az1")))
	two := discovery.New(sdktest.New(t, c, client.WithSessions(s1), client.WithZone("az2")))
	caller := discovery.New(sdktest.New(t, c, client.WithSessions(s0, s1)))

	w, err := caller.Watch(ctx, "com.example.Echo", client.WithGroup("RPC"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	first, err := w.Next(ctx)
	if err != nil || len(first.Instances) != 0 || first.Cached || first.Skipped != 0 {
		t.Fatalf("first set %+v, %v; want live and empty", first, err)
	}

	r1, err := one.Register(ctx, "com.example.Echo", discovery.Instance{Addr: "10.0.0.2:8080", Weight: 10,
		Metadata: map[string]string{"version": "1.4.2"}}, client.WithGroup("RPC"))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := two.Register(ctx, "com.example.Echo", discovery.Instance{Addr: "10.0.0.1:8080", Zone: "rack-7"},
		client.WithGroup("RPC"))
	if err != nil {
		t.Fatal(err)
	}
	// Sorted by address; an empty zone is the registering client's; weight
	// 0 is the default.
	inst1 := discovery.Instance{Addr: "10.0.0.2:8080", Weight: 10, Zone: "az1", Metadata: map[string]string{"version": "1.4.2"}}
	inst2 := discovery.Instance{Addr: "10.0.0.1:8080", Weight: discovery.DefaultWeight, Zone: "rack-7"}
	both := nextUntil(t, w, holds(inst2, inst1))
	if both.Version <= first.Version {
		t.Fatalf("version %d after %d", both.Version, first.Version)
	}
	if got := r2.Instance(); got.Weight != discovery.DefaultWeight || got.Zone != "rack-7" {
		t.Fatalf("Registration.Instance() = %+v", got)
	}
	// Another group is another key.
	if _, err := two.Register(ctx, "com.example.Echo", discovery.Instance{Addr: "10.9.9.9:1"}); err != nil {
		t.Fatal(err)
	}

	if err := r1.Update(ctx, discovery.Instance{Addr: "10.0.0.2:8080", Weight: 20}); err != nil {
		t.Fatal(err)
	}
	inst1 = discovery.Instance{Addr: "10.0.0.2:8080", Weight: 20, Zone: "az1"}
	nextUntil(t, w, holds(inst2, inst1))
	if got := r1.Instance(); got.Weight != 20 || got.Metadata != nil {
		t.Fatalf("after Update, Registration.Instance() = %+v", got)
	}

	if err := r2.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	nextUntil(t, w, holds(inst1))
	if err := r2.Deregister(ctx); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("second Deregister: %v, want ErrClosed", err)
	}
	if err := r2.Update(ctx, inst2); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Update after Deregister: %v, want ErrClosed", err)
	}
	if err := r1.Update(ctx, discovery.Instance{Addr: "nohost"}); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("Update with a bad address: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Next(ctx); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
}

// syncBuffer is a log sink safe for the watcher's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestWatch_SkipsRecordsThatAreNotInstances(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 1})
	c.WaitDataSettled(t)
	ctx := sdktest.Ctx(t)
	addr := c.Session(0).Server().GRPCAddr()
	raw := sdktest.New(t, c, client.WithSessions(addr))
	var logs syncBuffer
	d := discovery.New(sdktest.New(t, c, client.WithSessions(addr), client.WithZone("az1")),
		discovery.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))

	// Other clients' raw values under the service's data ID, one of them a
	// publication of several values.
	if _, err := raw.Publish(ctx, "echo", []byte("10.0.0.1:8080")); err != nil {
		t.Fatal(err)
	}
	p, err := raw.Publish(ctx, "echo", []byte(`{"addr":"10.0.0.2:80"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Update(ctx, []byte(`{"addr":"10.0.0.2:80"}`), []byte(`{"v":1,"addr":"nohost"}`),
		[]byte(`{"v":2,"addr":"10.0.0.3:80","weight":4,"priority":1}`)); err != nil {
		t.Fatal(err)
	}
	w, err := d.Watch(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// A later format version's instance is read; the three others skipped.
	later := discovery.Instance{Addr: "10.0.0.3:80", Weight: 4}
	set := nextUntil(t, w, holds(later))
	if set.Skipped != 3 {
		t.Fatalf("Skipped = %d, want 3 (set %+v)", set.Skipped, set)
	}
	logged := strings.Count(logs.String(), "not service instances")
	if logged == 0 || !strings.Contains(logs.String(), p.RegisterID()) {
		t.Fatalf("skipped records not logged with their publisher:\n%s", logs.String())
	}
	if _, err := d.Register(ctx, "echo", discovery.Instance{Addr: "10.0.0.4:80"}); err != nil {
		t.Fatal(err)
	}
	set = nextUntil(t, w, holds(later, discovery.Instance{Addr: "10.0.0.4:80", Weight: 1, Zone: "az1"}))
	if set.Skipped != 3 {
		t.Fatalf("Skipped = %d, want 3 (set %+v)", set.Skipped, set)
	}
	// The same bad records are logged once, not again on every change.
	if n := strings.Count(logs.String(), "not service instances"); n != logged {
		t.Fatalf("%d log lines about skipped records after an unrelated change, want %d:\n%s", n, logged, logs.String())
	}
}

func TestWatch_Updates_MergesAndClosesWithTheClient(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 1})
	c.WaitDataSettled(t)
	ctx := sdktest.Ctx(t)
	addr := c.Session(0).Server().GRPCAddr()
	pub := discovery.New(sdktest.New(t, c, client.WithSessions(addr)))
	cl := sdktest.New(t, c, client.WithSessions(addr))
	w, err := discovery.New(cl).Watch(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	updates := w.Updates()
	if w.Updates() != updates {
		t.Fatal("Updates returned a second channel")
	}
	// Ten registrations while nobody reads: the watcher holds the newest
	// list, never blocking on the reader, and the reader catches up.
	for i := range 10 {
		if _, err := pub.Register(ctx, "svc", discovery.Instance{Addr: fmt.Sprintf("10.0.0.%d:80", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for last := uint64(0); ; {
		var set discovery.Set
		select {
		case set = <-updates:
		case <-ctx.Done():
			t.Fatal("the full list never came on Updates")
		}
		if set.Version < last {
			t.Fatalf("version went back from %d to %d", last, set.Version)
		}
		last = set.Version
		if len(set.Instances) == 10 {
			break
		}
	}
	// Closing the client (not the watcher) ends the channel.
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	done := time.After(wait)
	for {
		select {
		case _, ok := <-updates:
			if !ok {
				if err := w.Close(); !errors.Is(err, client.ErrClosed) {
					t.Fatalf("Close after the client's Close: %v", err)
				}
				return
			}
		case <-done:
			t.Fatal("Updates still open after the client closed")
		}
	}
}
