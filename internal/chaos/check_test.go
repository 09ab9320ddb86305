package chaos

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/strata-registry/strata/pkg/client"
)

// history drives a checker with synthetic events: two publications (a,
// b) of key k, a third (c) of key j, two subscribers (s0, s1) following
// both keys, and a clock that moves only when told.
type history struct {
	t   *testing.T
	ch  *Checker
	now time.Time
	seq map[string]uint64
}

var testPubs = []Publication{{RegisterID: "ra", Name: "a", Key: "k"}, {RegisterID: "rb", Name: "b", Key: "k"}, {RegisterID: "rc", Name: "c", Key: "j"}}

func newHistory(t *testing.T, bound time.Duration) *history {
	h := &history{t: t, now: time.Unix(1000, 0), seq: map[string]uint64{}}
	h.ch = NewChecker(CheckConfig{Publications: testPubs, Subscribers: []string{"s0", "s1"}, Keys: []string{"k", "j"}, ConvergenceBound: bound})
	return h
}

func (h *history) tick(d time.Duration) { h.now = h.now.Add(d) }

// update sends and acks the next value of publication name.
func (h *history) update(name string) uint64 {
	id := "r" + name
	h.seq[name]++
	h.ch.Sent(id, h.seq[name], h.now)
	h.ch.Acked(id, h.seq[name], h.now, nil)
	return h.seq[name]
}

// sees reports a snapshot of key at version holding name:seq pairs
// ("a", 2, "b", 1, ...) to subscriber sub.
func (h *history) sees(sub, key string, version uint64, pairs ...any) {
	var vals []client.Value
	for i := 0; i < len(pairs); i += 2 {
		name := pairs[i].(string)
		seq := uint64(pairs[i+1].(int))
		vals = append(vals, client.Value{PublisherID: "r" + name, Data: Value(name, seq)})
	}
	h.ch.Observed(sub, key, h.now, client.Snapshot{Version: version, Values: vals})
}

// both reports the same snapshot to both subscribers.
func (h *history) both(key string, version uint64, pairs ...any) {
	h.sees("s0", key, version, pairs...)
	h.sees("s1", key, version, pairs...)
}

// clean is a history with no violation: first values, two updates, every
// subscriber following.
func (h *history) clean() {
	h.update("a")
	h.update("b")
	h.update("c")
	h.tick(time.Millisecond)
	h.both("k", 1, "a", 1, "b", 1)
	h.both("j", 1, "c", 1)
	h.update("a")
	h.tick(2 * time.Millisecond)
	h.both("k", 2, "a", 2, "b", 1)
}

func (h *history) counts(r *Result) map[Property]uint64 {
	out := map[Property]uint64{}
	for p := Property(1); p <= propertyCount; p++ {
		if r.Counts[p] > 0 {
			out[p] = r.Counts[p]
		}
	}
	return out
}

func TestChecker_CleanHistory_NoViolation_LatencyMeasured(t *testing.T) {
	h := newHistory(t, time.Second)
	h.clean()
	r := h.ch.Finish(h.now)
	if !r.OK() {
		t.Fatalf("violations in a clean history: %+v", r.Violations)
	}
	if r.Sent != 4 || r.Acked != 4 || r.Snapshots != 6 {
		t.Errorf("ops: sent %d acked %d snapshots %d; want 4, 4, 6", r.Sent, r.Acked, r.Snapshots)
	}
	// a:2 reached both subscribers 2 ms after it was sent.
	if got := r.Baseline.Max(); got < 2*time.Millisecond || got > 2200*time.Microsecond {
		t.Errorf("baseline max latency %v, want 2ms", got)
	}
}

