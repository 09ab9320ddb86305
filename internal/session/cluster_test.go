package session_test

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/session"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/wire"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// nextPush waits for the next push of key to cl, skipping others.
func nextPush(t *testing.T, cl *testcluster.Client, key string) *registryv1.Push {
	t.Helper()
	deadline := time.After(testcluster.DefaultWait)
	for {
		select {
		case p, ok := <-cl.Pushes:
			if !ok {
				t.Fatalf("%s: stream ended waiting for a push of %s", cl.ID, key)
			}
			if p.GetDataInfoId() == key {
				return p
			}
		case <-deadline:
			t.Fatalf("%s: no push of %s after %v", cl.ID, key, testcluster.DefaultWait)
		}
	}
}

func values(p *registryv1.Push) []string {
	var out []string
	for _, v := range p.GetValues() {
		out = append(out, string(v.GetData()))
	}
	return out
}

func ok(t *testing.T, a *registryv1.Ack, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if a.GetCode() != 0 {
		t.Fatalf("ack %d: code %d %s", a.GetId(), a.GetCode(), a.GetMessage())
	}
}

const svc = "com.example.Echo"

var key = svc + "#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP"

func TestSession_PublishOnA_PushedToSubscribersOnBoth_UpdateAndUnpublish(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 2})
	c.WaitDataSettled(t)
	pubc := c.Connect(t, c.Session(0), "publisher", "z1", true)
	subA := c.Connect(t, c.Session(0), "sub-a", "z1", true)
	subB := c.Connect(t, c.Session(1), "sub-b", "z2", true)
	a, err := subA.Subscribe(svc, "s-a", registryv1.Scope_SCOPE_GLOBAL)
	ok(t, a, err)
	a, err = subB.Subscribe(svc, "s-b", registryv1.Scope_SCOPE_GLOBAL)
	ok(t, a, err)
	// The first push is the current snapshot: empty.
	for _, cl := range []*testcluster.Client{subA, subB} {
		if p := nextPush(t, cl, key); len(p.GetValues()) != 0 {
			t.Fatalf("%s: first push %v, want the empty snapshot", cl.ID, values(p))
		}
	}

	a, err = pubc.Publish(svc, "p1", 1, "10.0.0.1:8080")
	ok(t, a, err)
	var last [2]uint64
	for i, cl := range []*testcluster.Client{subA, subB} {
		p := nextPush(t, cl, key)
		if fmt.Sprint(values(p)) != "[10.0.0.1:8080]" || p.GetValues()[0].GetPublisherId() != "p1" || p.GetValues()[0].GetZone() != "z1" {
			t.Fatalf("%s: push %v", cl.ID, p)
		}
		last[i] = p.GetVersion()
	}
	a, err = pubc.Publish(svc, "p1", 2, "10.0.0.1:8081")
	ok(t, a, err)
	for i, cl := range []*testcluster.Client{subA, subB} {
		p := nextPush(t, cl, key)
		if fmt.Sprint(values(p)) != "[10.0.0.1:8081]" || p.GetVersion() <= last[i] {
			t.Fatalf("%s: update push %v (version %d after %d)", cl.ID, values(p), p.GetVersion(), last[i])
		}
		last[i] = p.GetVersion()
	}
	a, err = pubc.Unpublish(svc, "p1", 2)
	ok(t, a, err)
	for i, cl := range []*testcluster.Client{subA, subB} {
		p := nextPush(t, cl, key)
		if len(p.GetValues()) != 0 || p.GetVersion() <= last[i] {
			t.Fatalf("%s: unpublish push %v (version %d after %d)", cl.ID, values(p), p.GetVersion(), last[i])
		}
	}
}

