package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/strata-registry/strata/internal/catalog"
	"github.com/strata-registry/strata/internal/cli"
	"github.com/strata-registry/strata/internal/metaclient"
	"github.com/strata-registry/strata/internal/rpc"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

func newLsCommand(g *globals) *cobra.Command {
	var (
		limit int
		after string
		all   bool
	)
	cmd := &cobra.Command{
		Use:   "ls [PREFIX]",
		Short: "List the data IDs (services) the cluster holds, with their publisher counts",
		Long: `ls lists the keys (dataInfoIDs) with at least one publisher, in byte
order, with each key's publisher count. It reads the slot table from
meta and asks every slot leader for its keys at once, as the operator
identity. PREFIX keeps keys that start with it (the data ID's start, in
practice).

The listing comes in pages of --limit keys (default 100, at most 1000);
the last line names the cursor of the next page, for --after. --all
follows the cursors to the end. A slot whose leader could not answer
(none, unreachable, migrating) is named on stderr: its keys are missing
and the listing is partial (and ls exits non-zero).`,
		Example: `  registryctl ls
  registryctl ls com.example. --all
  registryctl ls --limit 50 --after 'com.example.echo#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP' -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 || limit > catalog.MaxLimit {
				return fmt.Errorf("--limit %d out of range 1..%d", limit, catalog.MaxLimit)
			}
			q := catalog.Query{After: after, Limit: limit}
			if len(args) == 1 {
				q.Prefix = args[0]
			}
			if err := q.Check(); err != nil {
				return err
			}
			return g.withMeta(func(m *metaConn) error {
				v, err := listKeys(cmd.Context(), g, m, q, all)
				if err != nil {
					return err
				}
				if err := render(cmd.OutOrStdout(), g.output, v); err != nil {
					return err
				}
				if len(v.Missing) > 0 {
					return fmt.Errorf("partial listing: slots %v could not be listed (no leader, unreachable or migrating); try again", v.Missing)
				}
				return nil
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", catalog.DefaultLimit, fmt.Sprintf("keys per page, 1..%d", catalog.MaxLimit))
	cmd.Flags().StringVar(&after, "after", "", "cursor: list keys after this one (the previous page's next)")
	cmd.Flags().BoolVar(&all, "all", false, "follow the pages to the end")
	cli.DescribeEnv(cmd.Flags())
	return cmd
}

// lsView is the output of ls.
type lsView struct {
	Services []catalog.Entry `json:"services" yaml:"services"`
	// Next is the cursor of the next page; empty at the end.
	Next    string   `json:"next" yaml:"next"`
	Missing []uint32 `json:"missing_slots,omitempty" yaml:"missing_slots,omitempty"`
}

// listKeys lists one page of q, or with all every page from q.After on.
func listKeys(ctx context.Context, g *globals, m *metaConn, q catalog.Query, all bool) (lsView, error) {
	info, tb, err := fetchTable(ctx, m)
	if err != nil {
		return lsView{}, err
	}
	if tb == nil {
		return lsView{Services: []catalog.Entry{}}, nil // no table: no data nodes yet
	}
	t, err := metaclient.Table(tb)
	if err != nil {
		return lsView{}, err
	}
	addrs := map[slot.NodeID]string{}
	for _, n := range info.GetMembers() {
		if n.GetRole() == registryv1.Role_ROLE_DATA && n.GetGrpcAddress() != "" {
			addrs[slot.NodeID(n.GetId())] = n.GetGrpcAddress()
		}
	}
	addr := func(id slot.NodeID) (string, bool) { a, ok := addrs[id]; return a, ok }
	// A pool of its own, room for every data node: the meta pool is sized
	// for the meta nodes and would close one leader's connection to open
	// the next one's, under the calls in flight.
	pool := rpc.NewPool(m.creds, len(addrs)+1)
	defer pool.Close()
	dial := func(peer identity.Peer, a string) (registryv1.DataServiceClient, error) {
		conn, err := pool.Get(a, peer)
		if err != nil {
			return nil, err
		}
		return registryv1.NewDataServiceClient(conn), nil
	}
	v := lsView{Services: []catalog.Entry{}}
	missing := map[uint32]bool{}
	for {
		pctx, cancel := context.WithTimeout(ctx, g.timeout)
		p, err := catalog.List(pctx, t, addr, dial, q)
		cancel()
		if err != nil {
			return lsView{}, err
		}
		v.Services = append(v.Services, p.Entries...)
		for _, s := range p.Missing {
			if !missing[s] {
				missing[s] = true
				v.Missing = append(v.Missing, s)
			}
		}
		v.Next = p.Next
		if !all || p.Next == "" {
			return v, nil
		}
		q.After = p.Next
	}
}

func (v lsView) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DATA ID\tINSTANCE ID\tGROUP\tPUBLISHERS")
	for _, e := range v.Services {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", quoteIfOdd(e.DataID), quoteIfOdd(e.InstanceID), quoteIfOdd(e.Group), e.Publishers)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if v.Next != "" {
		_, err := fmt.Fprintf(w, "more: --after '%s'\n", strings.ReplaceAll(v.Next, "'", `'\''`))
		return err
	}
	return nil
}

// quoteIfOdd prints a field as it is unless it holds spaces or characters
// that would break the table: then Go-quoted.
func quoteIfOdd(s string) string {
	if s != "" && printable(s) && !strings.ContainsAny(s, " \t") {
		return s
	}
	return strconv.Quote(s)
}
