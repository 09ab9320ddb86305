package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-registry/strata/internal/cli"
	"github.com/strata-registry/strata/pkg/client"
)

func newPubCommand(g *globals) *cobra.Command {
	var (
		k    keyFlags
		hold time.Duration
	)
	cmd := &cobra.Command{
		Use:   "pub DATAID VALUE",
		Short: "Publish a value through a session and hold it until interrupted",
		Long: `pub publishes VALUE under DATAID through a session (--session, or one
the --meta nodes list when --session is empty), prints a line once a
session has stored it, and holds the publication, across reconnects and
session failures, until interrupted (Ctrl-C, SIGTERM) or, with --for, for
that long. It then unpublishes, prints a second line and exits 0.

DATAID is a bare data ID (with --instance-id and --group) or a whole
dataInfoID (dataID#@#instanceID#@#group). --timeout bounds the wait for a
session to store the publication and, at the end, its removal. If
registryctl dies instead of exiting, the session removes the publication
after its disconnect grace.

Output: one line (or JSON object, or YAML document) per event: published,
then unpublished.`,
		Example: `  registryctl pub com.example.echo 10.0.0.1:8080 --group RPC
  registryctl --session session-1:9603 pub com.example.echo 10.0.0.1:8080 --for 30s -o json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if hold < 0 {
				return fmt.Errorf("--for must not be negative, got %v", hold)
			}
			key, dataID, instanceID, group, err := k.parts(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := g.newClient(ctx, &k, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer c.Close()
			pctx, cancel := context.WithTimeout(ctx, g.timeout)
			p, err := c.Publish(pctx, dataID, []byte(args[1]), client.WithInstanceID(instanceID), client.WithGroup(group))
			cancel()
			if err != nil {
				return c.explain("publish "+key, err)
			}
			w := cmd.OutOrStdout()
			// A new publication is version 1; pub never updates it.
			if err := emit(w, g.output, pubView{Event: "published", DataInfoID: key, RegisterID: p.RegisterID(), Version: 1, Session: c.Session()}); err != nil {
				return err
			}
			hctx := ctx
			if hold > 0 {
				hctx, cancel = context.WithTimeout(ctx, hold)
				defer cancel()
			}
			<-hctx.Done()
			// Unpublish also when interrupted, so subscribers see the
			// value go now rather than after the disconnect grace.
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.timeout)
			defer cancel()
			if err := p.Unpublish(uctx); err != nil {
				return fmt.Errorf("%w (the session removes the publication after its disconnect grace)", c.explain("unpublish "+key, err))
			}
			return emit(w, g.output, pubView{Event: "unpublished", DataInfoID: key, RegisterID: p.RegisterID(), Version: 1, Session: c.Session()})
		},
	}
	k.register(cmd.Flags())
	cmd.Flags().DurationVar(&hold, "for", 0, "hold the publication this long, then unpublish and exit (0: until interrupted)")
	cli.DescribeEnv(cmd.Flags())
	return cmd
}

// pubView is one event of pub.
type pubView struct {
	Event      string `json:"event" yaml:"event"` // published or unpublished
	DataInfoID string `json:"data_info_id" yaml:"data_info_id"`
	RegisterID string `json:"register_id" yaml:"register_id"`
	Version    uint64 `json:"version" yaml:"version"`
	// Session is the session the client was connected to.
	Session string `json:"session" yaml:"session"`
}

func (v pubView) writeTable(w io.Writer) error {
	_, err := fmt.Fprintf(w, "%s %s: register id %s, version %d, session %s\n", v.Event, v.DataInfoID, v.RegisterID, v.Version, orDash(v.Session))
	return err
}
