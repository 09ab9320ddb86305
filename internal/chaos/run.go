package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one chaos run.
type Config struct {
	// Bin holds the meta, data and session binaries.
	Bin string
	// Out is the output directory: node logs, report, chart, schedule.
	Out string
	// Seed chooses the schedule.
	Seed uint64
	// Duration is how long faults are injected (the run takes longer:
	// start, baseline, quiesce).
	Duration time.Duration
	// MaxFaults stops after this many faults (0: no limit).
	MaxFaults int
	// Kinds are the fault kinds enabled; Ordered takes them in this order,
	// cycling, instead of at random.
	Kinds   []Kind
	Ordered bool
	// Net is "loopback", "netns" or "auto" (netns when root and a
	// partition kind is enabled; loopback drops the partition kinds).
	Net string
	// Meta, Data, Session are the node counts.
	Meta, Data, Session int
	Load                LoadConfig
	Timing              Timing
	// Baseline is how long the load runs before the first fault.
	Baseline time.Duration
	// Compose, when set, attaches to a running compose project instead
	// of starting processes (Bin, Net and the node counts are unused).
	Compose *ComposeConfig
	// ConvergenceBound is property 4's bound, and how long the runner
	// waits for recovery after a heal before the next fault.
	ConvergenceBound time.Duration
	// Progress gets a line every ProgressEvery.
	Progress      io.Writer
	ProgressEvery time.Duration
}

// DefaultConfig is make chaos's run, short of Bin, Out and Seed.
func DefaultConfig() Config {
	return Config{
		Duration: 2 * time.Minute, Kinds: slices.Clone(AllKinds), Net: "auto",
		Meta: 3, Data: 3, Session: 3,
		Load:     LoadConfig{Publishers: 20, Subscribers: 10, Rate: 4, UpdateTimeout: 5 * time.Second},
		Timing:   DefaultTiming,
		Baseline: 3 * time.Second, ConvergenceBound: 30 * time.Second,
		Progress: io.Discard, ProgressEvery: 5 * time.Second,
	}
}

// Report is a run's outcome.
type Report struct {
	Seed     uint64        `json:"seed"`
	Out      string        `json:"out"`
	Net      string        `json:"net"`
	Kinds    []Kind        `json:"kinds"`
	Skipped  []Kind        `json:"skipped_kinds,omitempty"`
	Duration time.Duration `json:"duration"`
	Elapsed  time.Duration `json:"elapsed"`
	Nodes    string        `json:"nodes"`
	Load     LoadConfig    `json:"load"`
	Keys     int           `json:"keys"`
	// Detection is the gossip budget the nodes logged (dead, confirmed).
	Detection time.Duration `json:"detection_budget"`
	// Bound is property 4's convergence bound.
	Bound time.Duration `json:"convergence_bound"`
	// FinalConvergence is how long after the last update every
	// subscriber showed exactly the last acked values.
	FinalConvergence time.Duration `json:"final_convergence"`
	FaultsByKind     map[Kind]int  `json:"faults_by_kind"`
	FaultErrors      int           `json:"fault_errors"`
	Interrupted      bool          `json:"interrupted,omitempty"`
	Notes            []string      `json:"notes,omitempty"`
	Result           *Result       `json:"result"`
}

