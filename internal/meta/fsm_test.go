package meta

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/slot"
)

func logOf(t *testing.T, i uint64, c command) *raft.Log {
	t.Helper()
	b, err := encode(c)
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: i, Type: raft.LogCommand, Data: b}
}

// history builds a realistic command log: init, three data nodes, tables
// from the arranger, sync reports, a removal.
func history(t *testing.T) []*raft.Log {
	t.Helper()
	settings := slot.Settings{Count: 16, Replicas: 2, MaxMoves: 4}
	var logs []*raft.Log
	add := func(c command) { logs = append(logs, logOf(t, uint64(len(logs)+1), c)) }
	add(command{Op: opInit, Init: &initCmd{ClusterID: "c1", Settings: settings}})
	st := &State{Members: map[string]Member{}, Sync: slot.SyncState{}}
	step := func(c command) {
		add(c)
		next, err := apply(st, c)
		if err != nil {
			t.Fatalf("%s: %v", c.Op, err)
		}
		st = next
	}
	st.ClusterID, st.Settings = "c1", settings
	for _, id := range []string{"d0", "d1", "d2"} {
		step(command{Op: opUpsert, Member: &Member{ID: id, Role: cluster.RoleData, GRPC: id + ":1"}})
		tb, err := slot.Next(st.Table, st.DataNodes(), st.Sync, settings)
		if err != nil {
			t.Fatal(err)
		}
		step(command{Op: opTable, Table: &tableCmd{Expect: st.Table.Epoch, Table: tb}})
		for _, n := range st.DataNodes() {
			var rows []syncRow
			for _, s := range st.Table.Slots {
				rows = append(rows, syncRow{Slot: s.ID, LeaderEpoch: s.LeaderEpoch, Synced: true})
			}
			if ch := syncChanges(st, n, rows); len(ch) > 0 {
				step(command{Op: opSync, NodeID: string(n), Sync: ch})
			}
		}
	}
	step(command{Op: opRemove, NodeID: "d1"})
	return logs
}

func TestFSM_Apply_DeterministicAcrossReplicas(t *testing.T) {
	logs := history(t)
	a, b := newFSM(), newFSM()
	for _, l := range logs {
		ra, rb := a.Apply(l), b.Apply(l)
		if !reflect.DeepEqual(ra, rb) {
			t.Fatalf("index %d: replicas answered %v and %v", l.Index, ra, rb)
		}
	}
	if !reflect.DeepEqual(a.Current(), b.Current()) {
		t.Fatal("replicas diverged")
	}
	st := a.Current()
	if st.Index != uint64(len(logs)) || len(st.Members) != 2 || st.Table.Epoch == 0 {
		t.Fatalf("unexpected state: index %d, %d members, epoch %d", st.Index, len(st.Members), st.Table.Epoch)
	}
	for id, nodes := range st.Sync {
		if nodes["d1"] {
			t.Fatalf("slot %d keeps a sync report from removed d1", id)
		}
	}
}

