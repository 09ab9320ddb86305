package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-registry/strata/internal/cli"
	"github.com/strata-registry/strata/internal/pki"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
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
		p       pki.Plan
		hosts   []string
		exports []string
	)
	cmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Create a CA and every identity asked for; keep what DIR already holds",
		Long: `init creates DIR's CA (or uses the one there), a certificate for each node
named, a certificate and a token for each client and operator, a token for
each enroll identity, the tokens file (clients may publish and subscribe
to every data ID; edit it to narrow them) and a gossip key. What exists is
kept, so running it again with more nodes only adds theirs.

--export OUT=ITEM,... then copies into OUT only what the items listed need,
in the same layout, so that each node is handed its own share and not DIR
(whose CA key mints any identity):

  every export                 ca.pem
  ca-key                       ca-key.pem (for a meta node that signs enrollments)
  meta/, data/, session/NAME   that node's certificate and key, tokens.yaml, gossip.key
  enroll/NAME                  its token, tokens.yaml, gossip.key, and an empty
                               directory per role it enrolls (where such a node
                               writes the certificate it gets)
  client/, admin/NAME          its certificate, key and token

An export is brought up to date with DIR on every run (a file that
differs is replaced whole): rotate a key in DIR, run init again, reload.`,
		Example: `  registryctl certs init run/certs --meta-nodes meta-0,meta-1,meta-2 \
      --data-nodes data-0,data-1,data-2 --session-nodes session-0,session-1
  meta --node-id meta-0 --credentials run/certs ...
  registryctl --credentials run/certs members

  # One share per node (deploy/compose/docker-compose.yml):
  registryctl certs init /certs/ca --meta-nodes meta-1 --data-nodes data-1 --enrollers sessions \
      --export /certs/meta-1=meta/meta-1,ca-key --export /certs/data-1=data/data-1 \
      --export /certs/session=enroll/sessions --export /certs/operator=admin/admin,client/dev`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.Cluster, p.Hosts = g.cluster, hosts
			if err := validPlan(p); err != nil {
				return err
			}
			var ex []export
			for _, spec := range exports {
				e, err := parseExport(spec)
				if err != nil {
					return err
				}
				ex = append(ex, e)
			}
			d := tlsconf.Dir(args[0])
			written, err := pki.Init(d, p, time.Now())
			for _, e := range ex {
				if err != nil {
					break
				}
				var w []string
				w, err = e.write(d)
				written = append(written, w...)
			}
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
	f.StringArrayVar(&exports, "export", nil, "OUT=ITEM[,ITEM...]: copy into OUT only what the items need, each ROLE/NAME or ca-key (repeatable; see above)")
	cli.DescribeEnv(f)
	return cmd
}

// validPlan checks p's cluster, names and validity before anything is
// written, so bad input leaves no half-made directory.
func validPlan(p pki.Plan) error {
	if err := identity.ValidCluster(p.Cluster); err != nil {
		return fmt.Errorf("--cluster: %w", err)
	}
	if p.Validity <= 0 {
		return fmt.Errorf("--validity must be positive, got %v", p.Validity)
	}
	for _, group := range []struct {
		role  identity.Role
		names []string
	}{
		{identity.RoleMeta, p.Meta}, {identity.RoleData, p.Data}, {identity.RoleSession, p.Session},
		{identity.RoleClient, p.Clients}, {identity.RoleAdmin, p.Admins}, {identity.RoleEnroll, p.Enrollers},
	} {
		for _, name := range group.names {
			if err := identity.ValidName(name); err != nil {
				return fmt.Errorf("%s %q: %w", group.role, name, err)
			}
		}
	}
	return nil
}

// roleList names the roles certs issue accepts.
const roleList = "meta, data, session, client, admin or enroll"

func newCertsIssueCommand(g *globals) *cobra.Command {
	var (
		role  string
		hosts []string
		valid time.Duration
	)
	cmd := &cobra.Command{
		Use:   "issue DIR NAME",
		Short: "Issue one more identity from DIR's CA: a certificate (and a token for a client or operator), or an enroll token",
		Long: `issue adds one identity to DIR, signed by the CA there (certs init makes it):
a certificate and key for a node; a certificate, key and token for a client
or operator; a token for an enroll identity, which may get session nodes
their certificates from meta. Clients, operators and enroll identities are
added to the tokens file; nodes re-read it on SIGHUP. An identity DIR holds
already is kept.`,
		Example: `  registryctl certs issue run/certs session-2 --role session
  registryctl certs issue run/certs orders-service --role client
  registryctl certs issue run/certs autoscaler --role enroll`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, name := args[0], args[1]
			p := pki.Plan{Cluster: g.cluster, Hosts: hosts, Validity: valid}
			switch identity.Role(role) {
			case identity.RoleMeta:
				p.Meta = []string{name}
			case identity.RoleData:
				p.Data = []string{name}
			case identity.RoleSession:
				p.Session = []string{name}
			case identity.RoleClient:
				p.Clients = []string{name}
			case identity.RoleAdmin:
				p.Admins = []string{name}
			case identity.RoleEnroll:
				p.Enrollers = []string{name}
			default:
				return fmt.Errorf("--role %q: want %s", role, roleList)
			}
			if err := validPlan(p); err != nil {
				return err
			}
			d := tlsconf.Dir(dir)
			// Init would make a CA where there is none; issue only adds to
			// one. Init reads it (and says so if its key is missing).
			if _, err := os.Stat(d.CA()); err != nil {
				return fmt.Errorf("%s has no CA to issue from (run certs init first): %w", dir, err)
			}
			written, err := pki.Init(d, p, time.Now())
			for _, w := range written {
				fmt.Fprintln(cmd.OutOrStdout(), "wrote", w)
			}
			if err != nil {
				return err
			}
			if len(written) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%s already holds %s/%s\n", dir, role, name)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "", roleList+" (required)")
	f.StringSliceVar(&hosts, "hosts", []string{"127.0.0.1", "localhost"}, "DNS names and IPs for a node certificate")
	f.DurationVar(&valid, "validity", pki.DefaultValidity, "how long the certificate is valid")
	_ = cmd.MarkFlagRequired("role")
	cli.DescribeEnv(f)
	return cmd
}
