package slot

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func TestSettings_Validate(t *testing.T) {
	if err := DefaultSettings().Validate(); err != nil {
		t.Fatalf("DefaultSettings().Validate() = %v", err)
	}
	for _, tc := range []struct {
		s    Settings
		want error
	}{
		{Settings{Count: 1, Replicas: 1, MaxMoves: 1}, nil},
		{Settings{Count: MaxCount, Replicas: MaxReplicas, MaxMoves: 1 << 30}, nil},
		{Settings{Count: 0, Replicas: 2, MaxMoves: 1}, ErrBadCount},
		{Settings{Count: -1, Replicas: 2, MaxMoves: 1}, ErrBadCount},
		{Settings{Count: MaxCount + 1, Replicas: 2, MaxMoves: 1}, ErrBadCount},
		{Settings{Count: 8, Replicas: 0, MaxMoves: 1}, ErrBadReplicas},
		{Settings{Count: 8, Replicas: MaxReplicas + 1, MaxMoves: 1}, ErrBadReplicas},
		{Settings{Count: 8, Replicas: 2, MaxMoves: 0}, ErrBadMaxMoves},
	} {
		if err := tc.s.Validate(); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%+v.Validate() = %v, want %v", tc.s, err, tc.want)
		}
	}
}

func TestHasher_Of(t *testing.T) {
	for _, count := range []int{1, 2, 7, 256, 1000, MaxCount} {
		t.Run(fmt.Sprint(count), func(t *testing.T) {
			h, err := NewHasher(count)
			if err != nil {
				t.Fatal(err)
			}
			h2, _ := NewHasher(count)
			for i := range 1000 {
				key := fmt.Sprintf("com.example.Service%d#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP", i)
				got := h.Of(key)
				if int(got) >= count {
					t.Fatalf("Of(%q) = %d, out of range for %d slots", key, got, count)
				}
				if h.Of(key) != got || h2.Of(key) != got {
					t.Fatalf("Of(%q) is not stable", key)
				}
				// The mapping is part of the wire contract between sessions
				// and data nodes: xxhash64 of the key modulo the slot count.
				if want := ID(xxhash.Sum64String(key) % uint64(count)); got != want {
					t.Fatalf("Of(%q) = %d, want xxhash %% count = %d", key, got, want)
				}
			}
		})
	}
}

func TestHasher_Spreads(t *testing.T) {
	const count, keys = 256, 100_000
	h, err := NewHasher(count)
	if err != nil {
		t.Fatal(err)
	}
	var per [count]int
	for i := range keys {
		per[h.Of(fmt.Sprintf("svc-%d#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP", i))]++
	}
	mean := keys / count
	for id, n := range per {
		if n < mean/2 || n > mean*3/2 {
			t.Errorf("slot %d got %d keys; mean %d, want within 50%%..150%%", id, n, mean)
		}
	}
}

func TestNewHasher_RejectsBadCount(t *testing.T) {
	for _, count := range []int{0, -1, MaxCount + 1} {
		if h, err := NewHasher(count); !errors.Is(err, ErrBadCount) || h != nil {
			t.Errorf("NewHasher(%d) = %v, %v; want nil, ErrBadCount", count, h, err)
		}
	}
}

