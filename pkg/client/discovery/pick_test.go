package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/discovery"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newPicker(t *testing.T, set discovery.Set, opts ...discovery.PickerOption) *discovery.Picker {
	t.Helper()
	p, err := discovery.NewPicker(append([]discovery.PickerOption{discovery.WithRandSeed(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	p.Update(set)
	return p
}

func set(insts ...discovery.Instance) discovery.Set {
	return discovery.Set{Version: 1, Instances: insts}
}

// picks counts the addresses n picks return.
func picks(t *testing.T, p *discovery.Picker, n int) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for range n {
		inst, err := p.Pick(context.Background())
		if err != nil {
			t.Fatalf("Pick: %v", err)
		}
		counts[inst.Addr]++
	}
	return counts
}

// only fails unless the picks went to exactly addrs.
func only(t *testing.T, counts map[string]int, addrs ...string) {
	t.Helper()
	got := slices.Sorted(maps.Keys(counts))
	slices.Sort(addrs)
	if !slices.Equal(got, addrs) {
		t.Fatalf("picked %v; want only %v", counts, addrs)
	}
}

func fail(p *discovery.Picker, addr string, n int) {
	for range n {
		p.Report(discovery.Instance{Addr: addr}, errors.New("connection refused"))
	}
}

var (
	a = discovery.Instance{Addr: "10.0.0.1:80", Weight: 1, Zone: "az1"}
	b = discovery.Instance{Addr: "10.0.0.2:80", Weight: 1, Zone: "az1"}
	c = discovery.Instance{Addr: "10.0.0.3:80", Weight: 1, Zone: "az2"}
	d = discovery.Instance{Addr: "10.0.0.4:80", Weight: 1, Zone: "az2"}
)

func with(inst discovery.Instance, weight int, state discovery.State) discovery.Instance {
	inst.Weight, inst.State = weight, state
	return inst
}

func TestPicker_SharesFollowWeights_SkipsDrainingAndDisabled(t *testing.T) {
	p := newPicker(t, set(with(a, 1, ""), with(b, 2, ""), with(c, 3, ""), with(d, 4, ""),
		discovery.Instance{Addr: "10.0.0.5:80", Weight: 50, State: discovery.StateDraining},
		discovery.Instance{Addr: "10.0.0.6:80", Weight: 50, State: discovery.StateDisabled},
		discovery.Instance{Addr: "10.0.0.7:80", Weight: 50, State: "warming"}))
	const n = 100_000
	counts := picks(t, p, n)
	only(t, counts, a.Addr, b.Addr, c.Addr, d.Addr)
	// Chi-square with 3 degrees of freedom: above 16.27 has a chance of
	// 0.1% for a fair draw (and the seed is fixed, so this never flakes);
	// a draw that ignored the weights scores in the thousands.
	var chi2 float64
	for addr, w := range map[string]float64{a.Addr: 1, b.Addr: 2, c.Addr: 3, d.Addr: 4} {
		want := n * w / 10
		diff := float64(counts[addr]) - want
		chi2 += diff * diff / want
	}
	if chi2 > 16.27 {
		t.Fatalf("picks %v for weights 1:2:3:4: chi-square %.1f > 16.27", counts, chi2)
	}
}

func TestPicker_WeightsOutOfRangeInAHandMadeSet(t *testing.T) {
	// A Set built by hand may hold weights Register never stores: below 1
	// counts as 1, above MaxWeight as MaxWeight; nothing panics.
	p := newPicker(t, set(with(a, 0, ""), with(b, -5, ""), with(c, 1<<40, "")))
	counts := picks(t, p, 1000)
	if counts[c.Addr] < 990 {
		t.Fatalf("picks %v; want nearly all on the MaxWeight instance", counts)
	}
	p = newPicker(t, set(with(a, 0, ""), with(b, -5, "")))
	if counts := picks(t, p, 10_000); counts[a.Addr] < 4500 || counts[b.Addr] < 4500 {
		t.Fatalf("picks %v; want weights 0 and -5 to count as 1 each", counts)
	}
}

func TestPicker_OneInstancePerAddress(t *testing.T) {
	// Two registrations of one address: the serving one counts, once, with
	// its own weight.
	p := newPicker(t, set(with(a, 100, discovery.StateDraining), with(a, 1, ""), with(b, 1, "")))
	counts := picks(t, p, 10_000)
	if counts[a.Addr] < 4500 || counts[b.Addr] < 4500 {
		t.Fatalf("picks %v; want a and b alike (weight 1 each)", counts)
	}
}

func TestPicker_PrefersZone_FallsBackWhenItHasNoneServing(t *testing.T) {
	p := newPicker(t, set(a, b, c, d), discovery.WithPreferredZone("az1"))
	only(t, picks(t, p, 1000), a.Addr, b.Addr)

	// One local instance draining: the other takes all the local traffic
	// (no minimum share).
	p.Update(set(with(a, 1, discovery.StateDraining), b, c, d))
	only(t, picks(t, p, 1000), b.Addr)

	// None serving in az1: every zone.
	p.Update(set(with(a, 1, discovery.StateDraining), with(b, 1, discovery.StateDisabled), c, d))
	only(t, picks(t, p, 1000), c.Addr, d.Addr)

	// A zone nobody is in: every zone.
	p = newPicker(t, set(a, c), discovery.WithPreferredZone("az9"))
	only(t, picks(t, p, 1000), a.Addr, c.Addr)
}

func TestPicker_FallsBackWhenTheLocalZoneIsEjected(t *testing.T) {
	clk := newFakeClock()
	p := newPicker(t, set(a, c, d), discovery.WithPreferredZone("az1"), discovery.WithClock(clk.now))
	fail(p, a.Addr, 3)
	only(t, picks(t, p, 1000), c.Addr, d.Addr)
	clk.advance(discovery.DefaultEjectionTime)
	only(t, picks(t, p, 1000), a.Addr)
}

func TestPicker_NoInstance(t *testing.T) {
	p := newPicker(t, set())
	if _, err := p.Pick(context.Background()); !errors.Is(err, discovery.ErrNoInstance) || errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("Pick from an empty set: %v; want ErrNoInstance", err)
	}
	p.Update(set(with(a, 1, discovery.StateDraining), with(b, 1, discovery.StateDisabled), with(c, 1, "warming")))
	_, err := p.Pick(context.Background())
	if !errors.Is(err, discovery.ErrNoInstance) {
		t.Fatalf("Pick with nothing serving: %v; want ErrNoInstance", err)
	}
	t.Log(err)
	// And back as soon as one is.
	p.Update(set(with(a, 1, discovery.StateDraining), b))
	only(t, picks(t, p, 100), b.Addr)
}

func TestPicker_Pick_WaitsForTheFirstSet(t *testing.T) {
	p, err := discovery.NewPicker()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Pick(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Pick before any set, ctx done: %v; want context.Canceled", err)
	}
	got := make(chan error, 1)
	go func() {
		inst, err := p.Pick(context.Background())
		if err == nil && inst.Addr != a.Addr {
			err = fmt.Errorf("picked %+v", inst)
		}
		got <- err
	}()
	p.Update(set(a))
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Pick still waiting after Update")
	}
}