func TestFSM_Snapshot_RestoreRoundTrip(t *testing.T) {
	f := newFSM()
	for _, l := range history(t) {
		if err, _ := f.Apply(l).(error); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := newFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	want, got := f.Current(), g.Current()
	if got.ClusterID != want.ClusterID || got.Index != want.Index || !got.Table.Equal(want.Table) ||
		!reflect.DeepEqual(got.Members, want.Members) || !reflect.DeepEqual(got.Sync, want.Sync) || got.Settings != want.Settings {
		t.Fatalf("restored state differs:\n got %+v\nwant %+v", got, want)
	}
	if ts := got.TablesAfter(0, false); len(ts) != 1 || ts[0].Epoch != want.Table.Epoch {
		t.Fatalf("restored node serves %d tables to a new watcher", len(ts))
	}
	if err := g.Restore(io.NopCloser(bytes.NewReader([]byte("{not json")))); err == nil {
		t.Fatal("restoring garbage succeeded")
	}
}

func TestFSM_TableCommand_CompareAndSwap(t *testing.T) {
	st := &State{ClusterID: "c", Settings: slot.Settings{Count: 4, Replicas: 1, MaxMoves: 1}, Members: map[string]Member{}, Sync: slot.SyncState{}}
	tb, err := slot.Next(slot.Table{}, []slot.NodeID{"a"}, nil, st.Settings)
	if err != nil {
		t.Fatal(err)
	}
	st, err = apply(st, command{Op: opTable, Table: &tableCmd{Expect: 0, Table: tb}})
	if err != nil {
		t.Fatal(err)
	}
	// A table computed from epoch 0 again is stale now.
	if _, err := apply(st, command{Op: opTable, Table: &tableCmd{Expect: 0, Table: tb}}); !errors.Is(err, ErrStaleTable) {
		t.Fatalf("stale table: got %v", err)
	}
	// A table that does not advance the epoch, or has the wrong size, is refused.
	same := tb.Clone()
	if _, err := apply(st, command{Op: opTable, Table: &tableCmd{Expect: tb.Epoch, Table: same}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("same epoch: got %v", err)
	}
	short := slot.Table{Epoch: tb.Epoch + 1, Slots: tb.Slots[:2]}
	if _, err := apply(st, command{Op: opTable, Table: &tableCmd{Expect: tb.Epoch, Table: short}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short table: got %v", err)
	}
}

func TestFSM_SyncReport_OnlyCurrentLeaderEpochAndOwnSlots(t *testing.T) {
	st := &State{ClusterID: "c", Settings: slot.Settings{Count: 2, Replicas: 2, MaxMoves: 1}, Sync: slot.SyncState{},
		Members: map[string]Member{"a": {ID: "a", Role: cluster.RoleData}, "b": {ID: "b", Role: cluster.RoleData}}}
	st.Table = slot.Table{Epoch: 3, Slots: []slot.Slot{
		{ID: 0, Leader: "a", LeaderEpoch: 5, Followers: []slot.NodeID{"b"}},
		{ID: 1, Leader: "b", LeaderEpoch: 2, Followers: []slot.NodeID{"a"}},
	}}
	rows := []syncRow{
		{Slot: 0, LeaderEpoch: 4, Synced: true}, // stale leader epoch
		{Slot: 1, LeaderEpoch: 2, Synced: true}, // b leads slot 1: not a follower report
		{Slot: 9, LeaderEpoch: 1, Synced: true}, // no such slot
	}
	if ch := syncChanges(st, "b", rows); len(ch) != 0 {
		t.Fatalf("changes from reports that must be ignored: %v", ch)
	}
	next, err := apply(st, command{Op: opSync, NodeID: "b", Sync: rows})
	if err != nil {
		t.Fatal(err)
	}
	if len(next.Sync) != 0 {
		t.Fatalf("ignored reports changed sync state: %v", next.Sync)
	}
	good := []syncRow{{Slot: 0, LeaderEpoch: 5, Synced: true}}
	if ch := syncChanges(st, "b", good); len(ch) != 1 {
		t.Fatalf("a current report should change the state, got %v", ch)
	}
	next, err = apply(st, command{Op: opSync, NodeID: "b", Sync: good})
	if err != nil || !next.Sync.Synced(0, "b") {
		t.Fatalf("report not recorded: %v %v", err, next.Sync)
	}
	if len(st.Sync) != 0 {
		t.Fatal("apply modified the previous state")
	}
	if _, err := apply(st, command{Op: opSync, NodeID: "ghost", Sync: good}); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("report from non-member: got %v", err)
	}
}

func TestFSM_Upsert_RefusesAddressChangeUnlessReplace(t *testing.T) {
	st := &State{Members: map[string]Member{"a": {ID: "a", Role: cluster.RoleData, GRPC: "h:1"}}, Sync: slot.SyncState{}}
	moved := Member{ID: "a", Role: cluster.RoleData, GRPC: "h:2"}
	if _, err := apply(st, command{Op: opUpsert, Member: &moved}); !errors.Is(err, ErrDuplicateNode) {
		t.Fatalf("got %v", err)
	}
	next, err := apply(st, command{Op: opUpsert, Member: &moved, Replace: true})
	if err != nil || next.Members["a"].GRPC != "h:2" || st.Members["a"].GRPC != "h:1" {
		t.Fatalf("replace: %v %v", err, next.Members)
	}
}

func TestFSM_Apply_RefusesUndecodableAndUnknown(t *testing.T) {
	f := newFSM()
	before := f.Current()
	if err, _ := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: []byte("garbage")}).(error); err == nil {
		t.Fatal("garbage applied")
	}
	if err, _ := f.Apply(logOf(t, 2, command{Op: "frobnicate"})).(error); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown op: %v", err)
	}
	if f.Current() != before {
		t.Fatal("refused commands changed the state")
	}
}