// TestChecker_DetectsEachProperty feeds the checker histories that break
// one property each and checks it reports that one (and only that one).
func TestChecker_DetectsEachProperty(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Property
		then func(h *history)
	}{
		{"final snapshot lacks the last acked value", FinalExact, func(h *history) {
			h.update("b") // b:2 acked, never shown
		}},
		{"final snapshot misses a publication", FinalExact, func(h *history) {
			h.both("j", 2) // c never shown again: also vanishes
		}},
		{"a value nobody published", FinalExact, func(h *history) {
			h.sees("s0", "j", 2, "c", 1, "x", 1)
		}},
		{"a value never sent", FinalExact, func(h *history) {
			h.sees("s0", "j", 2, "c", 9)
		}},
		{"version goes back", NeverBack, func(h *history) {
			h.update("a")
			h.both("k", 3, "a", 3, "b", 1)
			h.sees("s0", "k", 3, "a", 3, "b", 1)
		}},
		{"value goes back under a higher version", NeverBack, func(h *history) {
			h.both("k", 3, "a", 1, "b", 1)
			h.update("a")
			h.both("k", 4, "a", 3, "b", 1)
		}},
		{"a live publication vanishes", NeverVanish, func(h *history) {
			h.sees("s1", "k", 3, "a", 2)
			h.sees("s1", "k", 4, "a", 2, "b", 1)
			h.sees("s0", "k", 3, "a", 2)
			h.sees("s0", "k", 4, "a", 2, "b", 1)
		}},
		{"one version, two contents", OneContent, func(h *history) {
			h.update("b")
			h.sees("s0", "k", 3, "a", 2, "b", 1)
			h.sees("s1", "k", 3, "a", 2, "b", 2)
			h.sees("s0", "k", 4, "a", 2, "b", 2)
		}},
		{"no convergence after a heal", Converges, func(h *history) {
			i := h.ch.FaultStarted(FaultStart{Kind: KillData, Target: "data-0", At: h.now})
			h.update("c")
			h.ch.FaultHealed(i, h.now, nil)
			h.tick(5 * time.Second)
			h.sees("s0", "j", 2, "c", 2) // s1 never shows c:2
			h.sees("s1", "j", 3, "c", 2) // ...until past the bound
			h.sees("s0", "j", 3, "c", 2)
		}},
		{"a fault never healed", Converges, func(h *history) {
			h.ch.FaultStarted(FaultStart{Kind: StopData, Target: "data-0", At: h.now})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHistory(t, time.Second)
			h.clean()
			tc.then(h)
			r := h.ch.Finish(h.now)
			got := h.counts(r)
			if got[tc.want] == 0 {
				t.Fatalf("no %s violation; got %v: %+v", tc.want, got, r.Violations)
			}
			for p := range got {
				// A publication missing from the final snapshot has also
				// vanished: the one pair allowed together.
				if p != tc.want && !(tc.want == FinalExact && p == NeverVanish) && !(tc.want == NeverVanish && p == FinalExact) {
					t.Errorf("also a %s violation: %+v", p, r.Violations)
				}
			}
		})
	}
}

func TestChecker_StallSplitsPairsOnAndOffTheFaultyNode(t *testing.T) {
	h := newHistory(t, 10*time.Second)
	h.clean()
	// Key k is on the faulty data node; j is not.
	i := h.ch.FaultStarted(FaultStart{Kind: KillData, Target: "data-1", At: h.now, Blast: Blast{Keys: map[string]bool{"k": true}}})
	h.update("a") // a:3, on
	h.update("c") // c:2, off
	h.tick(10 * time.Millisecond)
	h.both("j", 2, "c", 2)
	h.tick(3 * time.Second)
	h.both("k", 3, "a", 3, "b", 1)
	h.ch.FaultHealed(i, h.now, nil)
	if d, ok := h.ch.Convergence(i); !ok || d != 0 {
		t.Errorf("convergence %v %v, want 0 true (everything arrived before the heal)", d, ok)
	}
	r := h.ch.Finish(h.now)
	if !r.OK() {
		t.Fatalf("violations: %+v", r.Violations)
	}
	f := r.Faults[0]
	if f.StallOn != 3010*time.Millisecond || f.StallOff != 10*time.Millisecond || f.OnKeys != 1 || f.PairsOn != 2 || f.PairsOff != 2 {
		t.Errorf("fault stats %+v; want on 3.01s, off 10ms, 1 key, 2 pairs each", f)
	}
	if r.OffFault.Count() != 1 || r.OnFault.Count() != 1 {
		t.Errorf("fault histograms: off %d on %d updates, want 1 each", r.OffFault.Count(), r.OnFault.Count())
	}
}

