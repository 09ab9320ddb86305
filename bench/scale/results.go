package main

import (
	"time"

	"github.com/strata-registry/strata/internal/chaos"
)

// Report is everything one run measured; report.json is it verbatim.
type Report struct {
	Date    string  `json:"date"`
	Elapsed string  `json:"elapsed"`
	Command string  `json:"command"`
	Machine Machine `json:"machine"`
	Options options `json:"options"`
	Dir     string  `json:"dir"`
	// Figures is the summary table: each figure's median over the pairs.
	Figures []FigureRow    `json:"figures"`
	Pairs   []*PairResult  `json:"pairs"`
	Million *MillionResult `json:"million,omitempty"`
	Errors  []string       `json:"errors,omitempty"`

	started time.Time
}

// Machine is what the run ran on.
type Machine struct {
	CPUs        int    `json:"cpus"`
	MemoryBytes uint64 `json:"memory_bytes"`
	Go          string `json:"go"`
	Etcd        string `json:"etcd"`
	Kernel      string `json:"kernel,omitempty"`
	// LoadAverage is /proc/loadavg's 1, 5 and 15 minute load at the start:
	// anything else running skews the figures.
	LoadAverage string `json:"load_average,omitempty"`
}

// PairResult is one pair: Strata on every shape, then etcd.
type PairResult struct {
	Strata []*SystemResult `json:"strata"`
	Etcd   *SystemResult   `json:"etcd"`
}

// SystemResult is one system's phases in one pair (nil: not run, or
// failed; see Errors).
type SystemResult struct {
	System    string         `json:"system"`
	Shape     string         `json:"shape,omitempty"`
	Idle      *IdleResult    `json:"idle,omitempty"`
	Storm     *StormResult   `json:"storm,omitempty"`
	Footprint *Footprint     `json:"footprint,omitempty"`
	Paced     *StormResult   `json:"paced,omitempty"`
	Restart   *RestartResult `json:"restart,omitempty"`
	Fanout    *FanoutResult  `json:"fanout,omitempty"`
	Errors    []string       `json:"errors,omitempty"`
}

// fail records that phase failed with err.
func (r *SystemResult) fail(phase string, err error) {
	r.Errors = append(r.Errors, phase+": "+err.Error())
}