// TestSession_SeveralSubscribersOnOneConnection_EachGetsItsScope: three
// subscribers of one key share a connection (their pushes go out as one
// Push naming all the subscribers of the same list, acked by one ack); a
// zone-scoped one among them gets only its zone's publishers, and every
// one of them gets every change.
func TestSession_SeveralSubscribersOnOneConnection_EachGetsItsScope(t *testing.T) {
	// No retry within the test: an ack that missed a subscriber shows.
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 1, SessionConfig: func(_ int, cfg *session.Config) {
		cfg.Push.AckTimeout, cfg.Push.RetryMax = time.Minute, time.Minute
	}})
	c.WaitDataSettled(t)
	pz1 := c.Connect(t, c.Session(0), "pub-z1", "z1", true)
	pz2 := c.Connect(t, c.Session(0), "pub-z2", "z2", true)
	sub := c.Connect(t, c.Session(0), "subscriber", "z1", true)
	acked(t)(sub.Subscribe(svc, "g1", registryv1.Scope_SCOPE_GLOBAL))
	acked(t)(sub.Subscribe(svc, "g2", registryv1.Scope_SCOPE_GLOBAL))
	acked(t)(sub.Subscribe(svc, "zone", registryv1.Scope_SCOPE_ZONE))
	acked(t)(pz1.Publish(svc, "p1", 1, "in-z1"))
	acked(t)(pz2.Publish(svc, "p2", 1, "in-z2"))
	// settle reads pushes until each subscriber's latest is as wanted.
	latest := map[string]string{}
	settle := func(want map[string]string) {
		t.Helper()
		testcluster.Eventually(t, testcluster.DefaultWait, func() error {
			for {
				select {
				case p := <-sub.Pushes:
					vals := values(p)
					slices.Sort(vals)
					for id := range wire.RegisterIDs(p) {
						latest[id] = fmt.Sprint(vals)
					}
					continue
				default:
				}
				break
			}
			if !maps.Equal(latest, want) {
				return fmt.Errorf("latest pushes %v, want %v", latest, want)
			}
			return nil
		})
	}
	want := map[string]string{"g1": "[in-z1 in-z2]", "g2": "[in-z1 in-z2]", "zone": "[in-z1]"}
	settle(want)
	// An update reaches all three, each within its scope.
	acked(t)(pz1.Publish(svc, "p1", 2, "in-z1-v2"))
	want = map[string]string{"g1": "[in-z1-v2 in-z2]", "g2": "[in-z1-v2 in-z2]", "zone": "[in-z1-v2]"}
	settle(want)
	// The client acked each list once, naming all of its subscribers (as
	// the SDK does): no subscriber is left waiting for an ack.
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		if n := gauge(t, c.Session(0), "strata_push_unacked"); n != 0 {
			return fmt.Errorf("%v subscribers have an unacked push", n)
		}
		return nil
	})
}

// gauge reads one unlabelled gauge from a session node's registry.
func gauge(t *testing.T, n *testcluster.SessionNode, name string) float64 {
	t.Helper()
	mfs, err := n.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// acked fails the test unless the call's ack is OK; use as
// acked(t)(client.Publish(...)).
func acked(t *testing.T) func(*registryv1.Ack, error) {
	return func(a *registryv1.Ack, err error) {
		t.Helper()
		ok(t, a, err)
	}
}

// metricValue sums a gauge's or a counter's samples (all its labels) in
// a session node's registry; -1 if it has none.
func metricValue(t *testing.T, n *testcluster.SessionNode, name string) float64 {
	t.Helper()
	mfs, err := n.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) == 0 {
			continue
		}
		sum := 0.0
		for _, m := range mf.GetMetric() {
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
		return sum
	}
	return -1
}

// TestSession_SubscribedKeysChanges_ArriveInlineWithoutAFetch: a session
// reads a subscribed key under its own session id, so the data node
// counts the key as its interest and sends its small changes with the
// datum inline (the urgent lane): the subscriber's pushes after the first
// need no fetch. (A read without the session id leaves the key in the
// bulk lane, notices without datums, and a fetch per change.)
func TestSession_SubscribedKeysChanges_ArriveInlineWithoutAFetch(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 2})
	c.WaitDataSettled(t)
	pubc := c.Connect(t, c.Session(0), "publisher", "z1", true)
	sub := c.Connect(t, c.Session(1), "subscriber", "z1", true)
	acked(t)(sub.Subscribe(svc, "s", registryv1.Scope_SCOPE_GLOBAL))
	nextPush(t, sub, key) // the first snapshot: fetched
	fetched := counter(t, c.Session(1), "strata_push_fetches_total")
	for v := range uint64(5) {
		want := fmt.Sprintf("10.0.0.1:%d", 8080+v)
		acked(t)(pubc.Publish(svc, "p1", v+1, want))
		for {
			if p := nextPush(t, sub, key); fmt.Sprint(values(p)) == "["+want+"]" {
				break
			}
		}
	}
	if got := counter(t, c.Session(1), "strata_push_fetches_total"); got != fetched {
		t.Fatalf("5 changes of a subscribed key took %v fetches, want none (the datum comes with the notice)", got-fetched)
	}
}