// Run starts the cluster and the load, runs the schedule, quiesces,
// checks, writes the report into cfg.Out, and stops everything it
// started (also when ctx ends: the report then says interrupted). The
// error is for a run that could not be made (the cluster did not start);
// violations are in the report.
func Run(ctx context.Context, cfg Config) (rep *Report, err error) {
	start := time.Now()
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(cfg.Progress, "chaos %6s  "+format+"\n", append([]any{time.Since(start).Round(time.Second).String()}, args...)...)
	}
	rep = &Report{Seed: cfg.Seed, Out: cfg.Out, Bound: cfg.ConvergenceBound, Duration: cfg.Duration, Load: cfg.Load, FaultsByKind: map[Kind]int{}}
	_ = os.WriteFile(filepath.Join(cfg.Out, "seed"), []byte(fmt.Sprintln(cfg.Seed)), 0o644)

	kinds := slices.Clone(cfg.Kinds)
	wantCuts := slices.ContainsFunc(kinds, Kind.Partition)
	var (
		nw Net
		c  *Cluster
	)
	if cfg.Compose != nil {
		if c, nw, err = AttachCompose(ctx, *cfg.Compose, logf); err != nil {
			return nil, err
		}
	} else {
		switch cfg.Net {
		case "netns":
			if nw, err = NewNetns(); err != nil {
				return nil, err
			}
		case "auto", "":
			if wantCuts && os.Geteuid() == 0 {
				if n, err := NewNetns(); err == nil {
					nw = n
				} else {
					rep.Notes = append(rep.Notes, "netns unavailable, partitions skipped: "+err.Error())
				}
			}
		case "loopback":
		default:
			return nil, fmt.Errorf("chaos: unknown net %q (loopback, netns, auto)", cfg.Net)
		}
		if nw == nil {
			nw = NewLoopback()
		}
	}
	if f, ok := nw.(kindFilter); ok {
		for _, k := range kinds {
			if !f.CanMake(k) {
				rep.Skipped = append(rep.Skipped, k)
			}
		}
		kinds = slices.DeleteFunc(kinds, func(k Kind) bool { return !f.CanMake(k) })
	}
	rep.Net, rep.Kinds = nw.Name(), kinds
	if len(kinds) == 0 {
		if c != nil {
			c.Close()
		}
		_ = nw.Close()
		return nil, errors.New("chaos: no fault kind this network can make")
	}
	logf("seed %d, net %s, faults %s, output %s", cfg.Seed, nw.Name(), joinKinds(kinds), cfg.Out)

	if c == nil {
		c, err = StartCluster(ctx, ClusterConfig{Bin: cfg.Bin, Dir: cfg.Out, Meta: cfg.Meta, Data: cfg.Data, Session: cfg.Session, Net: nw, Logf: logf})
		if err != nil {
			_ = nw.Close()
			return nil, err
		}
	}
	rep.Nodes = fmt.Sprintf("%d meta, %d data, %d session", len(c.Metas), len(c.Datas), len(c.Sessions))
	defer c.Close()
	if cfg.Compose != nil {
		// The containers' logs, at the end (the deferred calls run last
		// in first: this one before Close heals the project).
		defer c.saveLogs(cfg.Out)
		c.saveLogs(cfg.Out) // for the detection budget the nodes logged
	}
	rep.Detection = detectionBudget(c.Datas[0].LogPath)
	load, err := StartLoad(ctx, c, cfg.Load, cfg.ConvergenceBound)
	if err != nil {
		return nil, err
	}
	defer load.Close()
	rep.Keys = len(load.Keys())
	ch := load.Checker()
	logf("load: %d publishers, %d subscribers, %d keys, %.1f updates/s each", cfg.Load.Publishers, cfg.Load.Subscribers, rep.Keys, cfg.Load.Rate)

	// The slot table, refreshed while meta answers: a fault's keys are
	// those its data node leads in the latest table read.
	var table atomic.Pointer[Table]
	if t, err := c.Table(); err == nil {
		table.Store(t)
	}
	var current atomic.Value // string: the fault in progress
	current.Store("baseline")
	var faults atomic.Int64
	bg, stopBG := context.WithCancel(context.Background())
	var bgWG sync.WaitGroup
	bgWG.Add(2)
	go func() {
		defer bgWG.Done()
		for sleep(bg, time.Second) {
			if t, err := c.Table(); err == nil {
				table.Store(t)
			}
		}
	}()
	go func() {
		defer bgWG.Done()
		for sleep(bg, cfg.ProgressEvery) {
			sent, acked, snaps, viol := ch.Ops()
			logf("updates %d sent %d acked, %d snapshots, %d faults, %d violations; now: %s", sent, acked, snaps, faults.Load(), viol, current.Load())
		}
	}()
	defer func() {
		stopBG()
		bgWG.Wait()
	}()

	sleep(ctx, cfg.Baseline)
	deadline := time.Now().Add(cfg.Duration)
	n := cfg.MaxFaults
	if n <= 0 {
		n = int(cfg.Duration/time.Second) + 1 // more than can fit
	}
	schedule := Schedule(cfg.Seed, kinds, n, cfg.Ordered, cfg.Timing)
	var flog strings.Builder
	for i, p := range schedule {
		if ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		pubs, subs := load.Sessions()
		fs := FaultStart{Kind: p.Kind, At: time.Now(), PubSessions: pubs, SubSessions: subs}
		// The keys on the faulty node by the table as it is now (the
		// cached one may predate the last recovery's moves).
		t := table.Load()
		if fresh, err := c.Table(); err == nil {
			t = fresh
			table.Store(fresh)
		}
		f, ierr := plan(c, p, func(n *Node) bool {
			return slices.ContainsFunc(load.Keys(), func(k string) bool { return t.LeaderOf(dataInfoID(k)) == n.ID })
		})
		// The fault is in force from the start of its action (a graceful
		// restart holds its keys while the node stops).
		fs.At = time.Now()
		if f != nil {
			fs.Target = f.target
			fs.Blast = blast(f, t, load.Keys())
		}
		idx := ch.FaultStarted(fs)
		if ierr == nil {
			ierr = f.start()
		}
		faults.Add(1)
		rep.FaultsByKind[p.Kind]++
		if ierr != nil {
			rep.FaultErrors++
			ch.FaultHealed(idx, time.Now(), ierr)
			logf("fault %d %s: %v", i, p.Kind, ierr)
			fmt.Fprintf(&flog, "%s fault %d %s: not injected: %v\n", fs.At.Format(time.RFC3339Nano), idx, p.Kind, ierr)
			sleep(ctx, p.Gap)
			continue
		}
		current.Store(fmt.Sprintf("%s %s (hold %v)", p.Kind, f.target, p.Hold.Round(100*time.Millisecond)))
		fmt.Fprintf(&flog, "%s fault %d %s %s hold %v; table epoch %d, key leaders %s\n", fs.At.Format(time.RFC3339Nano), idx, p.Kind, f.target,
			p.Hold.Round(time.Millisecond), t.Epoch, keyLeaders(t, load.Keys()))
		// The hold ends early when ctx ends; the heal always runs.
		sleep(ctx, p.Hold)
		herr := f.heal()
		healed := time.Now()
		ch.FaultHealed(idx, healed, herr)
		if herr != nil {
			rep.FaultErrors++
			logf("fault %d %s %s: heal: %v", i, p.Kind, f.target, herr)
		}
		current.Store(fmt.Sprintf("recovering from %s %s", p.Kind, f.target))
		// Recovery: every node ready and the table settled, and every
		// subscriber caught up, before the next fault (one fault at a time).
		rerr := c.WaitReady(ctx, c.Nodes(), cfg.ConvergenceBound)
		if rerr == nil {
			rerr = c.WaitSettled(ctx, cfg.ConvergenceBound)
		}
		cerr := Poll(ctx, cfg.ConvergenceBound, func() error {
			if _, ok := ch.Convergence(idx); !ok {
				return errors.New(ch.Lagging(idx))
			}
			return nil
		})
		conv, _ := ch.Convergence(idx)
		after, _ := c.Table()
		fmt.Fprintf(&flog, "%s fault %d healed (err %v); cluster recovered in %v (err %v); clients converged in %v; table epoch %d, key leaders %s\n",
			healed.Format(time.RFC3339Nano), idx, herr, time.Since(healed).Round(time.Millisecond), rerr, conv.Round(time.Millisecond),
			after.epoch(), keyLeaders(after, load.Keys()))
		if rerr != nil {
			logf("fault %d %s %s: cluster not recovered: %v", i, p.Kind, f.target, rerr)
		}
		if cerr != nil {
			logf("fault %d %s %s: clients not converged: %v", i, p.Kind, f.target, cerr)
		}
		current.Store("gap")
		sleep(ctx, p.Gap)
	}
	rep.Interrupted = ctx.Err() != nil
	current.Store("quiesce")
	// Interrupted (Ctrl-C): a short quiesce, so the report comes soon.
	quiesce := cfg.ConvergenceBound
	if rep.Interrupted {
		quiesce = min(quiesce, 5*time.Second)
	}
	logf("faults done (%d); stopping updates, waiting for final convergence", faults.Load())
	_ = c.WaitReady(context.Background(), c.Nodes(), quiesce)
	if err := load.StopPublishing(quiesce); err != nil {
		rep.Notes = append(rep.Notes, "last updates: "+err.Error())
	}
	last := time.Now()
	var diff string
	ferr := Poll(context.Background(), quiesce, func() error {
		ok, d := ch.FinalExactNow()
		if !ok {
			diff = d
			return errors.New(d)
		}
		return nil
	})
	rep.FinalConvergence = time.Since(last)
	if ferr != nil {
		rep.Notes = append(rep.Notes, "final convergence: "+diff)
	}
	rep.Result = ch.Finish(time.Now())
	if rep.FinalConvergence > rep.Result.WorstConv {
		rep.Result.WorstConv = rep.FinalConvergence
	}
	if cfg.ConvergenceBound > 0 && rep.FinalConvergence > cfg.ConvergenceBound {
		rep.Result.Total++
		rep.Result.Counts[Converges]++
	}
	rep.Elapsed = time.Since(start)
	_ = os.WriteFile(filepath.Join(cfg.Out, "faults.log"), []byte(flog.String()), 0o644)
	if err := rep.write(); err != nil {
		return rep, err
	}
	return rep, nil
}