func TestPicker_EjectsAfterConsecutiveFailures_AndReturnsAfterTheInterval(t *testing.T) {
	clk := newFakeClock()
	p := newPicker(t, set(a, b, c, d), discovery.WithClock(clk.now))

	// Two failures, a success, two more: never three in a row.
	fail(p, b.Addr, 2)
	p.Report(b, nil)
	fail(p, b.Addr, 2)
	only(t, picks(t, p, 1000), a.Addr, b.Addr, c.Addr, d.Addr)

	fail(p, b.Addr, 1) // the third in a row
	only(t, picks(t, p, 1000), a.Addr, c.Addr, d.Addr)
	clk.advance(discovery.DefaultEjectionTime - time.Nanosecond)
	only(t, picks(t, p, 1000), a.Addr, c.Addr, d.Addr)
	clk.advance(time.Nanosecond)
	only(t, picks(t, p, 1000), a.Addr, b.Addr, c.Addr, d.Addr)

	// Back with a clean count: two failures do not eject it again.
	fail(p, b.Addr, 2)
	only(t, picks(t, p, 1000), a.Addr, b.Addr, c.Addr, d.Addr)
}

func TestPicker_ReportsWhileEjectedChangeNothing(t *testing.T) {
	clk := newFakeClock()
	p := newPicker(t, set(a, b), discovery.WithClock(clk.now), discovery.WithEjectionTime(10*time.Second, time.Minute))
	fail(p, a.Addr, 3)
	// Calls that were in flight end: failures do not lengthen the
	// ejection, a success does not end it.
	clk.advance(5 * time.Second)
	fail(p, a.Addr, 10)
	p.Report(a, nil)
	only(t, picks(t, p, 100), b.Addr)
	clk.advance(5 * time.Second)
	only(t, picks(t, p, 1000), a.Addr, b.Addr)
	// Reports about addresses that are not listed are ignored.
	fail(p, c.Addr, 10)
	p.Report(discovery.Instance{}, errors.New("x"))
	only(t, picks(t, p, 1000), a.Addr, b.Addr)
}

