package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/chaos"
)

func ptr(v float64) *float64 { return &v }

func TestMedian_OddEvenEmpty_LeavesOutNaN(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want *float64
	}{
		{nil, nil},
		{[]float64{math.NaN()}, nil},
		{[]float64{3}, ptr(3)},
		{[]float64{5, 1, 3}, ptr(3)},
		{[]float64{4, 1, 3, 2}, ptr(2.5)},
		{[]float64{1, math.NaN(), 3}, ptr(2)},
	} {
		got := median(tc.in)
		if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
			t.Errorf("median(%v) = %v, want %v", tc.in, deref(got), deref(tc.want))
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestRatio_MissingOrZeroDivisorIsNil(t *testing.T) {
	if r := ratio(ptr(3), ptr(2)); r == nil || *r != 1.5 {
		t.Errorf("ratio(3, 2) = %v, want 1.5", deref(r))
	}
	for _, tc := range [][2]*float64{{nil, ptr(1)}, {ptr(1), nil}, {ptr(1), ptr(0)}} {
		if r := ratio(tc[0], tc[1]); r != nil {
			t.Errorf("ratio(%v, %v) = %v, want nil", deref(tc[0]), deref(tc[1]), *r)
		}
	}
}

func TestFormatValue_ByUnit(t *testing.T) {
	for _, tc := range []struct {
		v    *float64
		unit string
		want string
	}{
		{nil, unitMs, "–"},
		{ptr(12345.6), unitRate, "12,346/s"},
		{ptr(0.456), unitMs, "0.46 ms"},
		{ptr(12.34), unitMs, "12.3 ms"},
		{ptr(1234.5), unitMs, "1234 ms"},
		{ptr(511.6), unitBytes, "512 B"},
		{ptr(15.04), unitKiB, "15.0 KiB"},
		{ptr(2500), unitCount, "2,500"},
		{ptr(2.5), unitCount, "2.50"},
	} {
		if got := formatValue(tc.v, tc.unit); got != tc.want {
			t.Errorf("formatValue(%v, %q) = %q, want %q", deref(tc.v), tc.unit, got, tc.want)
		}
	}
	if got := formatBytes(30 << 20); got != "30 MiB" {
		t.Errorf("formatBytes(30 MiB) = %q", got)
	}
	if got := formatBytes(3 << 29); got != "1.50 GiB" {
		t.Errorf("formatBytes(1.5 GiB) = %q", got)
	}
}

func TestCommas(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 42000: "42,000", 1234567: "1,234,567", -1000: "-1,000"} {
		if got := commas(n); got != want {
			t.Errorf("commas(%d) = %q, want %q", n, got, want)
		}
	}
}

// twoShapePairs is two pairs of results on shapes 1/1/1 and 3/3/2.
func twoShapePairs() (options, []*PairResult) {
	o := options{Shapes: []Shape{{1, 1, 1}, {3, 3, 2}}, Clients: 50, Publishers: 100_000, ValueBytes: 100, IdleConns: 1000,
		Fanout: 10_000, RestartPublishers: 1000}
	strata := func(rate float64, p50 float64) *SystemResult {
		return &SystemResult{Storm: &StormResult{Rate: rate, Probe: &Latency{Summary: Summary{P50Ms: p50, Count: 10}}},
			Footprint: &Footprint{DataHeapPerCopy: 400, SessionHeapPerPublisher: 300, Copies: 3}}
	}
	etcd := func(rate float64) *SystemResult {
		return &SystemResult{System: "etcd", Storm: &StormResult{Rate: rate, Probe: &Latency{Summary: Summary{P50Ms: 10}}},
			Footprint: &Footprint{DataHeapPerCopy: 1000, Copies: 1}}
	}
	return o, []*PairResult{
		{Strata: []*SystemResult{strata(6000, 5), strata(9000, 4)}, Etcd: etcd(2000)},
		{Strata: []*SystemResult{strata(8000, 7), strata(11000, 6)}, Etcd: etcd(4000)},
	}
}

