// Command data runs a Strata data node: it holds publisher records for the
// slots the meta tier assigns it, as their leader or follower.
package main

import (
	"context"
	"errors"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/strata-registry/strata/internal/cli"
	"github.com/strata-registry/strata/internal/data"
)

type options struct {
	cfg       data.Config
	grpcAddr  string
	httpAddr  string
	gossip    string
	advertise string
	logLevel  string
	logFormat string
}

func main() {
	if err := newCommand().Execute(); err != nil {
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	o := &options{cfg: data.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Run a Strata data node (slot-sharded publisher records)",
		Long: `data runs one node of Strata's data tier. It registers with the meta tier
(--meta), joins the gossip pool (--join), and holds the slots the meta tier
assigns it: as leader it serves sessions' writes and reads, sends change
notices, expires dead sessions' publishers and repairs from sessions; as
follower it replicates from the leader.

Every flag can also be set from the environment: STRATA_ plus the flag name
in upper snake case (--node-id is STRATA_NODE_ID). Flags win over the
environment.`,
		Example:      `  data --node-id data-1 --meta meta-1:9615,meta-2:9615,meta-3:9615 --join meta-1:7946`,
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		PreRunE:      func(cmd *cobra.Command, _ []string) error { return cli.ApplyEnv(cmd) },
		RunE:         func(cmd *cobra.Command, _ []string) error { return run(cmd, o) },
	}
	f := cmd.Flags()
	c := &o.cfg
	f.StringVar(&c.NodeID, "node-id", cli.Hostname(), "unique node name in the slot table and the gossip pool")
	f.StringVar(&c.Zone, "zone", "", "zone (availability zone or rack) announced to the cluster")
	f.StringSliceVar(&c.MetaAddrs, "meta", []string{"127.0.0.1:9615"}, "meta gRPC addresses, comma separated (any subset)")
	f.StringVar(&o.grpcAddr, "grpc-addr", ":9622", "listen address for the DataService gRPC API")
	f.StringVar(&o.httpAddr, "http-addr", ":9623", "listen address for admin HTTP (/healthz, /readyz, /metrics, /api/v1, pprof)")
	f.StringVar(&o.gossip, "gossip-addr", ":7946", "listen address for memberlist gossip (TCP and UDP)")
	f.StringVar(&o.advertise, "advertise-host", "", "host other nodes use to reach this one (default: the bound host, or the hostname when bound on all interfaces)")
	f.StringSliceVar(&c.Join, "join", nil, "gossip seeds to join, host:port, comma separated (any role)")
	f.BoolVar(&c.LeaveOnShutdown, "leave-on-shutdown", c.LeaveOnShutdown, "leave the pool on a graceful stop, so meta reassigns this node's slots at once")
	f.DurationVar(&c.HeartbeatInterval, "heartbeat-interval", c.HeartbeatInterval, "how often to report slot sync status to meta")
	f.DurationVar(&c.SessionLease, "session-lease", c.SessionLease, "remove a session's publishers after it is silent (no request, no change stream) this long")
	f.DurationVar(&c.SessionGrace, "session-grace", c.SessionGrace, "remove a session's publishers after the gossip pool shows it dead this long")
	f.DurationVar(&c.AntiEntropyInterval, "anti-entropy-interval", c.AntiEntropyInterval, "how often a slot leader compares its records with every session")
	f.IntVar(&c.LogCap, "replication-log", c.LogCap, "ops kept per slot for followers to resume from (further behind: snapshot)")
	f.IntVar(&c.MaxBatch, "max-batch", c.MaxBatch, "most puts plus deletes in one publish request")
	f.IntVar(&c.NoticeMaxKeys, "notice-max-keys", c.NoticeMaxKeys, "most keys pending per session change stream before it is told to rescan")
	cli.TLSFlags(f, &c.TLS)
	cli.CommonFlags(f, &c.AdminToken, &o.logLevel, &o.logFormat)
	cli.DescribeEnv(f)
	cmd.AddCommand(cli.HealthCommand("127.0.0.1:9623"))
	return cmd
}

func run(cmd *cobra.Command, o *options) error {
	logger, err := cli.Logger(cmd.ErrOrStderr(), o.logLevel, o.logFormat, o.cfg.NodeID)
	if err != nil {
		return err
	}
	if o.cfg.GossipBind, o.cfg.GossipPort, o.cfg.GossipAdvertise, err = cli.Gossip(o.gossip, o.advertise); err != nil {
		return err
	}
	grpcLn, adv, err := cli.Listen("grpc-addr", o.grpcAddr, o.advertise)
	if err != nil {
		return err
	}
	o.cfg.GRPCAdvertise = adv
	httpLn, adv, err := cli.Listen("http-addr", o.httpAddr, o.advertise)
	if err != nil {
		_ = grpcLn.Close()
		return err
	}
	o.cfg.HTTPAdvertise = adv
	srv, err := data.New(o.cfg, data.Deps{Logger: logger, GRPCListener: grpcLn, HTTPListener: httpLn})
	if err != nil {
		for _, ln := range []net.Listener{grpcLn, httpLn} {
			_ = ln.Close()
		}
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
