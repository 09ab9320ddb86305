package push

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

func TestEngine_QuietKey_FirstNotifyFetchesOncePushesAllAtOnce(t *testing.T) {
	f := newFakeFetcher()
	f.set("k", 1, pub("p1", "a", "x"))
	// The fake clock never moves: anything that waited for a timer would
	// never arrive.
	h := start(t, TestConfig(), f, true)
	c1, c2 := newFakeConn("c1", "a"), newFakeConn("c2", "a")
	h.e.Subscribe(c1, "s1", "k", ScopeGlobal, 0)
	h.e.Subscribe(c1, "s2", "k", ScopeGlobal, 0)
	h.e.Subscribe(c2, "s3", "k", ScopeGlobal, 0)
	h.settled("k", 1)
	for _, x := range []struct {
		c  *fakeConn
		id string
	}{{c1, "s1"}, {c1, "s2"}, {c2, "s3"}} {
		if got := waitPushes(t, x.c, x.id, 1); !slices.Equal(got, []uint64{1}) {
			t.Fatalf("initial pushes to %s = %v, want [1]", x.id, got)
		}
		h.e.Ack(x.c.id, x.id, 1)
	}

	f.set("k", 2, pub("p1", "a", "x"), pub("p2", "a", "y"))
	h.e.Notify("k", 2)
	h.settled("k", 2)
	for _, x := range []struct {
		c  *fakeConn
		id string
	}{{c1, "s1"}, {c1, "s2"}, {c2, "s3"}} {
		got := waitPushes(t, x.c, x.id, 2)
		if !slices.Equal(got, []uint64{1, 2}) {
			t.Fatalf("pushes to %s = %v, want [1 2]", x.id, got)
		}
	}
	// One Push per connection and list: c1's two subscribers share it.
	all := c1.all()
	last := all[len(all)-1]
	if ids := slices.Sorted(slices.Values(last.SubscriberIDs)); !slices.Equal(ids, []string{"s1", "s2"}) {
		t.Fatalf("c1's push of version 2 is for %v, want one for [s1 s2]", ids)
	}
	if n := len(last.Publishers); n != 2 {
		t.Fatalf("push carries %d publishers, want 2", n)
	}
	// One ack settles every subscriber the push named; names the
	// connection does not have change nothing.
	if got := metric(t, h, "strata_push_unacked").GetGauge().GetValue(); got != 3 {
		t.Fatalf("unacked = %v before the acks, want 3", got)
	}
	h.e.AckAll(c1.id, 2, last.SubscriberIDs[0], append(slices.Clone(last.SubscriberIDs[1:]), "nobody", "s3"), 0)
	h.e.AckAll(c2.id, 2, "s3", nil, 0)
	if got := metric(t, h, "strata_push_unacked").GetGauge().GetValue(); got != 0 {
		t.Fatalf("unacked = %v after one ack per push, want 0", got)
	}
	if inflight := h.e.conns[c1.id].inflight; inflight != 0 {
		t.Fatalf("%d bytes in flight on c1 after its ack, want 0", inflight)
	}
	// A repeated or older notice changes nothing.
	h.e.Notify("k", 2)
	h.e.Notify("k", 1)
	h.settled("k", 2)
}

func TestEngine_NotifiesDuringFetch_MergeIntoOneFollowUpWithNewest(t *testing.T) {
	f := newFakeFetcher()
	f.set("k", 1)
	h := start(t, TestConfig(), f, false)
	c := newFakeConn("c", "a")
	h.subscribedAcked(c, "s", "k")

	gate := make(chan struct{})
	f.setGate(gate)
	drain(f.started)
	f.set("k", 2, pub("p", "a", "v2"))
	h.e.Notify("k", 2)
	<-f.started // the fetch of version 2 is running and blocked
	for v := uint64(3); v <= 9; v++ {
		f.set("k", v, pub("p", "a", fmt.Sprint("v", v)))
		h.e.Notify("k", v)
	}
	gate <- struct{}{} // the fetch returns version 2
	<-f.started        // the single follow-up starts
	gate <- struct{}{}
	h.settled("k", 3)
	got := waitPushes(t, c, "s", 3)
	if !slices.Equal(got, []uint64{1, 2, 9}) {
		t.Fatalf("pushes = %v, want [1 2 9]", got)
	}
	if st, v, _ := h.keyState("k"); st != keyIdle || v != 9 {
		t.Fatalf("key state %d fetched %d, want idle at 9", st, v)
	}
}

