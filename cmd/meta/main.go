// Command meta runs a Strata meta node: one member of the Raft group that
// owns cluster membership and the slot table.
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/strata-registry/strata/internal/cli"
	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/meta"
	"github.com/strata-registry/strata/internal/node"
)

type options struct {
	node.Options
	cfg      meta.Config
	raftAddr string
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

Security is on by default: the node needs credentials (--credentials DIR
from registryctl certs init, or the --tls-* files, a gossip key and a
tokens file) and refuses to start without them unless given --insecure.

Every flag can also be set from the environment: STRATA_ plus the flag name
in upper snake case (--node-id is STRATA_NODE_ID). Flags win over the
environment.`,
		Example: `  meta --node-id meta-1 --data-dir /var/lib/strata/meta-1 --credentials /etc/strata \
       --bootstrap-expect 3 --join meta-2:7946,meta-3:7946`,
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		PreRunE:      func(cmd *cobra.Command, _ []string) error { return cli.ApplyEnv(cmd) },
		RunE:         func(cmd *cobra.Command, _ []string) error { return run(cmd, o) },
	}
	f := cmd.Flags()
	c := &o.cfg
	o.Flags(f, &c.Config, cluster.RoleMeta, node.Ports{GRPC: ":9615", HTTP: ":9616"})
	f.Lookup("leave-on-shutdown").Usage = "leave the pool on shutdown, which removes this node from the Raft voters (for decommissioning)"
	f.StringVar(&c.DataDir, "data-dir", "data/meta", "directory for the Raft log, stable store and snapshots")
	f.StringVar(&o.raftAddr, "raft-addr", ":9614", "listen address for Raft traffic between meta nodes")
	f.DurationVar(&c.EnrollValidity, "enroll-validity", c.EnrollValidity, "how long a certificate issued to an enrolling node is valid (with --ca-key-file)")
	f.IntVar(&c.BootstrapExpect, "bootstrap-expect", 0, "form a new cluster once this many meta nodes have met (3 or 5; 0 joins an existing cluster)")
	f.IntVar(&c.Slots, "slots", c.Slots, "slot count for a new cluster (fixed once the cluster exists)")
	f.IntVar(&c.Replicas, "replicas", c.Replicas, "copies of each slot, leader included, for a new cluster")
	f.IntVar(&c.MaxMoves, "max-moves", c.MaxMoves, "most voluntary slot moves per arranger round")
	f.DurationVar(&c.DeadGrace, "dead-grace", c.DeadGrace, "how long a node must be dead before it stops being a member")
	f.DurationVar(&c.ArrangeInterval, "arrange-interval", c.ArrangeInterval, "least time between slot arranger rounds")
	f.DurationVar(&c.ReconcileInterval, "reconcile-interval", c.ReconcileInterval, "how often the leader reconciles the pool with Raft and the members")
	f.DurationVar(&c.RaftHeartbeatTimeout, "raft-heartbeat-timeout", c.RaftHeartbeatTimeout, "Raft heartbeat timeout")
	f.DurationVar(&c.RaftElectionTimeout, "raft-election-timeout", c.RaftElectionTimeout, "Raft election timeout")
	f.DurationVar(&c.RaftLeaderLeaseTimeout, "raft-leader-lease-timeout", c.RaftLeaderLeaseTimeout, "how long a leader stays leader without reaching a quorum (at most the heartbeat timeout)")
	f.DurationVar(&c.Console.Interval, "console-scrape-interval", c.Console.Interval, "how often the web console (/ui/) scrapes every node's /metrics for its charts")
	f.DurationVar(&c.Console.History, "console-history", c.Console.History, "how far back the web console's charts reach (history / scrape interval points kept)")
	f.DurationVar(&c.Console.Window, "console-latency-window", c.Console.Window, "span over which each push latency point's quantiles are computed")
	cli.DescribeEnv(f)
	cmd.AddCommand(cli.HealthCommand("127.0.0.1:9616"))
	return cmd
}

func run(cmd *cobra.Command, o *options) error {
	deps, err := o.Build(cmd.ErrOrStderr(), &o.cfg.Config)
	if err != nil {
		return err
	}
	raftLn, adv, err := o.Listen("raft-addr", o.raftAddr)
	if err != nil {
		deps.Close()
		return err
	}
	o.cfg.RaftAdvertise = adv
	srv, err := meta.New(o.cfg, meta.Deps{Deps: deps, RaftListener: raftLn})
	if err != nil {
		deps.Close()
		_ = raftLn.Close()
		return err
	}
	// cobra prints a returned error; logging it too would say it twice.
	return node.RunUntilSignal(srv.Run, srv.Reload)
}