func TestChecker_SessionFault_OnlyItsClientsPairsAreOn(t *testing.T) {
	h := newHistory(t, 10*time.Second)
	h.clean()
	i := h.ch.FaultStarted(FaultStart{Kind: StopSession, Target: "session-0", At: h.now,
		Blast:       Blast{Sessions: map[string]bool{"S0": true}},
		PubSessions: map[string]string{"ra": "S1", "rb": "S1", "rc": "S1"},
		SubSessions: map[string]string{"s0": "S0", "s1": "S1"}})
	h.update("c")
	h.tick(5 * time.Millisecond)
	h.sees("s1", "j", 2, "c", 2)
	h.tick(2 * time.Second)
	h.sees("s0", "j", 2, "c", 2)
	h.ch.FaultHealed(i, h.now, nil)
	f := h.ch.Finish(h.now).Faults[0]
	if f.StallOn != 2005*time.Millisecond || f.StallOff != 5*time.Millisecond {
		t.Errorf("on %v off %v; want 2.005s (s0, on the frozen session) and 5ms", f.StallOn, f.StallOff)
	}
}

func TestChecker_ConvergenceAfterHeal_Measured(t *testing.T) {
	h := newHistory(t, 10*time.Second)
	h.clean()
	i := h.ch.FaultStarted(FaultStart{Kind: KillSession, At: h.now})
	h.update("c")
	h.tick(time.Second)
	h.ch.FaultHealed(i, h.now, errors.New("restart failed"))
	h.tick(700 * time.Millisecond)
	if _, ok := h.ch.Convergence(i); ok {
		t.Fatal("converged before any subscriber showed c:2")
	}
	h.both("j", 2, "c", 2)
	d, ok := h.ch.Convergence(i)
	if !ok || d != 700*time.Millisecond {
		t.Errorf("convergence %v %v, want 700ms", d, ok)
	}
	r := h.ch.Finish(h.now)
	if r.WorstConv != 700*time.Millisecond || r.Faults[0].Error != "restart failed" {
		t.Errorf("worst %v, fault %+v", r.WorstConv, r.Faults[0])
	}
}

func TestSchedule_SameSeedSameFaults(t *testing.T) {
	a := Schedule(42, AllKinds, 50, false, DefaultTiming)
	b := Schedule(42, AllKinds, 50, false, DefaultTiming)
	c := Schedule(43, AllKinds, 50, false, DefaultTiming)
	if !slices.Equal(a, b) {
		t.Error("seed 42 gave two schedules")
	}
	if slices.Equal(a, c) {
		t.Error("seeds 42 and 43 gave the same schedule")
	}
	for _, p := range a {
		if p.Hold < DefaultTiming.HoldMin || p.Hold >= DefaultTiming.HoldMax || p.Gap < DefaultTiming.GapMin || p.Gap >= DefaultTiming.GapMax {
			t.Errorf("%+v outside %+v", p, DefaultTiming)
		}
	}
	o := Schedule(1, []Kind{KillData, MetaLeader}, 4, true, DefaultTiming)
	if o[0].Kind != KillData || o[1].Kind != MetaLeader || o[2].Kind != KillData || o[3].Kind != MetaLeader {
		t.Errorf("ordered schedule %+v", o)
	}
}

func TestParseKinds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Kind
		err  bool
	}{
		{"", AllKinds, false},
		{"kill-data, meta-leader", []Kind{KillData, MetaLeader}, false},
		{"session", []Kind{KillSession, StopSession, RestartSession}, false},
		{"partition", []Kind{CutSessionData, CutDataMeta, CutSessionAll}, false},
		{"meta", []Kind{KillMeta, StopMeta, RestartMeta, MetaLeader, MetaQuorum}, false},
		{"kill-dta", nil, true},
	} {
		got, err := ParseKinds(tc.in)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("ParseKinds(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestHist_Quantiles(t *testing.T) {
	var h Hist
	for i := 1; i <= 1000; i++ {
		h.Add(time.Duration(i) * time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := h.Quantile(tc.q)
		if got < tc.want || float64(got) > float64(tc.want)*1.05 {
			t.Errorf("q%v = %v, want %v (within a bucket, 5%%)", tc.q, got, tc.want)
		}
	}
	if h.Max() != time.Second || h.Count() != 1000 {
		t.Errorf("max %v count %d", h.Max(), h.Count())
	}
}
