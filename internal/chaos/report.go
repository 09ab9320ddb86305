package chaos

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Targets are the must-hold figures the report compares with
// (it reports them; only the checker's properties are violations).
const (
	// OffNodeP99Target: keys not served by a faulty node, p99 of
	// update -> all subscribers during the fault.
	OffNodeP99Target = 200 * time.Millisecond
	// OnNodeSlack: keys on a killed or frozen data node may stall for the
	// detection budget plus this.
	OnNodeSlack = time.Second
)

// HistSummary is a histogram's figures for the report.
type HistSummary struct {
	Count uint64        `json:"count"`
	P50   time.Duration `json:"p50"`
	P99   time.Duration `json:"p99"`
	P999  time.Duration `json:"p999"`
	Max   time.Duration `json:"max"`
}

func summarize(h *Hist) HistSummary {
	return HistSummary{Count: h.Count(), P50: h.Quantile(0.5), P99: h.Quantile(0.99), P999: h.Quantile(0.999), Max: h.Max()}
}

type namedHist struct {
	name, what string
	h          *Hist
}

func (r *Report) hists() []namedHist {
	res := r.Result
	return []namedHist{
		{"baseline", "before the first fault, update -> all subscribers", &res.Baseline},
		{"off-node, fault active", "update sent while a fault was in force, latest off-node subscriber", &res.OffFault},
		{"on-node, fault active", "update sent while a fault was in force, latest on-node subscriber", &res.OnFault},
		{"off-node, recovery", "update sent after the heal, before the next fault", &res.OffRecovery},
		{"on-node, recovery", "same, on-node subscribers", &res.OnRecovery},
		{"every pair", "every update -> one subscriber", &res.Pairs},
	}
}

// Verdict is "PASS" or "FAIL: ..." (violations) or "INTERRUPTED".
func (r *Report) Verdict() string {
	switch {
	case r.Result == nil:
		return "NO RESULT"
	case !r.Result.OK():
		return fmt.Sprintf("FAIL: %d violations", r.Result.Total)
	case r.Interrupted:
		return "INTERRUPTED (no violation so far)"
	}
	return "PASS: 0 violations"
}

// dataKill reports whether k is a data node killed or frozen (the
// on-node target: detection budget + 1 s).
func dataKill(k Kind) bool { return k == KillData || k == StopData }

