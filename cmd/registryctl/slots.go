package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-registry/strata/internal/cli"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Sync states of a slot, worst first. A table shows the counts beside them.
const (
	syncNoLeader        = "no_leader"        // no live data node leads it: writes fail
	syncUnderReplicated = "under_replicated" // fewer followers than replicas-1
	syncSyncing         = "syncing"          // a follower has not reported a complete copy
	syncSynced          = "synced"           // every follower holds a caught-up copy
)

// fetchTable returns the cluster info and the current slot table; the
// table is nil while the cluster has none (no data node has joined yet).
func fetchTable(ctx context.Context, m *metaConn) (*registryv1.GetClusterInfoResponse, *registryv1.SlotTable, error) {
	info, err := m.clusterInfo(ctx)
	if err != nil || info.GetTableEpoch() == 0 {
		return info, nil, err
	}
	tb, err := m.table(ctx)
	return info, tb, err
}

func newSlotsCommand(g *globals) *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:   "slots",
		Short: "Show the slot table: leader, epoch, followers and sync state of every slot",
		Long: `slots prints the meta tier's current slot table: each slot's leader and
leader epoch, its followers, and its sync state (synced, syncing: a
follower has not reported a complete copy yet, under_replicated: fewer
followers than replicas-1, no_leader). A summary of the slots each data
node leads and follows comes after the table. --node keeps the slots one
data node leads or follows.`,
		Example: `  registryctl slots
  registryctl slots --node data-2 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withMeta(func(m *metaConn) error {
				info, tb, err := fetchTable(cmd.Context(), m)
				if err != nil {
					return err
				}
				v, err := slotsFrom(info, tb, node)
				if err != nil {
					return err
				}
				return render(cmd.OutOrStdout(), g.output, v)
			})
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "only slots this data node leads or follows")
	cli.DescribeEnv(cmd.Flags())
	return cmd
}

// slotsView is the output of slots.
type slotsView struct {
	TableEpoch uint64 `json:"table_epoch" yaml:"table_epoch"`
	SlotCount  uint32 `json:"slot_count" yaml:"slot_count"`
	Replicas   uint32 `json:"replicas" yaml:"replicas"`
	// Node is the --node filter, empty for the whole table.
	Node  string      `json:"node,omitempty" yaml:"node,omitempty"`
	Slots []slotRow   `json:"slots" yaml:"slots"`
	Nodes []nodeSlots `json:"nodes" yaml:"nodes"`
}

// slotRow is one slot of the table.
type slotRow struct {
	Slot        uint32   `json:"slot" yaml:"slot"`
	Leader      string   `json:"leader" yaml:"leader"`
	LeaderEpoch uint64   `json:"leader_epoch" yaml:"leader_epoch"`
	Followers   []string `json:"followers" yaml:"followers"`
	// Synced lists the followers that reported a complete copy.
	Synced []string `json:"synced" yaml:"synced"`
	Sync   string   `json:"sync" yaml:"sync"`
}

// nodeSlots sums up one data node's share of the table.
type nodeSlots struct {
	Node    string `json:"node" yaml:"node"`
	Leads   int    `json:"leads" yaml:"leads"`
	Follows int    `json:"follows" yaml:"follows"`
	// Syncing counts the followed slots not reported synced yet.
	Syncing int `json:"syncing" yaml:"syncing"`
}

// slotsFrom builds the view from the table (nil: no table yet). The
// summary covers every data member, also those holding nothing yet (a new
// node), and any node the table names. With node set, only its slots and
// its summary are kept; a node neither in the table nor a member is an
// error, since it is most likely a typo.
func slotsFrom(info *registryv1.GetClusterInfoResponse, tb *registryv1.SlotTable, node string) (slotsView, error) {
	v := slotsView{
		TableEpoch: info.GetTableEpoch(), SlotCount: info.GetSlotCount(), Replicas: info.GetReplicas(),
		Node: node, Slots: []slotRow{}, Nodes: []nodeSlots{},
	}
	if tb != nil {
		// The table is newer than the info when it changed in between.
		v.TableEpoch, v.SlotCount, v.Replicas = tb.GetEpoch(), tb.GetSlotCount(), tb.GetReplicas()
	}
	sum := map[string]*nodeSlots{}
	at := func(id string) *nodeSlots {
		if sum[id] == nil {
			sum[id] = &nodeSlots{Node: id}
		}
		return sum[id]
	}
	for _, n := range info.GetMembers() {
		if n.GetRole() == registryv1.Role_ROLE_DATA {
			at(n.GetId())
		}
	}
	for _, s := range tb.GetSlots() {
		r := rowFrom(s, v.Replicas)
		if r.Leader != "" {
			at(r.Leader).Leads++
		}
		for _, f := range r.Followers {
			ns := at(f)
			ns.Follows++
			if !slices.Contains(r.Synced, f) {
				ns.Syncing++
			}
		}
		if node == "" || r.Leader == node || slices.Contains(r.Followers, node) {
			v.Slots = append(v.Slots, r)
		}
	}
	if node != "" {
		ns, ok := sum[node]
		if !ok {
			return v, fmt.Errorf("--node %q: not a data member and holds no slot (data nodes: %s)", node, strings.Join(sortedKeys(sum), ", "))
		}
		v.Nodes = append(v.Nodes, *ns)
		return v, nil
	}
	for _, id := range sortedKeys(sum) {
		v.Nodes = append(v.Nodes, *sum[id])
	}
	return v, nil
}

func rowFrom(s *registryv1.Slot, replicas uint32) slotRow {
	r := slotRow{
		Slot: s.GetId(), Leader: s.GetLeader(), LeaderEpoch: s.GetLeaderEpoch(),
		Followers: append([]string{}, s.GetFollowers()...), Synced: append([]string{}, s.GetSynced()...),
	}
	switch {
	case r.Leader == "":
		r.Sync = syncNoLeader
	case replicas > 0 && len(r.Followers) < int(replicas)-1:
		r.Sync = syncUnderReplicated
	case len(r.Synced) < len(r.Followers):
		r.Sync = syncSyncing
	default:
		r.Sync = syncSynced
	}
	return r
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// syncCell is a slot's sync state with its synced/followers count.
func syncCell(r slotRow) string {
	if r.Sync == syncNoLeader {
		return r.Sync
	}
	return fmt.Sprintf("%s %d/%d", r.Sync, len(r.Synced), len(r.Followers))
}

func (v slotsView) writeTable(w io.Writer) error {
	if v.TableEpoch == 0 {
		_, err := fmt.Fprintln(w, "no slot table yet: no data node has joined the cluster")
		return err
	}
	t := newTable(w, "SLOT", "LEADER", "LEADER EPOCH", "FOLLOWERS", "SYNC")
	for _, r := range v.Slots {
		t.row(strconv.FormatUint(uint64(r.Slot), 10), r.Leader, strconv.FormatUint(r.LeaderEpoch, 10), list(r.Followers), syncCell(r))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return err
	}
	t = newTable(w, "NODE", "LEADS", "FOLLOWS", "SYNCING")
	for _, n := range v.Nodes {
		t.row(n.Node, strconv.Itoa(n.Leads), strconv.Itoa(n.Follows), strconv.Itoa(n.Syncing))
	}
	if err := t.flush(); err != nil {
		return err
	}
	counts := map[string]int{}
	for _, r := range v.Slots {
		counts[r.Sync]++
	}
	shown := fmt.Sprintf("%d slots", len(v.Slots))
	if v.Node != "" {
		shown = fmt.Sprintf("%d of %d slots held by %s", len(v.Slots), v.SlotCount, v.Node)
	}
	_, err := fmt.Fprintf(w, "\ntable epoch %d, %d replicas; %s: %d synced, %d syncing, %d under-replicated, %d without leader\n",
		v.TableEpoch, v.Replicas, shown, counts[syncSynced], counts[syncSyncing], counts[syncUnderReplicated], counts[syncNoLeader])
	return err
}

func newSlotOfCommand(g *globals) *cobra.Command {
	var instanceID, group string
	cmd := &cobra.Command{
		Use:   "slot-of DATA_ID",
		Short: "Show which slot a data ID falls in, and the data nodes that hold it",
		Long: `slot-of computes the slot of a data ID exactly as session and data nodes
