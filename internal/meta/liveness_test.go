package meta

import (
	"slices"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/cluster"
)

func TestLiveness_FlapDamping_PoolOnlyRemoves(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const dead = 10 * time.Second
	data := func(id string, st cluster.State, since time.Time) cluster.Member {
		return cluster.Member{ID: id, State: st, Since: since, Meta: cluster.Meta{Role: cluster.RoleData, GRPC: id + ":1"}}
	}
	member := Member{ID: "a", Role: cluster.RoleData, GRPC: "a:1"}

	tests := []struct {
		name     string
		pool     []cluster.Member
		members  map[string]Member
		at       time.Duration
		removals []string
	}{
		{"alive in the pool, never registered: not a member", []cluster.Member{data("a", cluster.StateAlive, t0)}, nil, time.Hour, nil},
		{"a member alive: nothing", []cluster.Member{data("a", cluster.StateAlive, t0)}, map[string]Member{"a": member}, time.Hour, nil},
		{"dead shorter than dead grace: keep", []cluster.Member{data("a", cluster.StateDead, t0)}, map[string]Member{"a": member}, dead - time.Millisecond, nil},
		{"dead for dead grace: remove", []cluster.Member{data("a", cluster.StateDead, t0)}, map[string]Member{"a": member}, dead, []string{"a"}},
		{"left: remove at once", []cluster.Member{data("a", cluster.StateLeft, t0)}, map[string]Member{"a": member}, 0, []string{"a"}},
		{"a meta node of the same name is not the member: missing", []cluster.Member{{ID: "a", State: cluster.StateAlive, Since: t0, Meta: cluster.Meta{Role: cluster.RoleMeta, GRPC: "m:1"}}},
			map[string]Member{"a": member}, dead, []string{"a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLiveness(dead)
			l.removals(t0, tc.pool, tc.members) // first sight of anything missing
			if rm := l.removals(t0.Add(tc.at), tc.pool, tc.members); !slices.Equal(rm, tc.removals) {
				t.Fatalf("removals %v, want %v", rm, tc.removals)
			}
		})
	}
}

func TestLiveness_MissingFromPool_RemovedAfterGraceFromFirstSight(t *testing.T) {
	l := newLiveness(10 * time.Second)
	t0 := time.Unix(1000, 0)
	members := map[string]Member{"a": {ID: "a", Role: cluster.RoleData, GRPC: "a:1"}}
	if rm := l.removals(t0, nil, members); len(rm) != 0 {
		t.Fatal("removed at first sight")
	}
	if rm := l.removals(t0.Add(9*time.Second), nil, members); len(rm) != 0 {
		t.Fatal("removed before the grace")
	}
	// It shows up alive: the timer resets.
	alive := []cluster.Member{{ID: "a", State: cluster.StateAlive, Since: t0, Meta: cluster.Meta{Role: cluster.RoleData, GRPC: "a:1"}}}
	l.removals(t0.Add(9*time.Second), alive, members)
	if rm := l.removals(t0.Add(12*time.Second), nil, members); len(rm) != 0 {
		t.Fatal("timer did not reset when the node came back")
	}
	if rm := l.removals(t0.Add(22*time.Second), nil, members); !slices.Equal(rm, []string{"a"}) {
		t.Fatalf("not removed after the grace: %v", rm)
	}
}
