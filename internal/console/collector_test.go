package console

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/strata-registry/strata/internal/clock"
)

func TestHistogram_Quantile_AsHistogramQuantile(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		name string
		h    histogram
		q    float64
		want float64
		ok   bool
	}{
		{"empty", histogram{}, 0.5, 0, false},
		{"no observations", histogram{0.001: 0, inf: 0}, 0.5, 0, false},
		{"first bucket starts at 0", histogram{0.002: 10, 0.004: 10, inf: 10}, 0.5, 0.001, true},
		{"linear inside a bucket", histogram{0.001: 0, 0.002: 100, inf: 100}, 0.5, 0.0015, true},
		{"p99 inside a bucket", histogram{0.001: 0, 0.002: 100, inf: 100}, 0.99, 0.00199, true},
		{"empty buckets skipped", histogram{0.001: 50, 0.002: 50, 0.004: 100, inf: 100}, 0.75, 0.003, true},
		{"rank in +Inf: highest finite bound", histogram{0.001: 1, 0.002: 2, inf: 10}, 0.99, 0.002, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.h.quantile(tc.q)
			if ok != tc.ok || math.Abs(got-tc.want) > 1e-12 {
				t.Fatalf("quantile(%v) = %v, %v; want %v, %v", tc.q, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestHistogram_Since_ResetMeansAllNew(t *testing.T) {
	inf := math.Inf(1)
	prev := histogram{0.001: 4, inf: 10}
	if d := (histogram{0.001: 6, inf: 15}).since(prev); d[0.001] != 2 || d[inf] != 5 {
		t.Fatalf("since = %v, want {0.001: 2, +Inf: 5}", d)
	}
	restarted := histogram{0.001: 1, inf: 3}
	if d := restarted.since(prev); d[0.001] != 1 || d[inf] != 3 {
		t.Fatalf("since after a restart = %v, want all of %v", d, restarted)
	}
}

func TestRing_KeepsTheNewestCapacityItems(t *testing.T) {
	r := newRing[int](3)
	for i := range 5 {
		r.push(i)
	}
	var got []int
	r.each(func(v *int) { got = append(got, *v) })
	if r.len() != 3 || len(got) != 3 || got[0] != 2 || got[2] != 4 {
		t.Fatalf("ring holds %v (len %d), want [2 3 4]", got, r.len())
	}
}

func TestConfig_Validate(t *testing.T) {
	ok := DefaultConfig()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]Config{
		"zero interval":         {History: time.Minute, Window: time.Minute},
		"history below a point": {Interval: time.Minute, History: time.Second, Window: time.Minute},
		"too many points":       {Interval: time.Millisecond, History: time.Hour, Window: time.Minute},
		"window below interval": {Interval: time.Minute, History: time.Hour, Window: time.Second},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: %+v validated", name, c)
		}
	}
}

// fakeNode serves a session's metrics from a registry the test drives;
// swap replaces the registry, as a restarted node starts from zero.
type fakeNode struct {
	srv  *httptest.Server
	reg  atomic.Pointer[prometheus.Registry]
	regs *prometheus.CounterVec
	lat  prometheus.Histogram
	conn prometheus.Gauge
	body atomic.Pointer[string] // when set, served instead of the registry
}

func newFakeNode(t *testing.T) *fakeNode {
	n := &fakeNode{}
	n.swap()
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b := n.body.Load(); b != nil {
			_, _ = w.Write([]byte(*b))
			return
		}
		promhttp.HandlerFor(n.reg.Load(), promhttp.HandlerOpts{}).ServeHTTP(w, r)
	}))
	t.Cleanup(n.srv.Close)
	return n
}

func (n *fakeNode) swap() {
	reg := prometheus.NewRegistry()
	n.regs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: registrationsMetric}, []string{"kind"})
	n.lat = prometheus.NewHistogram(prometheus.HistogramOpts{Name: latencyMetric, Buckets: []float64{0.001, 0.002, 0.004, 0.008}})
	n.conn = prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_session_connections"})
	reg.MustRegister(n.regs, n.lat, n.conn)
	n.reg.Store(reg)
}

func (n *fakeNode) addr() string { return strings.TrimPrefix(n.srv.URL, "http://") }

