package client_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/faultproxy"
	"github.com/strata-registry/strata/internal/sdktest"
	"github.com/strata-registry/strata/internal/session"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client"
)

// Test timings of the liveness deadline: a stream that hears nothing for
// three heartbeats of 200 ms is dead, so a client on a frozen session
// must be on another one well within rehomeBudget (the bound).
const (
	testHeartbeat = 200 * time.Millisecond
	testMissed    = 3
	rehomeBudget  = 3 * time.Second
)

func livenessOpts(logs *logRecorder) []client.Option {
	return []client.Option{client.WithHeartbeat(testHeartbeat), client.WithMissedHeartbeats(testMissed), client.WithLogger(slog.New(logs))}
}

// twoRoutes is a cluster of two sessions, A and B, each behind a fault
// proxy, and a client whose only ways in are the proxies. B's proxy starts
// cut, so the client starts on A whatever its random start; heal it (and
// freeze A's) to give the client somewhere to go.
type twoRoutes struct {
	c        *testcluster.Cluster
	addrs    []string // the sessions' own addresses
	toA, toB *faultproxy.Proxy
}

func startTwoRoutes(t *testing.T, sessionCfg func(int, *session.Config)) *twoRoutes {
	t.Helper()
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 2, SessionConfig: sessionCfg})
	c.WaitDataSettled(t)
	r := &twoRoutes{c: c, addrs: sessionAddrs(c, 2)}
	r.toA, r.toB = proxy(t, r.addrs[0]), proxy(t, r.addrs[1])
	r.toB.Cut()
	return r
}