func drain(c chan string) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

func TestEngine_Fetches_BoundedByWorkers_NeverSameKeyTwice(t *testing.T) {
	cfg := TestConfig()
	cfg.FetchWorkers = 3
	f := newFakeFetcher()
	gate := make(chan struct{})
	f.setGate(gate)
	h := start(t, cfg, f, false)
	const keys = 20
	conns := make([]*fakeConn, keys)
	for i := range keys {
		key := fmt.Sprint("k", i)
		f.set(key, 1)
		conns[i] = newFakeConn(fmt.Sprint("c", i), "a")
		h.e.Subscribe(conns[i], "s", key, ScopeGlobal, 0)
	}
	// Keep announcing new versions while fetches trickle through.
	released := 0
	for round := uint64(2); round <= 6; round++ {
		for i := range keys {
			key := fmt.Sprint("k", i)
			f.set(key, round)
			h.e.Notify(key, round)
		}
		for range 10 {
			gate <- struct{}{}
			released++
		}
	}
	close(gate)
	for i := range keys {
		key := fmt.Sprint("k", i)
		eventually(t, 5*time.Second, func() error {
			if got := conns[i].to("s"); len(got) == 0 || got[len(got)-1] != 6 {
				return fmt.Errorf("%s pushes %v, want last 6", key, got)
			}
			return nil
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.maxTotal > 3 {
		t.Fatalf("%d fetches ran at once, want <= 3 workers", f.maxTotal)
	}
	if f.maxPerKey != 1 {
		t.Fatalf("one key was fetched %d times at once, want 1", f.maxPerKey)
	}
	for i := range keys {
		got := conns[i].to("s")
		if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("conn %d pushes %v not strictly increasing", i, got)
		}
	}
}

func TestEngine_FetchError_NoPushKeepsDatumRetriesWithBackoff(t *testing.T) {
	cfg := TestConfig()
	cfg.Tick = 10 * time.Millisecond
	cfg.RetryBase = 100 * time.Millisecond
	cfg.RetryMax = 400 * time.Millisecond
	f := newFakeFetcher()
	f.set("k", 1, pub("p1", "a", "x"), pub("p2", "a", "y"))
	h := start(t, cfg, f, true)
	c := newFakeConn("c", "a")
	h.subscribedAcked(c, "s", "k")

	// The slot migrates: the read fails.
	f.setErr("k", errMigrating)
	f.set("k", 2, pub("p1", "a", "x"), pub("p2", "a", "y"), pub("p3", "a", "z"))
	h.e.Notify("k", 2)
	h.settled("k", 2)
	wantRetry := func(calls int) {
		t.Helper()
		h.settled("k", calls)
		if st, v, _ := h.keyState("k"); st != keyRetry || v != 1 {
			t.Fatalf("state %d fetched %d, want retry waiting with datum 1 kept", st, v)
		}
	}
	wantRetry(2)
	// Backoff: 100ms, 200ms, 400ms, 400ms.
	for _, wait := range []time.Duration{100, 200, 400, 400} {
		calls := h.f.callsOf("k")
		h.advance(wait*time.Millisecond - cfg.Tick)
		wantRetry(calls) // not yet
		h.advance(cfg.Tick)
		wantRetry(calls + 1)
	}
	if got := c.to("s"); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("pushes during the failure = %v, want only [1]", got)
	}
	h.e.mu.Lock()
	kept := len(h.e.keys["k"].datum.GetPublishers())
	h.e.mu.Unlock()
	if kept != 2 {
		t.Fatalf("kept datum has %d publishers, want the last good 2", kept)
	}

	// The slot is readable again.
	f.setErr("k", nil)
	calls := h.f.callsOf("k")
	h.advance(400 * time.Millisecond)
	h.settled("k", calls+1)
	got := waitPushes(t, c, "s", 2)
	if !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("pushes = %v, want [1 2]", got)
	}
	if n := len(c.all()[1].Publishers); n != 3 {
		t.Fatalf("push after recovery has %d publishers, want 3", n)
	}
	if st, _, _ := h.keyState("k"); st != keyIdle {
		t.Fatalf("state %d after recovery, want idle", st)
	}
}

