// Command registryctl is the Strata operator CLI. It asks the meta tier who
// is in the cluster, which meta node leads Raft, where each slot lives and
// where a data ID goes, and probes every node's readiness; through the
// sessions, with the client SDK, it publishes, subscribes and reads values.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-registry/strata/internal/cli"
	"github.com/strata-registry/strata/internal/pki"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// globals are the flags every command shares.
type globals struct {
	meta       []string
	session    []string
	output     string
	timeout    time.Duration
	adminToken string
	tls        tlsconf.Config
	// cluster is the cluster name the nodes' certificates carry.
	cluster string
	// credentials is a registryctl certs init directory; adminName and
	// clientName the identities in it to act as.
	credentials           string
	adminName, clientName string
	// token is a client bearer token for pub, sub and get: --token, or
	// what --token-file holds (validate reads it).
	token, tokenFile string
	// insecure: no credentials, plaintext.
	insecure bool
}

// localCredentials is where make run writes its credentials: registryctl
// uses them when no other credentials are given, so the commands make run
// prints work as they are.
const localCredentials = "run/certs"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// cobra has already printed the error to stderr.
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "registryctl",
		Short: "Inspect a Strata cluster (members, leader, slots, health) and its data (pub, sub, get)",
		Long: `registryctl asks Strata's meta tier about the cluster. Any meta node
answers: give one or more with --meta and it tries them in order.

pub, sub and get are a client of the cluster, as applications are (they
use the Go SDK): they connect to a session given with --session, or, with
--session "", to one of the live sessions the --meta nodes list.

Every flag can also be set from the environment: STRATA_ plus the flag name
in upper snake case (--meta is STRATA_META, --admin-token is
STRATA_ADMIN_TOKEN). Flags win over the environment.

A client token for pub, sub and get is best given in a file, --token-file
(or STRATA_TOKEN_FILE): --token puts it in the process list for every
user of the machine to see.`,
		Example: `  registryctl members
  registryctl --meta meta-1:9615,meta-2:9615 slots --node data-2
  registryctl slot-of com.example.orders -o json
  registryctl health && echo all ready
  registryctl pub com.example.echo 10.0.0.1:8080 --for 1m &
  registryctl sub com.example.echo --until 10.0.0.1:8080 --for 10s`,
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.ApplyEnv(cmd); err != nil {
				return err
			}
			return g.validate()
		},
	}
	f := root.PersistentFlags()
	f.StringSliceVar(&g.meta, "meta", []string{"127.0.0.1:9615"}, "meta gRPC addresses, host:port, comma separated (tried in order until one answers)")
	f.StringSliceVar(&g.session, "session", []string{"127.0.0.1:9603"}, `session client addresses, host:port, comma separated, for pub, sub and get (the client starts at a random one; "": discover the sessions from --meta)`)
	f.StringVarP(&g.output, "output", "o", "table", "output format: "+formatList)
	f.DurationVar(&g.timeout, "timeout", 5*time.Second, "bound on each call to one node (pub, sub, get: on reaching a session and its answer)")
	f.StringVar(&g.adminToken, "admin-token", "", "bearer token for the nodes' admin HTTP: a node's --admin-token or an operator's token (not sent when registryctl acts with an admin certificate, which is enough)")
	f.StringVar(&g.cluster, "cluster", identity.DefaultCluster, "cluster name the nodes' certificates carry")
	f.StringVar(&g.credentials, "credentials", "", "credentials directory (registryctl certs init): CA, the operator identity for cluster commands, the client identity for pub, sub and get (default: "+localCredentials+" when it exists, make run's; --insecure for none)")
	f.BoolVar(&g.insecure, "insecure", false, "talk plaintext to nodes that run --insecure (no credentials)")
	f.StringVar(&g.adminName, "admin-name", "admin", "operator identity to use from --credentials")
	f.StringVar(&g.clientName, "client-name", "dev", "client identity to use from --credentials (pub, sub, get)")
	f.StringVar(&g.token, "token", "", "client bearer token for pub, sub and get, instead of a client certificate (needs TLS: --credentials or --tls-ca; visible in the process list: prefer --token-file)")
	f.StringVar(&g.tokenFile, "token-file", "", "file whose first line is the client bearer token for pub, sub and get (as --token, which it is preferred to)")
	cli.TLSFlags(f, &g.tls)
	// The shared TLS flags are worded for servers; say what they mean here.
	f.Lookup("tls-cert").Usage = "PEM certificate of the identity to act as, for every command (enables TLS; needs --tls-key and --tls-ca)"
	f.Lookup("tls-key").Usage = "PEM private key for --tls-cert"
	f.Lookup("tls-ca").Usage = "PEM CA bundle that signs the cluster's certificates"
	cli.DescribeEnv(f)
	root.AddCommand(
		newMembersCommand(g),
		newLeaderCommand(g),
		newSlotsCommand(g),
		newSlotOfCommand(g),
		newLsCommand(g),
		newDrainCommand(g),
		newUndrainCommand(g),
		newDrainsCommand(g),
		newHealthCommand(g),
		newPubCommand(g),
		newSubCommand(g),
		newGetCommand(g),
		newCertsCommand(g),
		newKeyringCommand(g),
	)
	return root
}

// validate checks the global flags once they hold their final values
// (command line, then environment).
func (g *globals) validate() error {
	if !slices.Contains(formats, g.output) {
		return fmt.Errorf("unknown output format %q (want %s)", g.output, formatList)
	}
	g.meta = clean(g.meta)
	if len(g.meta) == 0 {
		return errors.New("--meta: no meta address given")
	}
	g.session = clean(g.session)
	if g.timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %v", g.timeout)
	}
	if err := g.tls.Validate(); err != nil {
		return fmt.Errorf("TLS flags: %w", err)
	}
	switch {
	case g.insecure && (g.tls.Enabled() || g.credentials != ""):
		return errors.New("--insecure and credentials together: choose one")
	case !g.insecure && !g.tls.Enabled() && g.credentials == "":
		if _, err := os.Stat(tlsconf.Dir(localCredentials).CA()); err == nil {
			g.credentials = localCredentials
		}
	}
	if g.tokenFile != "" {
		if g.token != "" {
			return errors.New("--token and --token-file together: choose one")
		}
		tok, err := pki.ReadToken(g.tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		g.token = tok
	}
	if g.token != "" && !g.tls.Enabled() && g.credentials == "" {
		flag := "--token"
		if g.tokenFile != "" {
			flag = "--token-file"
		}
		return fmt.Errorf("%s needs TLS (--credentials or --tls-ca): a token must not cross the network in clear", flag)
	}
	return nil
}

// clean trims spaces around comma-separated addresses and drops empty ones
// (a trailing comma, or STRATA_META=" a, b").
func clean(addrs []string) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}
