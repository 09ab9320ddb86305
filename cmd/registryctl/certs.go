package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-registry/strata/internal/cli"
	"github.com/strata-registry/strata/internal/identity"
	"github.com/strata-registry/strata/internal/pki"
)

func newCertsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Make a cluster's credentials: a CA, node and client certificates, tokens, the gossip key",
		Long: `certs writes the credentials a Strata cluster runs with into a directory,
the layout every node reads with --credentials DIR:

  ca.pem, ca-key.pem                 the CA (keep ca-key.pem where certificates are issued)
  <role>/<name>.pem, <name>-key.pem  a certificate and key per node, client and operator
  <role>/<name>.token                a bearer token per client, operator and enroll identity
  tokens.yaml                        the tokens file: each token's SHA-256 and rights
  gossip.key                         the gossip encryption key (base64)

Each certificate names its identity in a URI SAN, spiffe://<cluster>/<role>/<name>;
a node serves and dials only peers whose certificates name what the call
needs (docs/security.md). These are development credentials: a production
cluster uses its own PKI for the same identities.`,
	}
	cmd.AddCommand(newCertsInitCommand(g), newCertsIssueCommand(g))
	return cmd
}

func newCertsInitCommand(g *globals) *cobra.Command {
	var (
		p     pki.Plan
		hosts []string
	)
	cmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Create a CA and every identity asked for; keep what DIR already holds",
		Long: `init creates DIR's CA (or uses the one there), a certificate for each node
named, a certificate and a token for each client and operator, the tokens
file (clients may publish and subscribe to every data ID; edit it to
narrow them) and a gossip key. What exists is kept, so running it again
with more nodes only adds theirs.`,
		Example: `  registryctl certs init run/certs --meta-nodes meta-0,meta-1,meta-2 \
      --data-nodes data-0,data-1,data-2 --session-nodes session-0,session-1
  meta --node-id meta-0 --credentials run/certs ...
  registryctl --credentials run/certs members`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.Cluster, p.Hosts = g.cluster, hosts
			written, err := pki.Init(pki.Dir(args[0]), p, time.Now())
			for _, w := range written {
				fmt.Fprintln(cmd.OutOrStdout(), "wrote", w)
			}
			if err != nil {
				return err
			}
			if len(written) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%s already holds every credential asked for\n", args[0])
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&p.Meta, "meta-nodes", nil, "meta node ids, comma separated")
	f.StringSliceVar(&p.Data, "data-nodes", nil, "data node ids, comma separated")
	f.StringSliceVar(&p.Session, "session-nodes", nil, "session node ids, comma separated")
	f.StringSliceVar(&p.Clients, "clients", []string{"dev"}, "client identities (certificate and token each)")
	f.StringSliceVar(&p.Admins, "admins", []string{"admin"}, "operator identities (certificate and token each)")
	f.StringSliceVar(&p.Enrollers, "enrollers", nil, "enroll identities (a token each, enroll/<name>.token) that may get session nodes their certificates from meta: for sessions whose ids are not known in advance")
	f.StringSliceVar(&hosts, "hosts", []string{"127.0.0.1", "localhost"}, "DNS names and IPs put in every node certificate, for clients that verify host names")
	f.DurationVar(&p.Validity, "validity", pki.DefaultValidity, "how long the certificates are valid (the CA five times as long)")
	cli.DescribeEnv(f)
	return cmd
}

func newCertsIssueCommand(g *globals) *cobra.Command {
	var (
		role  string
		hosts []string
		valid time.Duration
	)
	cmd := &cobra.Command{
		Use:   "issue DIR NAME",
		Short: "Issue one more certificate (and a token for a client or operator) from DIR's CA",
		Example: `  registryctl certs issue run/certs session-2 --role session
  registryctl certs issue run/certs orders-service --role client`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r := identity.Role(role)
			if !r.Valid() {
				return fmt.Errorf("--role %q: want meta, data, session, client or admin", role)
			}
			p := pki.Plan{Cluster: g.cluster, Hosts: hosts, Validity: valid}
			switch r {
			case identity.RoleMeta:
				p.Meta = args[1:]
			case identity.RoleData:
				p.Data = args[1:]
			case identity.RoleSession:
				p.Session = args[1:]
			case identity.RoleClient:
				p.Clients = args[1:]
			case identity.RoleAdmin:
				p.Admins = args[1:]
			}
			d := pki.Dir(args[0])
			if _, err := d.LoadCA(); err != nil {
				return fmt.Errorf("%s has no CA to issue from (run certs init first): %w", args[0], err)
			}
			written, err := pki.Init(d, p, time.Now())
			for _, w := range written {
				fmt.Fprintln(cmd.OutOrStdout(), "wrote", w)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "", "meta, data, session, client or admin (required)")
	f.StringSliceVar(&hosts, "hosts", []string{"127.0.0.1", "localhost"}, "DNS names and IPs for a node certificate")
	f.DurationVar(&valid, "validity", pki.DefaultValidity, "how long the certificate is valid")
	_ = cmd.MarkFlagRequired("role")
	cli.DescribeEnv(f)
	return cmd
}