func TestPicker_EjectionTimeDoublesOnRepeats_IsCapped_AndCountsDown(t *testing.T) {
	clk := newFakeClock()
	const base = 10 * time.Second
	p := newPicker(t, set(a, b), discovery.WithClock(clk.now), discovery.WithEjectionTime(base, 35*time.Second))
	// ejectedFor ejects a and returns how long it stays out, to the second.
	ejectedFor := func() time.Duration {
		t.Helper()
		fail(p, a.Addr, 3)
		for out := time.Duration(0); out <= time.Hour; out += time.Second {
			if picks(t, p, 100)[a.Addr] > 0 {
				return out
			}
			clk.advance(time.Second)
		}
		t.Fatal("a never came back")
		return 0
	}
	for i, want := range []time.Duration{base, 2 * base, 35 * time.Second, 35 * time.Second} {
		if got := ejectedFor(); got != want {
			t.Fatalf("ejection %d lasted %v; want %v", i+1, got, want)
		}
	}
	// Four ejections counted; two bases of service count two of them down,
	// so the next is the third (capped) and, at once after it, the fourth.
	clk.advance(2 * base)
	if got := ejectedFor(); got != 35*time.Second {
		t.Fatalf("after 2 bases of service the ejection lasted %v; want the cap", got)
	}
	// A long spell of service starts it over.
	clk.advance(time.Hour)
	if got := ejectedFor(); got != base {
		t.Fatalf("after an hour of service the ejection lasted %v; want %v", got, base)
	}
}

func TestPicker_NeverEjectsMoreThanTheMaxShare(t *testing.T) {
	clk := newFakeClock()
	p := newPicker(t, set(a, b, c, d), discovery.WithClock(clk.now))
	// Every instance fails (the caller's own network, say): half stay in.
	for _, inst := range []discovery.Instance{a, b, c, d} {
		fail(p, inst.Addr, 3)
	}
	only(t, picks(t, p, 1000), c.Addr, d.Addr)
	// c and d stayed in with three failures each; once a and b are back,
	// the next failure of each ejects it.
	clk.advance(discovery.DefaultEjectionTime)
	fail(p, c.Addr, 1)
	fail(p, d.Addr, 1)
	only(t, picks(t, p, 1000), a.Addr, b.Addr)

	// A lone instance is never ejected at the default share; with two, one
	// is.
	lone := newPicker(t, set(a), discovery.WithClock(clk.now))
	fail(lone, a.Addr, 100)
	only(t, picks(t, lone, 100), a.Addr)
	pair := newPicker(t, set(a, b), discovery.WithClock(clk.now))
	fail(pair, a.Addr, 3)
	fail(pair, b.Addr, 3)
	only(t, picks(t, pair, 100), b.Addr)

	// Share 0: nothing is ejected.
	none := newPicker(t, set(a, b), discovery.WithClock(clk.now), discovery.WithMaxEjectedShare(0))
	fail(none, a.Addr, 100)
	only(t, picks(t, none, 1000), a.Addr, b.Addr)
	// Ejection off.
	off := newPicker(t, set(a, b), discovery.WithClock(clk.now), discovery.WithEjectAfter(0))
	fail(off, a.Addr, 100)
	only(t, picks(t, off, 1000), a.Addr, b.Addr)
}

func TestPicker_AllEjected_StillPicks(t *testing.T) {
	clk := newFakeClock()
	p := newPicker(t, set(a, b), discovery.WithClock(clk.now), discovery.WithMaxEjectedShare(1), discovery.WithEjectAfter(1))
	fail(p, a.Addr, 1)
	only(t, picks(t, p, 100), b.Addr)
	fail(p, b.Addr, 1)
	only(t, picks(t, p, 1000), a.Addr, b.Addr)
}

