package session_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/strata-registry/strata/internal/session"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// drain collects the pushes of key to cl until done returns true for one,
// failing on any push that check rejects.
func drain(t *testing.T, cl *testcluster.Client, check func(*registryv1.Push) error, done func(*registryv1.Push) bool) {
	t.Helper()
	for {
		p := nextPush(t, cl, key)
		if err := check(p); err != nil {
			t.Fatalf("%s: %v", cl.ID, err)
		}
		if done(p) {
			return
		}
	}
}

func TestSession_KillDataLeaderOfKey_NoShrunkenPush_LaterChangesArrive(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 2})
	c.WaitDataSettled(t)
	pubc := c.Connect(t, c.Session(0), "publisher", "z1", true)
	sub := c.Connect(t, c.Session(1), "subscriber", "z1", true)
	acked(t)(sub.Subscribe(svc, "s", registryv1.Scope_SCOPE_GLOBAL))
	nextPush(t, sub, key) // empty snapshot
	acked(t)(pubc.Publish(svc, "p1", 1, "a"))
	acked(t)(pubc.Publish(svc, "p2", 1, "b"))
	drain(t, sub, func(*registryv1.Push) error { return nil }, func(p *registryv1.Push) bool { return len(p.GetValues()) == 2 })

	leader := c.RouteOf(t, key).Leader
	c.StopData(t, leader.Index, true)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		if r := c.RouteOf(t, key); r.Leader == nil || r.Leader == leader {
			return fmt.Errorf("slot still led by %s", leader.ID)
		}
		return nil
	})
	acked(t)(pubc.Publish(svc, "p3", 1, "c"))
	// Every push from now on carries at least both earlier publishers,
	// until the new one arrives with all three.
	drain(t, sub, func(p *registryv1.Push) error {
		if len(p.GetValues()) < 2 {
			return fmt.Errorf("shrunken push during failover: %v", values(p))
		}
		return nil
	}, func(p *registryv1.Push) bool { return len(p.GetValues()) == 3 })
}

func TestSession_KillSession_RecordsGoAfterGrace_ButNotAReconnectedClients(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 2})
	c.WaitDataSettled(t)
	stays := c.Connect(t, c.Session(0), "pub-stays", "z1", true)
	goes := c.Connect(t, c.Session(0), "pub-goes", "z1", true)
	sub := c.Connect(t, c.Session(1), "subscriber", "z1", true)
	acked(t)(sub.Subscribe(svc, "s", registryv1.Scope_SCOPE_GLOBAL))
	nextPush(t, sub, key)
	acked(t)(stays.Publish(svc, "p-stays", 1, "stays"))
	acked(t)(goes.Publish(svc, "p-goes", 1, "goes"))
	drain(t, sub, func(*registryv1.Push) error { return nil }, func(p *registryv1.Push) bool { return len(p.GetValues()) == 2 })

	c.StopSession(t, 0, true)
	// The client that stays reconnects to the other session at once and
	// replays its publication (same register id and version).
	again := c.Connect(t, c.Session(1), "pub-stays", "z1", true)
	acked(t)(again.Publish(svc, "p-stays", 1, "stays"))
	// The dead session's other publication disappears once its lease ends;
	// the replayed one never does.
	drain(t, sub, func(p *registryv1.Push) error {
		if !strings.Contains(fmt.Sprint(values(p)), "stays") {
			return fmt.Errorf("the reconnected client's publication vanished: %v", values(p))
		}
		return nil
	}, func(p *registryv1.Push) bool { return fmt.Sprint(values(p)) == "[stays]" })
	_ = goes
}