// Summary is a latency histogram's figures, in milliseconds.
type Summary struct {
	Count  uint64  `json:"count"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
	MeanMs float64 `json:"mean_ms"`
}

// summarize is h's Summary.
func summarize(h *chaos.Hist) Summary {
	return Summary{Count: h.Count(), P50Ms: ms(h.Quantile(0.5)), P90Ms: ms(h.Quantile(0.9)), P99Ms: ms(h.Quantile(0.99)),
		P999Ms: ms(h.Quantile(0.999)), MaxMs: ms(h.Max()), MeanMs: ms(h.Mean())}
}

// Latency is a latency measurement: its summary, and the histogram the
// charts draw.
type Latency struct {
	Summary
	// SendFailures counts probe values the system did not ack in time.
	SendFailures int `json:"send_failures,omitempty"`
	hist         *chaos.Hist
}

// StormResult is one registration storm.
type StormResult struct {
	Publishers int     `json:"publishers"`
	Clients    int     `json:"clients"`
	Services   int     `json:"services"`
	ValueBytes int     `json:"value_bytes"`
	Seconds    float64 `json:"seconds"`
	Rate       float64 `json:"rate_per_s"`
	// PacedAt is the pace of a paced storm (0: full speed).
	PacedAt float64 `json:"paced_at_per_s,omitempty"`
	// Retries counts registrations refused under a rate limit and sent
	// again.
	Retries int64 `json:"rate_limited_retries"`
	// Probe is the probe key's publish -> push latency, values sent
	// while the storm ran.
	Probe *Latency `json:"probe,omitempty"`
}

// newStormResult builds a storm's result from its outcome.
func newStormResult(o options, out stormOutcome, probe *Latency, pacedAt float64) *StormResult {
	return &StormResult{Publishers: int(out.registered), Clients: o.Clients, Services: o.Services, ValueBytes: o.ValueBytes,
		Seconds: out.elapsed.Seconds(), Rate: out.rate(), PacedAt: pacedAt, Retries: out.retries, Probe: probe}
}

// Footprint is the memory the storm's publishers hold, once all are
// stored: the growth of heap in use (and RSS) from before the storm,
// each read right after two forced garbage collections.
type Footprint struct {
	Publishers int `json:"publishers"`
	// Copies is how many data nodes hold each publisher (etcd: 1), and
	// CopiesFrom where that number comes from.
	Copies     float64 `json:"copies"`
	CopiesFrom string  `json:"copies_from"`
	// DataHeapPerCopy is the data nodes' heap growth per publisher and
	// copy (etcd: its heap growth per key); DataRSSPerCopy likewise RSS.
	DataHeapPerCopy float64 `json:"data_heap_bytes_per_publisher_copy"`
	DataRSSPerCopy  float64 `json:"data_rss_bytes_per_publisher_copy"`
	// SessionHeapPerPublisher and SessionRSSPerPublisher are the
	// sessions' growth per publisher (Strata only).
	SessionHeapPerPublisher float64      `json:"session_heap_bytes_per_publisher,omitempty"`
	SessionRSSPerPublisher  float64      `json:"session_rss_bytes_per_publisher,omitempty"`
	Nodes                   []NodeMemory `json:"nodes"`
}

// newFootprint computes the per-publisher figures from the nodes'
// readings: data nodes (or etcd) per copy, sessions per publisher.
func newFootprint(publishers int, copies float64, from string, nodes []NodeMemory) *Footprint {
	f := &Footprint{Publishers: publishers, Copies: copies, CopiesFrom: from, Nodes: nodes}
	perCopy := float64(publishers) * copies
	stored := chaos.RoleData
	if len(nodes) > 0 && nodes[0].Role == etcdRole {
		stored = etcdRole
	}
	f.DataHeapPerCopy = growth(nodes, stored, heapOf) / perCopy
	f.DataRSSPerCopy = growth(nodes, stored, rssOf) / perCopy
	f.SessionHeapPerPublisher = growth(nodes, chaos.RoleSession, heapOf) / float64(publishers)
	f.SessionRSSPerPublisher = growth(nodes, chaos.RoleSession, rssOf) / float64(publishers)
	return f
}

// IdleResult is the cost of idle client connections on the nodes that
// hold them (sessions; etcd).
type IdleResult struct {
	Conns int `json:"conns"`
	// HeapStackPerConn is the growth of heap plus stacks in use per
	// connection; RSSPerConn of RSS.
	HeapStackPerConn float64      `json:"heap_stack_bytes_per_conn"`
	RSSPerConn       float64      `json:"rss_bytes_per_conn"`
	Nodes            []NodeMemory `json:"nodes"`
}

// newIdleResult computes the per-connection figures of role's nodes.
func newIdleResult(conns int, nodes []NodeMemory, role string) *IdleResult {
	return &IdleResult{Conns: conns, Nodes: nodes,
		HeapStackPerConn: growth(nodes, role, heapStackOf) / float64(conns),
		RSSPerConn:       growth(nodes, role, rssOf) / float64(conns)}
}

// RestartResult is the restart storm, timed from the moment the old
// clients start closing and the new ones start connecting.
type RestartResult struct {
	Publishers int `json:"publishers"`
	Clients    int `json:"clients"`
	// CloseMs is until every old client was closed (etcd: its lease
	// revoked); AckedMs until every new registration was acked;
	// ConvergeMs until the subscriber's list held all the new ones.
	CloseMs    float64 `json:"close_ms"`
	AckedMs    float64 `json:"acked_ms"`
	ConvergeMs float64 `json:"converge_ms"`
}

// FanoutResult is one key's updates delivered to many subscribers.
type FanoutResult struct {
	Subscribers int      `json:"subscribers"`
	Conns       int      `json:"conns"`
	Rounds      int      `json:"rounds"`
	Latency     *Latency `json:"latency"`
}

// MillionResult is the million-publisher registration.
type MillionResult struct {
	Shape      string `json:"shape"`
	Publishers int    `json:"publishers"`
	Clients    int    `json:"clients"`
	Registered int64  `json:"registered"`
	// Seconds is until every registration was acked, Rate the rate
	// that makes; StoredSeconds until the data nodes held every copy.
	Seconds       float64 `json:"seconds"`
	Rate          float64 `json:"rate_per_s"`
	StoredSeconds float64 `json:"stored_seconds,omitempty"`
	// Nodes is every node's memory at the end (After).
	Nodes  []NodeMemory `json:"nodes"`
	Errors []string     `json:"errors,omitempty"`
}
