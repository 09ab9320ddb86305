package main

import (
	"context"
	"fmt"
	"time"
)

// The metrics every node (and etcd) exposes that the footprints use.
const (
	metricHeapInuse  = "go_memstats_heap_inuse_bytes"
	metricStackInuse = "go_memstats_stack_inuse_bytes"
	metricRSS        = "process_resident_memory_bytes"
	// metricGCs is the GC pause summary's count: GC cycles run.
	metricGCs = "go_gc_duration_seconds_count"
)

// settleGap is the time between the two scrapes of settledMemory.
const settleGap = 2 * time.Second

// Mem is one node's memory, in bytes.
type Mem struct {
	HeapInuse  float64 `json:"heap_inuse_bytes"`
	StackInuse float64 `json:"stack_inuse_bytes"`
	RSS        float64 `json:"rss_bytes"`
	// GCs is how many GC cycles the process had run (at the later of
	// the two readings): a reading taken when none ran since the last
	// one still holds that phase's garbage.
	GCs float64 `json:"gc_cycles"`
}

// memOf picks a node's memory out of its scraped metrics.
func memOf(m map[string]float64) (Mem, error) {
	var out Mem
	for name, dst := range map[string]*float64{metricHeapInuse: &out.HeapInuse, metricStackInuse: &out.StackInuse, metricRSS: &out.RSS} {
		v, ok := m[name]
		if !ok {
			return Mem{}, fmt.Errorf("no %s in /metrics", name)
		}
		*dst = v
	}
	out.GCs = m[metricGCs]
	return out, nil
}

// lowerMem is a and b's lower reading of each figure.
func lowerMem(a, b Mem) Mem {
	return Mem{HeapInuse: min(a.HeapInuse, b.HeapInuse), StackInuse: min(a.StackInuse, b.StackInuse), RSS: min(a.RSS, b.RSS),
		GCs: max(a.GCs, b.GCs)}
}

// memNode is a node whose memory a footprint reads.
type memNode struct {
	id, role string
	scrape   func() (map[string]float64, error)
}

// NodeMemory is one node's memory before and after a phase's load.
type NodeMemory struct {
	ID     string `json:"id"`
	Role   string `json:"role"`
	Before Mem    `json:"before"`
	After  Mem    `json:"after"`
}

// settledMemory scrapes every node twice, settleGap apart, and keeps
// each figure's lower reading: without a way to force a GC remotely, the
// lower heap is the one nearer to just after a GC cycle.
func settledMemory(ctx context.Context, nodes []memNode) ([]Mem, error) {
	first, err := scrapeMemory(nodes)
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(settleGap)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
	}
	second, err := scrapeMemory(nodes)
	if err != nil {
		return nil, err
	}
	for i := range first {
		first[i] = lowerMem(first[i], second[i])
	}
	return first, nil
}

// scrapeMemory scrapes every node once.
func scrapeMemory(nodes []memNode) ([]Mem, error) {
	out := make([]Mem, len(nodes))
	for i, n := range nodes {
		m, err := n.scrape()
		if err != nil {
			return nil, fmt.Errorf("scrape %s: %w", n.id, err)
		}
		if out[i], err = memOf(m); err != nil {
			return nil, fmt.Errorf("%s: %w", n.id, err)
		}
	}
	return out, nil
}

// memoryTable pairs nodes with their readings before and after.
func memoryTable(nodes []memNode, before, after []Mem) []NodeMemory {
	out := make([]NodeMemory, len(nodes))
	for i, n := range nodes {
		out[i] = NodeMemory{ID: n.id, Role: n.role, Before: before[i], After: after[i]}
	}
	return out
}

// growth is the sum over role's nodes of what f reads, after minus before.
func growth(nodes []NodeMemory, role string, f func(Mem) float64) float64 {
	var d float64
	for _, n := range nodes {
		if n.Role == role {
			d += f(n.After) - f(n.Before)
		}
	}
	return d
}

// Readers of one figure of Mem, for growth.
func heapOf(m Mem) float64      { return m.HeapInuse }
func heapStackOf(m Mem) float64 { return m.HeapInuse + m.StackInuse }
func rssOf(m Mem) float64       { return m.RSS }