do: the key is the dataInfoID (dataID#@#instanceID#@#group, with
DEFAULT_INSTANCE_ID and DEFAULT_GROUP for parts not given), hashed with
xxhash into the cluster's slot count. It then shows the slot's leader and
followers from the current table.

Give a bare data ID (with --instance-id and --group when the publisher set
them), or a whole dataInfoID.`,
		Example: `  registryctl slot-of com.example.orders
  registryctl slot-of com.example.orders --group PAYMENTS
  registryctl slot-of 'com.example.orders#@#DEFAULT_INSTANCE_ID#@#PAYMENTS' -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := dataInfoID(args[0], instanceID, group)
			if err != nil {
				return err
			}
			return g.withMeta(func(m *metaConn) error {
				info, tb, err := fetchTable(cmd.Context(), m)
				if err != nil {
					return err
				}
				v, err := slotOfFrom(key, info, tb)
				if err != nil {
					return err
				}
				return render(cmd.OutOrStdout(), g.output, v)
			})
		},
	}
	keyPartFlags(cmd.Flags(), &instanceID, &group)
	cli.DescribeEnv(cmd.Flags())
	return cmd
}

// dataInfoID returns the key servers hash: arg itself when it is a whole
// dataInfoID, else the dataInfoID built from its parts as sessions build it
// from a client's registration. It is validated as the servers validate it.
func dataInfoID(arg, instanceID, group string) (string, error) {
	key := arg
	if strings.Contains(arg, record.Separator) {
		if instanceID != "" || group != "" {
			return "", errors.New("give a whole dataInfoID or --instance-id/--group with a bare data ID, not both")
		}
	} else {
		key = record.DataInfoID(arg, instanceID, group)
	}
	if _, _, _, err := record.ParseDataInfoID(key); err != nil {
		return "", err
	}
	return key, nil
}

