package meta

import (
	"testing"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/slot"
)

// A data node that registers while the slot table still gives it slots
// it cannot have (a new process: its records are gone) is readmitted:
// its slots move first. The case a chaos run found: the node left the
// pool on a graceful stop, meta removed it, and it registered again
// 30 ms later, before the arranger had moved anything; it was taken back
// as a new member under its old leaderships and leader epochs.
func TestMeta_MustReadmit_NewProcessOrRemovedButStillInTheTable(t *testing.T) {
	table := slot.Table{Epoch: 7, Slots: []slot.Slot{
		{ID: 0, Leader: "d1", LeaderEpoch: 3, Followers: []slot.NodeID{"d2"}},
		{ID: 1, Leader: "d2", LeaderEpoch: 4, Followers: []slot.NodeID{"d3"}},
	}}
	data := func(id, proc string) Member {
		return Member{ID: id, Role: cluster.RoleData, GRPC: id + ":1", Proc: proc}
	}
	members := func(ms ...Member) map[string]Member {
		out := map[string]Member{}
		for _, m := range ms {
			out[m.ID] = m
		}
		return out
	}
	tests := []struct {
		name    string
		members map[string]Member
		m       Member
		want    bool
	}{
		{"known, same process: no", members(data("d1", "p1")), data("d1", "p1"), false},
		{"known, new process: yes", members(data("d1", "p1")), data("d1", "p2"), true},
		{"known, no process ids (an older node): no", members(data("d1", "")), data("d1", "p2"), false},
		{"removed, still leading in the table: yes", members(data("d2", "p1")), data("d1", "p9"), true},
		{"removed, still following in the table: yes", members(data("d1", "p1")), data("d3", "p9"), true},
		{"new, not in the table: no", members(data("d1", "p1")), data("d4", "p1"), false},
		{"a session of a table node's name: no", nil, Member{ID: "d1", Role: cluster.RoleSession, GRPC: "s:1", Proc: "p"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &State{Members: tc.members, Table: table}
			if got := mustReadmit(st, tc.m); got != tc.want {
				t.Fatalf("mustReadmit(%s %s) = %v, want %v", tc.m.ID, tc.m.Proc, got, tc.want)
			}
		})
	}
}
