package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/strata-registry/strata/internal/cli"
	"github.com/strata-registry/strata/pkg/client"
)

// subFlags are the flags sub and get share: the key, and the scope.
type subFlags struct {
	keyFlags
	scope string
}

func (s *subFlags) register(f *pflag.FlagSet) {
	s.keyFlags.register(f)
	f.StringVar(&s.scope, "scope", "global", "publishers to receive: global (all), zone (those in --zone) or dc (this datacenter)")
}

// subscribe validates the flags, starts a client and subscribes to arg. The
// caller closes the client.
func (s *subFlags) subscribe(cmd *cobra.Command, g *globals, arg string) (*sessionClient, *client.Subscription, string, error) {
	var scope client.Scope
	switch s.scope {
	case "global":
		scope = client.ScopeGlobal
	case "zone":
		if s.zone == "" {
			return nil, nil, "", errors.New("--scope zone needs --zone")
		}
		scope = client.ScopeZone
	case "dc", "datacenter":
		scope = client.ScopeDatacenter
	default:
		return nil, nil, "", fmt.Errorf("unknown --scope %q (want global, zone or dc)", s.scope)
	}
	key, dataID, instanceID, group, err := s.parts(arg)
	if err != nil {
		return nil, nil, "", err
	}
	c, err := g.newClient(cmd.Context(), &s.keyFlags, cmd.ErrOrStderr())
	if err != nil {
		return nil, nil, "", err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
	defer cancel()
	sub, err := c.Subscribe(ctx, dataID, client.WithInstanceID(instanceID), client.WithGroup(group), client.WithScope(scope))
	if err != nil {
		_ = c.Close()
		return nil, nil, "", c.explain("subscribe "+key, err)
	}
	return c, sub, key, nil
}

// first waits, bounded by --timeout, for the subscription's first snapshot:
// the key's current list.
func first(ctx context.Context, c *sessionClient, sub *client.Subscription, key string) (client.Snapshot, error) {
	tctx, cancel := context.WithTimeout(ctx, c.g.timeout)
	defer cancel()
	snap, err := sub.Next(tctx)
	switch {
	case err == nil:
		return snap, nil
	case ctx.Err() != nil:
		// Interrupted, or sub's --for ended: not a timeout of ours.
		return snap, fmt.Errorf("subscribe %s: stopped before the first snapshot: %w", key, ctx.Err())
	}
	return snap, c.explain("subscribe "+key+": first snapshot", err)
}

func newSubCommand(g *globals) *cobra.Command {
	var (
		s     subFlags
		count int
		until string
		hold  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "sub DATAID",
		Short: "Subscribe through a session and print every snapshot pushed",
		Long: `sub subscribes to DATAID through a session (--session, or one the --meta
nodes list when --session is empty) and prints the current list of values,
then the whole list again every time it changes, until interrupted. Changes
that arrive faster than they print merge into the newest list.

Table output: a line "version N: K values" per snapshot, then one line per
value: publisher (register) ID, zone and the data (as text; quoted with Go
escapes when it is not printable UTF-8). JSON output: one object per line;
a value's "data" is its text when it is valid UTF-8, else "data_base64"
holds it in standard base64. YAML: one document per snapshot.

For scripts: --count exits after that many snapshots, --until once a
snapshot holds a value equal to the given text (whichever comes first when
both are set), --for bounds the whole run. sub exits 1 when --for ends or
it is interrupted before --count or --until is met, and 0 otherwise.
--timeout bounds the wait for the first snapshot.`,
		Example: `  registryctl sub com.example.echo --group RPC
  registryctl --session session-2:9603 sub com.example.echo --until 10.0.0.1:8080 --for 30s
  registryctl sub com.example.echo --count 1 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if count < 0 || hold < 0 {
				return fmt.Errorf("--count and --for must not be negative, got %d and %v", count, hold)
			}
			ctx := cmd.Context()
			if hold > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, hold)
				defer cancel()
			}
			c, sub, key, err := s.subscribe(cmd, g, args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			snap, err := first(ctx, c, sub, key)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			for n := 1; ; n++ {
				if err := emit(w, g.output, snapshotFrom(key, snap)); err != nil {
					return err
				}
				if (count > 0 && n >= count) || (until != "" && holds(snap, until)) {
					return nil
				}
				if snap, err = sub.Next(ctx); err != nil {
					if ctx.Err() == nil {
						return fmt.Errorf("subscribe %s: %w", key, err)
					}
					return unmet(count, n, until, hold, cmd.Context().Err() != nil)
				}
			}
		},
	}
	s.register(cmd.Flags())
	f := cmd.Flags()
	f.IntVar(&count, "count", 0, "exit after this many snapshots (0: no limit)")
	f.StringVar(&until, "until", "", "exit once a snapshot holds a value equal to this text")
	f.DurationVar(&hold, "for", 0, "stop after this long (0: until interrupted); exit 1 if --count or --until is not met by then")
	cli.DescribeEnv(f)
	return cmd
}

// unmet is sub's result when it stops (--for elapsed, or interrupted)
// before a snapshot ends it: nil unless --count or --until was set.
func unmet(count, seen int, until string, hold time.Duration, interrupted bool) error {
	why := fmt.Sprintf("within %v", hold)
	if interrupted {
		why = "before the interrupt"
	}
	switch {
	case until != "":
		return fmt.Errorf("no snapshot held %q %s (%d snapshots seen)", until, why, seen)
	case count > 0:
		return fmt.Errorf("%d of %d snapshots %s", seen, count, why)
	}
	return nil
}

// holds reports whether one of snap's values is text.
func holds(snap client.Snapshot, text string) bool {
	return slices.ContainsFunc(snap.Values, func(v client.Value) bool { return string(v.Data) == text })
}

func newGetCommand(g *globals) *cobra.Command {
	var s subFlags
	cmd := &cobra.Command{
		Use:   "get DATAID",
		Short: "Print the current values of a data ID once",
		Long: `get subscribes to DATAID through a session (--session, or one the --meta
nodes list when --session is empty), prints the first snapshot, the key's
current list of values, and exits. The output is sub's (see sub --help),
for one snapshot; JSON and YAML are indented. --timeout bounds the wait.`,
		Example: `  registryctl get com.example.echo --group RPC
  registryctl get 'com.example.echo#@#DEFAULT_INSTANCE_ID#@#RPC' -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, sub, key, err := s.subscribe(cmd, g, args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			snap, err := first(cmd.Context(), c, sub, key)
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), g.output, snapshotFrom(key, snap))
		},
	}
	s.register(cmd.Flags())
	cli.DescribeEnv(cmd.Flags())
	return cmd
}