func TestEngine_FetchError_NewerNoticeRetriesAtOnce(t *testing.T) {
	cfg := TestConfig()
	cfg.RetryBase, cfg.RetryMax = time.Hour, time.Hour
	f := newFakeFetcher()
	f.set("k", 1)
	h := start(t, cfg, f, true)
	c := newFakeConn("c", "a")
	h.e.Subscribe(c, "s", "k", ScopeGlobal, 0)
	h.settled("k", 1)
	f.setErr("k", errMigrating)
	h.e.Notify("k", 2)
	h.settled("k", 2)
	f.setErr("k", nil)
	f.set("k", 3, pub("p", "a", "v"))
	h.e.Notify("k", 3) // no clock movement needed
	h.settled("k", 3)
	if got := waitPushes(t, c, "s", 2); !slices.Equal(got, []uint64{1, 3}) {
		t.Fatalf("pushes = %v, want [1 3]", got)
	}
}

// A key whose fetch was refused (its slot migrating, or the old leader
// asked) retries at once when the leader that can now serve it says so
// with a notice at the same version (a handover completed), or when a
// new slot table arrives (RetryNow), not after its backoff (an hour here).
func TestEngine_FetchError_SameVersionNoticeOrRetryNowEndTheBackoff(t *testing.T) {
	cfg := TestConfig()
	cfg.RetryBase, cfg.RetryMax = time.Hour, time.Hour
	f := newFakeFetcher()
	f.set("k", 1)
	h := start(t, cfg, f, true)
	c := newFakeConn("c", "a")
	h.e.Subscribe(c, "s", "k", ScopeGlobal, 0)
	h.settled("k", 1)

	f.setErr("k", errMigrating)
	h.e.Notify("k", 2)
	h.settled("k", 2) // refused: waiting out an hour
	f.setErr("k", nil)
	f.set("k", 2, pub("p", "a", "v2"))
	h.e.Notify("k", 2) // the same version again: the slot reads now
	h.settled("k", 3)
	if got := waitPushes(t, c, "s", 2); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("pushes = %v, want [1 2]", got)
	}

	f.setErr("k", errMigrating)
	h.e.Notify("k", 3)
	h.settled("k", 4)
	f.setErr("k", nil)
	f.set("k", 3, pub("p", "a", "v3"))
	h.e.RetryNow() // a new table
	h.settled("k", 5)
	if got := waitPushes(t, c, "s", 3); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("pushes = %v, want [1 2 3]", got)
	}
}

func TestEngine_EmptyDatumAtHigherVersion_IsPushed_OlderIgnored(t *testing.T) {
	f := newFakeFetcher()
	f.set("k", 5, pub("p1", "a", "x"))
	h := start(t, TestConfig(), f, false)
	c := newFakeConn("c", "a")
	h.e.Subscribe(c, "s", "k", ScopeGlobal, 0)
	h.settled("k", 1)
	waitPushes(t, c, "s", 1)
	h.e.Ack("c", "s", 5)

	// Everyone unpublished: an empty list at a higher version is real.
	f.set("k", 6)
	h.e.Notify("k", 6)
	h.settled("k", 2)
	got := waitPushes(t, c, "s", 2)
	if !slices.Equal(got, []uint64{5, 6}) {
		t.Fatalf("pushes = %v, want [5 6]", got)
	}
	if p := c.all()[1]; len(p.Publishers) != 0 {
		t.Fatalf("push of version 6 carries %d publishers, want 0", len(p.Publishers))
	}
	h.e.Ack("c", "s", 6)

	// A lagging node answers with older and equal versions: ignored.
	for _, v := range []uint64{4, 6} {
		f.set("k", v, pub("p1", "a", "stale"))
		calls := f.callsOf("k")
		h.e.Notify("k", 7)
		h.settled("k", calls+1)
		if _, fetched, _ := h.keyState("k"); fetched != 6 {
			t.Fatalf("fetched %d after a version-%d answer, want 6", fetched, v)
		}
	}
	if got := c.to("s"); !slices.Equal(got, []uint64{5, 6}) {
		t.Fatalf("pushes = %v, want [5 6]: an older datum was pushed", got)
	}
}