func TestSession_StalledSubscriber_CutOff_MemoryBounded(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 1})
	c.WaitDataSettled(t)
	pubc := c.Connect(t, c.Session(0), "publisher", "z1", true)
	stalled := c.Connect(t, c.Session(0), "stalled", "z1", true)
	healthy := c.Connect(t, c.Session(0), "healthy", "z1", true)
	acked(t)(stalled.Subscribe(svc, "s", registryv1.Scope_SCOPE_GLOBAL))
	acked(t)(healthy.Subscribe(svc, "h", registryv1.Scope_SCOPE_GLOBAL))
	stalled.Pause() // stops reading: its pushes pile up on the session
	capBytes := float64(session.TestConfig().Push.MaxInflightBytes)
	big := strings.Repeat("x", 200<<10)
	maxQueued := 0.0
	// Publish until the session gives up on the stalled client: how many
	// updates that takes depends on how many the push engine merges.
	deadline := time.Now().Add(testcluster.DefaultWait)
	for v := uint64(1); gauge(t, c.Session(0), "strata_session_connections") == 3; v++ {
		if time.Now().After(deadline) {
			// What the engine did, for whoever has to find out why.
			for _, n := range []string{"strata_push_sent_total", "strata_push_fetch_failures_total", "strata_push_fetches_total", "strata_push_superseded_total", "strata_push_inflight_bytes", "strata_session_forward_backlog", "strata_session_send_queue_bytes"} {
				t.Logf("%s = %v", n, metricValue(t, c.Session(0), n))
			}
			t.Fatalf("the stalled client is still connected after %d updates", v)
		}
		// Each update must differ: an identical value is not a change (the
		// data tier keeps the datum version), so nothing would be pushed.
		acked(t)(pubc.Publish(svc, "p", v, big+strconv.FormatUint(v, 10)))
		maxQueued = max(maxQueued, gauge(t, c.Session(0), "strata_session_send_queue_bytes"))
	}
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		if n := gauge(t, c.Session(0), "strata_session_connections"); n != 2 {
			return fmt.Errorf("%v connections, want the stalled one cut off", n)
		}
		return nil
	})
	// Bytes waiting for one client stay within the cap (plus one push),
	// whatever was published meanwhile.
	if maxQueued > capBytes+float64(len(big))*2 {
		t.Fatalf("up to %v bytes queued for clients, cap %v", maxQueued, capBytes)
	}
	if got := gauge(t, c.Session(0), "strata_push_inflight_bytes"); got > capBytes {
		t.Fatalf("in-flight bytes %v above the cap %v", got, capBytes)
	}
	acked(t)(pubc.Publish(svc, "p", 1000, "small"))
	drain(t, healthy, func(*registryv1.Push) error { return nil }, func(p *registryv1.Push) bool { return fmt.Sprint(values(p)) == "[small]" })
	t.Logf("stalled client cut off; at most %.0f bytes were queued for clients", maxQueued)
}

func TestSession_BadInput_ClearStatus_OthersUnaffected(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 1, SessionConfig: func(_ int, cfg *session.Config) {
		cfg.RegisterRate, cfg.RegisterBurst = 50, 5
	}})
	c.WaitDataSettled(t)
	bad := c.Connect(t, c.Session(0), "bad", "z1", true)
	good := c.Connect(t, c.Session(0), "good", "z1", true)
	check := func(name string, a *registryv1.Ack, err error, code codes.Code, msg string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if codes.Code(a.GetCode()) != code || !strings.Contains(a.GetMessage(), msg) {
			t.Fatalf("%s: ack %v %q, want %v containing %q", name, codes.Code(a.GetCode()), a.GetMessage(), code, msg)
		}
	}
	a, err := bad.Publish(svc, "p", 1, strings.Repeat("x", 1<<20+1))
	check("oversized value", a, err, codes.ResourceExhausted, "at most 1048576")
	a, err = bad.Publish(svc, "p", 1, make([]string, record.MaxValues+1)...) // refused as it arrives
	check("too many values", a, err, codes.ResourceExhausted, "65 values, at most 64 allowed")
	a, err = bad.Publish(svc, "bad id", 1, "x")
	check("register id with a space", a, err, codes.InvalidArgument, "register")
	a, err = bad.Publish("", "p", 1, "x")
	check("empty data id", a, err, codes.InvalidArgument, "data")
	a, err = bad.Subscribe(strings.Repeat("d", 600), "s", registryv1.Scope_SCOPE_GLOBAL)
	check("oversized data id", a, err, codes.ResourceExhausted, "512")
	a, err = bad.Subscribe(svc, "s", registryv1.Scope(9))
	check("unknown scope", a, err, codes.InvalidArgument, "scope")
	// A flood past the per-connection rate, sent at once, is slowed to the
	// rate (a burst of 5, then 50 a second: no sooner than 0.9 s for 50),
	// not refused, and the other client is served meanwhile.
	start := time.Now()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if a, err := bad.Publish(svc, fmt.Sprintf("flood-%d", i), 1, "x"); err != nil || a.GetCode() != 0 {
				t.Errorf("flood registration %d: %v %v", i, a, err)
			}
		})
	}
	acked(t)(good.Publish(svc, "during", 1, "ok"))
	wg.Wait()
	if d := time.Since(start); d < 850*time.Millisecond {
		t.Fatalf("50 registrations at 50 a second (burst 5) took %v: not slowed to the rate", d)
	}
	// At most 45 wait (the burst's 5 do not); how many do depends on how
	// the 50 arrive, but not all of them in time for the burst's refill.
	if n := metricValue(t, c.Session(0), "strata_session_registrations_throttled_total"); n < 1 || n > 45 {
		t.Fatalf("%v registrations throttled, want 1 to 45", n)
	}
	// The other client is unaffected.
	acked(t)(good.Publish(svc, "fine", 1, "ok"))
	acked(t)(good.Unpublish(svc, "during", 2))
	acked(t)(good.Subscribe(svc, "g", registryv1.Scope_SCOPE_GLOBAL))
	drain(t, good, func(*registryv1.Push) error { return nil }, func(p *registryv1.Push) bool {
		return strings.Contains(fmt.Sprint(values(p)), "ok")
	})
}
