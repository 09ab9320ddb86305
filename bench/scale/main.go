// Command scale measures Strata, as a cluster of real processes with TLS
// (started by internal/chaos), side by side with a single-node etcd on the
// same machine, and reports every figure of DESIGN.md "Performance
// targets" with the ratio Strata/etcd. Within one run the systems
// alternate: for each of --pairs pairs, a fresh Strata cluster per shape,
// then a fresh etcd, then (for the paced storm) fresh Strata clusters
// again; nothing but loopback traffic.
//
// The phases, each for both systems unless noted (--only picks some):
//
//	idle     --idle-conns idle client connections: session (etcd) heap
//	         plus stacks per connection
//	storm    --publishers registered by --clients clients as fast as acks
//	         come: the rate; a probe key updated every 20 ms on session 0
//	         and timed on the last session during the storm; and, once all
//	         are stored, the heap per publisher on data nodes (per copy)
//	         and sessions
//	paced    Strata only: the storm again, on a fresh cluster, paced at
//	         the rate etcd reached in the same pair, with the same probe
//	         (implies storm)
//	restart  --restart-storm-publishers of one service on 100 clients,
//	         closed and all re-registered at once: time until a
//	         subscriber sees every new one
//	fanout   --fanout subscribers of one key on 100 connections: 50
//	         updates, latency per delivery
//	million  with --million, Strata 3/3/2 only: 1,000,000 publishers
//	         (--million-publishers), stopped if a node's RSS passes 8 GiB
//
//	cd bench/scale && go run . --bin ../../bin --out ../../bench/out
//
// `make bench-scale` builds the servers and runs it. The report
// (report.md, report.json), the charts (SVG) and every node's and etcd's
// log go to --out/scale-<date>-<time>/.
//
// This is a module of its own (like bench/etcdlat) so that Strata's
// go.mod gains neither the etcd client nor gonum/plot.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Phase names, as --only takes them.
const (
	phaseIdle    = "idle"
	phaseStorm   = "storm"
	phasePaced   = "paced"
	phaseRestart = "restart"
	phaseFanout  = "fanout"
	phaseMillion = "million"
)

// phases lists every phase in the order a pair runs them.
func phases() []string {
	return []string{phaseIdle, phaseStorm, phasePaced, phaseRestart, phaseFanout, phaseMillion}
}

// options are the command line's settings.
type options struct {
	Shapes            []Shape       `json:"shapes"`
	Pairs             int           `json:"pairs"`
	Clients           int           `json:"clients"`
	Publishers        int           `json:"publishers"`
	Bulk              int           `json:"bulk"`
	Services          int           `json:"services"`
	ValueBytes        int           `json:"value_bytes"`
	IdleConns         int           `json:"idle_conns"`
	Fanout            int           `json:"fanout"`
	FanoutRounds      int           `json:"fanout_rounds"`
	Million           bool          `json:"million"`
	MillionPublishers int           `json:"million_publishers"`
	RestartPublishers int           `json:"restart_storm_publishers"`
	Only              []string      `json:"only,omitempty"`
	PhaseTimeout      time.Duration `json:"phase_timeout"`
	CPUProfile        time.Duration `json:"cpu_profile,omitempty"`
	Out               string        `json:"-"`
	Bin               string        `json:"-"`
}

func main() {
	opts, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, opts, strings.Join(append([]string{filepath.Base(os.Args[0])}, os.Args[1:]...), " "))
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

