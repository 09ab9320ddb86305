package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
)

// progressEvery is how often a storm prints a progress line.
const progressEvery = 5 * time.Second

// stormSpec is one registration storm, the same for either system: the
// system supplies register for its connections.
type stormSpec struct {
	// label starts every progress line ("strata 3/3/2 storm").
	label string
	// publishers are registered over conns connections, connection k
	// taking publishers k, k+conns, ... one after another, each as soon
	// as the previous one is acked.
	publishers, conns int
	// limiter, when set, paces the registrations of all connections
	// together (the paced storm).
	limiter *rate.Limiter
	// register registers publisher i on connection conn and returns
	// once the system acked it, with how many refusals (rate limits) it
	// retried on the way. Called concurrently for different conns.
	register func(ctx context.Context, conn, i int) (retries int, err error)
	// registerMany, when set, registers publishers idx on conn in one
	// call (at most bulk of them): the storm then goes bulk at a time.
	registerMany func(ctx context.Context, conn int, idx []int) error
	bulk         int
	// probe, when set, has its window opened at the start and closed at
	// the end of the storm.
	probe *probe
	// check, when set, runs at every progress line; an error ends the
	// storm with it (the million's memory bound).
	check func() error
	logf  func(format string, args ...any)
}

// stormOutcome is what a storm did.
type stormOutcome struct {
	registered int64
	elapsed    time.Duration
	retries    int64
}

// rate is registrations per second.
func (o stormOutcome) rate() float64 {
	if o.elapsed <= 0 {
		return 0
	}
	return float64(o.registered) / o.elapsed.Seconds()
}

// runStorm runs s and returns once every publisher is acked, or with the
// first error (which stops the other connections).
func runStorm(ctx context.Context, s stormSpec) (stormOutcome, error) {
	var done, retries atomic.Int64
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(sctx)
	start := time.Now()
	if s.probe != nil {
		s.probe.open(start)
	}
	for conn := range s.conns {
		if s.registerMany != nil && s.bulk > 1 {
			g.Go(func() error { return s.runBulk(gctx, conn, &done) })
			continue
		}
		g.Go(func() error {
			for _, i := range share(conn, s.conns, s.publishers) {
				if s.limiter != nil {
					if err := s.limiter.Wait(gctx); err != nil {
						return fmt.Errorf("pace: %w", err)
					}
				}
				r, err := s.register(gctx, conn, i)
				retries.Add(int64(r))
				if err != nil {
					return fmt.Errorf("publisher %d on connection %d: %w", i, conn, err)
				}
				done.Add(1)
			}
			return nil
		})
	}
	var checkErr error
	var wg sync.WaitGroup
	wg.Go(func() { checkErr = s.report(gctx, start, &done, cancel) })
	err := g.Wait()
	out := stormOutcome{registered: done.Load(), elapsed: time.Since(start), retries: retries.Load()}
	if s.probe != nil {
		s.probe.close(start.Add(out.elapsed))
	}
	cancel()
	wg.Wait()
	if checkErr != nil {
		return out, checkErr
	}
	if err != nil {
		return out, err
	}
	s.logf("%s: %s registered in %v, %s/s, %s retried after a refusal", s.label, commas(out.registered),
		out.elapsed.Round(time.Millisecond), commas(int64(out.rate())), commas(out.retries))
	return out, nil
}

// runBulk registers connection conn's share bulk at a time.
func (s stormSpec) runBulk(ctx context.Context, conn int, done *atomic.Int64) error {
	mine := share(conn, s.conns, s.publishers)
	for len(mine) > 0 {
		chunk := mine[:min(s.bulk, len(mine))]
		mine = mine[len(chunk):]
		if s.limiter != nil {
			for range chunk {
				if err := s.limiter.Wait(ctx); err != nil {
					return fmt.Errorf("pace: %w", err)
				}
			}
		}
		if err := s.registerMany(ctx, conn, chunk); err != nil {
			return fmt.Errorf("publishers %d.. on connection %d: %w", chunk[0], conn, err)
		}
		done.Add(int64(len(chunk)))
	}
	return nil
}

// report prints a progress line every progressEvery until ctx ends, and
// runs s.check; when check fails it cancels the storm and returns the
// error.
func (s stormSpec) report(ctx context.Context, start time.Time, done *atomic.Int64, cancel context.CancelFunc) error {
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	last, lastAt := int64(0), start
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			n := done.Load()
			line := fmt.Sprintf("%s: %s/%s registered, %s/s", s.label, commas(n), commas(int64(s.publishers)),
				commas(int64(float64(n-last)/now.Sub(lastAt).Seconds())))
			if s.probe != nil {
				line += fmt.Sprintf(", probe p50 %s", fmtMs(s.probe.p50()))
			}
			s.logf("%s", line)
			last, lastAt = n, now
			if s.check == nil {
				continue
			}
			if err := s.check(); err != nil {
				cancel()
				return err
			}
		}
	}
}

// fmtMs formats d in milliseconds for progress lines.
func fmtMs(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
