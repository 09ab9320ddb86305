package node

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/spf13/pflag"

	"github.com/strata-registry/strata/internal/cli"
	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/gctune"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// Options are the command-line settings every node command shares that are
// not Config: where to listen and how to log. Flags binds them (and the
// shared Config fields); Build turns them into Deps.
type Options struct {
	GRPCAddr      string
	HTTPAddr      string
	GossipAddr    string
	AdvertiseHost string
	LogLevel      string
	LogFormat     string
	// EnrollTokenFile holds an enroll identity's token: a node whose
	// certificate file does not exist yet asks meta for one with it
	// (Enroll) before it starts.
	EnrollTokenFile string
	// Credentials is a credentials directory (registryctl certs init):
	// the TLS files of this node's identity, the tokens file and the
	// gossip key, for whichever of them no flag sets.
	Credentials string
	// GCHeapFloorMiB keeps the process's garbage collector from starting
	// a collection before the heap reaches this many MiB (internal/gctune;
	// 0: Go's default goal, twice the live heap).
	GCHeapFloorMiB int
	// Role is the node's role (Flags sets it).
	Role cluster.Role
}

// Ports are a role's default listen addresses.
type Ports struct {
	GRPC string // such as ":9622"
	HTTP string // such as ":9623"
}

// Flags defines the flags every node command has on f, bound to o and to
// the shared fields of c (whose current values are the defaults). Data and
// session nodes also get --meta.
func (o *Options) Flags(f *pflag.FlagSet, c *Config, role cluster.Role, ports Ports) {
	o.Role = role
	f.StringVar(&c.NodeID, "node-id", cli.Hostname(), "unique node name (gossip pool, member list, slot table; meta: Raft)")
	f.StringVar(&c.Zone, "zone", c.Zone, "zone (availability zone or rack) announced to the cluster")
	if role != cluster.RoleMeta {
		if len(c.MetaAddrs) == 0 {
			c.MetaAddrs = []string{"127.0.0.1:9615"}
		}
		f.StringSliceVar(&c.MetaAddrs, "meta", c.MetaAddrs, "meta gRPC addresses, comma separated (any subset)")
	}
	f.StringVar(&o.GRPCAddr, "grpc-addr", ports.GRPC, "listen address for gRPC")
	f.StringVar(&o.HTTPAddr, "http-addr", ports.HTTP, "listen address for admin HTTP (/healthz, /readyz, /metrics, /api/v1, pprof)")
	f.StringVar(&o.GossipAddr, "gossip-addr", ":7946", "listen address for memberlist gossip (TCP and UDP)")
	f.StringVar(&c.GossipProfile, "gossip-profile", c.GossipProfile, "gossip timings: lan (production) or local (loopback tests: probes every 200ms)")
	f.DurationVar(&c.GossipTiming.ProbeInterval, "gossip-probe-interval", 0, "how often each node probes one other (0: the profile's, lan 1s); failure detection takes about two of these plus the suspicion timeout")
	f.DurationVar(&c.GossipTiming.ProbeTimeout, "gossip-probe-timeout", 0, "how long a probe waits for its ack before asking others to probe (0: the profile's, lan 500ms; shorter than the interval)")
	f.IntVar(&c.GossipTiming.SuspicionMult, "gossip-suspicion-mult", 0, "a suspect is declared dead after this many probe intervals (x log10 of the pool size, up to 6x that unconfirmed; 0: the profile's, lan 4)")
	f.StringVar(&o.AdvertiseHost, "advertise-host", "", "host other nodes use to reach this one (default: the bound host, or the hostname when bound on all interfaces)")
	f.StringSliceVar(&c.Join, "join", c.Join, "gossip seeds to join, host:port, comma separated (any role)")
	f.BoolVar(&c.LeaveOnShutdown, "leave-on-shutdown", c.LeaveOnShutdown, "leave the gossip pool on a graceful stop")
	f.StringVar(&c.Cluster, "cluster", c.Cluster, "cluster name: every certificate of the cluster names it (spiffe://<cluster>/<role>/<node-id>)")
	f.StringVar(&o.Credentials, "credentials", "", "credentials directory (registryctl certs init): this node's certificate <role>/<node-id>.pem and key, ca.pem, tokens.yaml, gossip.key, for what the other flags leave unset")
	f.BoolVar(&c.Insecure, "insecure", c.Insecure, "run without TLS: nothing is authenticated, anyone who reaches a port may do anything (development only)")
	cli.TLSFlags(f, &c.TLS)
	if role == cluster.RoleMeta {
		f.StringVar(&c.CAKeyFile, "ca-key-file", c.CAKeyFile, "CA key (PEM): issue certificates to enrolling data and session nodes (default with --credentials: its ca-key-file when present)")
	} else {
		f.StringVar(&o.EnrollTokenFile, "enroll-token-file", "", "an enroll identity's token: without a certificate yet, ask meta for one (written to --tls-cert/--tls-key, or the --credentials paths) before starting")
	}
	f.StringVar(&c.GossipKeyFile, "gossip-key-file", c.GossipKeyFile, "gossip encryption keys, base64, one a line, primary first (re-read on SIGHUP; registryctl keyring)")
	f.StringVar(&c.TokensFile, "tokens-file", c.TokensFile, "client and operator identities with their bearer tokens and rights (YAML; re-read on SIGHUP)")
	f.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "bearer token required on /api and /debug (health and metrics stay open)")
	f.IntVar(&c.Limits.MaxConnections, "max-connections", c.Limits.MaxConnections, "most open connections to the gRPC port; more are closed at once (strata_node_connections_refused_total)")
	f.Uint32Var(&c.Limits.MaxStreams, "max-streams", c.Limits.MaxStreams, "most concurrent calls and streams per connection")
	f.IntVar(&o.GCHeapFloorMiB, "gc-heap-floor-mib", 0, "collect garbage no sooner than at this heap size in MiB while the live heap is small: fewer pauses (a lower push latency tail) on a lightly loaded node, for more heap held (0: Go's default, at twice the live heap; GOMEMLIMIT still holds)")
	f.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.LogFormat, "log-format", "text", "text or json")
}

