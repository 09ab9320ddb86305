package meta

import (
	"fmt"
	"net"
	"strconv"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/slot"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// memberFromProto validates a node from the wire. Meta nodes are refused:
// they join through gossip and Raft, never through RegisterNode.
func memberFromProto(n *registryv1.Node) (Member, error) {
	if n == nil {
		return Member{}, invalid("node is required")
	}
	if err := validNodeID(n.GetId()); err != nil {
		return Member{}, invalid("%v", err)
	}
	var role cluster.Role
	switch n.GetRole() {
	case registryv1.Role_ROLE_DATA:
		role = cluster.RoleData
	case registryv1.Role_ROLE_SESSION:
		role = cluster.RoleSession
	case registryv1.Role_ROLE_META:
		return Member{}, invalid("node %s: meta nodes join through gossip and Raft, not RegisterNode", n.GetId())
	default:
		return Member{}, invalid("node %s: unknown role %d (want ROLE_DATA or ROLE_SESSION)", n.GetId(), n.GetRole())
	}
	if err := validAddress(n.GetGrpcAddress()); err != nil {
		return Member{}, invalid("node %s: grpc address: %v", n.GetId(), err)
	}
	if n.GetHttpAddress() != "" {
		if err := validAddress(n.GetHttpAddress()); err != nil {
			return Member{}, invalid("node %s: http address: %v", n.GetId(), err)
		}
	}
	if len(n.GetZone()) > maxZoneLen {
		return Member{}, invalid("node %s: zone is %d bytes, at most %d allowed", n.GetId(), len(n.GetZone()), maxZoneLen)
	}
	if len(n.GetProc()) > maxNodeIDLen*2 {
		return Member{}, invalid("node %s: proc is %d bytes, at most %d allowed", n.GetId(), len(n.GetProc()), maxNodeIDLen*2)
	}
	return Member{ID: n.GetId(), Role: role, GRPC: n.GetGrpcAddress(), HTTP: n.GetHttpAddress(), Zone: n.GetZone(), Proc: n.GetProc()}, nil
}

func validAddress(a string) error {
	if a == "" {
		return fmt.Errorf("empty")
	}
	if len(a) > maxAddressLen {
		return fmt.Errorf("%d bytes, at most %d allowed", len(a), maxAddressLen)
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	if p, err := strconv.ParseUint(port, 10, 16); host == "" || err != nil || p == 0 {
		return fmt.Errorf("%q needs a host and a port in 1..65535", a)
	}
	return nil
}

func memberToProto(m Member) *registryv1.Node {
	role := registryv1.Role_ROLE_DATA
	if m.Role == cluster.RoleSession {
		role = registryv1.Role_ROLE_SESSION
	}
	return &registryv1.Node{
		Id: m.ID, Role: role, GrpcAddress: m.GRPC, HttpAddress: m.HTTP, Zone: m.Zone, Proc: m.Proc,
		State: registryv1.NodeState_NODE_STATE_ALIVE,
	}
}

// tableToProto converts t; sync status is attached when t is the state's
// current table (older tables' sync status is no longer known).
func tableToProto(st *State, t slot.Table) *registryv1.SlotTable {
	out := &registryv1.SlotTable{
		Epoch:     t.Epoch,
		SlotCount: uint32(st.Settings.Count),
		Replicas:  uint32(st.Settings.Replicas),
		Slots:     make([]*registryv1.Slot, len(t.Slots)),
	}
	current := t.Epoch == st.Table.Epoch
	for i, s := range t.Slots {
		ps := &registryv1.Slot{Id: uint32(s.ID), Leader: string(s.Leader), LeaderEpoch: s.LeaderEpoch}
		for _, f := range s.Followers {
			ps.Followers = append(ps.Followers, string(f))
			if current && st.Sync.Synced(s.ID, f) {
				ps.Synced = append(ps.Synced, string(f))
			}
		}
		out.Slots[i] = ps
	}
	return out
}