// snapshotView is one snapshot of sub and get.
type snapshotView struct {
	DataInfoID string     `json:"data_info_id" yaml:"data_info_id"`
	Version    uint64     `json:"version" yaml:"version"`
	Values     []valueRow `json:"values" yaml:"values"`
	// InstanceStates are operators' marks (registryctl drain).
	InstanceStates []client.InstanceState `json:"instance_states,omitempty" yaml:"instance_states,omitempty"`
}

// valueRow is one published value.
type valueRow struct {
	// Data is the value as text when it is valid UTF-8; DataBase64 holds it
	// (standard base64) when it is not. Exactly one is set.
	Data        *string `json:"data,omitempty" yaml:"data,omitempty"`
	DataBase64  string  `json:"data_base64,omitempty" yaml:"data_base64,omitempty"`
	Zone        string  `json:"zone" yaml:"zone"`
	PublisherID string  `json:"publisher_id" yaml:"publisher_id"`
	raw         []byte
}

// snapshotFrom builds the view, values in the order the session sent them.
func snapshotFrom(key string, snap client.Snapshot) snapshotView {
	v := snapshotView{DataInfoID: key, Version: snap.Version, Values: make([]valueRow, 0, len(snap.Values)), InstanceStates: snap.InstanceStates}
	for _, val := range snap.Values {
		r := valueRow{Zone: val.Zone, PublisherID: val.PublisherID, raw: val.Data}
		if utf8.Valid(val.Data) {
			s := string(val.Data)
			r.Data = &s
		} else {
			r.DataBase64 = base64.StdEncoding.EncodeToString(val.Data)
		}
		v.Values = append(v.Values, r)
	}
	return v
}

func (v snapshotView) writeTable(w io.Writer) error {
	noun := "values"
	if len(v.Values) == 1 {
		noun = "value"
	}
	if _, err := fmt.Fprintf(w, "version %d: %d %s\n", v.Version, len(v.Values), noun); err != nil {
		return err
	}
	// The data goes last: it is the one column that may hold spaces.
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range v.Values {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", orDash(r.PublisherID), orDash(r.Zone), dataCell(r.raw))
	}
	for _, m := range v.InstanceStates {
		fmt.Fprintf(tw, "  marked %s:\t%s\n", m.State, dataCell([]byte(m.Addr)))
	}
	return tw.Flush()
}

// dataCell is a value as a table shows it: as it is when it is printable
// text, else Go-quoted (so a newline or binary data cannot break the
// table), and "" for an empty value.
func dataCell(b []byte) string {
	s := string(b)
	if s == "" || !utf8.ValidString(s) || !printable(s) {
		return strconv.Quote(s)
	}
	return s
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
