package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		floor, live uint64
		base, want  int
	}{
		{floor: 64 * mib, live: 8 * mib, base: 100, want: 700},  // next at 64 MiB
		{floor: 64 * mib, live: 32 * mib, base: 100, want: 100}, // 2x live reaches the floor
		{floor: 64 * mib, live: 500 * mib, base: 100, want: 100},
		{floor: 64 * mib, live: 20 * mib, base: 300, want: 300}, // the operator's GOGC already gets there
		{floor: 64 * mib, live: 1, base: 100, want: maxPercent},
		{floor: 64 * mib, live: 0, base: 100, want: 100}, // nothing measured yet
	} {
		if got := percentFor(c.floor, c.live, c.base); got != c.want {
			t.Errorf("floor %d, live %d, base %d: %d, want %d", c.floor, c.live, c.base, got, c.want)
		}
	}
}

// A tuner raises GOGC while the live heap is below the floor, follows it
// back down once the live heap grows past it (after the next collection),
// and Stop restores the process's own GOGC.
func TestTuner_RaisesGOGCForASmallHeap_BackToBaseForALargeOne(t *testing.T) {
	base := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(base) })
	runtime.GC()

	tu := Start(1 << 30) // 1 GiB: far above this test's heap
	if tu == nil {
		t.Fatal("Start returned nil with GOGC=100")
	}
	defer tu.Stop()
	if p := tu.Percent(); p <= 100 {
		t.Fatalf("GOGC %d with a small heap under a 1 GiB floor, want more than 100", p)
	}

	// 64 MiB live: past the floor of a second tuner's 96 MiB at GOGC 100.
	tu.Stop()
	tu = Start(96 << 20)
	live := make([]byte, 64<<20)
	for i := range live {
		live[i] = 1
	}
	waitPercent(t, tu, func(p int) bool { return p == 100 })
	runtime.KeepAlive(live)
	live = nil
	waitPercent(t, tu, func(p int) bool { return p > 100 })

	tu.Stop()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Fatalf("after Stop GOGC is %d, want the 100 the process had", p)
	}
	if Start(0) != nil {
		t.Error("Start(0) returned a tuner")
	}
	debug.SetGCPercent(-1)
	if Start(1<<30) != nil {
		t.Error("Start with GOGC=off returned a tuner")
	}
	debug.SetGCPercent(100)
}

// waitPercent collects until the tuner's GOGC satisfies ok (the finalizer
// that adjusts it runs after a collection, on its own goroutine).
func waitPercent(t *testing.T, tu *Tuner, ok func(int) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok(tu.Percent()) {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC stayed %d", tu.Percent())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}
