package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// newReport starts the report of a run of o.
func newReport(o options, command, dir string) *Report {
	now := time.Now()
	return &Report{Date: now.Format(time.RFC3339), Command: command, Machine: machine(), Options: o, Dir: dir, started: now}
}

// machine describes this machine.
func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Etcd: etcdVersion(), MemoryBytes: memTotal()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAverage = strings.Join(f[:3], " ")
		}
	}
	return m
}

// memTotal is /proc/meminfo's MemTotal in bytes (0 if unknown).
func memTotal() uint64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseUint(fields[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// Units of the figures, which also pick their formatting.
const (
	unitRate  = "/s"
	unitMs    = "ms"
	unitBytes = "B"
	unitKiB   = "KiB"
	unitCount = ""
)

// figure is one row of the summary table: how to read it out of a
// Strata and an etcd result.
type figure struct {
	id, label, unit, target string
	strata                  func(*SystemResult) (float64, bool)
	// etcd reads etcd's result; nil: as strata does.
	etcd func(*SystemResult) (float64, bool)
	// noRatio: the ratio means nothing (a count of samples).
	noRatio bool
}

// figures are the table's rows, in order, for a run of o.
func figures(o options) []figure {
	storm := func(f func(*StormResult) float64) func(*SystemResult) (float64, bool) {
		return func(r *SystemResult) (float64, bool) {
			if r.Storm == nil {
				return 0, false
			}
			return f(r.Storm), true
		}
	}
	paced := func(f func(*StormResult) float64) func(*SystemResult) (float64, bool) {
		return func(r *SystemResult) (float64, bool) {
			if r.Paced == nil {
				return 0, false
			}
			return f(r.Paced), true
		}
	}
	probe := func(f func(Summary) float64) func(*StormResult) float64 {
		return func(s *StormResult) float64 {
			if s.Probe == nil {
				return math.NaN()
			}
			return f(s.Probe.Summary)
		}
	}
	foot := func(f func(*Footprint) float64) func(*SystemResult) (float64, bool) {
		return func(r *SystemResult) (float64, bool) {
			if r.Footprint == nil {
				return 0, false
			}
			return f(r.Footprint), true
		}
	}
	idle := func(f func(*IdleResult) float64) func(*SystemResult) (float64, bool) {
		return func(r *SystemResult) (float64, bool) {
			if r.Idle == nil {
				return 0, false
			}
			return f(r.Idle) / 1024, true
		}
	}
	restart := func(f func(*RestartResult) float64) func(*SystemResult) (float64, bool) {
		return func(r *SystemResult) (float64, bool) {
			if r.Restart == nil {
				return 0, false
			}
			return f(r.Restart), true
		}
	}
	fan := func(f func(Summary) float64) func(*SystemResult) (float64, bool) {
		return func(r *SystemResult) (float64, bool) {
			if r.Fanout == nil || r.Fanout.Latency == nil {
				return 0, false
			}
			return f(r.Fanout.Latency.Summary), true
		}
	}
	none := func(*SystemResult) (float64, bool) { return 0, false }
	p50 := func(s Summary) float64 { return s.P50Ms }
	p99 := func(s Summary) float64 { return s.P99Ms }
	n := commas(int64(o.Publishers))
	return []figure{
		{id: "storm_rate", label: fmt.Sprintf("registration rate, %d clients, full speed%s", o.Clients, bulkNote(o.Bulk)), unit: unitRate, target: ">= 3x etcd (3/3/2)",
			strata: storm(func(s *StormResult) float64 { return s.Rate })},
		{id: "storm_probe_p50", label: "push p50 during the full-speed storm", unit: unitMs, target: "<= etcd",
			strata: storm(probe(p50))},
		{id: "storm_probe_p99", label: "push p99 during the full-speed storm", unit: unitMs,
			strata: storm(probe(p99))},
		{id: "storm_probe_max", label: "push max during the full-speed storm", unit: unitMs,
			strata: storm(probe(func(s Summary) float64 { return s.MaxMs }))},
		{id: "storm_probe_count", label: "probe samples during the full-speed storm", unit: unitCount, noRatio: true,
			strata: storm(probe(func(s Summary) float64 { return float64(s.Count) }))},
		{id: "paced_rate", label: "paced storm: rate reached (etcd: its full-speed storm)", unit: unitRate,
			strata: paced(func(s *StormResult) float64 { return s.Rate }), etcd: storm(func(s *StormResult) float64 { return s.Rate })},
		{id: "paced_probe_p50", label: "push p50, storm at etcd's rate (etcd: its own storm)", unit: unitMs, target: "<= etcd",
			strata: paced(probe(p50)), etcd: storm(probe(p50))},
		{id: "paced_probe_p99", label: "push p99, storm at etcd's rate (etcd: its own storm)", unit: unitMs,
			strata: paced(probe(p99)), etcd: storm(probe(p99))},
		{id: "data_heap_per_pub", label: fmt.Sprintf("heap per publisher, data nodes, per copy (etcd: per key; %s, %d B values)", n, o.ValueBytes),
			unit: unitBytes, target: "<= 512 B (etcd ~0.95 KB)", strata: foot(func(f *Footprint) float64 { return f.DataHeapPerCopy })},
		{id: "session_heap_per_pub", label: "heap per publisher, sessions", unit: unitBytes, target: "<= 512 B",
			strata: foot(func(f *Footprint) float64 { return f.SessionHeapPerPublisher }), etcd: none},
		{id: "data_rss_per_pub", label: "RSS per publisher, data nodes, per copy (etcd: per key)", unit: unitBytes,
			strata: foot(func(f *Footprint) float64 { return f.DataRSSPerCopy })},
		{id: "session_rss_per_pub", label: "RSS per publisher, sessions", unit: unitBytes,
			strata: foot(func(f *Footprint) float64 { return f.SessionRSSPerPublisher }), etcd: none},
		{id: "copies", label: "copies per publisher (slot table)", unit: unitCount, noRatio: true,
			strata: foot(func(f *Footprint) float64 { return f.Copies })},
		{id: "idle_heap_stack", label: fmt.Sprintf("heap + stacks per idle connection (%s)", commas(int64(o.IdleConns))), unit: unitKiB, target: "<= 16 KiB",
			strata: idle(func(i *IdleResult) float64 { return i.HeapStackPerConn })},
		{id: "idle_rss", label: "RSS per idle connection", unit: unitKiB,
			strata: idle(func(i *IdleResult) float64 { return i.RSSPerConn })},
		{id: "restart_converge", label: fmt.Sprintf("restart storm: subscriber sees all %s new publishers", commas(int64(o.RestartPublishers))), unit: unitMs,
			strata: restart(func(r *RestartResult) float64 { return r.ConvergeMs })},
		{id: "restart_acked", label: "restart storm: every re-registration acked", unit: unitMs,
			strata: restart(func(r *RestartResult) float64 { return r.AckedMs })},
		{id: "fanout_p50", label: fmt.Sprintf("fan-out p50 per delivery, %s subscribers over %d connections", commas(int64(o.Fanout)), min(spreadConns, max(o.Fanout, 1))), unit: unitMs,
			strata: fan(p50)},
		{id: "fanout_p99", label: "fan-out p99 per delivery", unit: unitMs, target: "<= 0.5x etcd",
			strata: fan(p99)},
	}
}

// FigureRow is one figure: Strata per shape (in --shapes order), etcd,
// and their ratios, each the median over the pairs (nil: not measured).
type FigureRow struct {
	ID     string     `json:"id"`
	Label  string     `json:"label"`
	Unit   string     `json:"unit"`
	Target string     `json:"target,omitempty"`
	Strata []*float64 `json:"strata"`
	Etcd   *float64   `json:"etcd"`
	// Ratios are Strata / etcd, per shape.
	Ratios []*float64 `json:"ratios"`
}

// buildRows computes the table from the pairs.
func buildRows(o options, pairs []*PairResult) []FigureRow {
	var rows []FigureRow
	for _, f := range figures(o) {
		etcdOf := f.etcd
		if etcdOf == nil {
			etcdOf = f.strata
		}
		row := FigureRow{ID: f.id, Label: f.label, Unit: f.unit, Target: f.target}
		var etcd []float64
		for _, p := range pairs {
			if p.Etcd != nil {
				if v, ok := etcdOf(p.Etcd); ok {
					etcd = append(etcd, v)
				}
			}
		}
		row.Etcd = median(etcd)
		for i := range o.Shapes {
			var vs []float64
			for _, p := range pairs {
				if i < len(p.Strata) {
					if v, ok := f.strata(p.Strata[i]); ok {
						vs = append(vs, v)
					}
				}
			}
			s := median(vs)
			row.Strata = append(row.Strata, s)
			if f.noRatio {
				row.Ratios = append(row.Ratios, nil)
			} else {
				row.Ratios = append(row.Ratios, ratio(s, row.Etcd))
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// median is vs' median, nil for none (NaNs left out).
func median(vs []float64) *float64 {
	vs = slices.DeleteFunc(slices.Clone(vs), math.IsNaN)
	if len(vs) == 0 {
		return nil
	}
	slices.Sort(vs)
	m := vs[len(vs)/2]
	if len(vs)%2 == 0 {
		m = (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
	}
	return &m
}

// ratio is a/b, nil when either is missing or b is 0.
func ratio(a, b *float64) *float64 {
	if a == nil || b == nil || *b == 0 {
		return nil
	}
	r := *a / *b
	return &r
}

// formatValue formats v in unit; "–" for nil.
func formatValue(v *float64, unit string) string {
	if v == nil {
		return "–"
	}
	x := *v
	switch unit {
	case unitRate:
		return commas(int64(math.Round(x))) + "/s"
	case unitMs:
		switch {
		case x >= 100:
			return fmt.Sprintf("%.0f ms", x)
		case x >= 10:
			return fmt.Sprintf("%.1f ms", x)
		}
		return fmt.Sprintf("%.2f ms", x)
	case unitBytes:
		return fmt.Sprintf("%.0f B", x)
	case unitKiB:
		return fmt.Sprintf("%.1f KiB", x)
	}
	if x == math.Trunc(x) {
		return commas(int64(x))
	}
	return fmt.Sprintf("%.2f", x)
}

// formatBytes formats a size in MiB, or GiB from 1 GiB on.
func formatBytes(b float64) string {
	if b >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", b/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", b/(1<<20))
}

// formatRatio formats a ratio as 0.42×; "–" for nil.
func formatRatio(r *float64) string {
	if r == nil {
		return "–"
	}
	if *r >= 10 {
		return fmt.Sprintf("%.0f×", *r)
	}
	return fmt.Sprintf("%.2f×", *r)
}

// table is the summary table in Markdown.
func table(shapes []Shape, rows []FigureRow) string {
	var b strings.Builder
	names := make([]string, len(shapes))
	for i, s := range shapes {
		names[i] = s.String()
	}
	b.WriteString("| figure |")
	for _, n := range names {
		fmt.Fprintf(&b, " Strata %s |", n)
	}
	fmt.Fprintf(&b, " etcd | ratio Strata/etcd (%s) | target |\n|---|", strings.Join(names, "; "))
	for range shapes {
		b.WriteString("---:|")
	}
	b.WriteString("---:|---:|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s |", r.Label)
		ratios := make([]string, len(r.Ratios))
		for i, v := range r.Strata {
			fmt.Fprintf(&b, " %s |", formatValue(v, r.Unit))
			ratios[i] = formatRatio(r.Ratios[i])
		}
		ratioCell := strings.Join(ratios, "; ")
		if slices.IndexFunc(r.Ratios, func(p *float64) bool { return p != nil }) < 0 {
			ratioCell = "–"
		}
		fmt.Fprintf(&b, " %s | %s | %s |\n", formatValue(r.Etcd, r.Unit), ratioCell, r.Target)
	}
	return b.String()
}

// Markdown is the report as report.md has it.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Strata vs etcd at scale, %s\n\n", r.Date)
	pairs := "one pair"
	if len(r.Pairs) != 1 {
		pairs = fmt.Sprintf("%d pairs; each figure is the median over them", len(r.Pairs))
	}
	fmt.Fprintf(&b, "Strata (real processes, TLS, as internal/chaos starts them) and a single-node etcd, alternated within one run (%s). "+
		"Ratio = Strata / etcd: below 1 is better for Strata in every row but the rates.\n\n", pairs)
	b.WriteString(table(r.Options.Shapes, r.Figures))
	b.WriteString("\n")
	r.writeMillion(&b)
	fmt.Fprintf(&b, "## Machine\n\n- %d CPUs, %.1f GiB memory, kernel %s, load average at the start %s\n- Go %s; %s\n\n",
		r.Machine.CPUs, float64(r.Machine.MemoryBytes)/(1<<30), r.Machine.Kernel, r.Machine.LoadAverage, r.Machine.Go, r.Machine.Etcd)
	fmt.Fprintf(&b, "## Run\n\n- command: `%s`\n- date: %s, took %s\n- output: %s\n\n", r.Command, r.Date, r.Elapsed, r.Dir)
	b.WriteString(notes())
	if errs := r.allErrors(); len(errs) > 0 {
		b.WriteString("\n## Errors\n\n")
		for _, e := range errs {
			fmt.Fprintf(&b, "- %s\n", e)
		}
	}
	return b.String()
}

// writeMillion writes the million's section, if it ran.
func (r *Report) writeMillion(b *strings.Builder) {
	m := r.Million
	if m == nil {
		return
	}
	fmt.Fprintf(b, "## Million (Strata %s)\n\n%s of %s publishers registered (acked) by %d clients in %.1f s (%s/s), on every copy after %.1f s; "+
		"target: 1,000,000 in under 5 minutes, held on one 24 GiB machine. "+
		"etcd's side is not run: a single-node etcd has a default 2 GiB quota.\n\n",
		m.Shape, commas(m.Registered), commas(int64(m.Publishers)), m.Clients, m.Seconds, commas(int64(m.Rate)), m.StoredSeconds)
	if len(m.Nodes) > 0 {
		b.WriteString("| node | role | RSS | heap in use |\n|---|---|---:|---:|\n")
		for _, n := range m.Nodes {
			fmt.Fprintf(b, "| %s | %s | %s | %s |\n", n.ID, n.Role, formatBytes(n.After.RSS), formatBytes(n.After.HeapInuse))
		}
		b.WriteString("\n")
	}
}

// allErrors is every error of the run, each with its system and pair.
func (r *Report) allErrors() []string {
	out := slices.Clone(r.Errors)
	for i, p := range r.Pairs {
		for _, s := range append(slices.Clone(p.Strata), p.Etcd) {
			if s == nil {
				continue
			}
			for _, e := range s.Errors {
				out = append(out, fmt.Sprintf("pair %d, %s: %s", i+1, s.System, e))
			}
		}
	}
	if r.Million != nil {
		for _, e := range r.Million.Errors {
			out = append(out, "million: "+e)
		}
	}
	return out
}

// notes says how each figure was measured.
func notes() string {
	return `## How
- Storm: each client registers its share of the publishers one after another, each as soon as the previous is acked; publishers are spread over the services (data IDs), each a registration of its own (etcd: a key /services/<svc>/<instance> put with its client's lease, TTL 30 s, kept alive). Strata's clients go round robin over the sessions. A registration refused under a rate limit is retried (counted in report.json).
- Probe: one key updated every 20 ms by a client on the first session, timed at a subscriber on the last (etcd: a writer and a watcher, each its own client), from just before the update until the subscriber has it; only values sent while the storm ran count. A subscriber that merges changes counts a skipped value as arrived with the newer one.
- Paced storm: a fresh Strata cluster, the same storm with one rate limiter shared by the clients, at the rate etcd reached in the same pair.
- Footprint: heap in use (and RSS) of the data nodes and sessions once every publisher is on every copy, minus the same before the storm; each reading right after two garbage collections the bench forces through the node's pprof route (/debug/pprof/heap?gc=1, operator only; etcd runs with --enable-pprof), so heap in use is live bytes (the second empties what sync.Pools kept through the first); the heap profile after them is kept in each cluster's heap/ directory. Data nodes' growth is divided by publishers x copies, copies read from meta's slot table; report.json has every reading and the GC cycles run by then.
- Idle: sessions' (etcd's) heap plus stacks in use with the idle connections open, minus before; each an SDK client with nothing published or subscribed (etcd: a clientv3 client, connected).
- Restart storm: the publishers of one service on 100 clients; at t0 those clients close (etcd: their leases are revoked) and 100 new clients register every publisher again with a new generation in its value; time until the subscriber's list (etcd: Get + Watch of the prefix) holds all of the new generation.
- Fan-out: one key's subscribers over 100 connections (Strata: spread over the sessions, the publisher on the first); per-delivery latency of each update, after one untimed warm-up.
`
}

// writeOutputs writes report.json, report.md and the charts into dir.
func writeOutputs(dir string, r *Report) error {
	r.Elapsed = time.Since(r.started).Round(time.Second).String()
	r.Figures = buildRows(r.Options, r.Pairs)
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report.json: %w", err)
	}
	var errs []error
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(js, '\n'), 0o644); err != nil {
		errs = append(errs, fmt.Errorf("write report.json: %w", err))
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.Markdown()), 0o644); err != nil {
		errs = append(errs, fmt.Errorf("write report.md: %w", err))
	}
	if err := writeCharts(dir, r); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// bulkNote says how Strata's storm clients registered, when not one at a
// time.
func bulkNote(bulk int) string {
	if bulk <= 1 {
		return ""
	}
	return fmt.Sprintf(" (Strata: PublishMany of %d)", bulk)
}