// client returns a client whose sessions are the two proxies, connected
// through A's.
func (r *twoRoutes) client(t *testing.T, opts ...client.Option) *client.Client {
	t.Helper()
	cl := sdktest.New(t, r.c, append([]client.Option{client.WithSessions(r.toA.Addr(), r.toB.Addr())}, opts...)...)
	if err := cl.WaitConnected(sdktest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	if s := cl.Session(); s != r.toA.Addr() {
		t.Fatalf("client on %q, want A's proxy %s", s, r.toA.Addr())
	}
	return cl
}

// proxy returns a fault proxy in front of addr, closed with the test.
func proxy(t *testing.T, addr string) *faultproxy.Proxy {
	px := faultproxy.Start(testcluster.Listen(t), addr)
	t.Cleanup(func() { _ = px.Close() })
	return px
}

// TestClient_FrozenSession_RehomesWithinBudget_NothingVanishes: a client
// publishing and subscribing through session A, whose link freezes (bytes
// stop both ways, the connection stays open: what a SIGSTOPped process
// looks like to its peers), moves to session B within the heartbeat
// deadline plus one connect, logging how long A was silent. A subscriber
// on B sees the publication in every snapshot throughout (never empty,
// never shrunk, versions only up), also after A times the client out and
// its grace removes A's copy; the moved client's own subscription keeps
// receiving changes, and its publication takes updates through B.
func TestClient_FrozenSession_RehomesWithinBudget_NothingVanishes(t *testing.T) {
	r := startTwoRoutes(t, nil)
	ctx := sdktest.Ctx(t)
	logs := &logRecorder{}
	pubc := r.client(t, livenessOpts(logs)...)
	watcher := sdktest.New(t, r.c, client.WithSessions(r.addrs[1]))
	feeder := sdktest.New(t, r.c, client.WithSessions(r.addrs[1]))

	ws, err := watcher.Subscribe(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	seen := recordSnapshots(t, ws)
	p, err := pubc.Publish(ctx, "svc", []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	own, err := pubc.Subscribe(ctx, "feed")
	if err != nil {
		t.Fatal(err)
	}
	feed, err := feeder.Publish(ctx, "feed", []byte("f1"))
	if err != nil {
		t.Fatal(err)
	}
	nextUntil(t, own, nil, holds("f1"))
	seen.waitFor(t, holds("a"))

	r.toB.Heal()
	r.toA.Pause()
	frozen := time.Now()
	testcluster.Eventually(t, rehomeBudget, func() error {
		if s := pubc.Session(); s != r.toB.Addr() {
			return fmt.Errorf("client on %q, want B's proxy %s", s, r.toB.Addr())
		}
		return nil
	})
	took := time.Since(frozen)
	moved := logs.wait(t, "strata: moved to another session")
	t.Logf("re-homed %v after the freeze; the client logged %s", took.Round(time.Millisecond), moved)
	if moved.attrs["reason"] != "silent" || moved.attrs["from"] != r.toA.Addr() || moved.attrs["to"] != r.toB.Addr() {
		t.Errorf("move logged as %s; want reason=silent from A's proxy to B's", moved)
	}
	if d, err := time.ParseDuration(moved.attrs["silent"]); err != nil || d < testHeartbeat*testMissed {
		t.Errorf("logged silence %q (%v); want at least the deadline %v", moved.attrs["silent"], err, testHeartbeat*testMissed)
	}

	// The moved client's subscription and publication go on through B.
	if err := feed.Update(ctx, []byte("f2")); err != nil {
		t.Fatal(err)
	}
	nextUntil(t, own, nil, holds("f2"))
	if err := p.Update(ctx, []byte("b")); err != nil {
		t.Fatal(err)
	}
	seen.waitFor(t, holds("b"))

	// A still holds the client's old connection; once its client timeout
	// and grace pass it drops its copy, conditionally: B's registration
	// stays, and a later change arrives with it, not instead of it.
	testcluster.Eventually(t, wait, func() error {
		if n := r.c.Session(0).Server().Publishers(); n != 0 {
			return fmt.Errorf("session A still holds %d publishers", n)
		}
		return nil
	})
	if _, err := feeder.Publish(ctx, "svc", []byte("c")); err != nil {
		t.Fatal(err)
	}
	seen.waitFor(t, holds("b", "c"))
	seen.checkAlwaysHolds(t, p.RegisterID())
	if n := logs.count("strata: moved to another session"); n != 1 {
		t.Errorf("the client moved %d times, want once:\n%s", n, logs)
	}
}

// TestClient_FrozenSession_BlockedWrites_DoNotHoldUpTheMove: updates made
// while the session is frozen do not wedge the client, though the frozen
// session stops reading: two of the largest values a publication may have
// pass its flow-control window (1 MiB) and the stream's write quota, so
// the stream's writer blocks and every frame after them stays queued, a
// small update among them. The client still moves within the budget, and
// all three updates complete through the new session.
func TestClient_FrozenSession_BlockedWrites_DoNotHoldUpTheMove(t *testing.T) {
	r := startTwoRoutes(t, nil)
	ctx := sdktest.Ctx(t)
	logs := &logRecorder{}
	pubc := r.client(t, livenessOpts(logs)...)
	watcher := sdktest.New(t, r.c, client.WithSessions(r.addrs[1]))
	var bigs []*client.Publication
	for i := range 2 {
		p, err := pubc.Publish(ctx, fmt.Sprintf("svc.big.%d", i), []byte("small"))
		if err != nil {
			t.Fatal(err)
		}
		bigs = append(bigs, p)
	}
	small, err := pubc.Publish(ctx, "svc", []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	ws, err := watcher.Subscribe(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	seen := recordSnapshots(t, ws)
	seen.waitFor(t, holds("a"))

	r.toB.Heal()
	r.toA.Pause()
	frozen := time.Now()
	huge := bytes.Repeat([]byte("x"), 1<<20) // the largest value allowed
	errs := make(chan error, 3)
	for _, p := range bigs {
		go func() { errs <- p.Update(ctx, huge) }()
	}
	go func() { errs <- small.Update(ctx, []byte("b")) }()
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatalf("update across the freeze: %v", err)
		}
	}
	took := time.Since(frozen)
	t.Logf("the updates were stored %v after the freeze", took.Round(time.Millisecond))
	if s := pubc.Session(); s != r.toB.Addr() {
		t.Fatalf("updates stored through %q, want B's proxy", s)
	}
	if took > rehomeBudget {
		t.Errorf("the updates took %v across the freeze; want the move within %v", took, rehomeBudget)
	}
	seen.waitFor(t, holds("b"))
	seen.checkAlwaysHolds(t, small.RegisterID())
}

// TestClient_StalledLinkHealsAfterTheMove_LateUpdateDoesNotRemoveThePublication:
// an update sent into a stalled link is never acked there; the client
// moves and stores it through B. When the link heals, A may still apply
// the frame it was sent, later than B did; the retry went out one version
// higher, so A's late copy loses at the data node, and A's removal of its
// copy (its grace after the connection ended) removes nothing: the
// subscriber on B keeps the publication throughout.
func TestClient_StalledLinkHealsAfterTheMove_LateUpdateDoesNotRemoveThePublication(t *testing.T) {
	r := startTwoRoutes(t, nil)
	ctx := sdktest.Ctx(t)
	logs := &logRecorder{}
	pubc := r.client(t, livenessOpts(logs)...)
	watcher := sdktest.New(t, r.c, client.WithSessions(r.addrs[1]))
	feeder := sdktest.New(t, r.c, client.WithSessions(r.addrs[1]))
	p, err := pubc.Publish(ctx, "svc", []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	ws, err := watcher.Subscribe(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	seen := recordSnapshots(t, ws)
	seen.waitFor(t, holds("a"))

	r.toB.Heal()
	r.toA.Pause()
	if err := p.Update(ctx, []byte("b")); err != nil {
		t.Fatal(err)
	}
	if s := pubc.Session(); s != r.toB.Addr() {
		t.Fatalf("update stored through %q, want B's proxy", s)
	}
	seen.waitFor(t, holds("b"))
	r.toA.Heal() // within A's client timeout: A reads what it was sent
	testcluster.Eventually(t, wait, func() error {
		if n := r.c.Session(0).Server().Publishers(); n != 0 {
			return fmt.Errorf("session A still holds %d publishers", n)
		}
		return nil
	})
	if _, err := feeder.Publish(ctx, "svc", []byte("c")); err != nil {
		t.Fatal(err)
	}
	seen.waitFor(t, holds("b", "c"))
	seen.checkAlwaysHolds(t, p.RegisterID())
}

// TestClient_SlowSessionAnsweringHeartbeats_DoesNotFailOver: a session
// that is slow but alive keeps its client. (1) Each registration waits
// for the connection's rate longer than the liveness deadline, while the
// session answers heartbeats at once; (2) the link stalls again and again,
// each time for less than the deadline. Another session is reachable all
// along, and the client never moves to it.
func TestClient_SlowSessionAnsweringHeartbeats_DoesNotFailOver(t *testing.T) {
	t.Run("registrations wait for their rate", func(t *testing.T) {
		const rate = 1.25 // per second: 800 ms between registrations
		r := startTwoRoutes(t, func(i int, cfg *session.Config) {
			if i == 0 {
				cfg.RegisterRate, cfg.RegisterBurst = rate, 1
			}
		})
		ctx := sdktest.Ctx(t)
		logs := &logRecorder{}
		cl := r.client(t, livenessOpts(logs)...)
		r.toB.Heal() // somewhere to go, were the client to suspect A
		deadline := testHeartbeat * testMissed
		slow := 0
		for i := range 5 {
			start := time.Now()
			if _, err := cl.Publish(ctx, fmt.Sprintf("svc.%d", i), []byte("v")); err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
			if took := time.Since(start); took > deadline {
				slow++
			}
			if s := cl.Session(); s != r.toA.Addr() {
				t.Fatalf("after publish %d the client is on %q, want A's proxy; it logged:\n%s", i, s, logs)
			}
		}
		if slow < 3 {
			t.Fatalf("only %d of 5 registrations waited past the deadline %v: the session was not slow", slow, deadline)
		}
		if n := logs.count("strata: moved to another session") + logs.count("strata: session silent past the liveness deadline; moving to another session"); n != 0 {
			t.Fatalf("the client suspected its slow session; it logged:\n%s", logs)
		}
	})
	t.Run("link stalls shorter than the deadline", func(t *testing.T) {
		r := startTwoRoutes(t, nil)
		logs := &logRecorder{}
		// 4 x 200 ms: a deadline twice each stall's length, so the test
		// needs no luck on a loaded machine to pass.
		cl := r.client(t, client.WithHeartbeat(testHeartbeat), client.WithMissedHeartbeats(4), client.WithLogger(slog.New(logs)))
		r.toB.Heal()
		// The fault schedule: 8 stalls of 400 ms, 300 ms apart (a sleep
		// shapes the fault; nothing waits for a condition here). Silence
		// lasts at most a stall plus one heartbeat interval.
		for range 8 {
			r.toA.Pause()
			time.Sleep(2 * testHeartbeat)
			r.toA.Heal()
			time.Sleep(300 * time.Millisecond)
			if s := cl.Session(); s != r.toA.Addr() {
				t.Fatalf("the client moved to %q; it logged:\n%s", s, logs)
			}
		}
		if n := logs.count("strata: moved to another session"); n != 0 {
			t.Fatalf("the client moved; it logged:\n%s", logs)
		}
	})
}

// snapshots records every snapshot a subscription reports: a goroutine
// calls Next until the test ends, so no change merges away unseen.
type snapshots struct {
	mu      sync.Mutex
	all     []client.Snapshot
	err     error
	changed chan struct{} // closed and replaced on every snapshot
}

func recordSnapshots(t *testing.T, s *client.Subscription) *snapshots {
	h := &snapshots{changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			snap, err := s.Next(ctx)
			h.mu.Lock()
			if err != nil {
				h.err = err
			} else {
				h.all = append(h.all, snap)
			}
			close(h.changed)
			h.changed = make(chan struct{})
			h.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return h
}

// waitFor waits until the latest snapshot satisfies want.
func (h *snapshots) waitFor(t *testing.T, want func(client.Snapshot) bool) {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		h.mu.Lock()
		if n := len(h.all); n > 0 && want(h.all[n-1]) {
			h.mu.Unlock()
			return
		}
		err, changed := h.err, h.changed
		h.mu.Unlock()
		if err != nil {
			t.Fatalf("subscription ended: %v; it reported:\n%s", err, h)
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("no awaited snapshot after %v; the subscription reported:\n%s", wait, h)
		}
	}
}

// checkAlwaysHolds fails the test unless versions only went up and, from
// the first snapshot holding publisher's value on, every snapshot holds
// exactly one value of it.
func (h *snapshots) checkAlwaysHolds(t *testing.T, publisher string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	var bad []string
	since := -1
	for i, s := range h.all {
		if i > 0 && s.Version <= h.all[i-1].Version {
			bad = append(bad, fmt.Sprintf("#%d: version %d after %d", i, s.Version, h.all[i-1].Version))
		}
		n := 0
		for _, v := range s.Values {
			if v.PublisherID == publisher {
				n++
			}
		}
		if since < 0 && n > 0 {
			since = i
		}
		if since >= 0 && n != 1 {
			bad = append(bad, fmt.Sprintf("#%d: %d values of the publication", i, n))
		}
	}
	if since < 0 {
		bad = append(bad, "no snapshot held the publication")
	}
	if len(bad) > 0 {
		t.Errorf("the subscriber lost the publication or went back: %s; it reported:\n%s", strings.Join(bad, "; "), h.describe())
	}
}

func (h *snapshots) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.describe()
}

func (h *snapshots) describe() string {
	var b strings.Builder
	for i, s := range h.all {
		fmt.Fprintf(&b, "  #%d version %d %v\n", i, s.Version, datas(s))
	}
	if h.err != nil {
		fmt.Fprintf(&b, "  then Next: %v\n", h.err)
	}
	return b.String()
}

// logRecorder is a slog.Handler keeping every record the client logs.
type logRecorder struct {
	mu      sync.Mutex
	lines   []logLine
	changed chan struct{} // closed and replaced on every record; nil until waited on
}

type logLine struct {
	msg   string
	attrs map[string]string
}

func (l logLine) String() string {
	keys := make([]string, 0, len(l.attrs))
	for k := range l.attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%q", l.msg)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, l.attrs[k])
	}
	return b.String()
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	line := logLine{msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		line.attrs[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
	return nil
}

// The client logs through its logger as given (no With, no groups).
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// count returns how many records say msg.
func (l *logRecorder) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if line.msg == msg {
			n++
		}
	}
	return n
}

// wait returns the first record saying msg, waiting for it.
func (l *logRecorder) wait(t *testing.T, msg string) logLine {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		l.mu.Lock()
		for _, line := range l.lines {
			if line.msg == msg {
				l.mu.Unlock()
				return line
			}
		}
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("the client never logged %q; it logged:\n%s", msg, l)
		}
	}
}

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, line := range l.lines {
		fmt.Fprintf(&b, "  %s\n", line)
	}
	return b.String()
}
