package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-registry/strata/internal/cli"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Operator marks on instances: drain (no new traffic), drain --disable
// (no traffic), undrain (clear), drains (list). Meta holds them in its
// replicated state; data leaders attach them to their keys' datums and
// every subscriber is pushed the change. pkg/client/discovery, its Picker,
// resolver and balancer honour them.

func newDrainCommand(g *globals) *cobra.Command {
	var (
		instanceID, group, reason string
		disable                   bool
	)
	cmd := &cobra.Command{
		Use:   "drain SERVICE ADDR",
		Short: "Mark an instance draining (no new traffic) or, with --disable, disabled",
		Long: `drain marks the instance at ADDR (host:port, as the instance published
it) of SERVICE draining: discovery watchers, the Picker and the gRPC
balancer send it no new traffic, while calls it has finish. --disable
marks it disabled: it gets no traffic, and the gRPC resolver drops it.
The instance's own record is untouched (it belongs to its owner); the
mark is the operator's, kept by meta through restarts of the instance and
of any node, until undrain. Every watcher of the service is pushed the
change. The mark wins over what the owner published only when it holds
more back: an owner's disabled instance stays disabled while drained.`,
		Example: `  registryctl drain com.example.echo 10.0.0.7:8080 --reason "kernel upgrade"
  registryctl drain com.example.echo 10.0.0.7:8080 --disable
  registryctl undrain com.example.echo 10.0.0.7:8080`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			state := "draining"
			if disable {
				state = "disabled"
			}
			return setMark(cmd, g, args, instanceID, group, state, reason)
		},
	}
	keyPartFlags(cmd.Flags(), &instanceID, &group)
	cmd.Flags().BoolVar(&disable, "disable", false, "send the instance no traffic at all (the resolver drops it)")
	cmd.Flags().StringVar(&reason, "reason", "", "a note for other operators (at most 256 bytes)")
	cli.DescribeEnv(cmd.Flags())
	return cmd
}

func newUndrainCommand(g *globals) *cobra.Command {
	var instanceID, group string
	cmd := &cobra.Command{
		Use:   "undrain SERVICE ADDR",
		Short: "Clear an operator's drain or disable mark on an instance",
		Long: `undrain clears the mark drain set on the instance at ADDR of SERVICE:
it takes traffic again as its owner published it. Clearing a mark that
is not there succeeds and changes nothing.`,
		Example: `  registryctl undrain com.example.echo 10.0.0.7:8080`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return setMark(cmd, g, args, instanceID, group, "", "")
		},
	}
	keyPartFlags(cmd.Flags(), &instanceID, &group)
	cli.DescribeEnv(cmd.Flags())
	return cmd
}

func setMark(cmd *cobra.Command, g *globals, args []string, instanceID, group, state, reason string) error {
	key, err := dataInfoID(args[0], instanceID, group)
	if err != nil {
		return err
	}
	return g.withMeta(func(m *metaConn) error {
		var resp *registryv1.SetInstanceStateResponse
		err := m.call(cmd.Context(), "set instance state", func(ctx context.Context, c registryv1.MetaServiceClient) (err error) {
			resp, err = c.SetInstanceState(ctx, &registryv1.SetInstanceStateRequest{DataInfoId: key, Addr: args[1], State: state, Reason: reason})
			return err
		})
		if err != nil {
			return err
		}
		what := "cleared the mark on"
		if state != "" {
			what = "marked " + state + ":"
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %s of %s (index %d)\n", what, args[1], key, resp.GetIndex())
		return err
	})
}

func newDrainsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drains",
		Short: "List the operators' drain and disable marks on instances",
		Long: `drains lists every mark drain set and undrain has not cleared: the key,
the instance's address, the state, who set it, when and why.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withMeta(func(m *metaConn) error {
				var set *registryv1.InstanceStates
				err := m.call(cmd.Context(), "watch instance states", func(ctx context.Context, c registryv1.MetaServiceClient) error {
					ctx, cancel := context.WithCancel(ctx)
					defer cancel()
					stream, err := c.WatchInstanceStates(ctx, &registryv1.WatchInstanceStatesRequest{})
					if err != nil {
						return err
					}
					set, err = stream.Recv() // the whole set, now
					return err
				})
				if err != nil {
					return err
				}
				return render(cmd.OutOrStdout(), g.output, drainsFrom(set))
			})
		},
	}
	cli.DescribeEnv(cmd.Flags())
	return cmd
}

// drainsView is the output of drains.
type drainsView struct {
	Index uint64     `json:"index" yaml:"index"`
	Marks []drainRow `json:"marks" yaml:"marks"`
}

type drainRow struct {
	DataInfoID string `json:"data_info_id" yaml:"data_info_id"`
	Addr       string `json:"addr" yaml:"addr"`
	State      string `json:"state" yaml:"state"`
	Reason     string `json:"reason,omitempty" yaml:"reason,omitempty"`
	SetBy      string `json:"set_by" yaml:"set_by"`
	SetAt      string `json:"set_at" yaml:"set_at"`
}

func drainsFrom(set *registryv1.InstanceStates) drainsView {
	v := drainsView{Index: set.GetIndex(), Marks: []drainRow{}}
	for _, e := range set.GetEntries() {
		v.Marks = append(v.Marks, drainRow{DataInfoID: e.GetDataInfoId(), Addr: e.GetAddr(), State: e.GetState(), Reason: e.GetReason(),
			SetBy: e.GetSetBy(), SetAt: time.UnixMilli(e.GetSetAtUnixMs()).UTC().Format(time.RFC3339)})
	}
	return v
}

func (v drainsView) writeTable(w io.Writer) error {
	if len(v.Marks) == 0 {
		_, err := fmt.Fprintln(w, "no instance is drained or disabled")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tADDR\tSTATE\tSET BY\tSET AT\tREASON")
	for _, r := range v.Marks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", quoteIfOdd(r.DataInfoID), quoteIfOdd(r.Addr), r.State, r.SetBy, r.SetAt, strconv.Quote(r.Reason))
	}
	return tw.Flush()
}