func TestEngine_ScopeZone_FiltersPublishersByConnZone(t *testing.T) {
	f := newFakeFetcher()
	f.set("k", 1, pub("a1", "a", "x"), pub("a2", "a", "y"), pub("b1", "b", "z"))
	h := start(t, TestConfig(), f, false)
	ca, cb := newFakeConn("ca", "a"), newFakeConn("cb", "b")
	h.e.Subscribe(ca, "zone", "k", ScopeZone, 0)
	h.e.Subscribe(ca, "dc", "k", ScopeDatacenter, 0)
	h.e.Subscribe(ca, "global", "k", ScopeGlobal, 0)
	h.e.Subscribe(cb, "zone", "k", ScopeZone, 0)
	h.settled("k", 1)
	ids := func(c *fakeConn, sub string) []string {
		t.Helper()
		waitPushes(t, c, sub, 1)
		var out []string
		for _, p := range c.all() {
			if slices.Contains(p.SubscriberIDs, sub) {
				for _, x := range p.Publishers {
					out = append(out, x.GetRegisterId())
				}
			}
		}
		slices.Sort(out)
		return out
	}
	for _, tt := range []struct {
		c    *fakeConn
		sub  string
		want []string
	}{
		{ca, "zone", []string{"a1", "a2"}},
		{ca, "dc", []string{"a1", "a2", "b1"}},
		{ca, "global", []string{"a1", "a2", "b1"}},
		{cb, "zone", []string{"b1"}},
	} {
		if got := ids(tt.c, tt.sub); !slices.Equal(got, tt.want) {
			t.Errorf("%s/%s got publishers %v, want %v", tt.c.id, tt.sub, got, tt.want)
		}
	}
}

func TestEngine_Ack_RetryBackoff_Supersede(t *testing.T) {
	cfg := TestConfig()
	cfg.Tick = 10 * time.Millisecond
	cfg.AckTimeout = 100 * time.Millisecond
	cfg.RetryMax = 400 * time.Millisecond
	f := newFakeFetcher()
	f.set("k", 1, pub("p", "a", "x"))
	h := start(t, cfg, f, true)
	c := newFakeConn("c", "a")
	h.e.Subscribe(c, "s", "k", ScopeGlobal, 0)
	h.settled("k", 1)
	waitPushes(t, c, "s", 1)

	// No ack: resent after 100, 200, 400, 400 ms.
	n := 1
	for _, wait := range []time.Duration{100, 200, 400, 400} {
		h.advance(wait*time.Millisecond - cfg.Tick)
		if got := len(c.to("s")); got != n {
			t.Fatalf("%d pushes before the ack timeout, want %d", got, n)
		}
		h.advance(cfg.Tick)
		n++
		if got := c.to("s"); len(got) != n || got[n-1] != 1 {
			t.Fatalf("pushes = %v, want %d pushes of version 1", got, n)
		}
	}

	// A newer version supersedes the unacked one: only it is retried.
	f.set("k", 2, pub("p", "a", "y"))
	h.e.Notify("k", 2)
	h.settled("k", 2)
	n++
	waitPushes(t, c, "s", n)
	h.e.Ack("c", "s", 1) // the ack of the superseded push changes nothing
	h.advance(100 * time.Millisecond)
	n++
	if got := c.to("s"); len(got) != n || got[n-1] != 2 {
		t.Fatalf("pushes = %v, want a retry of version 2 only", got)
	}

	// The ack stops retries and releases the bytes.
	h.e.Ack("c", "s", 2)
	for range 5 {
		h.advance(400 * time.Millisecond)
	}
	if got := len(c.to("s")); got != n {
		t.Fatalf("%d pushes after the ack, want %d", got, n)
	}
	h.e.mu.Lock()
	inflight := h.e.conns["c"].inflight
	h.e.mu.Unlock()
	if inflight != 0 {
		t.Fatalf("%d bytes in flight after the ack, want 0", inflight)
	}
	if got := counterValue(t, h, "strata_push_retried_total"); got != 5 {
		t.Fatalf("retried_total = %v, want 5", got)
	}
	if got := counterValue(t, h, "strata_push_superseded_total"); got != 1 {
		t.Fatalf("superseded_total = %v, want 1", got)
	}
	if got := histogramCount(t, h, "strata_push_latency_seconds"); got != 1 {
		t.Fatalf("latency observations = %d, want 1", got)
	}
}

