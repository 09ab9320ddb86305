package chaos

import (
	"math"
	"time"
)

// Hist is a latency histogram of bounded size: log-scale buckets, 50 per
// decade (under 5% apart), from 10 µs to 1000 s. The zero value is empty
// and ready. Not safe for concurrent use.
type Hist struct {
	counts [histBuckets]uint64
	n      uint64
	max    time.Duration
	sum    time.Duration
}

const (
	histPerDecade = 50
	histMin       = 10 * time.Microsecond
	histBuckets   = 8 * histPerDecade // 1e-5 s .. 1e3 s
)

func bucketOf(d time.Duration) int {
	if d <= histMin {
		return 0
	}
	b := int(math.Log10(float64(d)/float64(histMin)) * histPerDecade)
	return min(b, histBuckets-1)
}

// upper is bucket b's upper bound.
func upper(b int) time.Duration {
	return time.Duration(float64(histMin) * math.Pow(10, float64(b+1)/histPerDecade))
}

// Add records d (negative counts as 0).
func (h *Hist) Add(d time.Duration) {
	d = max(d, 0)
	h.counts[bucketOf(d)]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

// Count is how many were added.
func (h *Hist) Count() uint64 { return h.n }

// Max is the largest added.
func (h *Hist) Max() time.Duration { return h.max }

// Mean is the mean of what was added.
func (h *Hist) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// Quantile returns the q-quantile (0..1), as the upper bound of its
// bucket (never above Max); 0 when empty.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(upper(b), h.max)
		}
	}
	return h.max
}

// Merge adds o's counts to h.
func (h *Hist) Merge(o *Hist) {
	for b, c := range o.counts {
		h.counts[b] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// cdf returns (upper bound, fraction at or below) for each non-empty
// bucket, for charts.
func (h *Hist) cdf() (xs []time.Duration, ys []float64) {
	var seen uint64
	for b, c := range h.counts {
		if c == 0 {
			continue
		}
		seen += c
		xs = append(xs, min(upper(b), h.max))
		ys = append(ys, float64(seen)/float64(h.n))
	}
	return xs, ys
}
