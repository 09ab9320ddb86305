package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/strata-registry/strata/internal/cli"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

func newMembersCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List meta nodes and members (data and session nodes)",
		Long: `members lists every node the meta tier knows: the meta nodes (Raft
peers; state is their Raft role, leader, follower or nonvoter, as the
answering meta node sees it, and says nothing of liveness: see health)
and the data and session members, with their addresses and zone. For
sessions, connections is the client count each reported in its last
heartbeat to the meta leader ("?" when no leader could be asked).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withMeta(func(m *metaConn) error {
				ctx := cmd.Context()
				info, err := m.clusterInfo(ctx)
				if err != nil {
					return err
				}
				var sessions *registryv1.ListSessionsResponse
				if hasSessions(info) {
					// Client counts live on the meta leader only; without one
					// the list is still worth printing.
					if sessions, err = m.sessions(ctx); err != nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "warning: session connection counts unavailable: %v\n", err)
					}
				}
				return render(cmd.OutOrStdout(), g.output, membersFrom(info, sessions))
			})
		},
	}
	cli.DescribeEnv(cmd.Flags())
	return cmd
}

func hasSessions(info *registryv1.GetClusterInfoResponse) bool {
	return slices.ContainsFunc(info.GetMembers(), func(n *registryv1.Node) bool { return n.GetRole() == registryv1.Role_ROLE_SESSION })
}

// membersView is the output of members.
type membersView struct {
	ClusterID  string      `json:"cluster_id" yaml:"cluster_id"`
	SlotCount  uint32      `json:"slot_count" yaml:"slot_count"`
	Replicas   uint32      `json:"replicas" yaml:"replicas"`
	TableEpoch uint64      `json:"table_epoch" yaml:"table_epoch"`
	RaftTerm   uint64      `json:"raft_term" yaml:"raft_term"`
	Members    []memberRow `json:"members" yaml:"members"`
}

// memberRow is one node.
type memberRow struct {
	Role        string `json:"role" yaml:"role"` // meta, data or session
	ID          string `json:"id" yaml:"id"`
	GRPCAddress string `json:"grpc_address" yaml:"grpc_address"`
	HTTPAddress string `json:"http_address" yaml:"http_address"`
	Zone        string `json:"zone" yaml:"zone"`
	// State is leader, follower or nonvoter for meta nodes (their Raft
	// role), alive for members (meta drops members that die).
	State string `json:"state" yaml:"state"`
	// Connections is a session's client count; absent for other roles
	// and when the meta leader could not be asked.
	Connections *uint32 `json:"connections,omitempty" yaml:"connections,omitempty"`
}

// membersFrom builds the view: meta nodes, then data, then session nodes,
// each sorted by ID. sessions may be nil (counts unknown).
func membersFrom(info *registryv1.GetClusterInfoResponse, sessions *registryv1.ListSessionsResponse) membersView {
	v := membersView{
		ClusterID: info.GetClusterId(), SlotCount: info.GetSlotCount(), Replicas: info.GetReplicas(),
		TableEpoch: info.GetTableEpoch(), RaftTerm: info.GetTerm(), Members: []memberRow{},
	}
	for _, p := range info.GetMeta() {
		v.Members = append(v.Members, memberRow{
			Role: "meta", ID: p.GetId(), GRPCAddress: p.GetGrpcAddress(), HTTPAddress: p.GetHttpAddress(),
			State: metaState(p),
		})
	}
	var counts map[string]uint32
	if sessions != nil {
		counts = map[string]uint32{}
		for _, s := range sessions.GetSessions() {
			counts[s.GetNode().GetId()] = s.GetClientCount()
		}
	}
	for _, n := range info.GetMembers() {
		r := memberRow{
			Role: roleName(n.GetRole()), ID: n.GetId(), GRPCAddress: n.GetGrpcAddress(), HTTPAddress: n.GetHttpAddress(),
			Zone: n.GetZone(), State: stateName(n.GetState()),
		}
		if n.GetRole() == registryv1.Role_ROLE_SESSION {
			if c, ok := counts[n.GetId()]; ok {
				r.Connections = &c
			}
		}
		v.Members = append(v.Members, r)
	}
	slices.SortStableFunc(v.Members, func(a, b memberRow) int {
		return cmp.Or(cmp.Compare(roleOrder(a.Role), roleOrder(b.Role)), cmp.Compare(a.ID, b.ID))
	})
	return v
}

func (v membersView) writeTable(w io.Writer) error {
	t := newTable(w, "ROLE", "ID", "GRPC", "HTTP", "ZONE", "STATE", "CONNECTIONS")
	counts := map[string]int{}
	for _, m := range v.Members {
		conns := ""
		switch {
		case m.Connections != nil:
			conns = strconv.FormatUint(uint64(*m.Connections), 10)
		case m.Role == "session":
			conns = "?"
		}
		t.row(m.Role, m.ID, m.GRPCAddress, m.HTTPAddress, m.Zone, m.State, conns)
		counts[m.Role]++
	}
	if err := t.flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\ncluster %s: %d meta, %d data, %d session; %d slots, %d replicas; table epoch %d, raft term %d\n",
		orDash(v.ClusterID), counts["meta"], counts["data"], counts["session"], v.SlotCount, v.Replicas, v.TableEpoch, v.RaftTerm)
	return err
}

func metaState(p *registryv1.MetaPeer) string {
	switch {
	case p.GetLeader():
		return "leader"
	case p.GetVoter():
		return "follower"
	}
	return "nonvoter"
}

func roleName(r registryv1.Role) string {
	switch r {
	case registryv1.Role_ROLE_META:
		return "meta"
	case registryv1.Role_ROLE_DATA:
		return "data"
	case registryv1.Role_ROLE_SESSION:
		return "session"
	}
	return "unknown"
}

func roleOrder(role string) int {
	switch role {
	case "meta":
		return 0
	case "data":
		return 1
	case "session":
		return 2
	}
	return 3
}

func stateName(s registryv1.NodeState) string {
	if s == registryv1.NodeState_NODE_STATE_ALIVE {
		return "alive"
	}
	return "unknown"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newLeaderCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "leader",
		Short: "Show the meta tier's Raft leader",
		Long: `leader shows the meta node that leads Raft, as the first meta node that
