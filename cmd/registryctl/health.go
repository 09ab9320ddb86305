package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-registry/strata/internal/cli"
	"github.com/strata-registry/strata/internal/tlsconf"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Health statuses of a node.
const (
	healthReady       = "ready"
	healthNotReady    = "not_ready"   // /readyz answered, but not 200
	healthUnreachable = "unreachable" // no HTTP answer at all
	healthNoAddress   = "no_address"  // meta knows no HTTP address for it
)

func newHealthCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Probe every node's readiness; exit non-zero unless all are ready",
		Long: `health asks the meta tier for every node (meta peers and data and
session members) and calls GET /readyz on each one's admin HTTP address,
all at once, each bounded by --timeout. It prints one row per node and
exits with status 1 when any node is not ready, unreachable or has no
known address, so it fits scripts and probes.

What ready means per role: meta knows a Raft leader and the cluster is
initialized; data has a slot table and leads no migrating slot; session
has a slot table.`,
		Example: `  registryctl health
  registryctl health -o json --admin-token "$TOKEN"`,
		Args: cobra.NoArgs,
		RunE: g.acrossNodes(func(ctx context.Context, a *adminHTTP, targets []healthRow) verdictView {
			return probe(ctx, a, targets)
		}),
	}
	cli.DescribeEnv(cmd.Flags())
	return cmd
}

// verdictView is a view whose content decides the command's result.
type verdictView interface {
	view
	err() error
}

// acrossNodes is the RunE of a command that asks every node meta knows of
// (health, keyring status): ask's answer is rendered, and its verdict is
// the command's. The operator's credentials are loaded once, for the meta
// call and every node's admin HTTP alike.
func (g *globals) acrossNodes(ask func(context.Context, *adminHTTP, []healthRow) verdictView) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		return g.withMetaCreds(func(m *metaConn, creds *tlsconf.Creds) error {
			info, err := m.clusterInfo(cmd.Context())
			if err != nil {
				return err
			}
			a := g.newAdminHTTP(creds)
			defer a.Close()
			v := ask(cmd.Context(), a, healthTargets(info))
			if err := render(cmd.OutOrStdout(), g.output, v); err != nil {
				return err
			}
			return v.err()
		})
	}
}

// healthView is the output of health.
type healthView struct {
	Healthy bool        `json:"healthy" yaml:"healthy"`
	Nodes   []healthRow `json:"nodes" yaml:"nodes"`
}

// healthRow is one node's readiness.
type healthRow struct {
	Node string `json:"node" yaml:"node"`
	Role string `json:"role" yaml:"role"`
	// Address is the admin HTTP address probed.
	Address string `json:"address" yaml:"address"`
	Status  string `json:"status" yaml:"status"`
	// Detail says why a node is not ready, from its /readyz answer or
	// the probe's error.
	Detail string `json:"detail,omitempty" yaml:"detail,omitempty"`
}

// healthTargets lists the nodes to probe, meta peers first, in the
// members order.
func healthTargets(info *registryv1.GetClusterInfoResponse) []healthRow {
	var out []healthRow
	for _, r := range membersFrom(info, nil).Members {
		out = append(out, healthRow{Node: r.ID, Role: r.Role, Address: r.HTTPAddress})
	}
	return out
}

// probe fills in every target's status from its /readyz, asking all at
// once.
func probe(ctx context.Context, a *adminHTTP, targets []healthRow) healthView {
	v := healthView{Healthy: true, Nodes: targets}
	if v.Nodes == nil {
		v.Nodes = []healthRow{}
	}
	for i, ans := range a.getAll(ctx, targets, "/readyz") {
		r := &v.Nodes[i]
		switch {
		case errors.Is(ans.err, errNoAddress):
			r.Status, r.Detail = healthNoAddress, ans.err.Error()
		case ans.err != nil:
			r.Status, r.Detail = healthUnreachable, ans.err.Error()
		case ans.code == http.StatusOK:
			r.Status = healthReady
		default:
			r.Status, r.Detail = healthNotReady, readyDetail(ans.code, ans.body)
		}
		if r.Status != healthReady {
			v.Healthy = false
		}
	}
	return v
}

// readyDetail extracts the reason from a /readyz answer: every role
// answers JSON with a "status" field (data adds the migrating slots).
func readyDetail(code int, body []byte) string {
	var d struct {
		Status string   `json:"status"`
		Slots  []uint32 `json:"slots"`
	}
	if json.Unmarshal(body, &d) == nil && d.Status != "" {
		if len(d.Slots) > 0 {
			return fmt.Sprintf("%s (%d slots)", d.Status, len(d.Slots))
		}
		return d.Status
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return fmt.Sprintf("HTTP %d: %s", code, s)
}

func (v healthView) writeTable(w io.Writer) error {
	t := newTable(w, "NODE", "ROLE", "ADDR", "STATUS", "DETAIL")
	for _, r := range v.Nodes {
		t.row(r.Node, r.Role, r.Address, r.Status, r.Detail)
	}
	return t.flush()
}

// err is the command's result: nil when every node is ready.
func (v healthView) err() error {
	var bad []string
	for _, r := range v.Nodes {
		if r.Status != healthReady {
			bad = append(bad, fmt.Sprintf("%s (%s)", r.Node, r.Status))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d nodes not ready: %s", len(bad), len(v.Nodes), strings.Join(bad, ", "))
}
