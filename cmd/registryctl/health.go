package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-registry/strata/internal/cli"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Health statuses of a node.
const (
	healthReady       = "ready"
	healthNotReady    = "not_ready"   // /readyz answered, but not 200
	healthUnreachable = "unreachable" // no HTTP answer at all
	healthNoAddress   = "no_address"  // meta knows no HTTP address for it
)

// Defaults of health --wait-settled: the wait when the flag has no value,
// and the time between probes.
const (
	defaultSettleWait  = 5 * time.Minute
	defaultSettleEvery = time.Second
)

func newHealthCommand(g *globals) *cobra.Command {
	var wait, every time.Duration
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Probe every node's readiness and the slots' moves; exit non-zero unless all nodes are ready",
		Long: `health asks the meta tier for every node (meta peers and data and
session members) and calls GET /readyz on each one's admin HTTP address,
all at once, each bounded by --timeout. It prints one row per node and
exits with status 1 when any node is not ready, unreachable or has no
known address, so it fits scripts and probes.

What ready means per role: meta knows a Raft leader and the cluster is
initialized; data has a slot table and leads no migrating slot; session
has a slot table.

It also shows whether the slot table is settled or still moving, from the
meta leader's /readyz: pending moves (rows the arranger's next round would
change), followers still syncing, and handovers in flight (slots whose new
leader refuses reads until every session is checked). Moves do not change
the exit status: a cluster is healthy while it rebalances.

--wait-settled polls instead, every --wait-interval, until every node is
ready and the slots are settled (what a rolling restart waits for between
nodes), and exits 1 if that has not happened within the wait (5m when the
flag has no value; give another as --wait-settled=10m). Each change of what
it is waiting for is printed to standard error.`,
		Example: `  registryctl health
  registryctl health -o json --admin-token "$TOKEN"
  registryctl health --wait-settled=10m && restart-next-node`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if wait <= 0 {
				return g.acrossNodes(func(ctx context.Context, a *adminHTTP, targets []healthRow) verdictView {
					return probe(ctx, a, targets)
				})(cmd, args)
			}
			if every <= 0 {
				return fmt.Errorf("--wait-interval must be positive, got %v", every)
			}
			return g.waitSettled(cmd, wait, every)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&wait, "wait-settled", 0, "poll until every node is ready and the slots are settled, for at most this long; exit 1 if not")
	f.Lookup("wait-settled").NoOptDefVal = defaultSettleWait.String()
	f.DurationVar(&every, "wait-interval", defaultSettleEvery, "time between probes with --wait-settled")
	cli.DescribeEnv(f)
	return cmd
}