// blast returns which keys and sessions fault f is on, by table t.
func blast(f *injected, t *Table, keys []string) Blast {
	if f.none {
		return Blast{None: true}
	}
	var b Blast
	if len(f.datas) > 0 {
		b.Keys = map[string]bool{}
		for _, k := range keys {
			for _, d := range f.datas {
				if t.LeaderOf(dataInfoID(k)) == d.ID {
					b.Keys[k] = true
				}
			}
		}
	}
	if len(f.sess) > 0 {
		b.Sessions = map[string]bool{}
		for _, s := range f.sess {
			b.Sessions[s.Addrs.GRPC] = true
		}
	}
	return b
}

// keyLeaders lists each key's slot leader by t, for faults.log.
func keyLeaders(t *Table, keys []string) string {
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", strings.TrimPrefix(k, "com.example.chaos."), t.LeaderOf(dataInfoID(k)))
	}
	return b.String()
}

// sleep waits d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// detectionBudget reads the dead-within-confirmed figure from a node's
// "gossip failure detection budget" log line (0 if absent).
func detectionBudget(logPath string) time.Duration {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		var l struct {
			Msg  string          `json:"msg"`
			Dead json.RawMessage `json:"dead_within_confirmed"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Msg != "gossip failure detection budget" {
			continue
		}
		var ns int64
		if json.Unmarshal(l.Dead, &ns) == nil {
			return time.Duration(ns)
		}
		var s string
		if json.Unmarshal(l.Dead, &s) == nil {
			d, _ := time.ParseDuration(s)
			return d
		}
	}
	return 0
}