knows a leader reports it, with the current term. It fails when no meta
node knows one (an election in progress, or no quorum).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withMeta(func(m *metaConn) error {
				resp, err := m.leader(cmd.Context())
				if err != nil {
					return err
				}
				return render(cmd.OutOrStdout(), g.output, leaderFrom(resp))
			})
		},
	}
	cli.DescribeEnv(cmd.Flags())
	return cmd
}

// leaderView is the output of leader.
type leaderView struct {
	ID          string `json:"id" yaml:"id"`
	GRPCAddress string `json:"grpc_address" yaml:"grpc_address"`
	HTTPAddress string `json:"http_address" yaml:"http_address"`
	RaftAddress string `json:"raft_address" yaml:"raft_address"`
	Term        uint64 `json:"term" yaml:"term"`
}

func leaderFrom(resp *registryv1.GetLeaderResponse) leaderView {
	l := resp.GetLeader()
	return leaderView{ID: l.GetId(), GRPCAddress: l.GetGrpcAddress(), HTTPAddress: l.GetHttpAddress(), RaftAddress: l.GetRaftAddress(), Term: resp.GetTerm()}
}

func (v leaderView) writeTable(w io.Writer) error {
	t := newTable(w, "ID", "GRPC", "HTTP", "RAFT", "TERM")
	t.row(v.ID, v.GRPCAddress, v.HTTPAddress, v.RaftAddress, strconv.FormatUint(v.Term, 10))
	return t.flush()
}