func TestEngine_StalledClient_ClosedAndDropped_OthersServed(t *testing.T) {
	cfg := TestConfig()
	cfg.MaxInflightBytes = 16 << 10
	f := newFakeFetcher()
	big := strings.Repeat("v", 3000)
	f.set("k", 1, pub("p", "a", big))
	h := start(t, cfg, f, false)
	stalled, healthy := newFakeConn("stalled", "a"), newFakeConn("healthy", "a")
	h.e.Subscribe(stalled, "s", "k", ScopeGlobal, 0)
	h.e.Subscribe(stalled, "s2", "k", ScopeGlobal, 0)
	h.e.Subscribe(healthy, "s", "k", ScopeGlobal, 0)
	h.settled("k", 1)
	waitPushes(t, healthy, "s", 1)
	h.e.Ack("healthy", "s", 1)

	for v := uint64(2); v <= 20; v++ {
		f.set("k", v, pub("p", "a", big+fmt.Sprint(v)))
		h.e.Notify("k", v)
		h.settled("k", int(v))
		waitPushes(t, healthy, "s", int(v))
		h.e.Ack("healthy", "s", v)
	}
	if got := stalled.closes(); len(got) != 1 || !strings.Contains(got[0], "stalled") {
		t.Fatalf("stalled conn closes = %q, want one for stalling", got)
	}
	sent := 0
	for _, p := range stalled.all() {
		sent += p.Size
	}
	if limit := int(cfg.MaxInflightBytes); sent > limit {
		t.Fatalf("%d bytes sent to the stalled client, want <= cap %d", sent, limit)
	}
	h.e.mu.Lock()
	_, still := h.e.conns["stalled"]
	nsubs := len(h.e.keys["k"].subs)
	h.e.mu.Unlock()
	if still || nsubs != 1 {
		t.Fatalf("stalled conn state kept=%v, key subscribers %d; want dropped, 1", still, nsubs)
	}
	if got := healthy.to("s"); len(got) != 20 || got[19] != 20 {
		t.Fatalf("healthy client pushes %v, want 1..20", got)
	}
	if got := labeledValue(t, h, "strata_push_failed_total", "stalled"); got != 1 {
		t.Fatalf("failed_total = %v, want 1", got)
	}
}

func TestEngine_SendError_Disconnects(t *testing.T) {
	f := newFakeFetcher()
	f.set("k", 1)
	h := start(t, TestConfig(), f, false)
	c := newFakeConn("c", "a")
	c.sendErr = errors.New("stream closed")
	h.e.Subscribe(c, "s", "k", ScopeGlobal, 0)
	h.settled("k", 1)
	eventually(t, 5*time.Second, func() error {
		if len(c.closes()) != 1 {
			return errors.New("conn not closed")
		}
		return nil
	})
	if keys := h.e.Keys(); len(keys) != 0 {
		t.Fatalf("Keys() = %v after the only conn failed, want none", keys)
	}
}

func TestEngine_Subscribe_KnownDatum_SnapshotToNewSubscriberOnly(t *testing.T) {
	f := newFakeFetcher()
	f.set("k", 3, pub("p", "a", "x"))
	h := start(t, TestConfig(), f, true)
	old := newFakeConn("old", "a")
	h.e.Subscribe(old, "s", "k", ScopeGlobal, 0)
	h.settled("k", 1)
	waitPushes(t, old, "s", 1)
	h.e.Ack("old", "s", 3)

	// Pushed synchronously from the known datum, without a fetch.
	fresh := newFakeConn("new", "a")
	h.e.Subscribe(fresh, "s", "k", ScopeGlobal, 0)
	if got := fresh.to("s"); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("new subscriber pushes = %v, want [3] at once", got)
	}
	// A client that replays its subscription with the current version gets
	// nothing; one with an older version gets the snapshot.
	current, behind := newFakeConn("current", "a"), newFakeConn("behind", "a")
	h.e.Subscribe(current, "s", "k", ScopeGlobal, 3)
	h.e.Subscribe(behind, "s", "k", ScopeGlobal, 2)
	h.settled("k", 1)
	if got := current.to("s"); len(got) != 0 {
		t.Fatalf("current subscriber pushes = %v, want none", got)
	}
	if got := behind.to("s"); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("behind subscriber pushes = %v, want [3]", got)
	}
	if got := old.to("s"); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("existing subscriber pushes = %v, want only its own [3]", got)
	}
}

func TestEngine_Subscribe_NoDatum_PushesEmptySnapshot(t *testing.T) {
	f := newFakeFetcher() // the key has no publishers: version 0
	h := start(t, TestConfig(), f, false)
	c := newFakeConn("c", "a")
	h.e.Subscribe(c, "s", "k", ScopeGlobal, 0)
	h.settled("k", 1)
	got := waitPushes(t, c, "s", 1)
	if !slices.Equal(got, []uint64{0}) || len(c.all()[0].Publishers) != 0 {
		t.Fatalf("pushes = %v, want one empty snapshot at version 0", got)
	}
}