// Build turns the options into Deps for c: a logger writing to w, the gRPC
// and HTTP listeners bound, and c's gossip and advertise fields set from
// --gossip-addr and --advertise-host. On error nothing stays bound.
func (o *Options) Build(w io.Writer, c *Config) (Deps, error) {
	o.applyCredentials(c)
	logger, err := cli.Logger(w, o.LogLevel, o.LogFormat, c.NodeID)
	if err != nil {
		return Deps{}, err
	}
	if o.GCHeapFloorMiB < 0 {
		return Deps{}, fmt.Errorf("--gc-heap-floor-mib must not be negative, got %d", o.GCHeapFloorMiB)
	}
	// The process's, for its life: one node per process.
	if gctune.Start(uint64(o.GCHeapFloorMiB)<<20) != nil {
		logger.Info("garbage collection starts no sooner than at the heap floor", "floor_mib", o.GCHeapFloorMiB)
	}
	if c.GossipBind, c.GossipPort, c.GossipAdvertise, err = cli.Gossip(o.GossipAddr, o.AdvertiseHost); err != nil {
		return Deps{}, err
	}
	d := Deps{Logger: logger}
	if d.GRPCListener, c.GRPCAdvertise, err = o.Listen("grpc-addr", o.GRPCAddr); err != nil {
		return Deps{}, err
	}
	if o.EnrollTokenFile != "" {
		host, _, _ := net.SplitHostPort(c.GRPCAdvertise)
		if err := enroll(context.Background(), c, o.Role, o.EnrollTokenFile, []string{host}, logger); err != nil {
			d.Close()
			return Deps{}, err
		}
	}
	if d.HTTPListener, c.HTTPAdvertise, err = o.Listen("http-addr", o.HTTPAddr); err != nil {
		d.Close()
		return Deps{}, err
	}
	return d, nil
}

// Listen binds addr for the flag named flag and returns the listener with
// the address other nodes should use (--advertise-host applied).
func (o *Options) Listen(flag, addr string) (net.Listener, string, error) {
	return cli.Listen(flag, addr, o.AdvertiseHost)
}

// applyCredentials fills c's TLS files and tokens file from the
// --credentials directory, where no flag set them.
func (o *Options) applyCredentials(c *Config) {
	if o.Credentials == "" {
		return
	}
	d := tlsconf.Dir(o.Credentials)
	if !c.TLS.Enabled() {
		r := identity.Role(o.Role)
		c.TLS = d.TLS(r, c.NodeID)
	}
	if c.TokensFile == "" {
		if _, err := os.Stat(d.Tokens()); err == nil {
			c.TokensFile = d.Tokens()
		}
	}
	if c.GossipKeyFile == "" {
		if _, err := os.Stat(d.GossipKey()); err == nil {
			c.GossipKeyFile = d.GossipKey()
		}
	}
	if c.CAKeyFile == "" && o.Role == cluster.RoleMeta {
		if _, err := os.Stat(d.CAKey()); err == nil {
			c.CAKeyFile = d.CAKey()
		}
	}
}
