// Command chaos runs a Strata cluster of real processes under a seeded,
// randomized schedule of faults with steady client load, checks the
// history of what the clients did and saw, and reports (make chaos).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-registry/strata/internal/chaos"
)

// options are the command's flags.
type options struct {
	bin, out, faults, net string
	seed                  uint64
	duration              time.Duration
	maxFaults             int
	ordered               bool
	publishers, subs      int
	rate                  float64
	bound                 time.Duration
	holdMin, holdMax      time.Duration
	gapMin, gapMax        time.Duration
	progress              time.Duration
	compose, socket       string
	credentials, cluster  string
}

// errViolations makes the exit status 1 after the report was printed.
var errViolations = errors.New("violations found")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newCommand().ExecuteContext(ctx)
	stop()
	switch {
	case errors.Is(err, errViolations):
		os.Exit(1)
	case err != nil:
		os.Exit(2)
	}
}

func newCommand() *cobra.Command {
	def := chaos.DefaultConfig()
	o := &options{}
	cmd := &cobra.Command{
		Use:   "chaos",
		Short: "Run a cluster of real processes under seeded random faults and check what clients saw",
		Long: `chaos starts 3 meta, 3 data and 3 session processes (bin/), TLS on every link,
runs steady load through the Go SDK (publishers updating values that only
grow, subscribers following every key), and injects a seeded random
schedule of faults, one at a time: SIGKILL, SIGSTOP/SIGCONT and restart of
every role, meta leader loss, meta quorum loss, and (as root, in network
namespaces) partitions. A checker follows every ack and every snapshot and
reports violations of: (1) final snapshot = each live publication's last
acked value, (2) no version and no publisher's value goes back, (3) no live
publication vanishes, (4) convergence after each fault within --bound,
(5) one version, one content. Exit status: 0 no violation, 1 violations,
2 the run could not be made. Logs, report.md, report.json, latency.svg and
the seed stay in the output directory.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := run(cmd, o)
			if err != nil && !errors.Is(err, errViolations) {
				fmt.Fprintln(cmd.ErrOrStderr(), "chaos:", err)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.bin, "bin", "bin", "directory holding the meta, data and session binaries")
	f.StringVar(&o.out, "out", "", "output directory (default bench/out/chaos-<seed>)")
	f.Uint64Var(&o.seed, "seed", 0, "schedule seed (0: from the clock; printed)")
	f.DurationVar(&o.duration, "duration", def.Duration, "how long to inject faults")
	f.StringVar(&o.faults, "faults", "all", "fault kinds, comma separated ("+kindList()+"), or groups: process, partition, data, session, meta")
	f.BoolVar(&o.ordered, "ordered", false, "take --faults in the order given, cycling, instead of at random")
	f.IntVar(&o.maxFaults, "max-faults", 0, "stop after this many faults (0: until --duration)")
	f.StringVar(&o.net, "net", def.Net, "loopback, netns (root: a namespace per node; partitions), or auto (netns when root and a partition kind is on)")
	f.IntVar(&o.publishers, "publishers", def.Load.Publishers, "publications (a client each; two per key)")
	f.IntVar(&o.subs, "subscribers", def.Load.Subscribers, "subscriber clients (each follows every key)")
	f.Float64Var(&o.rate, "rate", def.Load.Rate, "updates per second per publication")
	f.DurationVar(&o.bound, "bound", def.ConvergenceBound, "convergence bound after a fault (property 4)")
	f.DurationVar(&o.holdMin, "hold-min", def.Timing.HoldMin, "shortest fault")
	f.DurationVar(&o.holdMax, "hold-max", def.Timing.HoldMax, "longest fault")
	f.DurationVar(&o.gapMin, "gap-min", def.Timing.GapMin, "shortest pause after recovery")
	f.DurationVar(&o.gapMax, "gap-max", def.Timing.GapMax, "longest pause after recovery")
	f.DurationVar(&o.progress, "progress", def.ProgressEvery, "progress line interval")
	f.StringVar(&o.compose, "compose", "", "attach to this running compose project instead of starting processes (make chaos-compose; run on its network)")
	f.StringVar(&o.socket, "docker-socket", "/var/run/docker.sock", "with --compose: the Docker Engine's socket")
	f.StringVar(&o.credentials, "credentials", "/credentials", "with --compose: the operator credentials share (admin/admin, client/dev)")
	f.StringVar(&o.cluster, "cluster", "strata", "with --compose: the cluster name in the certificates")
	return cmd
}

func kindList() string {
	s := ""
	for i, k := range chaos.AllKinds {
		if i > 0 {
			s += ","
		}
		s += string(k)
	}
	return s
}

func run(cmd *cobra.Command, o *options) error {
	kinds, err := chaos.ParseKinds(o.faults)
	if err != nil {
		return err
	}
	cfg := chaos.DefaultConfig()
	cfg.Seed = o.seed
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano()) % 1_000_000_000
	}
	cfg.Out = o.out
	if cfg.Out == "" {
		cfg.Out = filepath.Join("bench", "out", fmt.Sprintf("chaos-%d", cfg.Seed))
	}
	if o.compose != "" {
		cfg.Compose = &chaos.ComposeConfig{Project: o.compose, Socket: o.socket, Credentials: o.credentials, Cluster: o.cluster}
	} else {
		if cfg.Bin, err = filepath.Abs(o.bin); err != nil {
			return err
		}
		for _, b := range []string{"meta", "data", "session"} {
			if _, err := os.Stat(filepath.Join(cfg.Bin, b)); err != nil {
				return fmt.Errorf("%s: %w (make build)", filepath.Join(cfg.Bin, b), err)
			}
		}
	}
	cfg.Duration, cfg.MaxFaults, cfg.Kinds, cfg.Ordered, cfg.Net = o.duration, o.maxFaults, kinds, o.ordered, o.net
	cfg.Load.Publishers, cfg.Load.Subscribers, cfg.Load.Rate = o.publishers, o.subs, o.rate
	cfg.ConvergenceBound = o.bound
	cfg.Timing = chaos.Timing{HoldMin: o.holdMin, HoldMax: o.holdMax, GapMin: o.gapMin, GapMax: o.gapMax}
	cfg.Progress, cfg.ProgressEvery = cmd.OutOrStdout(), o.progress
	fmt.Fprintf(cmd.OutOrStdout(), "chaos: seed %d (replay: make chaos SEED=%d), output %s\n", cfg.Seed, cfg.Seed, cfg.Out)
	rep, err := chaos.Run(cmd.Context(), cfg)
	if rep != nil && rep.Result != nil {
		fmt.Fprint(cmd.OutOrStdout(), "\n"+rep.Summary())
		fmt.Fprintf(cmd.OutOrStdout(), "report: %s, %s; logs: %s/*.log\n",
			filepath.Join(cfg.Out, "report.md"), filepath.Join(cfg.Out, "latency.svg"), cfg.Out)
	}
	if err != nil {
		return err
	}
	if !rep.Result.OK() {
		return errViolations
	}
	if rep.Interrupted {
		return errors.New("interrupted")
	}
	return nil
}