// slotOfView is the output of slot-of.
type slotOfView struct {
	DataInfoID  string `json:"data_info_id" yaml:"data_info_id"`
	Slot        uint32 `json:"slot" yaml:"slot"`
	SlotCount   uint32 `json:"slot_count" yaml:"slot_count"`
	TableEpoch  uint64 `json:"table_epoch" yaml:"table_epoch"`
	LeaderEpoch uint64 `json:"leader_epoch" yaml:"leader_epoch"`
	Sync        string `json:"sync" yaml:"sync"`
	// Nodes are the leader first, then the followers.
	Nodes []slotNode `json:"nodes" yaml:"nodes"`
}

// slotNode is a data node holding the slot.
type slotNode struct {
	Role string `json:"role" yaml:"role"` // leader or follower
	ID   string `json:"id" yaml:"id"`
	// State is leading for the leader, synced or syncing for a follower.
	State       string `json:"state" yaml:"state"`
	GRPCAddress string `json:"grpc_address" yaml:"grpc_address"`
	HTTPAddress string `json:"http_address" yaml:"http_address"`
}

// slotOfFrom computes key's slot with slot.Hasher, the servers' own code,
// for the table's slot count (the cluster's, fixed at creation). tb may be
// nil (no table yet): the slot is known, its nodes are not.
func slotOfFrom(key string, info *registryv1.GetClusterInfoResponse, tb *registryv1.SlotTable) (slotOfView, error) {
	count := info.GetSlotCount()
	if tb != nil {
		count = tb.GetSlotCount()
	}
	h, err := slot.NewHasher(int(count))
	if err != nil {
		return slotOfView{}, fmt.Errorf("slot count %d from meta: %w", count, err)
	}
	id := uint32(h.Of(key))
	v := slotOfView{DataInfoID: key, Slot: id, SlotCount: count, TableEpoch: info.GetTableEpoch(), Sync: syncNoLeader, Nodes: []slotNode{}}
	if tb == nil {
		return v, nil
	}
	v.TableEpoch = tb.GetEpoch()
	if int(id) >= len(tb.GetSlots()) || tb.GetSlots()[id].GetId() != id {
		return v, fmt.Errorf("slot table epoch %d has no row for slot %d (%d rows)", tb.GetEpoch(), id, len(tb.GetSlots()))
	}
	r := rowFrom(tb.GetSlots()[id], tb.GetReplicas())
	v.LeaderEpoch, v.Sync = r.LeaderEpoch, r.Sync
	addrs := map[string]*registryv1.Node{}
	for _, n := range info.GetMembers() {
		addrs[n.GetId()] = n
	}
	node := func(role, id, state string) slotNode {
		return slotNode{Role: role, ID: id, State: state, GRPCAddress: addrs[id].GetGrpcAddress(), HTTPAddress: addrs[id].GetHttpAddress()}
	}
	if r.Leader != "" {
		v.Nodes = append(v.Nodes, node("leader", r.Leader, "leading"))
	}
	for _, f := range r.Followers {
		state := "syncing"
		if slices.Contains(r.Synced, f) {
			state = "synced"
		}
		v.Nodes = append(v.Nodes, node("follower", f, state))
	}
	return v, nil
}

func (v slotOfView) writeTable(w io.Writer) error {
	t := newTable(w)
	t.row("DATA INFO ID", v.DataInfoID)
	t.row("SLOT", fmt.Sprintf("%d (of %d)", v.Slot, v.SlotCount))
	t.row("TABLE EPOCH", strconv.FormatUint(v.TableEpoch, 10))
	t.row("LEADER EPOCH", strconv.FormatUint(v.LeaderEpoch, 10))
	t.row("SYNC", v.Sync)
	if err := t.flush(); err != nil {
		return err
	}
	if len(v.Nodes) == 0 {
		_, err := fmt.Fprintln(w, "\nno data node holds this slot")
		return err
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return err
	}
	t = newTable(w, "ROLE", "NODE", "STATE", "GRPC", "HTTP")
	for _, n := range v.Nodes {
		t.row(n.Role, n.ID, n.State, n.GRPCAddress, n.HTTPAddress)
	}
	return t.flush()
}