func rowByID(t *testing.T, rows []FigureRow, id string) FigureRow {
	t.Helper()
	for _, r := range rows {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no row %q", id)
	return FigureRow{}
}

func TestBuildRows_MediansOverPairs_RatiosPerShape(t *testing.T) {
	o, pairs := twoShapePairs()
	rows := buildRows(o, pairs)
	rate := rowByID(t, rows, "storm_rate")
	if *rate.Strata[0] != 7000 || *rate.Strata[1] != 10000 || *rate.Etcd != 3000 {
		t.Fatalf("storm_rate medians = %v %v %v, want 7000 10000 3000", *rate.Strata[0], *rate.Strata[1], *rate.Etcd)
	}
	if math.Abs(*rate.Ratios[1]-10000.0/3000) > 1e-9 {
		t.Errorf("3/3/2 ratio = %v, want %v", *rate.Ratios[1], 10000.0/3000)
	}
	heap := rowByID(t, rows, "data_heap_per_pub")
	if *heap.Ratios[0] != 0.4 {
		t.Errorf("heap ratio = %v, want 0.4", *heap.Ratios[0])
	}
	// Sessions are Strata's alone: no etcd figure, so no ratio.
	sess := rowByID(t, rows, "session_heap_per_pub")
	if sess.Etcd != nil || sess.Ratios[0] != nil || *sess.Strata[0] != 300 {
		t.Errorf("session row = %+v, want Strata 300 and no etcd or ratio", sess)
	}
	// The paced rows compare with etcd's own storm.
	paced := rowByID(t, rows, "paced_probe_p50")
	if paced.Strata[0] != nil || *paced.Etcd != 10 {
		t.Errorf("paced row = strata %v etcd %v, want none and 10", deref(paced.Strata[0]), deref(paced.Etcd))
	}
	// A count has no ratio.
	if c := rowByID(t, rows, "storm_probe_count"); c.Ratios[0] != nil {
		t.Errorf("probe count has a ratio %v", *c.Ratios[0])
	}
	if _, err := json.Marshal(rows); err != nil {
		t.Errorf("rows do not encode as JSON: %v", err)
	}
}

func TestTable_HeaderPerShape_RowWithRatiosAndMissingCells(t *testing.T) {
	o, pairs := twoShapePairs()
	md := table(o.Shapes, buildRows(o, pairs))
	lines := strings.Split(md, "\n")
	if want := "| figure | Strata 1/1/1 | Strata 3/3/2 | etcd | ratio Strata/etcd (1/1/1; 3/3/2) | target |"; lines[0] != want {
		t.Errorf("header = %q, want %q", lines[0], want)
	}
	if !strings.HasPrefix(lines[1], "|---|---:|---:|---:|---:|---|") {
		t.Errorf("separator = %q", lines[1])
	}
	want := "| registration rate, 50 clients, full speed | 7,000/s | 10,000/s | 3,000/s | 2.33×; 3.33× | >= 3x etcd (3/3/2) |"
	if lines[2] != want {
		t.Errorf("rate row = %q, want %q", lines[2], want)
	}
	if !strings.Contains(md, "| heap per publisher, sessions | 300 B | 300 B | – | – | <= 512 B |") {
		t.Errorf("no session heap row with missing etcd cells in:\n%s", md)
	}
}

func TestReportMarkdown_NamesMachineCommandAndErrors(t *testing.T) {
	o, pairs := twoShapePairs()
	pairs[0].Etcd.fail(phaseFanout, errString("watch 3: boom"))
	r := &Report{Date: "2026-01-02T03:04:05Z", Command: "scale --shapes 1/1/1", Options: o, Pairs: pairs,
		Machine: Machine{CPUs: 2, MemoryBytes: 24 << 30, Go: "go1.26.8", Etcd: "etcd Version: 3.4.23"},
		Million: &MillionResult{Shape: "3/3/2", Publishers: 1_000_000, Registered: 1_000_000, Clients: 50, Seconds: 100, Rate: 10_000}}
	r.Figures = buildRows(o, pairs)
	md := r.Markdown()
	for _, want := range []string{"2 CPUs, 24.0 GiB", "etcd Version: 3.4.23", "`scale --shapes 1/1/1`",
		"pair 1, etcd: fanout: watch 3: boom", "1,000,000 of 1,000,000 publishers", "2 GiB quota"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestCDFPoints_NondecreasingEndingAtMax(t *testing.T) {
	var h chaos.Hist
	for i := 1; i <= 1000; i++ {
		h.Add(time.Duration(i) * time.Millisecond)
	}
	pts := cdfPoints(&h)
	if len(pts) == 0 {
		t.Fatal("no points")
	}
	for i := 1; i < len(pts); i++ {
		if pts[i].X < pts[i-1].X || pts[i].Y < pts[i-1].Y {
			t.Fatalf("point %d %v goes back from %v", i, pts[i], pts[i-1])
		}
	}
	if last := pts[len(pts)-1]; last.Y != 1 || last.X != 1000 {
		t.Errorf("last point = %v, want (1000 ms, 1)", last)
	}
	if cdfPoints(&chaos.Hist{}) != nil {
		t.Error("an empty histogram has points")
	}
}