// parseFlags reads the command line into options and checks them.
func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	shapes := fs.String("shapes", "1/1/1,3/3/2", "Strata cluster shapes to run, meta/data/session, comma separated")
	only := fs.String("only", "", "run only these phases, comma separated: "+strings.Join(phases(), ", ")+" (paced implies storm; default all)")
	fs.IntVar(&o.Pairs, "pairs", 1, "Strata-then-etcd pairs to run; the report gives each figure's median over them")
	fs.IntVar(&o.Clients, "clients", 50, "concurrent client connections of a registration storm")
	fs.IntVar(&o.Publishers, "publishers", 100_000, "publishers registered per storm")
	fs.IntVar(&o.Bulk, "bulk", 1, "publishers a Strata storm client registers per call: 1 is Publish after Publish, as etcd's clients put; more is client.PublishMany of that many (etcd's side stays one put at a time)")
	fs.IntVar(&o.Services, "services", 1000, "services (data IDs) a storm's publishers are spread over")
	fs.IntVar(&o.ValueBytes, "value-bytes", 100, "bytes of each publisher's value")
	fs.IntVar(&o.IdleConns, "idle-conns", 1000, "idle client connections to measure (0 skips)")
	fs.IntVar(&o.Fanout, "fanout", 10_000, "subscribers of the fan-out key, over 100 connections (0 skips)")
	fs.IntVar(&o.FanoutRounds, "fanout-rounds", 50, "timed updates of the fan-out key")
	fs.BoolVar(&o.Million, "million", false, "also register --million-publishers publishers on a Strata 3/3/2 cluster")
	fs.IntVar(&o.MillionPublishers, "million-publishers", 1_000_000, "publishers the million registers (less: a quick check of the phase)")
	fs.IntVar(&o.RestartPublishers, "restart-storm-publishers", 1000, "publishers of one service closed and re-registered at once (0 skips)")
	fs.DurationVar(&o.PhaseTimeout, "phase-timeout", 10*time.Minute, "bound on one phase (the million gets three times it)")
	fs.DurationVar(&o.CPUProfile, "cpu-profile", 0, "also take a CPU profile of every Strata node over this long from the start of each storm (full-speed and paced), kept as <cluster dir>/profiles/cpu-<phase>-<node>.pb.gz (0: none)")
	fs.StringVar(&o.Out, "out", "bench/out", "directory the run's directory goes under")
	fs.StringVar(&o.Bin, "bin", "bin", "directory holding the meta, data and session binaries (make build)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if o.Shapes, err = parseShapes(*shapes); err != nil {
		return o, err
	}
	if o.Only, err = parseOnly(*only); err != nil {
		return o, err
	}
	return o, o.validate()
}

// validate checks the numbers against each other.
func (o options) validate() error {
	switch {
	case o.Pairs < 1 || o.Clients < 1 || o.Publishers < 1 || o.Services < 1 || o.MillionPublishers < 1 || o.Bulk < 1:
		return errors.New("--pairs, --clients, --publishers, --bulk, --services and --million-publishers must be positive")
	case o.ValueBytes < 16:
		return errors.New("--value-bytes must be at least 16 (a value carries its generation and index)")
	case o.IdleConns < 0 || o.Fanout < 0 || o.RestartPublishers < 0 || o.FanoutRounds < 1:
		return errors.New("--idle-conns, --fanout and --restart-storm-publishers must not be negative, --fanout-rounds positive")
	case o.PhaseTimeout <= 0:
		return errors.New("--phase-timeout must be positive")
	case o.CPUProfile < 0 || (o.CPUProfile > 0 && o.CPUProfile < time.Second):
		return errors.New("--cpu-profile must be 0 (none) or at least 1s")
	}
	return nil
}

// parseOnly reads --only.
func parseOnly(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		p = strings.TrimSpace(p)
		if !slices.Contains(phases(), p) {
			return nil, fmt.Errorf("--only: unknown phase %q (phases: %s)", p, strings.Join(phases(), ", "))
		}
		out = append(out, p)
	}
	return out, nil
}

// enabled reports whether phase runs: chosen by --only (or all), and
// with something to do.
func (o options) enabled(phase string) bool {
	chosen := len(o.Only) == 0 || slices.Contains(o.Only, phase) ||
		(phase == phaseStorm && slices.Contains(o.Only, phasePaced))
	if !chosen {
		return false
	}
	switch phase {
	case phaseIdle:
		return o.IdleConns > 0
	case phaseRestart:
		return o.RestartPublishers > 0
	case phaseFanout:
		return o.Fanout > 0
	case phaseMillion:
		return o.Million || slices.Contains(o.Only, phaseMillion)
	}
	return true
}

// run makes the run's directory, runs every pair and writes the report,
// also when a phase failed or ctx ended (a partial report).
func run(ctx context.Context, o options, command string) error {
	b, err := newBench(o)
	if err != nil {
		return err
	}
	rep := newReport(o, command, b.dir)
	b.logf("run directory %s", b.dir)
	runErr := b.runAll(ctx, rep)
	if runErr != nil {
		rep.Errors = append(rep.Errors, runErr.Error())
	}
	if err := writeOutputs(b.dir, rep); err != nil {
		return errors.Join(runErr, err)
	}
	fmt.Printf("\n%s\nreport: %s\n        %s\ncharts: %s\nlogs:   %s/*/*.log\n",
		rep.Markdown(), b.path("report.md"), b.path("report.json"), b.path("*.svg"), b.dir)
	return runErr
}
