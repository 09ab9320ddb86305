package push

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-registry/strata/internal/clock"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// fakeFetcher serves datums from memory. A datum is read when Fetch starts
// (as a data node answers); with a gate set, Fetch then waits for a token.
type fakeFetcher struct {
	mu        sync.Mutex
	data      map[string]*registryv1.Datum
	errs      map[string]error
	gate      chan struct{}
	calls     map[string]int
	active    map[string]int
	total     int
	maxTotal  int
	maxPerKey int
	started   chan string
}

func newFakeFetcher() *fakeFetcher {
	return &fakeFetcher{data: map[string]*registryv1.Datum{}, errs: map[string]error{}, calls: map[string]int{},
		active: map[string]int{}, started: make(chan string, 1024)}
}

func (f *fakeFetcher) Fetch(ctx context.Context, key string) (*registryv1.Datum, error) {
	f.mu.Lock()
	f.calls[key]++
	f.active[key]++
	f.total++
	f.maxTotal = max(f.maxTotal, f.total)
	f.maxPerKey = max(f.maxPerKey, f.active[key])
	d, err, gate := f.data[key], f.errs[key], f.gate
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active[key]--
		f.total--
		f.mu.Unlock()
	}()
	select {
	case f.started <- key:
	default:
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	if d == nil {
		return &registryv1.Datum{DataInfoId: key}, nil
	}
	return d, nil
}

func (f *fakeFetcher) set(key string, version uint64, pubs ...*registryv1.Publisher) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data[key] = &registryv1.Datum{DataInfoId: key, Version: version, Publishers: pubs}
}

func (f *fakeFetcher) setErr(key string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.errs, key)
	} else {
		f.errs[key] = err
	}
}

func (f *fakeFetcher) setGate(g chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate = g
}

func (f *fakeFetcher) callsOf(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[key]
}

func pub(id, zone string, value string) *registryv1.Publisher {
	return &registryv1.Publisher{RegisterId: id, Zone: zone, ClientVersion: 1, Values: [][]byte{[]byte(value)}}
}

// fakeConn records pushes; it never acks by itself.
type fakeConn struct {
	id, zone string

	mu      sync.Mutex
	pushes  []*Push
	sendErr error
	closed  []string
	signal  chan struct{}
}

func newFakeConn(id, zone string) *fakeConn {
	return &fakeConn{id: id, zone: zone, signal: make(chan struct{}, 1)}
}

func (c *fakeConn) ID() string   { return c.id }
func (c *fakeConn) Zone() string { return c.zone }

func (c *fakeConn) Send(p *Push) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sendErr != nil {
		return c.sendErr
	}
	c.pushes = append(c.pushes, p)
	select {
	case c.signal <- struct{}{}:
	default:
	}
	return nil
}

func (c *fakeConn) Close(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = append(c.closed, reason)
}

func (c *fakeConn) all() []*Push {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Push(nil), c.pushes...)
}

// to returns the pushes to one subscriber as versions.
func (c *fakeConn) to(subID string) []uint64 {
	var out []uint64
	for _, p := range c.all() {
		if slices.Contains(p.SubscriberIDs, subID) {
			out = append(out, p.Version)
		}
	}
	return out
}

func (c *fakeConn) closes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.closed...)
}

// eventually polls cond until it returns nil or timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(time.Millisecond) // polling interval, not a wait for the condition
	}
}

// harness runs an engine for one test.
type harness struct {
	t     testing.TB
	e     *Engine
	f     *fakeFetcher
	clock *clock.Fake // nil with the real clock
	reg   *prometheus.Registry
}

// start runs an engine; fake selects the Fake clock, with which timers move
// only through h.advance.
func start(t testing.TB, cfg Config, f *fakeFetcher, fake bool) *harness {
	t.Helper()
	h := &harness{t: t, f: f, reg: prometheus.NewRegistry()}
	deps := Deps{Fetcher: f, Registerer: h.reg}
	if fake {
		h.clock = clock.NewFake(t0)
		deps.Clock = h.clock
	}
	e, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if fake {
		e.tickDone = make(chan int64)
	}
	h.e = e
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	select {
	case <-e.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("engine not ready")
	}
	return h
}

// advance moves the fake clock and waits until the timer loop has run the
// timers that came due. d must cover at least one Tick.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	h.clock.Advance(d)
	target := h.clock.Now().UnixNano()
	// The Fake may deliver a second tick while Advance runs, so skip ticks
	// that ran the timers at an earlier time.
	for {
		select {
		case now := <-h.e.tickDone:
			if now >= target {
				return
			}
		case <-time.After(5 * time.Second):
			h.t.Fatal("timer loop did not tick")
		}
	}
}

// settled waits until key has had n fetches and none is queued or running.
func (h *harness) settled(key string, n int) {
	h.t.Helper()
	eventually(h.t, 5*time.Second, func() error {
		if got := h.f.callsOf(key); got < n {
			return fmt.Errorf("%d fetches of %s, want %d", got, key, n)
		}
		h.e.mu.Lock()
		defer h.e.mu.Unlock()
		if k := h.e.keys[key]; k != nil && (k.state == keyQueued || k.state == keyFetching) {
			return fmt.Errorf("key %s still fetching (state %d)", key, k.state)
		}
		return nil
	})
	if got := h.f.callsOf(key); got != n {
		h.t.Fatalf("%d fetches of %s, want exactly %d", got, key, n)
	}
}

func (h *harness) keyState(key string) (state uint8, fetched uint64, ok bool) {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	k := h.e.keys[key]
	if k == nil {
		return 0, 0, false
	}
	return k.state, k.fetched, true
}

// subscribedAcked subscribes subID on c to key (scope global, from
// nothing), waits for the first fetch and push, and acks it.
func (h *harness) subscribedAcked(c *fakeConn, subID, key string) {
	h.t.Helper()
	h.e.Subscribe(c, subID, key, ScopeGlobal, 0)
	h.settled(key, 1)
	waitPushes(h.t, c, subID, 1)
	h.e.Ack(c.id, subID, 1)
}

// waitPushes waits until c has n pushes to subID and returns their versions.
func waitPushes(t testing.TB, c *fakeConn, subID string, n int) []uint64 {
	t.Helper()
	var got []uint64
	eventually(t, 5*time.Second, func() error {
		got = c.to(subID)
		if len(got) < n {
			return fmt.Errorf("conn %s sub %s: pushes %v, want %d", c.id, subID, got, n)
		}
		return nil
	})
	return got
}

var errMigrating = errors.New("slot migrating")
