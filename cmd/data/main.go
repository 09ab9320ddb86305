// Command data runs a Strata data node: it holds publisher records for the
// slots the meta tier assigns it, as their leader or follower.
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/strata-registry/strata/internal/cli"
	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/data"
	"github.com/strata-registry/strata/internal/node"
)

type options struct {
	node.Options
	cfg data.Config
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

Security is on by default: the node needs credentials (--credentials DIR
from registryctl certs init, or the --tls-* files, a gossip key and a
tokens file) and refuses to start without them unless given --insecure.

Every flag can also be set from the environment: STRATA_ plus the flag name
in upper snake case (--node-id is STRATA_NODE_ID). Flags win over the
environment.`,
		Example:      `  data --node-id data-1 --credentials /etc/strata --meta meta-1:9615,meta-2:9615,meta-3:9615 --join meta-1:7946`,
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		PreRunE:      func(cmd *cobra.Command, _ []string) error { return cli.ApplyEnv(cmd) },
		RunE:         func(cmd *cobra.Command, _ []string) error { return run(cmd, o) },
	}
	f := cmd.Flags()
	c := &o.cfg
	o.Flags(f, &c.Config, cluster.RoleData, node.Ports{GRPC: ":9622", HTTP: ":9623"})
	f.Lookup("grpc-addr").Usage = "listen address for the DataService gRPC API"
	f.Lookup("leave-on-shutdown").Usage = "leave the pool on a graceful stop, so meta reassigns this node's slots at once"
	f.DurationVar(&c.HeartbeatInterval, "heartbeat-interval", c.HeartbeatInterval, "how often to report slot sync status to meta")
	f.DurationVar(&c.SessionLease, "session-lease", c.SessionLease, "remove a session's publishers after it is silent (no request, no change stream) this long")
	f.DurationVar(&c.SessionGrace, "session-grace", c.SessionGrace, "remove a session's publishers after the gossip pool shows it dead this long")
	f.DurationVar(&c.AntiEntropyInterval, "anti-entropy-interval", c.AntiEntropyInterval, "how often a slot leader compares its records with every session")
	f.IntVar(&c.LogCap, "replication-log", c.LogCap, "ops kept per slot for followers to resume from (further behind: snapshot)")
	f.IntVar(&c.MaxBatch, "max-batch", c.MaxBatch, "most puts plus deletes in one publish request")
	f.IntVar(&c.NoticeMaxKeys, "notice-max-keys", c.NoticeMaxKeys, "most keys pending per session change stream before it is told to rescan")
	cli.DescribeEnv(f)
	cmd.AddCommand(cli.HealthCommand("127.0.0.1:9623"))
	return cmd
}

func run(cmd *cobra.Command, o *options) error {
	deps, err := o.Build(cmd.ErrOrStderr(), &o.cfg.Config)
	if err != nil {
		return err
	}
	srv, err := data.New(o.cfg, deps)
	if err != nil {
		deps.Close()
		return err
	}
	return node.RunUntilSignal(srv.Run, srv.Reload)
}