func TestEngine_UnsubscribeAndRemoveConn_StopPushes(t *testing.T) {
	f := newFakeFetcher()
	f.set("k", 1)
	f.set("j", 1)
	h := start(t, TestConfig(), f, false)
	c1, c2 := newFakeConn("c1", "a"), newFakeConn("c2", "a")
	h.e.Subscribe(c1, "s", "k", ScopeGlobal, 0)
	h.e.Subscribe(c1, "t", "j", ScopeGlobal, 0)
	h.e.Subscribe(c2, "s", "k", ScopeGlobal, 0)
	h.settled("k", 1)
	h.settled("j", 1)
	waitPushes(t, c1, "s", 1)
	waitPushes(t, c2, "s", 1)

	h.e.Unsubscribe("c1", "s")
	h.e.RemoveConn("c2")
	f.set("k", 2)
	h.e.Notify("k", 2)
	// No subscriber left for k: not fetched, not listed.
	h.settled("k", 1)
	if got := h.e.Keys(); !slices.Equal(got, []string{"j"}) {
		t.Fatalf("Keys() = %v, want [j]", got)
	}
	if got := h.e.Fetched("k"); got != 0 {
		t.Fatalf("Fetched(k) = %d after its last subscriber left, want 0", got)
	}
	f.set("j", 2)
	h.e.Notify("j", 2)
	h.settled("j", 2)
	waitPushes(t, c1, "t", 2)
	if got := c1.to("s"); len(got) != 1 {
		t.Fatalf("unsubscribed got %v, want only the first push", got)
	}
	if got := c2.to("s"); len(got) != 1 {
		t.Fatalf("removed conn got %v, want only the first push", got)
	}
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	if n := h.e.subTimers.len(); n != 1 {
		t.Fatalf("%d ack timers, want only the one of c1/t", n)
	}
}

func TestEngine_KeysAndFetched_ForVersionScan(t *testing.T) {
	f := newFakeFetcher()
	f.set("k", 7)
	h := start(t, TestConfig(), f, false)
	if got := h.e.Keys(); len(got) != 0 {
		t.Fatalf("Keys() = %v, want none", got)
	}
	c := newFakeConn("c", "a")
	h.e.Subscribe(c, "s", "k", ScopeGlobal, 0)
	h.settled("k", 1)
	if got := h.e.Keys(); !slices.Equal(got, []string{"k"}) {
		t.Fatalf("Keys() = %v, want [k]", got)
	}
	if got := h.e.Fetched("k"); got != 7 {
		t.Fatalf("Fetched(k) = %d, want 7", got)
	}
	// The scan finds a newer version whose notice was lost.
	f.set("k", 9)
	h.e.Notify("k", 9)
	h.settled("k", 2)
	if got := h.e.Fetched("k"); got != 9 {
		t.Fatalf("Fetched(k) = %d, want 9", got)
	}
}

func TestEngine_Coalesce_DelaysFollowUpAtMostCap(t *testing.T) {
	cfg := TestConfig()
	cfg.Tick = 10 * time.Millisecond
	cfg.Coalesce = 50 * time.Millisecond
	f := newFakeFetcher()
	f.set("k", 1)
	h := start(t, cfg, f, true)
	c := newFakeConn("c", "a")
	h.e.Subscribe(c, "s", "k", ScopeGlobal, 0)
	h.settled("k", 1) // the first fetch does not wait
	f.set("k", 3)
	h.e.Notify("k", 2)
	h.e.Notify("k", 3)
	if st, _, _ := h.keyState("k"); st != keyCoalesce {
		t.Fatalf("state %d, want waiting for the coalesce cap", st)
	}
	h.advance(40 * time.Millisecond)
	h.settled("k", 1)
	h.advance(10 * time.Millisecond)
	h.settled("k", 2)
	if got := waitPushes(t, c, "s", 2); !slices.Equal(got, []uint64{1, 3}) {
		t.Fatalf("pushes = %v, want [1 3]", got)
	}
	// After a quiet spell longer than the cap, a change goes out at once.
	h.advance(time.Second)
	f.set("k", 4)
	h.e.Notify("k", 4)
	h.settled("k", 3)
}

func TestEngine_Run_ReturnsWhenContextEnds(t *testing.T) {
	f := newFakeFetcher()
	f.setGate(make(chan struct{})) // a fetch is blocked at shutdown
	e, err := New(TestConfig(), Deps{Fetcher: f})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	<-e.Ready()
	e.Subscribe(newFakeConn("c", "a"), "s", "k", ScopeGlobal, 0)
	<-f.started
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if err := e.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded, want an error")
	}
	// goleak in TestMain checks that no goroutine is left.
}

