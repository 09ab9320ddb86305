// Command meta runs a Strata meta node: one member of the Raft group that
// owns cluster membership and the slot table.
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
	"github.com/strata-registry/strata/internal/meta"
)

type options struct {
	cfg       meta.Config
	grpcAddr  string
	httpAddr  string
	raftAddr  string
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
	o := &options{cfg: meta.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "meta",
		Short: "Run a Strata meta node (Raft group for membership and the slot table)",
		Long: `meta runs one node of Strata's meta tier. Start 3 (or 5) with the same
--bootstrap-expect and --join pointing at each other; they form a Raft group,
and every data and session node joins the same gossip pool through --join.

Every flag can also be set from the environment: STRATA_ plus the flag name
in upper snake case (--node-id is STRATA_NODE_ID). Flags win over the
environment.`,
		Example: `  meta --node-id meta-1 --data-dir /var/lib/strata/meta-1 --bootstrap-expect 3 \
       --join meta-2:7946,meta-3:7946`,
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		PreRunE:      func(cmd *cobra.Command, _ []string) error { return cli.ApplyEnv(cmd) },
		RunE:         func(cmd *cobra.Command, _ []string) error { return run(cmd, o) },
	}
	f := cmd.Flags()
	c := &o.cfg
	f.StringVar(&c.NodeID, "node-id", cli.Hostname(), "unique node name in Raft and the gossip pool")
	f.StringVar(&c.DataDir, "data-dir", "data/meta", "directory for the Raft log, stable store and snapshots")
	f.StringVar(&c.Zone, "zone", "", "zone (availability zone or rack) announced to the cluster")
	f.StringVar(&o.grpcAddr, "grpc-addr", ":9615", "listen address for the MetaService gRPC API")
	f.StringVar(&o.httpAddr, "http-addr", ":9616", "listen address for admin HTTP (/healthz, /readyz, /metrics, /api/v1, pprof)")
	f.StringVar(&o.raftAddr, "raft-addr", ":9614", "listen address for Raft traffic between meta nodes")
	f.StringVar(&o.gossip, "gossip-addr", ":7946", "listen address for memberlist gossip (TCP and UDP)")
	f.StringVar(&o.advertise, "advertise-host", "", "host other nodes use to reach this one (default: the bound host, or the hostname when bound on all interfaces)")
	f.StringSliceVar(&c.Join, "join", nil, "gossip seeds to join, host:port, comma separated (any role)")
	f.IntVar(&c.BootstrapExpect, "bootstrap-expect", 0, "form a new cluster once this many meta nodes have met (3 or 5; 0 joins an existing cluster)")
	f.BoolVar(&c.LeaveOnShutdown, "leave-on-shutdown", false, "leave the pool on shutdown, which removes this node from the Raft voters (for decommissioning)")
	f.IntVar(&c.Slots, "slots", c.Slots, "slot count for a new cluster (fixed once the cluster exists)")
	f.IntVar(&c.Replicas, "replicas", c.Replicas, "copies of each slot, leader included, for a new cluster")
	f.IntVar(&c.MaxMoves, "max-moves", c.MaxMoves, "most voluntary slot moves per arranger round")
	f.DurationVar(&c.JoinGrace, "join-grace", c.JoinGrace, "how long a node must be alive in the pool before it becomes a member")
	f.DurationVar(&c.DeadGrace, "dead-grace", c.DeadGrace, "how long a node must be dead before it stops being a member")
	f.DurationVar(&c.ArrangeInterval, "arrange-interval", c.ArrangeInterval, "least time between slot arranger rounds")
	f.DurationVar(&c.ReconcileInterval, "reconcile-interval", c.ReconcileInterval, "how often the leader reconciles the pool with Raft and the members")
	f.DurationVar(&c.RaftHeartbeatTimeout, "raft-heartbeat-timeout", c.RaftHeartbeatTimeout, "Raft heartbeat timeout")
	f.DurationVar(&c.RaftElectionTimeout, "raft-election-timeout", c.RaftElectionTimeout, "Raft election timeout")
	f.DurationVar(&c.RaftLeaderLeaseTimeout, "raft-leader-lease-timeout", c.RaftLeaderLeaseTimeout, "how long a leader stays leader without reaching a quorum (at most the heartbeat timeout)")
	cli.TLSFlags(f, &c.TLS)
	cli.CommonFlags(f, &c.AdminToken, &o.logLevel, &o.logFormat)
	cli.DescribeEnv(f)
	cmd.AddCommand(cli.HealthCommand("127.0.0.1:9616"))
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
	var lns []net.Listener
	listen := func(flag, addr string, advertise *string) net.Listener {
		if err != nil {
			return nil
		}
		var ln net.Listener
		if ln, *advertise, err = cli.Listen(flag, addr, o.advertise); err == nil {
			lns = append(lns, ln)
		}
		return ln
	}
	grpcLn := listen("grpc-addr", o.grpcAddr, &o.cfg.GRPCAdvertise)
	httpLn := listen("http-addr", o.httpAddr, &o.cfg.HTTPAdvertise)
	raftLn := listen("raft-addr", o.raftAddr, &o.cfg.RaftAdvertise)
	var srv *meta.Server
	if err == nil {
		srv, err = meta.New(o.cfg, meta.Deps{Logger: logger, GRPCListener: grpcLn, HTTPListener: httpLn, RaftListener: raftLn})
	}
	if err != nil {
		for _, ln := range lns {
			_ = ln.Close()
		}
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// cobra prints a returned error; logging it too would say it twice.
	if err := srv.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