func TestState_TablesAfter_ResumeSeesEveryEpoch(t *testing.T) {
	st := &State{Members: map[string]Member{}, Sync: slot.SyncState{}, ClusterID: "c", Settings: slot.Settings{Count: 1, Replicas: 1, MaxMoves: 1}}
	for e := uint64(1); e <= tableHistory+10; e++ {
		next, err := apply(st, command{Op: opTable, Table: &tableCmd{Expect: e - 1, Table: slot.Table{Epoch: e, Slots: []slot.Slot{{ID: 0, Leader: "a", LeaderEpoch: 1}}}}})
		if err != nil {
			t.Fatal(err)
		}
		st = next
	}
	last := st.Table.Epoch
	if got := st.TablesAfter(last-3, true); len(got) != 3 || got[0].Epoch != last-2 {
		t.Fatalf("resume 3 behind: got %d tables", len(got))
	}
	if got := st.TablesAfter(0, false); len(got) != 1 || got[0].Epoch != last {
		t.Fatal("new watcher must get the current table alone")
	}
	if got := st.TablesAfter(1, true); len(got) != 1 || got[0].Epoch != last {
		t.Fatal("a watcher past the history must get the current table alone")
	}
	if got := st.TablesAfter(last, true); len(got) != 0 {
		t.Fatal("an up-to-date watcher must get nothing")
	}
	if len(st.history) != tableHistory {
		t.Fatalf("history holds %d tables, bound is %d", len(st.history), tableHistory)
	}
}

type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { m.cancelled = true; return nil }
func (m *memSink) Close() error  { return nil }

func TestFSM_LeaderChange_DropsEverySyncReportForThatSlot(t *testing.T) {
	members := map[string]Member{}
	for _, id := range []string{"a", "b", "c"} {
		members[id] = Member{ID: id, Role: cluster.RoleData}
	}
	st := &State{ClusterID: "c", Settings: slot.Settings{Count: 2, Replicas: 3, MaxMoves: 1}, Members: members}
	st.Table = slot.Table{Epoch: 1, Slots: []slot.Slot{
		{ID: 0, Leader: "a", LeaderEpoch: 5, Followers: []slot.NodeID{"b", "c"}},
		{ID: 1, Leader: "a", LeaderEpoch: 2, Followers: []slot.NodeID{"b", "c"}},
	}}
	st.Sync = slot.SyncState{0: {"b": true, "c": true}, 1: {"b": true, "c": true}}

	// Slot 0 moves to b (leader epoch 6); slot 1 keeps its leader.
	next := slot.Table{Epoch: 2, Slots: []slot.Slot{
		{ID: 0, Leader: "b", LeaderEpoch: 6, Followers: []slot.NodeID{"a", "c"}},
		{ID: 1, Leader: "a", LeaderEpoch: 2, Followers: []slot.NodeID{"b", "c"}},
	}}
	got, err := apply(st, command{Op: opTable, Table: &tableCmd{Expect: 1, Table: next}})
	if err != nil {
		t.Fatal(err)
	}
	// c synced from a, not from b: if b died now, promoting c would lose
	// b's writes. Its report must not survive the leader change.
	if got.Sync.Synced(0, "c") || got.Sync.Synced(0, "a") {
		t.Fatalf("slot 0 keeps reports from before its leader changed: %v", got.Sync[0])
	}
	if !got.Sync.Synced(1, "b") || !got.Sync.Synced(1, "c") {
		t.Fatalf("slot 1 lost reports though its leader did not change: %v", got.Sync[1])
	}
}
