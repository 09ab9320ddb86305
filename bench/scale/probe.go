package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/strata-registry/strata/internal/chaos"
)

// probeEvery is how often the probe key gets a new value.
const probeEvery = 20 * time.Millisecond

// probe times publish -> push arrival of a key updated every probeEvery,
// counting only the values sent inside its window (while a storm runs).
// Safe for concurrent use.
type probe struct {
	mu sync.Mutex
	// seq numbers the values sent; pending holds the send times of
	// those not seen yet.
	seq     uint64
	pending map[uint64]time.Time
	// from and to bound the window (zero to: still open; zero from:
	// not opened yet).
	from, to time.Time
	hist     chaos.Hist
	failures int
}

func newProbe() *probe { return &probe{pending: map[uint64]time.Time{}} }

// sent records that a new value is sent at at and returns its number,
// which the value carries.
func (p *probe) sent(at time.Time) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	p.pending[p.seq] = at
	return p.seq
}

// failed counts a send the system did not ack.
func (p *probe) failed() {
	p.mu.Lock()
	p.failures++
	p.mu.Unlock()
}

// arrived records that the subscriber saw value seq at at. Every value
// up to seq not seen yet counts as arrived then: a subscriber that merges
// changes (Strata's does) has seen state at least that new.
func (p *probe) arrived(seq uint64, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for s, sentAt := range p.pending {
		if s > seq {
			continue
		}
		if p.inWindow(sentAt) {
			p.hist.Add(at.Sub(sentAt))
		}
		delete(p.pending, s)
	}
}

// inWindow reports whether a value sent at t counts. Caller holds p.mu.
func (p *probe) inWindow(t time.Time) bool {
	return !p.from.IsZero() && !t.Before(p.from) && (p.to.IsZero() || t.Before(p.to))
}

// open starts the window at t.
func (p *probe) open(t time.Time) {
	p.mu.Lock()
	p.from, p.to = t, time.Time{}
	p.mu.Unlock()
}

// close ends the window at t.
func (p *probe) close(t time.Time) {
	p.mu.Lock()
	p.to = t
	p.mu.Unlock()
}

// waiting is how many values sent inside the window are not seen yet.
func (p *probe) waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, t := range p.pending {
		if p.inWindow(t) {
			n++
		}
	}
	return n
}

// p50 is the window's median so far.
func (p *probe) p50() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hist.Quantile(0.5)
}

// latency is the window's histogram and summary, and how many sends
// failed.
func (p *probe) latency() *Latency {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hist
	return &Latency{Summary: summarize(&h), SendFailures: p.failures, hist: &h}
}

// probeRun is a running probe: a sender and a receiver goroutine, and
// what to close once they have returned.
type probeRun struct {
	p       *probe
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closers []func()
	once    sync.Once
}

// startProbe runs send every probeEvery (a new value numbered seq,
// returning once acked) and recv (which reports arrivals to p until ctx
// ends) until stop.
func startProbe(ctx context.Context, p *probe, send func(ctx context.Context, seq uint64) error,
	recv func(ctx context.Context), closers ...func()) *probeRun {
	ctx, cancel := context.WithCancel(ctx)
	r := &probeRun{p: p, cancel: cancel, closers: closers}
	r.wg.Go(func() { recv(ctx) })
	r.wg.Go(func() {
		t := time.NewTicker(probeEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			seq := p.sent(time.Now())
			sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
			if err := send(sctx, seq); err != nil && ctx.Err() == nil {
				p.failed()
			}
			scancel()
		}
	})
	return r
}

// stop waits (up to 5 s) for the window's last values to arrive, then
// stops the goroutines and closes the probe's clients. Only the first
// call does anything.
func (r *probeRun) stop(ctx context.Context) {
	r.once.Do(func() {
		_ = poll(ctx, 5*time.Second, func() error {
			if n := r.p.waiting(); n > 0 {
				return fmt.Errorf("%d probe values not seen", n)
			}
			return nil
		})
		r.cancel()
		r.wg.Wait()
		for _, c := range r.closers {
			c()
		}
	})
}

// probeValue is the probe's value number seq.
func probeValue(seq uint64) []byte { return strconv.AppendUint(nil, seq, 10) }

// probeSeq reads a probe value back; false if it is not one.
func probeSeq(v []byte) (uint64, bool) {
	seq, err := strconv.ParseUint(string(v), 10, 64)
	return seq, err == nil
}

// fanout times rounds of one update delivered to every watcher. The
// systems' watch loops report what each watcher saw with saw. Safe for
// concurrent use.
type fanout struct {
	mu   sync.Mutex
	want string
	// got[w] receives the arrival time of the round's value at watcher
	// w (capacity 1).
	got []chan time.Time
}

func newFanout(watchers int) *fanout {
	f := &fanout{got: make([]chan time.Time, watchers)}
	for i := range f.got {
		f.got[i] = make(chan time.Time, 1)
	}
	return f
}

// saw reports that watcher w saw value v at at.
func (f *fanout) saw(w int, v string, at time.Time) {
	f.mu.Lock()
	match := v == f.want
	f.mu.Unlock()
	if !match {
		return
	}
	select {
	case f.got[w] <- at:
	default:
	}
}

// run sends one untimed warm-up value and then rounds timed ones (send
// returns once the system acked), waiting after each until every
// watcher has it (at most timeout), and returns every delivery's
// latency, counted from just before the send.
func (f *fanout) run(ctx context.Context, rounds int, timeout time.Duration, send func(ctx context.Context, v string) error,
	logf func(string, ...any), label string) (*Latency, error) {
	var h chaos.Hist
	for r := -1; r < rounds; r++ {
		v := "f" + strconv.Itoa(r)
		f.mu.Lock()
		f.want = v
		f.mu.Unlock()
		start := time.Now()
		if err := send(ctx, v); err != nil {
			return nil, fmt.Errorf("round %d: send: %w", r, err)
		}
		deadline := time.NewTimer(timeout)
		for w, ch := range f.got {
			select {
			case at := <-ch:
				if r >= 0 {
					h.Add(at.Sub(start))
				}
			case <-deadline.C:
				return nil, fmt.Errorf("round %d: watcher %d of %d did not get %q within %v", r, w, len(f.got), v, timeout)
			case <-ctx.Done():
				deadline.Stop()
				return nil, ctx.Err()
			}
		}
		deadline.Stop()
		if r >= 0 && (r+1)%10 == 0 {
			logf("%s: %d/%d rounds, p99 so far %s", label, r+1, rounds, fmtMs(h.Quantile(0.99)))
		}
	}
	return &Latency{Summary: summarize(&h), hist: &h}, nil
}
