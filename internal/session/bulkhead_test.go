package session_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/data"
	"github.com/strata-registry/strata/internal/session"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// A data node that stops answering but stays alive in gossip (frozen, or
// its port black-holed) must cost only the slots it leads: the session's
// writes for every other slot go on while a write to it hangs. Before the
// forwarder had per-slot flights, one stuck call held every later batch
// until its deadline (a minute here; writes elsewhere stood still for
// 2.7-4.3 s in the fault runs, for a 5 s freeze).
func TestBulkhead_FrozenDataNode_WritesToOtherSlotsLandMeanwhile(t *testing.T) {
	// No anti-entropy during the test: it would repair the data nodes
	// from the session and hide what forwarding does.
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 3, DataFronts: true,
		DataConfig:    func(_ int, cfg *data.Config) { cfg.AntiEntropyInterval = time.Hour },
		SessionConfig: func(_ int, cfg *session.Config) { cfg.CallTimeout = time.Minute }})
	s := c.AddSession(t)
	c.WaitDataSettled(t)
	pubc := c.Connect(t, s, "publisher", "z1", true)
	const services = 32
	name := func(i int) string { return fmt.Sprintf("com.example.Svc%d", i) }
	keyOf := func(i int) string { return record.DataInfoID(name(i), "", "") }
	landed := func(i int, want string) func() error {
		return func() error {
			r := c.RouteOf(t, keyOf(i))
			if r.Leader == nil {
				return fmt.Errorf("%s has no leader", name(i))
			}
			d, err := readAt(t, c, r.Leader, keyOf(i))
			if err != nil || valueOf(d) != want {
				return fmt.Errorf("%s on %s: %s, %v; want %s", name(i), r.Leader.ID, valueOf(d), err, want)
			}
			return nil
		}
	}
	for i := range services {
		acked(t)(pubc.Publish(name(i), "p", 1, "v1"))
	}
	for i := range services {
		testcluster.Eventually(t, testcluster.DefaultWait, landed(i, "v1"))
	}
	victim := c.RouteOf(t, keyOf(0)).Leader
	var healthy []int
	for i := range services {
		if c.RouteOf(t, keyOf(i)).Leader != victim {
			healthy = append(healthy, i)
		}
	}
	if len(healthy) < 2 {
		t.Fatalf("every service is led by %s", victim.ID)
	}

	victim.Front.Pause()
	acked(t)(pubc.Publish(name(0), "p", 2, "v2")) // hangs on its way to the frozen leader
	for v, i := range healthy {
		want := fmt.Sprintf("v%d", v+2)
		acked(t)(pubc.Publish(name(i), "p", uint64(v+2), want))
		testcluster.Eventually(t, testcluster.DefaultWait, landed(i, want))
	}
	if st := c.RouteOf(t, keyOf(0)); st.Leader != victim {
		t.Fatalf("the frozen node lost its slot (to %v): this test is about a node still alive in gossip", st.Leader)
	}
	victim.Front.Heal()
	testcluster.Eventually(t, testcluster.DefaultWait, landed(0, "v2"))
}

// When meta gives a frozen leader's slot to another node, the session's
// write and fetch still hanging on the old leader are cancelled and go to
// the new one at once, not after their call timeouts (a minute here). The
// fault runs showed the stall: a SIGSTOPped data node's keys waited for the
// whole freeze (4.7 s) though meta had moved them after 0.8 s, because the
// batch in flight held its slot, and the new leader's handover barrier
// waited on that batch at every session.
func TestBulkhead_FrozenLeaderReplaced_ItsHangingWriteAndFetchMoveToTheNewLeaderAtOnce(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 3, DataFronts: true,
		DataConfig: func(_ int, cfg *data.Config) { cfg.AntiEntropyInterval = time.Hour },
		SessionConfig: func(_ int, cfg *session.Config) {
			cfg.CallTimeout = time.Minute
			cfg.Push.FetchTimeout = time.Minute
		}})
	s := c.AddSession(t)
	c.WaitDataSettled(t)
	pubc := c.Connect(t, s, "publisher", "z1", true)
	const svc = "com.example.Frozen"
	k := record.DataInfoID(svc, "", "")
	acked(t)(pubc.Publish(svc, "p", 1, "v1"))
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		r := c.RouteOf(t, k)
		if r.Leader == nil {
			return fmt.Errorf("%s has no leader", svc)
		}
		if d, err := readAt(t, c, r.Leader, k); err != nil || valueOf(d) != "v1" {
			return fmt.Errorf("on %s: %s, %v", r.Leader.ID, valueOf(d), err)
		}
		return nil
	})
	victim := c.RouteOf(t, k).Leader

	victim.Front.Pause()
	// A subscriber's first fetch and the next write both hang on the
	// frozen leader.
	sub := c.Connect(t, s, "subscriber", "z1", true)
	acked(t)(sub.Subscribe(svc, "s", registryv1.Scope_SCOPE_GLOBAL))
	acked(t)(pubc.Publish(svc, "p", 2, "v2"))
	// The node dies behind its frozen port (its connections stay open,
	// held by the proxy): gossip declares it dead and meta moves the slot.
	start := time.Now()
	c.StopData(t, victim.Index, true)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		if r := c.RouteOf(t, k); r.Leader == nil || r.Leader == victim {
			return fmt.Errorf("%s still led by %v", svc, r.Leader)
		}
		return nil
	})
	moved := time.Since(start)
	for {
		p := nextPush(t, sub, k) // fails after DefaultWait, well within the minute
		if got := values(p); len(got) == 1 && got[0] == "v2" {
			break
		}
	}
	r := c.RouteOf(t, k)
	if d, err := readAt(t, c, r.Leader, k); err != nil || valueOf(d) != "v2" {
		t.Fatalf("new leader %s has %s, %v; want v2", r.Leader.ID, valueOf(d), err)
	}
	t.Logf("slot moved %v after the crash; v2 pushed from the new leader %v after it", moved.Round(time.Millisecond), (time.Since(start) - moved).Round(time.Millisecond))
}