func TestPicker_Update_KeepsHealthOfListedAddresses_ForgetsTheRest(t *testing.T) {
	clk := newFakeClock()
	p := newPicker(t, set(a, b, c), discovery.WithClock(clk.now))
	fail(p, a.Addr, 3)
	// A new Set (a reweighed, d added) keeps a ejected.
	p.Update(set(with(a, 5, ""), b, c, d))
	only(t, picks(t, p, 1000), b.Addr, c.Addr, d.Addr)
	// a draining then serving again: forgotten, so it is back at once.
	p.Update(set(with(a, 5, discovery.StateDraining), b, c, d))
	p.Update(set(a, b, c, d))
	only(t, picks(t, p, 1000), a.Addr, b.Addr, c.Addr, d.Addr)
	// Failure counts are forgotten with the address too.
	fail(p, b.Addr, 2)
	p.Update(set(a, c, d))
	p.Update(set(a, b, c, d))
	fail(p, b.Addr, 1)
	only(t, picks(t, p, 1000), a.Addr, b.Addr, c.Addr, d.Addr)
}

func TestPicker_MetadataIsCopied(t *testing.T) {
	md := map[string]string{"v": "1"}
	p := newPicker(t, set(discovery.Instance{Addr: a.Addr, Metadata: md}))
	md["v"] = "changed"
	inst, err := p.Pick(context.Background())
	if err != nil || inst.Metadata["v"] != "1" {
		t.Fatalf("Pick: %+v, %v; want the metadata as it was at Update", inst, err)
	}
}

func TestNewPicker_RejectsBadOptions(t *testing.T) {
	for name, opt := range map[string]discovery.PickerOption{
		"negative failures":   discovery.WithEjectAfter(-1),
		"zero ejection time":  discovery.WithEjectionTime(0, time.Minute),
		"limit below base":    discovery.WithEjectionTime(time.Minute, time.Second),
		"negative share":      discovery.WithMaxEjectedShare(-0.1),
		"share above 1":       discovery.WithMaxEjectedShare(1.5),
		"share not a number":  discovery.WithMaxEjectedShare(nan()),
		"negative time limit": discovery.WithEjectionTime(-time.Second, -time.Second),
	} {
		if _, err := discovery.NewPicker(opt); !errors.Is(err, client.ErrInvalidArgument) {
			t.Errorf("%s: %v; want ErrInvalidArgument", name, err)
		}
	}
	if _, err := discovery.NewPicker(discovery.WithClock(nil), discovery.WithEjectAfter(0), discovery.WithMaxEjectedShare(1)); err != nil {
		t.Errorf("valid options refused: %v", err)
	}
}

func nan() float64 {
	zero := 0.0
	return zero / zero
}

// sets is a SetSource that returns its Sets, then err.
type sets struct {
	list []discovery.Set
	err  error
}

func (s *sets) Next(context.Context) (discovery.Set, error) {
	if len(s.list) == 0 {
		return discovery.Set{}, s.err
	}
	next := s.list[0]
	s.list = s.list[1:]
	return next, nil
}

func TestPicker_Follow_UpdatesUntilTheSourceFails(t *testing.T) {
	p, err := discovery.NewPicker()
	if err != nil {
		t.Fatal(err)
	}
	src := &sets{list: []discovery.Set{set(a), set(b)}, err: io.EOF}
	if err := p.Follow(context.Background(), src); !errors.Is(err, io.EOF) {
		t.Fatalf("Follow: %v; want the source's error", err)
	}
	only(t, picks(t, p, 100), b.Addr)
}

func TestPicker_ConcurrentPicksReportsAndUpdates(t *testing.T) {
	clk := newFakeClock()
	p := newPicker(t, set(a, b, c, d), discovery.WithClock(clk.now), discovery.WithEjectAfter(1))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				inst, err := p.Pick(context.Background())
				if err != nil {
					t.Errorf("Pick: %v", err)
					return
				}
				if i%3 == 0 {
					p.Report(inst, errors.New("x"))
				} else {
					p.Report(inst, nil)
				}
				switch {
				case g == 0 && i%100 == 0:
					p.Update(set(a, b, c, with(d, i%7+1, "")))
				case g == 1 && i%50 == 0:
					clk.advance(time.Second)
				}
			}
		})
	}
	wg.Wait()
}
