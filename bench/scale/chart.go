package main

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/strata-registry/strata/internal/chaos"
)

// series is one line of a chart: a system's latencies.
type series struct {
	name string
	h    *chaos.Hist
}

// chartSpec is one chart: which latency of a Strata and of an etcd
// result it draws.
type chartSpec struct {
	file, title string
	strata      func(*SystemResult) *Latency
	etcd        func(*SystemResult) *Latency
	etcdName    string
}

// charts are the run's charts.
func charts() []chartSpec {
	stormProbe := func(r *SystemResult) *Latency {
		if r.Storm == nil {
			return nil
		}
		return r.Storm.Probe
	}
	pacedProbe := func(r *SystemResult) *Latency {
		if r.Paced == nil {
			return nil
		}
		return r.Paced.Probe
	}
	fan := func(r *SystemResult) *Latency {
		if r.Fanout == nil {
			return nil
		}
		return r.Fanout.Latency
	}
	return []chartSpec{
		{file: "probe-storm.svg", title: "Push latency during a full-speed registration storm", strata: stormProbe, etcd: stormProbe, etcdName: "etcd"},
		{file: "probe-paced.svg", title: "Push latency during a storm at etcd's rate", strata: pacedProbe, etcd: stormProbe, etcdName: "etcd (its own storm)"},
		{file: "fanout.svg", title: "Fan-out: latency per delivery", strata: fan, etcd: fan, etcdName: "etcd"},
	}
}

// writeCharts draws every chart that has data into dir.
func writeCharts(dir string, r *Report) error {
	var errs []error
	for _, c := range charts() {
		var ss []series
		for i, shape := range r.Options.Shapes {
			h := merged(r.Pairs, func(p *PairResult) *SystemResult {
				if i < len(p.Strata) {
					return p.Strata[i]
				}
				return nil
			}, c.strata)
			ss = append(ss, series{name: "Strata " + shape.String(), h: h})
		}
		ss = append(ss, series{name: c.etcdName, h: merged(r.Pairs, func(p *PairResult) *SystemResult { return p.Etcd }, c.etcd)})
		if err := drawCDF(filepath.Join(dir, c.file), c.title, ss); err != nil {
			errs = append(errs, fmt.Errorf("chart %s: %w", c.file, err))
		}
	}
	return errors.Join(errs...)
}

// merged is the histogram of pick's latency over every pair's result
// that sys picks.
func merged(pairs []*PairResult, sys func(*PairResult) *SystemResult, pick func(*SystemResult) *Latency) *chaos.Hist {
	var h chaos.Hist
	for _, p := range pairs {
		r := sys(p)
		if r == nil {
			continue
		}
		if l := pick(r); l != nil && l.hist != nil {
			h.Merge(l.hist)
		}
	}
	return &h
}

// cdfPoints are h's CDF as (latency in ms, fraction at or below) at a
// grid of quantiles, finer in the tail.
func cdfPoints(h *chaos.Hist) plotter.XYs {
	if h.Count() == 0 {
		return nil
	}
	var qs []float64
	for i := 1; i <= 100; i++ {
		qs = append(qs, float64(i)/100)
	}
	qs = append(qs[:len(qs)-1], 0.995, 0.999, 0.9999, 1)
	var pts plotter.XYs
	for _, q := range qs {
		x := ms(h.Quantile(q))
		if q == 1 {
			x = ms(h.Max())
		}
		pts = append(pts, plotter.XY{X: max(x, 0.001), Y: q})
	}
	return pts
}

// drawCDF draws the series' CDFs, latency on a log scale, into file (an
// SVG); nothing when no series has data.
func drawCDF(file, title string, ss []series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "latency (ms, log scale)"
	p.Y.Label.Text = "fraction of samples at or below"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = logTicks{}
	p.Y.Min, p.Y.Max = 0, 1
	// A CDF's top left is empty: the lines reach 1 on the right.
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(8), vg.Points(-8)
	p.Add(plotter.NewGrid())
	drawn := 0
	for i, s := range ss {
		pts := cdfPoints(s.h)
		if len(pts) == 0 {
			continue
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (n=%s)", s.name, commas(int64(s.h.Count()))), l)
		drawn++
	}
	if drawn == 0 {
		return nil
	}
	return p.Save(7*vg.Inch, 4.5*vg.Inch, file)
}

// logTicks marks a log axis at 1, 2 and 5 times each power of ten
// (labelled) and at the other integers times it (unlabelled): latencies
// often span less than a decade, where plot.LogTicks labels nothing or
// one tick.
type logTicks struct{}

// Ticks implements plot.Ticker.
func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	if lo <= 0 || hi <= lo {
		return nil
	}
	var ticks []plot.Tick
	for p := math.Floor(math.Log10(lo)); math.Pow(10, p) <= hi; p++ {
		base := math.Pow(10, p)
		for m := 1; m <= 9; m++ {
			v := float64(m) * base
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = strconv.FormatFloat(v, 'g', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}