func TestNew_RejectsBadConfig(t *testing.T) {
	f := newFakeFetcher()
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"no workers", func(c *Config) { c.FetchWorkers = 0 }},
		{"zero fetch timeout", func(c *Config) { c.FetchTimeout = 0 }},
		{"negative coalesce", func(c *Config) { c.Coalesce = -1 }},
		{"retry max below base", func(c *Config) { c.RetryMax = c.RetryBase / 2 }},
		{"retry max below ack timeout", func(c *Config) { c.AckTimeout = c.RetryMax * 2 }},
		{"zero cap", func(c *Config) { c.MaxInflightBytes = 0 }},
		{"zero tick", func(c *Config) { c.Tick = 0 }},
		{"negative ack delay", func(c *Config) { c.AckDelay = -1 }},
		{"ack delay past a quarter of the ack timeout", func(c *Config) { c.AckDelay = c.AckTimeout/4 + 1 }},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		tt.mod(&cfg)
		if _, err := New(cfg, Deps{Fetcher: f}); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: New error = %v, want ErrBadConfig", tt.name, err)
		}
	}
	if _, err := New(DefaultConfig(), Deps{}); !errors.Is(err, ErrBadConfig) {
		t.Errorf("no fetcher: New error = %v, want ErrBadConfig", err)
	}
	for _, cfg := range []Config{DefaultConfig(), TestConfig()} {
		if err := cfg.Validate(); err != nil {
			t.Errorf("shipped config invalid: %v", err)
		}
	}
}

func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		n    uint8
		want time.Duration
	}{{0, 100}, {1, 200}, {2, 400}, {3, 500}, {62, 500}} {
		if got := backoff(100, 500, tt.n); got != tt.want {
			t.Errorf("backoff(100, 500, %d) = %v, want %v", tt.n, got, tt.want)
		}
	}
}

func metric(t *testing.T, h *harness, name string) *dto.Metric {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0]
		}
	}
	t.Fatalf("metric %s not registered", name)
	return nil
}

func counterValue(t *testing.T, h *harness, name string) float64 {
	return metric(t, h, name).GetCounter().GetValue()
}

func histogramCount(t *testing.T, h *harness, name string) uint64 {
	return metric(t, h, name).GetHistogram().GetSampleCount()
}

func labeledValue(t *testing.T, h *harness, name, label string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{%s} not found", name, label)
	return 0
}

// TestEngine_NotifyAt_LatencyFromTheDataChange: push latency counts from
// the change on the data node, not from the notice's arrival; a change
// time in the future (clock skew) counts as the arrival.
func TestEngine_NotifyAt_LatencyFromTheDataChange(t *testing.T) {
	f := newFakeFetcher()
	f.set("k", 1, pub("p", "a", "x"))
	h := start(t, TestConfig(), f, true)
	c := newFakeConn("c", "a")
	h.subscribedAcked(c, "s", "k")
	sum := func() float64 { return metric(t, h, "strata_push_latency_seconds").GetHistogram().GetSampleSum() }
	before := sum()

	f.set("k", 2, pub("p", "a", "y"))
	h.e.NotifyAt("k", 2, h.clock.Now().Add(-2*time.Second))
	h.settled("k", 2)
	waitPushes(t, c, "s", 2)
	h.e.Ack("c", "s", 2)
	if got := sum() - before; got < 2 || got > 2.5 {
		t.Errorf("latency of a change made 2s before its notice = %.3fs, want 2s (the fake clock did not move)", got)
	}

	before = sum()
	f.set("k", 3, pub("p", "a", "z"))
	h.e.NotifyAt("k", 3, h.clock.Now().Add(time.Hour))
	h.settled("k", 3)
	waitPushes(t, c, "s", 3)
	h.e.Ack("c", "s", 3)
	if got := sum() - before; got < 0 || got > 0.5 {
		t.Errorf("latency of a change stamped in the future = %.3fs, want ~0", got)
	}
}

