package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/strata-registry/strata/internal/chaos"
)

// Shape is a Strata cluster's node counts.
type Shape struct {
	Meta, Data, Session int
}

// String is meta/data/session, as --shapes takes it.
func (s Shape) String() string { return fmt.Sprintf("%d/%d/%d", s.Meta, s.Data, s.Session) }

// dirName is String fit for a directory name.
func (s Shape) dirName() string { return strings.ReplaceAll(s.String(), "/", "-") }

// MarshalText implements encoding.TextMarshaler (JSON as "3/3/2").
func (s Shape) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// parseShapes reads a comma list of meta/data/session shapes.
func parseShapes(list string) ([]Shape, error) {
	var out []Shape
	for item := range strings.SplitSeq(list, ",") {
		parts := strings.Split(strings.TrimSpace(item), "/")
		if len(parts) != 3 {
			return nil, fmt.Errorf("shape %q: want meta/data/session, such as 3/3/2", item)
		}
		var n [3]int
		for i, p := range parts {
			v, err := strconv.Atoi(p)
			if err != nil || v < 1 || v > 9 {
				return nil, fmt.Errorf("shape %q: each count must be 1 to 9", item)
			}
			n[i] = v
		}
		out = append(out, Shape{Meta: n[0], Data: n[1], Session: n[2]})
	}
	if len(out) == 0 {
		return nil, errors.New("no shape given")
	}
	return out, nil
}

// millionShape is the shape the million runs on.
func millionShape() Shape { return Shape{Meta: 3, Data: 3, Session: 2} }

// bench is one run: its settings and its directory.
type bench struct {
	opts options
	// dir is the run's directory; bin the servers' (both absolute).
	dir, bin string
	start    time.Time
}

// newBench makes the run's directory under o.Out.
func newBench(o options) (*bench, error) {
	bin, err := filepath.Abs(o.Bin)
	if err != nil {
		return nil, fmt.Errorf("--bin: %w", err)
	}
	for _, role := range []string{"meta", "data", "session"} {
		if _, err := os.Stat(filepath.Join(bin, role)); err != nil {
			return nil, fmt.Errorf("--bin %s: no %s binary (run make build): %w", bin, role, err)
		}
	}
	now := time.Now()
	dir, err := filepath.Abs(filepath.Join(o.Out, "scale-"+now.Format("20060102-150405")))
	if err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("make run directory: %w", err)
	}
	return &bench{opts: o, dir: dir, bin: bin, start: now}, nil
}

// path is name inside the run's directory.
func (b *bench) path(name string) string { return filepath.Join(b.dir, name) }

// logf prints a progress line, stamped with the time since the start.
func (b *bench) logf(format string, args ...any) {
	d := time.Since(b.start).Truncate(time.Second)
	fmt.Printf("[%8s] %s\n", d, fmt.Sprintf(format, args...))
}

// runAll runs every pair, then the million, filling rep as it goes. It
// returns ctx's error when the run was cut short; a failed phase is
// recorded in its system's result and the run goes on.
func (b *bench) runAll(ctx context.Context, rep *Report) error {
	for p := range b.opts.Pairs {
		b.logf("pair %d of %d", p+1, b.opts.Pairs)
		pair := &PairResult{}
		rep.Pairs = append(rep.Pairs, pair)
		b.runPair(ctx, p, pair)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted in pair %d: %w", p+1, err)
		}
	}
	if b.opts.enabled(phaseMillion) {
		rep.Million = b.strataMillion(ctx)
	}
	return ctx.Err()
}

// runPair runs Strata on every shape, then etcd, then Strata's paced
// storms at etcd's rate.
func (b *bench) runPair(ctx context.Context, p int, pair *PairResult) {
	for _, shape := range b.opts.Shapes {
		if ctx.Err() != nil {
			return
		}
		pair.Strata = append(pair.Strata, b.strataMain(ctx, shape, p))
	}
	if ctx.Err() != nil {
		return
	}
	pair.Etcd = b.etcdMain(ctx, p)
	if !b.opts.enabled(phasePaced) {
		return
	}
	for i, shape := range b.opts.Shapes {
		if ctx.Err() != nil {
			return
		}
		res := pair.Strata[i]
		if pair.Etcd.Storm == nil || pair.Etcd.Storm.Rate <= 0 {
			res.fail(phasePaced, errors.New("no etcd storm rate to pace at"))
			continue
		}
		b.strataPaced(ctx, shape, p, pair.Etcd.Storm.Rate, res)
	}
}

// phase runs f as phase of res's system, if the phase is enabled, bounded
// by timeout; its error goes into res.
func (b *bench) phase(ctx context.Context, res *SystemResult, phase string, timeout time.Duration, f func(context.Context) error) {
	if !b.opts.enabled(phase) || ctx.Err() != nil {
		return
	}
	b.logf("%s %s: start", res.System, phase)
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	if err := f(pctx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("timed out after %v: %w", timeout, err)
		}
		res.fail(phase, err)
		b.logf("%s %s: FAILED after %v: %v", res.System, phase, time.Since(start).Round(time.Millisecond), err)
		return
	}
	b.logf("%s %s: done in %v", res.System, phase, time.Since(start).Round(time.Millisecond))
}

// valueOf is publisher i's value of generation gen, n bytes: the
// generation and index first (so a subscriber can tell generations
// apart), padded with 'x'.
func valueOf(gen, i, n int) []byte {
	v := fmt.Appendf(nil, "g%d 10.%d.%d.%d:8080 ", gen, (i>>16)&255, (i>>8)&255, i&255)
	for len(v) < n {
		v = append(v, 'x')
	}
	return v[:n]
}

// generationOf is the generation valueOf wrote into v, or -1.
func generationOf(v []byte) int {
	s, _, ok := strings.Cut(string(v), " ")
	if !ok || len(s) < 2 || s[0] != 'g' {
		return -1
	}
	g, err := strconv.Atoi(s[1:])
	if err != nil {
		return -1
	}
	return g
}

// serviceOf is the service (data ID suffix) publisher i belongs to.
func serviceOf(i, services int) string { return fmt.Sprintf("svc%04d", i%services) }

// share is the indices conn registers of n spread over conns: conn,
// conn+conns, ...
func share(conn, conns, n int) []int {
	var out []int
	for i := conn; i < n; i += conns {
		out = append(out, i)
	}
	return out
}

// poll is chaos.Poll: f every 100 ms until it returns nil, ctx ends or
// timeout passes.
func poll(ctx context.Context, timeout time.Duration, f func() error) error {
	return chaos.Poll(ctx, timeout, f)
}

// commas formats n with thousands separators: 42,000.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
