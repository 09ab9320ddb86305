// Package gctune keeps the garbage collector from running every few MiB of
// allocation while a process's heap is small.
//
// Go starts a collection when the heap has grown by GOGC percent (100) of
// what the last one left live. A node with 10 MiB live therefore collects
// every 10 MiB it allocates: a few times a second under a steady trickle
// of pushes, and every collection costs the node's requests in flight a
// stop-the-world pause and a core's worth of marking. On a request that
// crosses four processes (client, session, data leader, session), one of
// them collecting is what most of the slowest requests have in common.
//
// A Tuner sets the goal to at least a floor: after each collection it
// sets GOGC so that the next is due at max(live x (1 + GOGC/100), floor).
// Once the live heap passes floor / (1 + GOGC/100) it changes nothing, so
// a large node's memory is what Go's defaults give. GOGC=off is left
// alone, and a GOMEMLIMIT still holds: the runtime collects early as the
// heap nears it, whatever GOGC says.
package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// maxPercent bounds the GOGC a Tuner sets (a live heap of a few KiB would
// otherwise ask for millions).
const maxPercent = 1 << 14

// Tuner holds GOGC so that collections start at no less than its floor.
type Tuner struct {
	floor uint64
	base  int // the GOGC the process had, and keeps above the floor

	mu      sync.Mutex
	percent int // the GOGC last set
	stopped atomic.Bool
	samples []metrics.Sample
}

// Start tunes GOGC for a heap goal of at least floor bytes, until Stop.
// GC settings are the process's: start one Tuner per process. It returns
// nil (nothing to stop) for a floor of 0 or with the collector off.
func Start(floor uint64) *Tuner {
	t := &Tuner{floor: floor, samples: []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/heap/live:bytes"}}}
	metrics.Read(t.samples)
	t.base = int(t.samples[0].Value.Uint64())
	if floor == 0 || t.base <= 0 || t.samples[1].Value.Kind() != metrics.KindUint64 {
		return nil
	}
	t.percent = t.base
	t.adjust()
	t.arm()
	return t
}

// Percent is the GOGC the tuner last set.
func (t *Tuner) Percent() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.percent
}

// Stop gives the process back the GOGC it started with.
func (t *Tuner) Stop() {
	if t == nil || t.stopped.Swap(true) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	debug.SetGCPercent(t.base)
	t.percent = t.base
}

// sentinel is garbage from the moment it is made: its finalizer runs once
// after the next collection, adjusts, and makes the next sentinel. (It has
// a pointer, so it is never a tiny allocation, whose finalizer may wait
// for its neighbours.)
type sentinel struct{ t *Tuner }

func (t *Tuner) arm() {
	runtime.SetFinalizer(&sentinel{t: t}, func(s *sentinel) {
		if s.t.stopped.Load() {
			return
		}
		s.t.adjust()
		s.t.arm()
	})
}

// adjust sets GOGC for the live heap the last collection left.
func (t *Tuner) adjust() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Load() {
		return
	}
	metrics.Read(t.samples)
	want := percentFor(t.floor, t.samples[1].Value.Uint64(), t.base)
	// Small moves are not worth a call: SetGCPercent takes the heap lock.
	if want != t.percent && (want == t.base || want > t.percent*11/10 || want < t.percent*9/10) {
		debug.SetGCPercent(want)
		t.percent = want
	}
}

// percentFor is the GOGC that puts the next collection at the floor for a
// live heap of live bytes, and never below base.
func percentFor(floor, live uint64, base int) int {
	if live == 0 || live*uint64(100+base) >= floor*100 {
		return base
	}
	return min(max(int(floor*100/live)-100, base), maxPercent)
}
