package session_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/data"
	"github.com/strata-registry/strata/internal/record"
	"github.com/strata-registry/strata/internal/session"
	"github.com/strata-registry/strata/internal/testcluster"
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
