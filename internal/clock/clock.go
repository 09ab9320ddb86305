// Package clock is the injectable time source used wherever Strata measures
// leases, grace periods and expiry. Production code takes a Clock in its Deps
// (nil means Real); tests pass a Fake and move time by hand.
package clock

import (
	"sync"
	"time"
)

// Clock tells the time and makes tickers. Implementations are safe for
// concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTicker returns a ticker that fires every d (d > 0). The caller
	// must Stop it.
	NewTicker(d time.Duration) Ticker
}

// Ticker is the part of *time.Ticker Strata uses.
type Ticker interface {
	// C delivers ticks; like time.Ticker, it drops ticks a slow reader misses.
	C() <-chan time.Time
	// Stop releases the ticker; C receives nothing more.
	Stop()
}

// Or returns c, or Real when c is nil.
func Or(c Clock) Clock {
	if c == nil {
		return Real{}
	}
	return c
}

// Real is the system clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// NewTicker wraps time.NewTicker.
func (Real) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }

// Fake is a manual clock for tests: time moves only through Advance.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	tickers []*fakeTicker
}

// NewFake returns a Fake clock set to start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTicker returns a ticker driven by Advance. Like time.NewTicker, it
// panics if d <= 0.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTicker{c: make(chan time.Time, 1), period: d, next: f.now.Add(d), clock: f}
	f.tickers = append(f.tickers, t)
	return t
}

// Advance moves time forward by d and fires the tickers that came due (at
// most one buffered tick each, as time.Ticker does for a slow reader).
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	for _, t := range f.tickers {
		for !t.next.After(f.now) {
			select {
			case t.c <- t.next:
			default:
			}
			t.next = t.next.Add(t.period)
		}
	}
}

type fakeTicker struct {
	c      chan time.Time
	period time.Duration
	next   time.Time
	clock  *Fake
}

func (t *fakeTicker) C() <-chan time.Time { return t.c }

func (t *fakeTicker) Stop() {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	// Advance sends under the same lock, so draining here guarantees C
	// receives nothing after Stop, as with time.Ticker since Go 1.23.
	select {
	case <-t.c:
	default:
	}
	for i, o := range t.clock.tickers {
		if o == t {
			t.clock.tickers = append(t.clock.tickers[:i], t.clock.tickers[i+1:]...)
			return
		}
	}
}
