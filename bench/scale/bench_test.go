package main

import (
	"slices"
	"testing"
	"time"
)

func TestParseShapes(t *testing.T) {
	got, err := parseShapes("1/1/1, 3/3/2")
	if err != nil {
		t.Fatal(err)
	}
	if want := []Shape{{1, 1, 1}, {3, 3, 2}}; !slices.Equal(got, want) {
		t.Errorf("parseShapes = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "3/3", "3/3/0", "a/b/c", "3/3/2,"} {
		if _, err := parseShapes(bad); err == nil {
			t.Errorf("parseShapes(%q) took it", bad)
		}
	}
}

func TestParseFlags_OnlyPicksPhases_PacedImpliesStorm_MillionNeedsAsking(t *testing.T) {
	o, err := parseFlags([]string{"--only", "paced,idle", "--shapes", "1/1/1"})
	if err != nil {
		t.Fatal(err)
	}
	for phase, want := range map[string]bool{phaseIdle: true, phaseStorm: true, phasePaced: true, phaseRestart: false, phaseFanout: false, phaseMillion: false} {
		if o.enabled(phase) != want {
			t.Errorf("--only paced,idle: enabled(%s) = %v, want %v", phase, !want, want)
		}
	}
	o, err = parseFlags([]string{"--fanout", "0", "--million"})
	if err != nil {
		t.Fatal(err)
	}
	if o.enabled(phaseFanout) || !o.enabled(phaseMillion) || !o.enabled(phaseStorm) {
		t.Errorf("--fanout 0 --million: fanout %v million %v storm %v", o.enabled(phaseFanout), o.enabled(phaseMillion), o.enabled(phaseStorm))
	}
	if _, err := parseFlags([]string{"--only", "storms"}); err == nil {
		t.Error("an unknown phase was taken")
	}
	if _, err := parseFlags([]string{"--clients", "0"}); err == nil {
		t.Error("--clients 0 was taken")
	}
}

func TestValueOf_SizedAndCarriesItsGeneration(t *testing.T) {
	v := valueOf(2, 70000, 100)
	if len(v) != 100 {
		t.Errorf("len = %d, want 100", len(v))
	}
	if g := generationOf(v); g != 2 {
		t.Errorf("generationOf(%q) = %d, want 2", v, g)
	}
	if string(valueOf(1, 5, 100)) == string(valueOf(1, 6, 100)) {
		t.Error("two publishers have the same value")
	}
	for _, bad := range []string{"", "x", "g 1", "gx 1", "7"} {
		if g := generationOf([]byte(bad)); g != -1 {
			t.Errorf("generationOf(%q) = %d, want -1", bad, g)
		}
	}
}

func TestShare_CoversEveryIndexOnce(t *testing.T) {
	seen := map[int]int{}
	for c := range 7 {
		for _, i := range share(c, 7, 100) {
			seen[i]++
		}
	}
	for i := range 100 {
		if seen[i] != 1 {
			t.Fatalf("index %d taken %d times", i, seen[i])
		}
	}
}

func TestProbe_CountsOnlyTheWindow_MergedValuesArriveWithTheNewer(t *testing.T) {
	p := newProbe()
	t0 := time.Unix(1000, 0)
	before := p.sent(t0) // before the window: never counted
	p.open(t0.Add(time.Second))
	_ = p.sent(t0.Add(2 * time.Second)) // a
	b := p.sent(t0.Add(3 * time.Second))
	if p.waiting() != 2 {
		t.Errorf("waiting = %d, want 2", p.waiting())
	}
	// b arrives; a was merged into it.
	p.arrived(b, t0.Add(3*time.Second+10*time.Millisecond))
	if p.waiting() != 0 {
		t.Errorf("waiting after b = %d, want 0", p.waiting())
	}
	p.close(t0.Add(4 * time.Second))
	after := p.sent(t0.Add(5 * time.Second))
	p.arrived(after, t0.Add(5*time.Second+time.Millisecond))
	l := p.latency()
	if l.Count != 2 {
		t.Fatalf("count = %d, want 2 (a and b; not %d before nor %d after the window)", l.Count, before, after)
	}
	if l.MaxMs < 1000 || l.MaxMs > 1020 {
		t.Errorf("max = %v ms, want about 1010 (a, merged into b)", l.MaxMs)
	}
}

func TestFootprint_PerCopyOnData_PerPublisherOnSessions(t *testing.T) {
	nodes := []NodeMemory{
		{ID: "data-0", Role: "data", Before: Mem{HeapInuse: 1000}, After: Mem{HeapInuse: 1000 + 300_000, RSS: 600_000}},
		{ID: "data-1", Role: "data", Before: Mem{HeapInuse: 1000}, After: Mem{HeapInuse: 1000 + 300_000, RSS: 600_000}},
		{ID: "session-0", Role: "session", Before: Mem{HeapInuse: 5000}, After: Mem{HeapInuse: 5000 + 400_000}},
	}
	f := newFootprint(1000, 2, "test", nodes)
	if f.DataHeapPerCopy != 300 || f.DataRSSPerCopy != 600 || f.SessionHeapPerPublisher != 400 {
		t.Errorf("footprint = %+v, want 300 B per copy, 600 B RSS per copy, 400 B per publisher on sessions", f)
	}
	e := newFootprint(1000, 1, "single", []NodeMemory{{ID: "etcd", Role: etcdRole, Before: Mem{HeapInuse: 10}, After: Mem{HeapInuse: 950_010}}})
	if e.DataHeapPerCopy != 950 || e.SessionHeapPerPublisher != 0 {
		t.Errorf("etcd footprint = %+v, want 950 B per key", e)
	}
}

func TestMemOf_NeedsEveryFigure_LowerMemTakesEachMinimum(t *testing.T) {
	m, err := memOf(map[string]float64{metricHeapInuse: 10, metricStackInuse: 2, metricRSS: 30, "other": 1})
	if err != nil || m != (Mem{HeapInuse: 10, StackInuse: 2, RSS: 30}) {
		t.Fatalf("memOf = %+v, %v", m, err)
	}
	if _, err := memOf(map[string]float64{metricHeapInuse: 10}); err == nil {
		t.Error("memOf without stack and RSS took it")
	}
}
