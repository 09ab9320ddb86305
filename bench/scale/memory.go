package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The metrics every node (and etcd) exposes that the footprints use.
const (
	metricHeapInuse  = "go_memstats_heap_inuse_bytes"
	metricStackInuse = "go_memstats_stack_inuse_bytes"
	metricRSS        = "process_resident_memory_bytes"
	// metricGCs is the GC pause summary's count: GC cycles run.
	metricGCs = "go_gc_duration_seconds_count"
)

// Mem is one node's memory, in bytes.
type Mem struct {
	HeapInuse  float64 `json:"heap_inuse_bytes"`
	StackInuse float64 `json:"stack_inuse_bytes"`
	RSS        float64 `json:"rss_bytes"`
	// GCs is how many GC cycles the process had run by the reading
	// (each reading follows two forced ones).
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

// memNode is a node whose memory a footprint reads.
type memNode struct {
	id, role string
	scrape   func() (map[string]float64, error)
	// gc makes the node collect garbage now (its pprof heap route with
	// gc=1; an operator's right on Strata nodes) and copies the heap
	// profile taken after it to w (nil: thrown away).
	gc func(w io.Writer) error
}

// NodeMemory is one node's memory before and after a phase's load.
type NodeMemory struct {
	ID     string `json:"id"`
	Role   string `json:"role"`
	Before Mem    `json:"before"`
	After  Mem    `json:"after"`
}

// settledMemory has every node collect garbage twice, then scrapes it:
// heap in use is then live bytes, not whatever garbage the last cycle
// left (nor what sync.Pools keep through one cycle: grpc-go's buffers).
// With profiles set, each node's heap profile after the collection is
// kept in profiles-<node id>.pb.gz (`go tool pprof` reads it): what the
// live bytes are.
func settledMemory(ctx context.Context, nodes []memNode, profiles string) ([]Mem, error) {
	for _, n := range nodes {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := collect(n, profiles); err != nil {
			return nil, fmt.Errorf("collect garbage on %s: %w", n.id, err)
		}
	}
	return scrapeMemory(nodes)
}

// collect has n collect garbage twice, keeping its heap profile after
// the second in profiles-<id>.pb.gz when profiles is set.
func collect(n memNode, profiles string) error {
	if err := n.gc(nil); err != nil {
		return err
	}
	if profiles == "" {
		return n.gc(nil)
	}
	if err := os.MkdirAll(filepath.Dir(profiles), 0o755); err != nil {
		return err
	}
	f, err := os.Create(profiles + "-" + n.id + ".pb.gz")
	if err != nil {
		return err
	}
	if err := n.gc(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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
