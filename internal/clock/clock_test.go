package clock

import (
	"testing"
	"time"
)

var start = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

// recv returns the tick waiting on c, if any, without blocking. The Fake
// delivers ticks synchronously inside Advance, so a tick that is due is
// already buffered when Advance returns.
func recv(c <-chan time.Time) (time.Time, bool) {
	select {
	case v := <-c:
		return v, true
	default:
		return time.Time{}, false
	}
}

func TestFake_NowMovesOnlyWithAdvance(t *testing.T) {
	f := NewFake(start)
	if got := f.Now(); !got.Equal(start) {
		t.Fatalf("Now() = %v, want start %v", got, start)
	}
	// Real time passing must not move the fake clock: read it twice around
	// a ticker creation and check it is unchanged.
	tk := f.NewTicker(time.Second)
	defer tk.Stop()
	if got := f.Now(); !got.Equal(start) {
		t.Fatalf("Now() after NewTicker = %v, want %v", got, start)
	}
	steps := []struct {
		advance time.Duration
		want    time.Time
	}{
		{0, start},
		{time.Millisecond, start.Add(time.Millisecond)},
		{time.Hour, start.Add(time.Hour + time.Millisecond)},
		{24 * time.Hour, start.Add(25*time.Hour + time.Millisecond)},
	}
	for _, s := range steps {
		f.Advance(s.advance)
		if got := f.Now(); !got.Equal(s.want) {
			t.Fatalf("after Advance(%v): Now() = %v, want %v", s.advance, got, s.want)
		}
	}
}

func TestFakeTicker_FiresWhenAdvanceCrossesPeriod(t *testing.T) {
	f := NewFake(start)
	tk := f.NewTicker(10 * time.Second)
	defer tk.Stop()

	steps := []struct {
		name    string
		advance time.Duration
		fire    bool
		at      time.Time // the tick's value when fire is set
	}{
		{"before first period", 9 * time.Second, false, time.Time{}},
		{"reaches first period exactly", time.Second, true, start.Add(10 * time.Second)},
		{"partway into second period", 5 * time.Second, false, time.Time{}},
		{"crosses second period", 6 * time.Second, true, start.Add(20 * time.Second)},
		{"zero advance", 0, false, time.Time{}},
	}
	for _, s := range steps {
		f.Advance(s.advance)
		got, ok := recv(tk.C())
		if ok != s.fire {
			t.Fatalf("%s: tick received = %v, want %v", s.name, ok, s.fire)
		}
		if ok && !got.Equal(s.at) {
			t.Fatalf("%s: tick = %v, want %v", s.name, got, s.at)
		}
	}
}

func TestFakeTicker_SlowReaderGetsOneTickOthersDropped(t *testing.T) {
	f := NewFake(start)
	tk := f.NewTicker(time.Second)
	defer tk.Stop()

	// Five and a half periods pass without the reader looking: like
	// time.Ticker, only one tick is kept.
	f.Advance(5*time.Second + 500*time.Millisecond)
	if _, ok := recv(tk.C()); !ok {
		t.Fatal("no tick after five periods")
	}
	if v, ok := recv(tk.C()); ok {
		t.Fatalf("second tick %v buffered; want missed ticks dropped", v)
	}

	// The schedule keeps its phase: the next tick is at start+6s, not one
	// period after the Advance that dropped ticks.
	f.Advance(499 * time.Millisecond)
	if v, ok := recv(tk.C()); ok {
		t.Fatalf("tick %v before the next period", v)
	}
	f.Advance(time.Millisecond)
	v, ok := recv(tk.C())
	if !ok {
		t.Fatal("no tick at the next period after the dropped ones")
	}
	if want := start.Add(6 * time.Second); !v.Equal(want) {
		t.Fatalf("tick = %v, want %v", v, want)
	}
}

func TestFakeTicker_StopEndsTicks(t *testing.T) {
	f := NewFake(start)
	stopped := f.NewTicker(time.Second)
	other := f.NewTicker(time.Second)
	defer other.Stop()

	f.Advance(time.Second)
	if _, ok := recv(stopped.C()); !ok {
		t.Fatal("ticker did not fire before Stop")
	}
	if _, ok := recv(other.C()); !ok {
		t.Fatal("other ticker did not fire before Stop")
	}

	stopped.Stop()
	stopped.Stop() // a second Stop is harmless
	f.Advance(10 * time.Second)
	if v, ok := recv(stopped.C()); ok {
		t.Fatalf("stopped ticker delivered %v", v)
	}
	// Stopping one ticker must not disturb the others.
	if _, ok := recv(other.C()); !ok {
		t.Fatal("other ticker stopped firing when the first was stopped")
	}
}

func TestOr_NilIsRealOtherwiseUnchanged(t *testing.T) {
	if _, ok := Or(nil).(Real); !ok {
		t.Fatalf("Or(nil) = %T, want Real", Or(nil))
	}
	f := NewFake(start)
	if got := Or(f); got != Clock(f) {
		t.Fatalf("Or(fake) = %v, want the fake itself", got)
	}
}

func TestReal_NowFollowsSystemClock(t *testing.T) {
	before := time.Now()
	got := Real{}.Now()
	after := time.Now()
	if got.Before(before) || got.After(after) {
		t.Fatalf("Real.Now() = %v, want between %v and %v", got, before, after)
	}
}

func TestRealTicker_Delivers(t *testing.T) {
	tk := Real{}.NewTicker(time.Millisecond)
	defer tk.Stop()
	for i := range 2 {
		select {
		case <-tk.C():
		case <-time.After(5 * time.Second):
			t.Fatalf("tick %d not delivered within 5s", i)
		}
	}
}

func TestFakeTicker_StopDrainsPendingTick(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	tk := f.NewTicker(time.Second)
	f.Advance(time.Second) // one tick buffered, unread
	tk.Stop()
	select {
	case <-tk.C():
		t.Fatal("received a tick after Stop")
	default:
	}
}

func TestFake_NewTickerPanicsOnNonPositive(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewTicker(0) did not panic")
		}
	}()
	NewFake(time.Unix(0, 0)).NewTicker(0)
}