func newTestCollector(t *testing.T, cfg Config, fc *clock.Fake, targets func() []Target) *Collector {
	t.Helper()
	c, err := New(cfg, Deps{Targets: targets, Clock: fc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.client.CloseIdleConnections)
	return c
}

func last(t *testing.T, c *Collector) point {
	t.Helper()
	s := c.Series()
	if len(s.Points) == 0 {
		t.Fatal("no points")
	}
	return s.Points[len(s.Points)-1]
}

func TestCollector_RatesAndLatency_SummedOverSessions_WindowedAndBounded(t *testing.T) {
	a, b := newFakeNode(t), newFakeNode(t)
	fc := clock.NewFake(time.Unix(1000, 0))
	targets := []Target{{ID: "session-a", Role: "session", Addr: a.addr()}, {ID: "session-b", Role: "session", Addr: b.addr()}}
	c := newTestCollector(t, Config{Interval: 5 * time.Second, History: 20 * time.Second, Window: 10 * time.Second}, fc, func() []Target { return targets })
	ctx := context.Background()

	a.regs.WithLabelValues("publisher").Add(100)
	a.conn.Set(3)
	c.round(ctx)
	if p := last(t, c); p.Registrations != nil || p.PushP50MS != nil || p.Scraped != 2 {
		t.Fatalf("first round: %+v; want no rate and no latency yet (nothing to compare with), 2 scraped", p)
	}

	// 5 s later: a registered 50 more publishers and b 10 subscribers;
	// a acked 100 pushes at 1.5 ms.
	a.regs.WithLabelValues("publisher").Add(50)
	b.regs.WithLabelValues("subscriber").Add(10)
	for range 100 {
		a.lat.Observe(0.0015)
	}
	fc.Advance(5 * time.Second)
	c.round(ctx)
	p := last(t, c)
	if p.Registrations["publisher"] != 10 || p.Registrations["subscriber"] != 2 {
		t.Fatalf("rates %v, want publisher 10/s (50 in 5 s), subscriber 2/s", p.Registrations)
	}
	if p.Pushes != 100 || p.PushP50MS == nil || math.Abs(*p.PushP50MS-1.5) > 1e-9 || math.Abs(*p.PushP99MS-1.99) > 1e-9 {
		t.Fatalf("latency %+v, want 100 pushes, p50 1.5 ms, p99 1.99 ms", p)
	}

	// b's 100 pushes at 6 ms: the window (10 s) holds both rounds' pushes.
	for range 100 {
		b.lat.Observe(0.006)
	}
	fc.Advance(5 * time.Second)
	c.round(ctx)
	if p := last(t, c); p.Pushes != 200 || *p.PushP50MS != 2 || p.Registrations["publisher"] != 0 {
		t.Fatalf("second window: %+v p50 %v; want 200 pushes, p50 2 ms (between both), no new publishers", p, *p.PushP50MS)
	}
	// Two rounds later the first pushes have left the window, then all.
	fc.Advance(5 * time.Second)
	c.round(ctx)
	if p := last(t, c); p.Pushes != 100 || *p.PushP50MS <= 4 {
		t.Fatalf("after the window passed a's pushes: %+v p50 %v, want b's 100 only (4-8 ms)", p, *p.PushP50MS)
	}
	fc.Advance(5 * time.Second)
	c.round(ctx)
	if p := last(t, c); p.Pushes != 0 || p.PushP50MS != nil {
		t.Fatalf("no push in the window: %+v, want none and no quantile", p)
	}

	s := c.Series()
	if len(s.Points) != 4 || s.Capacity != 4 {
		t.Fatalf("%d points of capacity %d after 5 rounds, want the newest 4 of 4", len(s.Points), s.Capacity)
	}
	if len(s.Nodes) != 2 || s.Nodes[0].ID != "session-a" || !s.Nodes[0].Up || s.Nodes[0].Gauges["connections"] != 3 {
		t.Fatalf("nodes %+v, want session-a up with 3 connections first", s.Nodes)
	}
	js, err := json.Marshal(s.Points[0])
	if err != nil || !strings.Contains(string(js), `"t_ms":1005000`) || strings.Contains(string(js), "hist") {
		t.Fatalf("point JSON %s (%v): want t_ms and no internal histogram", js, err)
	}
}

func TestCollector_FailuresRestartsAndLeavers(t *testing.T) {
	a := newFakeNode(t)
	fc := clock.NewFake(time.Unix(1000, 0))
	targets := []Target{{ID: "session-a", Role: "session", Addr: a.addr()}}
	c := newTestCollector(t, Config{Interval: time.Second, History: time.Minute, Window: time.Minute}, fc, func() []Target { return targets })
	ctx := context.Background()
	a.regs.WithLabelValues("publisher").Add(100)
	c.round(ctx)

	// A scrape that fails says why and keeps the node's last good
	// sample: the next good one rates over both intervals.
	big := strings.Repeat("#", MaxScrapeBytes+1)
	a.body.Store(&big)
	fc.Advance(time.Second)
	c.round(ctx)
	s := c.Series()
	if n := s.Nodes[0]; n.Up || !strings.Contains(n.Error, "larger than") || s.Points[1].Failed != 1 {
		t.Fatalf("oversized /metrics: %+v, point %+v; want down, saying it is too large", n, s.Points[1])
	}
	a.body.Store(nil)
	a.regs.WithLabelValues("publisher").Add(20)
	fc.Advance(time.Second)
	c.round(ctx)
	if p := last(t, c); p.Registrations["publisher"] != 10 {
		t.Fatalf("rate after a failed scrape: %v, want 10/s (20 over 2 s)", p.Registrations)
	}

	// A restarted node's counters start again from zero: what it counts
	// now is all new, never a negative rate.
	a.swap()
	a.regs.WithLabelValues("publisher").Add(7)
	fc.Advance(time.Second)
	c.round(ctx)
	if p := last(t, c); p.Registrations["publisher"] != 7 {
		t.Fatalf("rate after a restart: %v, want 7/s", p.Registrations)
	}

	// A node that is no longer a target is forgotten.
	targets = nil
	fc.Advance(time.Second)
	c.round(ctx)
	if s := c.Series(); len(s.Nodes) != 0 {
		t.Fatalf("nodes %+v after the node left, want none", s.Nodes)
	}
}
