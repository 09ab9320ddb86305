package meta

import (
	"encoding/json"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/strata-registry/strata/internal/slot"
)

// FuzzFSMApply feeds arbitrary bytes to the FSM as committed commands, on
// an empty state and on an initialized one with members and a table: Apply
// never panics, and whatever it accepts leaves a state whose table still
// has the cluster's shape.
func FuzzFSMApply(f *testing.F) {
	settings := slot.Settings{Count: 8, Replicas: 2, MaxMoves: 4}
	init := command{Op: opInit, Init: &initCmd{ClusterID: "c", Settings: settings}}
	for _, c := range []command{
		init,
		{Op: opUpsert, Member: &Member{ID: "d1", Role: "data", GRPC: "127.0.0.1:1"}},
		{Op: opRemove, NodeID: "d1"},
		{Op: opSync, NodeID: "d1", Sync: []syncRow{{Slot: 1, LeaderEpoch: 1, Synced: true}}},
		{Op: opTable, Table: &tableCmd{Expect: 0, Table: slot.Table{Epoch: 1}}},
		{Op: opMark, Mark: &markCmd{Key: "svc#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP", Addr: "10.0.0.1:80", Mark: Mark{State: StateDraining}}},
		{Op: opMark, Mark: &markCmd{Key: "svc#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP", Addr: "10.0.0.1:80"}},
	} {
		b, err := json.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"op":"table","table":{"expect":0,"table":{"Epoch":1,"Slots":[{"ID":9}]}}}`))
	f.Add([]byte(`{"op":"sync","node_id":"d1","sync":[{"Slot":4294967295}]}`))
	seed := func(t *testing.T) *fsm {
		fs := newFSM()
		for i, c := range []command{init, {Op: opUpsert, Member: &Member{ID: "d1", Role: "data", GRPC: "127.0.0.1:1"}}} {
			b, _ := json.Marshal(c)
			if err, _ := fs.Apply(&raft.Log{Type: raft.LogCommand, Index: uint64(i + 1), Data: b}).(error); err != nil {
				t.Fatal(err)
			}
		}
		return fs
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, fs := range []*fsm{newFSM(), seed(t)} {
			before := fs.Current()
			if err, _ := fs.Apply(&raft.Log{Type: raft.LogCommand, Index: 100, Data: b}).(error); err != nil {
				if fs.Current() != before {
					t.Fatalf("a refused command changed the state: %v", err)
				}
				continue
			}
			st := fs.Current()
			if n := len(st.Table.Slots); st.Initialized() && n != 0 && n != st.Settings.Count {
				t.Fatalf("the table has %d slots, the settings %d", n, st.Settings.Count)
			}
			if n := countMarks(st.Marks); n > MaxMarks {
				t.Fatalf("%d instance marks, at most %d", n, MaxMarks)
			}
			for key, byAddr := range st.Marks {
				for addr, m := range byAddr {
					if m.State == "" || checkMark(markCmd{Key: key, Addr: addr, Mark: m}) != nil {
						t.Fatalf("the state holds a mark Apply should have refused: %s %s %+v", key, addr, m)
					}
				}
			}
		}
	})
}