// waitSettled polls health until every node is ready and the meta leader
// says the slots are settled, or wait has passed. Each round asks meta for
// the nodes again (a rolling restart changes them). Each new reason to
// wait goes to stderr; the last view to stdout.
func (g *globals) waitSettled(cmd *cobra.Command, wait, every time.Duration) error {
	ctx := cmd.Context()
	return g.withMetaCreds(func(m *metaConn, creds *tlsconf.Creds) error {
		a := g.newAdminHTTP(creds)
		defer a.Close()
		deadline := time.Now().Add(wait)
		var last string
		for {
			var v healthView
			info, err := m.clusterInfo(ctx)
			why := ""
			if err == nil {
				v = probe(ctx, a, healthTargets(info))
				why = v.unsettled()
			} else {
				why = err.Error()
			}
			if why == "" {
				return render(cmd.OutOrStdout(), g.output, v)
			}
			if why != last {
				fmt.Fprintf(cmd.ErrOrStderr(), "waiting: %s\n", why)
				last = why
			}
			left := time.Until(deadline)
			if left <= 0 {
				if err == nil {
					if rerr := render(cmd.OutOrStdout(), g.output, v); rerr != nil {
						return rerr
					}
				}
				return fmt.Errorf("not settled after %v: %s", wait, why)
			}
			t := time.NewTimer(min(every, left))
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
	})
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
	// Healthy is every node ready; slot moves do not change it.
	Healthy bool        `json:"healthy" yaml:"healthy"`
	Slots   slotsHealth `json:"slots" yaml:"slots"`
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

// States of slotsHealth: meta's, and unknown when no meta node answered
// with the detail (or the arranger could not compute).
const (
	slotsSettled = "settled"
	slotsMoving  = "moving"
	slotsUnknown = "unknown"
)

// slotsHealth is whether the slot table is still moving, from a meta
// node's /readyz detail "slots" (the same names): the leader's when it
// answered, which alone knows handovers; else a follower's, with
// Handovers null.
type slotsHealth struct {
	State string `json:"state" yaml:"state"`
	// From is the meta node whose answer this is.
	From       string `json:"from,omitempty" yaml:"from,omitempty"`
	TableEpoch uint64 `json:"table_epoch" yaml:"table_epoch"`
	// PendingMoves is the rows the arranger's next round would change.
	PendingMoves int `json:"pending_moves" yaml:"pending_moves"`
	// FollowersSyncing is the follower copies not yet synced.
	FollowersSyncing int `json:"followers_syncing" yaml:"followers_syncing"`
	// Handovers is the slots whose new leader has its handover in
	// flight; null when the meta leader did not answer.
	Handovers *int `json:"handovers" yaml:"handovers"`
	// HandoversUnreported is the part of Handovers whose leader has not
	// reported since it got the slot.
	HandoversUnreported *int   `json:"handovers_unreported,omitempty" yaml:"handovers_unreported,omitempty"`
	Error               string `json:"error,omitempty" yaml:"error,omitempty"`
}

// summary is the slot state in words: "settled", or "moving: N pending
// moves, M followers syncing, K handovers".
func (s slotsHealth) summary() string {
	switch s.State {
	case slotsSettled:
		if s.Handovers == nil {
			return "settled (handovers unknown: the meta leader did not answer)"
		}
		return "settled"
	case slotsMoving:
		h := "handovers unknown"
		if s.Handovers != nil {
			h = fmt.Sprintf("%d handovers", *s.Handovers)
			if s.HandoversUnreported != nil && *s.HandoversUnreported > 0 {
				h += fmt.Sprintf(" (%d not yet reported)", *s.HandoversUnreported)
			}
		}
		return fmt.Sprintf("moving: %d pending moves, %d followers syncing, %s", s.PendingMoves, s.FollowersSyncing, h)
	}
	if s.Error != "" {
		return "unknown: " + s.Error
	}
	return "unknown: no meta node answered with the slot detail"
}

// settled reports whether the slots are settled by the leader's account.
func (s slotsHealth) settled() bool { return s.State == slotsSettled && s.Handovers != nil }

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
// once, and the slot state from the meta nodes' answers.
func probe(ctx context.Context, a *adminHTTP, targets []healthRow) healthView {
	v := healthView{Healthy: true, Slots: slotsHealth{State: slotsUnknown}, Nodes: targets}
	if v.Nodes == nil {
		v.Nodes = []healthRow{}
	}
	fromLeader := false
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
		if r.Role != "meta" || r.Status != healthReady || fromLeader {
			continue
		}
		if s, leader, ok := metaSlots(ans.body); ok && (leader || v.Slots.From == "") {
			s.From = r.Node
			v.Slots, fromLeader = s, leader
		}
	}
	return v
}

// metaSlots reads the slot detail of a meta node's /readyz, and whether
// the node leads; ok is false when there is none (an older meta node).
func metaSlots(body []byte) (s slotsHealth, leader, ok bool) {
	var d struct {
		IsLeader bool         `json:"is_leader"`
		Slots    *slotsHealth `json:"slots"`
	}
	if json.Unmarshal(body, &d) != nil || d.Slots == nil || d.Slots.State == "" {
		return slotsHealth{}, false, false
	}
	if !d.IsLeader {
		d.Slots.Handovers, d.Slots.HandoversUnreported = nil, nil
	}
	return *d.Slots, d.IsLeader, true
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
	if err := t.flush(); err != nil {
		return err
	}
	from := ""
	if v.Slots.From != "" {
		from = fmt.Sprintf(" (%s, table epoch %d)", v.Slots.From, v.Slots.TableEpoch)
	}
	_, err := fmt.Fprintf(w, "\nslots%s: %s\n", from, v.Slots.summary())
	return err
}

// unsettled says what --wait-settled still waits for: a node not ready,
// or slots not settled by the leader's account; "" when there is nothing.
func (v healthView) unsettled() string {
	if err := v.err(); err != nil {
		return err.Error()
	}
	if !v.Slots.settled() {
		return "slots " + v.Slots.summary()
	}
	return ""
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