// TestEngine_Offer_QuietKeyPushedWithoutFetch_BusyKeyFetches: a datum that
// came with its notice is pushed at once on a quiet key (no fetch); an
// older one is ignored; one offered while a fetch is in flight counts as a
// notice and the follow-up fetch carries it.
func TestEngine_Offer_QuietKeyPushedWithoutFetch_BusyKeyFetches(t *testing.T) {
	f := newFakeFetcher()
	f.set("k", 1, pub("p1", "a", "x"))
	h := start(t, TestConfig(), f, true)
	c := newFakeConn("c", "a")
	h.subscribedAcked(c, "s", "k")

	h.e.Offer(&registryv1.Datum{DataInfoId: "k", Version: 2, Publishers: []*registryv1.Publisher{pub("p1", "a", "x"), pub("p2", "a", "y")}}, time.Time{})
	if got := waitPushes(t, c, "s", 2); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("pushes %v, want [1 2]", got)
	}
	if n := f.callsOf("k"); n != 1 {
		t.Fatalf("%d fetches, want only the first (the offered datum needs none)", n)
	}
	if n := len(c.all()[1].Publishers); n != 2 {
		t.Fatalf("offered push carries %d publishers, want 2", n)
	}
	h.e.Ack("c", "s", 2)
	// Older or equal: nothing.
	h.e.Offer(&registryv1.Datum{DataInfoId: "k", Version: 2}, time.Time{})
	h.e.Offer(&registryv1.Datum{DataInfoId: "k", Version: 1}, time.Time{})
	h.settled("k", 1)
	if got := len(c.to("s")); got != 2 {
		t.Fatalf("%d pushes after stale offers, want 2", got)
	}

	// Busy: a fetch is in flight (held by the gate); the offer waits for it.
	gate := make(chan struct{})
	f.setGate(gate)
	f.set("k", 3, pub("p1", "a", "z"))
	h.e.Notify("k", 3)
	eventually(t, 5*time.Second, func() error {
		if st, _, _ := h.keyState("k"); st != keyFetching {
			return fmt.Errorf("key state %d, want fetching", st)
		}
		return nil
	})
	f.set("k", 4, pub("p1", "a", "w"))
	h.e.Offer(&registryv1.Datum{DataInfoId: "k", Version: 4, Publishers: []*registryv1.Publisher{pub("p1", "a", "w")}}, time.Time{})
	close(gate)
	h.settled("k", 3)
	if got := waitPushes(t, c, "s", 4); got[len(got)-1] != 4 {
		t.Fatalf("pushes %v, want the offered version 4 last (via the follow-up fetch)", got)
	}
	if n := f.callsOf("k"); n != 3 {
		t.Fatalf("%d fetches, want 3: the first, the notice's, and one follow-up for the offer made during it", n)
	}
}

// TestEngine_AckAll_HeldTimeLeftOutOfTheLatency_CappedAtTwiceTheDelay: a
// client that held its ack (Config.AckDelay) says for how long, and the
// push latency leaves that out; a claim beyond twice the delay counts as
// twice the delay, and the latency never goes below zero.
func TestEngine_AckAll_HeldTimeLeftOutOfTheLatency_CappedAtTwiceTheDelay(t *testing.T) {
	f := newFakeFetcher()
	f.set("k", 1, pub("p", "a", "x"))
	cfg := TestConfig()
	cfg.AckDelay = 20 * time.Millisecond
	h := start(t, cfg, f, true)
	c := newFakeConn("c", "a")
	h.subscribedAcked(c, "s", "k")
	sum := func() float64 { return metric(t, h, "strata_push_latency_seconds").GetHistogram().GetSampleSum() }

	for i, x := range []struct {
		since, held, want time.Duration
	}{
		{since: 2 * time.Second, held: 15 * time.Millisecond, want: 2*time.Second - 15*time.Millisecond},
		{since: 2 * time.Second, held: time.Hour, want: 2*time.Second - 40*time.Millisecond}, // capped
		{since: 10 * time.Millisecond, held: 30 * time.Millisecond, want: 0},                 // never negative
	} {
		v := uint64(i + 2)
		f.set("k", v, pub("p", "a", fmt.Sprint("v", v)))
		h.e.NotifyAt("k", v, h.clock.Now().Add(-x.since))
		h.settled("k", i+2)
		waitPushes(t, c, "s", i+2)
		before := sum()
		h.e.AckAll("c", v, "s", nil, x.held)
		if got := time.Duration((sum() - before) * float64(time.Second)); got < x.want-time.Millisecond || got > x.want+time.Millisecond {
			t.Errorf("change %v ago, ack held %v: latency %v, want %v", x.since, x.held, got, x.want)
		}
	}
	if got := metric(t, h, "strata_push_unacked").GetGauge().GetValue(); got != 0 {
		t.Fatalf("unacked = %v after the held acks, want 0", got)
	}
}
