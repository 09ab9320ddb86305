package console

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The node metrics the console reads.
const (
	// registrationsMetric is the sessions' accepted registrations, a
	// counter with a "kind" label.
	registrationsMetric = "strata_session_registrations_total"
	// latencyMetric is the push engine's latency histogram (seconds).
	latencyMetric = "strata_push_latency_seconds"
)

// gaugeMetrics are the gauges a node status carries, by the name the page
// knows them under.
var gaugeMetrics = map[string]string{
	"strata_session_connections":   "connections",
	"go_memstats_heap_inuse_bytes": "heap_inuse_bytes",
	"go_goroutines":                "goroutines",
}

// sample is what one scrape of one node yields.
type sample struct {
	err error
	// at is the round it was taken in (set when it is kept).
	at time.Time
	// regs is the registrations counter by kind; nil on a node without it.
	regs map[string]float64
	// hist is the cumulative push latency histogram; nil without one.
	hist histogram
	// gauges by the page's names.
	gauges map[string]float64
}

// parseMetrics reads a Prometheus text exposition of at most limit bytes
// and picks out what the console shows.
func parseMetrics(r io.Reader, limit int64) (sample, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return sample{}, fmt.Errorf("read /metrics: %w", err)
	}
	if int64(len(b)) > limit {
		return sample{}, fmt.Errorf("/metrics is larger than %d bytes", limit)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		return sample{}, fmt.Errorf("parse /metrics: %w", err)
	}
	var s sample
	if f := fams[registrationsMetric]; f != nil && f.GetType() == dto.MetricType_COUNTER {
		s.regs = map[string]float64{}
		for _, m := range f.GetMetric() {
			s.regs[label(m, "kind")] += m.GetCounter().GetValue()
		}
	}
	if f := fams[latencyMetric]; f != nil && f.GetType() == dto.MetricType_HISTOGRAM {
		s.hist = histogram{}
		for _, m := range f.GetMetric() {
			if !s.hist.addCumulative(m.GetHistogram()) {
				s.hist = nil
				break
			}
		}
	}
	for name, key := range gaugeMetrics {
		f := fams[name]
		if f == nil || len(f.GetMetric()) != 1 {
			continue
		}
		m := f.GetMetric()[0]
		v := m.GetGauge().GetValue()
		if f.GetType() == dto.MetricType_UNTYPED {
			v = m.GetUntyped().GetValue()
		}
		if s.gauges == nil {
			s.gauges = map[string]float64{}
		}
		s.gauges[key] = v
	}
	return s, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// counterDelta is a counter's increase from prev to cur; a counter that
// went down was reset (the node restarted), so all of cur is new.
func counterDelta(prev, cur float64) float64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// histogram is a latency histogram as cumulative counts by bucket upper
// bound (seconds), +Inf holding the total.
type histogram map[float64]float64

// addCumulative adds a scraped histogram's buckets; false when the
// histogram has more than maxBuckets of them.
func (h histogram) addCumulative(ph *dto.Histogram) bool {
	if len(ph.GetBucket()) > maxBuckets {
		return false
	}
	for _, b := range ph.GetBucket() {
		if !math.IsInf(b.GetUpperBound(), 1) { // the text format lists it; the count says it
			h[b.GetUpperBound()] += float64(b.GetCumulativeCount())
		}
	}
	h[math.Inf(1)] += float64(ph.GetSampleCount())
	return len(h) <= maxBuckets+1
}

// since returns the observations h holds that prev (an earlier scrape of
// the same node) did not. A total that went down means the node
// restarted: all of h is new.
func (h histogram) since(prev histogram) histogram {
	if h.count() < prev.count() {
		return h
	}
	out := make(histogram, len(h))
	for b, v := range h {
		out[b] = max(0, v-prev[b])
	}
	return out
}

// add adds o's counts to h.
func (h histogram) add(o histogram) {
	for b, v := range o {
		h[b] += v
	}
}

// count is the number of observations.
func (h histogram) count() float64 { return h[math.Inf(1)] }

// quantile estimates the q-quantile as Prometheus' histogram_quantile
// does: linear within the bucket the rank falls in, the first bucket
// starting at 0, and the highest finite bound for a rank in the +Inf
// bucket. False when h holds no observation.
func (h histogram) quantile(q float64) (float64, bool) {
	total := h.count()
	if total <= 0 {
		return 0, false
	}
	bounds := make([]float64, 0, len(h))
	for b := range h {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range bounds {
		c := h[b]
		if c >= rank && c > below {
			if math.IsInf(b, 1) {
				return lower, true
			}
			return lower + (b-lower)*(rank-below)/(c-below), true
		}
		lower, below = b, c
	}
	return lower, true
}

// ring is a fixed-capacity buffer that drops its oldest item when full.
type ring[T any] struct {
	items []T
	start int // index of the oldest
	n     int
}

func newRing[T any](capacity int) *ring[T] { return &ring[T]{items: make([]T, capacity)} }

func (r *ring[T]) cap() int { return len(r.items) }
func (r *ring[T]) len() int { return r.n }

// push adds v, dropping the oldest item when the ring is full.
func (r *ring[T]) push(v T) {
	if r.n < len(r.items) {
		r.items[(r.start+r.n)%len(r.items)] = v
		r.n++
		return
	}
	r.items[r.start] = v
	r.start = (r.start + 1) % len(r.items)
}

// each calls f on every item, oldest first.
func (r *ring[T]) each(f func(*T)) {
	for i := range r.n {
		f(&r.items[(r.start+i)%len(r.items)])
	}
}