// Summary is the text the command prints at the end.
func (r *Report) Summary() string {
	var b strings.Builder
	res := r.Result
	fmt.Fprintf(&b, "verdict: %s\n", r.Verdict())
	fmt.Fprintf(&b, "seed %d, net %s, %s, elapsed %v, output %s\n", r.Seed, r.Net, r.Nodes, r.Elapsed.Round(time.Second), r.Out)
	if len(r.Skipped) > 0 {
		fmt.Fprintf(&b, "skipped (this net cannot): %s\n", joinKinds(r.Skipped))
	}
	fmt.Fprintf(&b, "operations: %d updates sent, %d acked, %d failed or unknown; %d snapshots seen; %d never delivered to every subscriber\n",
		res.Sent, res.Acked, res.Failed, res.Snapshots, res.Undelivered)
	var kinds []string
	for k, n := range r.FaultsByKind {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	slices.Sort(kinds)
	fmt.Fprintf(&b, "faults: %d (%s), %d could not be injected or healed\n", len(res.Faults), strings.Join(kinds, " "), r.FaultErrors)
	for p := Property(1); p <= propertyCount; p++ {
		fmt.Fprintf(&b, "  (%d) %-13s %d violations\n", p, p, res.Counts[p])
	}
	fmt.Fprintf(&b, "worst convergence after a heal: %v; final convergence %v (bound %v)\n",
		res.WorstConv.Round(time.Millisecond), r.FinalConvergence.Round(time.Millisecond), r.Bound)
	off := summarize(&res.OffFault)
	fmt.Fprintf(&b, "off-node keys during faults: p99 update->all subscribers %v (target %v: %s), p50 %v, max %v, n=%d\n",
		off.P99.Round(time.Millisecond), OffNodeP99Target, passFail(off.Count == 0 || off.P99 <= OffNodeP99Target),
		off.P50.Round(time.Millisecond), off.Max.Round(time.Millisecond), off.Count)
	worstOn := r.worstOnDataKill()
	fmt.Fprintf(&b, "on-node keys of a killed/frozen data node: worst stall %v (target detection %v + %v: %s)\n",
		worstOn.Round(time.Millisecond), r.Detection, OnNodeSlack, passFail(worstOn <= r.Detection+OnNodeSlack))
	fmt.Fprintf(&b, "stall per fault (longest update->subscriber of updates sent from the fault to the next; on / off the faulty node):\n")
	for _, f := range res.Faults {
		fmt.Fprintf(&b, "  #%-3d %-16s %-22s held %5.1fs  on %8s (%s keys)  off %8s  conv %s%s\n", f.Index, f.Kind, f.Target,
			f.Held.Seconds(), stall(f.StallOn, f.PairsOn), onKeys(f.OnKeys), stall(f.StallOff, f.PairsOff), conv(f.Convergence), errNote(f.Error))
		if dataKill(f.Kind) && f.StallOn > r.Detection+OnNodeSlack {
			fmt.Fprintf(&b, "        worst on-node pair: %v\n", f.WorstOn)
		}
		if f.StallOff > OffNodeP99Target {
			fmt.Fprintf(&b, "        worst off-node pair: %v\n", f.WorstOff)
		}
	}
	for _, v := range res.Violations {
		fmt.Fprintf(&b, "VIOLATION (%d %s) %s: %s\n", v.Property, v.Name, v.At.Format("15:04:05.000"), v.What)
	}
	if n := int(res.Total) - len(res.Violations); n > 0 {
		fmt.Fprintf(&b, "... and %d more violations\n", n)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}

func (r *Report) worstOnDataKill() time.Duration {
	var w time.Duration
	for _, f := range r.Result.Faults {
		if dataKill(f.Kind) {
			w = max(w, f.StallOn)
		}
	}
	return w
}

func passFail(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func stall(d time.Duration, pairs uint64) string {
	if pairs == 0 && d == 0 {
		return "-"
	}
	return d.Round(time.Millisecond).String()
}

func onKeys(n int) string {
	if n < 0 {
		return "all"
	}
	return fmt.Sprint(n)
}

func conv(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.Round(time.Millisecond).String()
}

func errNote(e string) string {
	if e == "" {
		return ""
	}
	return "  error: " + e
}

// write puts report.json, report.md and latency.svg in r.Out.
func (r *Report) write() error {
	type jsonReport struct {
		*Report
		Verdict    string                 `json:"verdict"`
		Histograms map[string]HistSummary `json:"latency"`
	}
	j := jsonReport{Report: r, Verdict: r.Verdict(), Histograms: map[string]HistSummary{}}
	for _, h := range r.hists() {
		j.Histograms[h.name] = summarize(h.h)
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.Out, "report.json"), b, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.Out, "report.md"), []byte(r.markdown()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(r.Out, "latency.svg"), []byte(r.svg()), 0o644)
}

func (r *Report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# make chaos: seed %d\n\n**%s**\n\n", r.Seed, r.Verdict())
	fmt.Fprintf(&b, "Replay: `make chaos SEED=%d DURATION=%v FAULTS=%s`\n\n", r.Seed, r.Duration, joinKinds(r.Kinds))
	b.WriteString("```\n" + r.Summary() + "```\n\n")
	b.WriteString("## Latency (update -> all relevant subscribers)\n\n| set | n | p50 | p99 | p99.9 | max | what |\n|---|---|---|---|---|---|---|\n")
	for _, h := range r.hists() {
		s := summarize(h.h)
		fmt.Fprintf(&b, "| %s | %d | %v | %v | %v | %v | %s |\n", h.name, s.Count, ms(s.P50), ms(s.P99), ms(s.P999), ms(s.Max), h.what)
	}
	b.WriteString("\n![latency CDF](latency.svg)\n\nEvery node's log is `<node-id>.log` here; `faults.log` is the schedule as it ran.\n")
	return b.String()
}

func ms(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }

// svg draws the latency distributions as CDFs on a log time axis, with
// no dependency: a few lines and axes.
func (r *Report) svg() string {
	const w, h, left, right, top, bottom = 900.0, 500.0, 70.0, 220.0, 30.0, 50.0
	lo, hi := math.Log10(0.1), math.Log10(60000.0) // ms
	x := func(d time.Duration) float64 {
		v := math.Log10(math.Max(float64(d)/1e6, 0.1))
		return left + (math.Min(v, hi)-lo)/(hi-lo)*(w-left-right)
	}
	y := func(f float64) float64 { return top + (1-f)*(h-top-bottom) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="%.0f" y="18">make chaos seed %d: latency CDF (update -> all subscribers)</text>`+"\n", left, r.Seed)
	for _, t := range []float64{0.1, 1, 10, 100, 1000, 10000, 60000} {
		px := x(time.Duration(t * 1e6))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#ddd"/><text x="%.1f" y="%.0f" text-anchor="middle">%gms</text>`+"\n", px, top, px, h-bottom, px, h-bottom+16, t)
	}
	for _, f := range []float64{0, 0.5, 0.9, 0.99, 1} {
		py := y(f)
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/><text x="%.0f" y="%.1f" text-anchor="end">%g</text>`+"\n", left, py, w-right, py, left-6, py+4, f)
	}
	colors := []string{"#888", "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"}
	for i, nh := range r.hists() {
		xs, ys := nh.h.cdf()
		if len(xs) == 0 {
			continue
		}
		var pts []string
		prev := 0.0
		for j := range xs {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f %.1f,%.1f", x(xs[j]), y(prev), x(xs[j]), y(ys[j])))
			prev = ys[j]
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", colors[i%len(colors)], strings.Join(pts, " "))
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/><text x="%.0f" y="%.0f">%s (n=%d)</text>`+"\n",
			w-right+10, top+float64(i)*20, colors[i%len(colors)], w-right+28, top+float64(i)*20+11, nh.name, nh.h.Count())
	}
	b.WriteString("</svg>\n")
	return b.String()
}
