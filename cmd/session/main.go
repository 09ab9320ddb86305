// Command session runs a Strata session node: it serves client connections,
// forwards their publications to the data tier and pushes changes to their
// subscriptions.
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/strata-registry/strata/internal/cli"
	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/node"
	"github.com/strata-registry/strata/internal/session"
)

type options struct {
	node.Options
	cfg session.Config
	// httpAPIAddr is where the HTTP/JSON API listens ("": not served).
	httpAPIAddr string
}

func main() {
	if err := newCommand().Execute(); err != nil {
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	o := &options{cfg: session.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "session",
		Short: "Run a Strata session node (client connections and pushes)",
		Long: `session runs one node of Strata's session tier. Clients connect to it (one
stream per client process) to publish and subscribe; it keeps their
publications, forwards them to the data tier's slot leaders, and pushes every
change of a subscribed key. Run as many as the connections need.

Security is on by default: the node needs credentials (--credentials DIR
from registryctl certs init, or the --tls-* files, a gossip key and a
tokens file) and refuses to start without them unless given --insecure.

Every flag can also be set from the environment: STRATA_ plus the flag name
in upper snake case (--node-id is STRATA_NODE_ID). Flags win over the
environment.`,
		Example: `  session --node-id session-1 --credentials /etc/strata --meta meta-1:9615,meta-2:9615,meta-3:9615 --join meta-1:7946
  session --credentials /etc/strata --enroll-token-file /etc/strata/enroll/sessions.token --meta meta-1:9615 --join meta-1:7946`,
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		PreRunE:      func(cmd *cobra.Command, _ []string) error { return cli.ApplyEnv(cmd) },
		RunE:         func(cmd *cobra.Command, _ []string) error { return run(cmd, o) },
	}
	f := cmd.Flags()
	c := &o.cfg
	o.Flags(f, &c.Config, cluster.RoleSession, node.Ports{GRPC: ":9603", HTTP: ":9604"})
	f.Lookup("grpc-addr").Usage = "listen address for clients (SessionService) and data nodes (SessionSyncService)"
	f.DurationVar(&c.DisconnectGrace, "disconnect-grace", c.DisconnectGrace, "keep a disconnected client's publications this long; a reconnect in time keeps them")
	f.DurationVar(&c.ClientHeartbeat, "client-heartbeat", c.ClientHeartbeat, "interval clients are asked to heartbeat at")
	f.DurationVar(&c.ClientTimeout, "client-timeout", c.ClientTimeout, "close a client connection silent this long")
	f.DurationVar(&c.VersionScanInterval, "version-scan-interval", c.VersionScanInterval, "how often subscribed keys' versions are checked against the data nodes")
	f.Float64Var(&c.RegisterRate, "register-rate", c.RegisterRate, "registrations per second allowed per connection")
	f.IntVar(&c.RegisterBurst, "register-burst", c.RegisterBurst, "registration burst allowed per connection")
	f.IntVar(&c.MaxPerConn, "max-per-conn", c.MaxPerConn, "most publishers plus subscribers per connection")
	f.Float64Var(&c.IdentityRegisterRate, "identity-register-rate", c.IdentityRegisterRate, "registrations per second allowed per client identity, over all its connections (a tokens file entry may set its own)")
	f.IntVar(&c.IdentityMaxRegistrations, "identity-max-registrations", c.IdentityMaxRegistrations, "most publishers plus subscribers per client identity, over all its connections (a tokens file entry may set its own)")
	f.IntVar(&c.IdentityMaxStreams, "identity-max-streams", c.IdentityMaxStreams, "most open client streams per client identity (one more is refused with ResourceExhausted before its welcome)")
	f.Int64Var(&c.Push.MaxInflightBytes, "max-inflight-bytes", c.Push.MaxInflightBytes, "push bytes a client may leave unacked (or unread) before it is disconnected")
	f.DurationVar(&c.Push.AckDelay, "push-ack-delay", c.Push.AckDelay, "how long clients may hold a push's ack to send it with later ones (0: an ack per push; at most a quarter of the ack timeout)")
	f.DurationVar(&c.Push.Coalesce, "push-coalesce", c.Push.Coalesce, "merge a key's follow-up pushes for at most this long (0: none; a quiet key's first change always goes at once)")
	f.DurationVar(&c.BalanceInterval, "balance-interval", c.BalanceInterval, "how often to compare this node's client count with the other sessions' and redirect clients above the mean (0: never)")
	f.Float64Var(&c.BalanceTolerance, "balance-tolerance", c.BalanceTolerance, "redirect clients only when holding more than this times the mean client count")
	f.IntVar(&c.BalanceMaxMoves, "balance-max-moves", c.BalanceMaxMoves, "most clients redirected per balance round")
	f.StringVar(&o.httpAPIAddr, "http-api-listen", ":9605", "listen address for the HTTP/JSON API (register, heartbeat, watch over HTTP; /openapi.json); empty: not served")
	f.DurationVar(&c.HTTPAPI.DefaultTTL, "http-api-default-ttl", c.HTTPAPI.DefaultTTL, "TTL of an HTTP-registered instance that names none")
	f.DurationVar(&c.HTTPAPI.MinTTL, "http-api-min-ttl", c.HTTPAPI.MinTTL, "shortest TTL an HTTP registration may ask for")
	f.DurationVar(&c.HTTPAPI.MaxTTL, "http-api-max-ttl", c.HTTPAPI.MaxTTL, "longest TTL an HTTP registration may ask for")
	f.IntVar(&c.HTTPAPI.MaxWatches, "http-api-max-watches", c.HTTPAPI.MaxWatches, "most blocking queries and event streams open on this node (one more: 429)")
	f.IntVar(&c.HTTPAPI.MaxWatchesPerIdentity, "http-api-max-watches-per-identity", c.HTTPAPI.MaxWatchesPerIdentity, "most blocking queries and event streams open per client identity (one more: 429)")
	f.IntVar(&c.HTTPAPI.MaxConnections, "http-api-max-connections", c.HTTPAPI.MaxConnections, "most open connections to the HTTP API port; more are closed at once")
	cli.DescribeEnv(f)
	cmd.AddCommand(cli.HealthCommand("127.0.0.1:9604"))
	return cmd
}

func run(cmd *cobra.Command, o *options) error {
	deps, err := o.Build(cmd.ErrOrStderr(), &o.cfg.Config)
	if err != nil {
		return err
	}
	sd := session.Deps{Deps: deps}
	if o.httpAPIAddr != "" {
		if sd.HTTPAPIListener, _, err = o.Listen("http-api-listen", o.httpAPIAddr); err != nil {
			deps.Close()
			return err
		}
	}
	srv, err := session.New(o.cfg, sd)
	if err != nil {
		sd.Close()
		return err
	}
	return node.RunUntilSignal(srv.Run, srv.Reload)
}