func TestTable_CloneEqual(t *testing.T) {
	orig := Table{Epoch: 3, Slots: []Slot{
		{ID: 0, Leader: "a", LeaderEpoch: 2, Followers: nodeIDs("b", "c")},
		{ID: 1, Leader: "b", LeaderEpoch: 1},
	}}
	c := orig.Clone()
	if !c.Equal(orig) {
		t.Fatal("clone is not Equal to the original")
	}
	c.Slots[0].Followers[0] = "z"
	if orig.Slots[0].Followers[0] != "b" {
		t.Fatal("Clone shares follower slices with the original")
	}
	if c.Equal(orig) {
		t.Fatal("Equal missed a changed follower")
	}
	if z := (Table{}).Clone(); z.Slots != nil {
		t.Fatalf("zero table clones to %+v, want the zero table", z)
	}
	empty := orig.Clone()
	empty.Slots[1].Followers = []NodeID{}
	if !empty.Equal(orig) {
		t.Fatal("nil and empty follower lists should be Equal")
	}
	for _, mutate := range []func(*Table){
		func(t *Table) { t.Epoch++ },
		func(t *Table) { t.Slots[1].Leader = "c" },
		func(t *Table) { t.Slots[1].LeaderEpoch++ },
		func(t *Table) { t.Slots[1].ID = 5 },
		func(t *Table) { t.Slots = t.Slots[:1] },
	} {
		c := orig.Clone()
		mutate(&c)
		if c.Equal(orig) {
			t.Errorf("Equal missed a change: %+v", c)
		}
	}
}

func TestTable_LoadsAndLeaderless(t *testing.T) {
	tbl := Table{Epoch: 1, Slots: []Slot{
		{ID: 0, Leader: "a", Followers: nodeIDs("b", "c")},
		{ID: 1, Leader: "a", Followers: nodeIDs("c")},
		{ID: 2, Leader: ""},
	}}
	want := map[NodeID]Load{"a": {Leaders: 2}, "b": {Followers: 1}, "c": {Followers: 2}}
	got := tbl.Loads()
	if len(got) != len(want) {
		t.Fatalf("Loads() = %v, want %v", got, want)
	}
	for n, l := range want {
		if got[n] != l {
			t.Errorf("Loads()[%s] = %+v, want %+v", n, got[n], l)
		}
	}
	if n := tbl.Leaderless(); n != 1 {
		t.Errorf("Leaderless() = %d, want 1", n)
	}
}

func TestTable_Check(t *testing.T) {
	s := Settings{Count: 2, Replicas: 3, MaxMoves: 1}
	live := nodeIDs("a", "b", "c")
	good := Table{Epoch: 1, Slots: []Slot{
		{ID: 0, Leader: "a", Followers: nodeIDs("b", "c")},
		{ID: 1, Leader: "b", Followers: nodeIDs("a", "c")},
	}}
	if err := good.Check(live, s); err != nil {
		t.Fatalf("Check(good) = %v", err)
	}
	if err := (Table{}).Check(nil, s); err != nil {
		t.Fatalf("zero table, no nodes: Check = %v", err)
	}
	for name, mutate := range map[string]func(*Table){
		"wrong count":        func(t *Table) { t.Slots = t.Slots[:1] },
		"wrong id":           func(t *Table) { t.Slots[1].ID = 0 },
		"dead leader":        func(t *Table) { t.Slots[0].Leader = "x" },
		"no leader":          func(t *Table) { t.Slots[0].Leader = "" },
		"unsorted followers": func(t *Table) { t.Slots[0].Followers = nodeIDs("c", "b") },
		"too few followers":  func(t *Table) { t.Slots[0].Followers = nodeIDs("b") },
		"dead follower":      func(t *Table) { t.Slots[0].Followers = nodeIDs("b", "x") },
		"leader follows":     func(t *Table) { t.Slots[0].Followers = nodeIDs("a", "b") },
		"follower twice":     func(t *Table) { t.Slots[0].Followers = nodeIDs("b", "b") },
	} {
		bad := good.Clone()
		mutate(&bad)
		if err := bad.Check(live, s); !errors.Is(err, ErrBadTable) {
			t.Errorf("%s: Check = %v, want ErrBadTable", name, err)
		}
	}
	if err := good.Check(nodeIDs("a", ""), s); !errors.Is(err, ErrBadNode) {
		t.Errorf("empty live node: Check = %v, want ErrBadNode", err)
	}
	if err := good.Check(nil, s); !errors.Is(err, ErrBadTable) {
		t.Errorf("nodes assigned but none live: Check = %v, want ErrBadTable", err)
	}
}
