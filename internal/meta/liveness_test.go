package meta

import (
	"slices"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/cluster"
)

func TestLiveness_FlapDamping(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const join, dead = 2 * time.Second, 10 * time.Second
	data := func(id string, st cluster.State, since time.Time) cluster.Member {
		return cluster.Member{ID: id, State: st, Since: since, Meta: cluster.Meta{Role: cluster.RoleData, GRPC: id + ":1"}}
	}
	member := Member{ID: "a", Role: cluster.RoleData, GRPC: "a:1"}

	tests := []struct {
		name     string
		pool     []cluster.Member
		members  map[string]Member
		at       time.Duration
		upserts  []string
		removals []string
	}{
		{"alive shorter than join grace: wait", []cluster.Member{data("a", cluster.StateAlive, t0)}, nil, join - time.Millisecond, nil, nil},
		{"alive for join grace: add", []cluster.Member{data("a", cluster.StateAlive, t0)}, nil, join, []string{"a"}, nil},
		{"already a member: nothing", []cluster.Member{data("a", cluster.StateAlive, t0)}, map[string]Member{"a": member}, time.Hour, nil, nil},
		{"dead shorter than dead grace: keep", []cluster.Member{data("a", cluster.StateDead, t0)}, map[string]Member{"a": member}, dead - time.Millisecond, nil, nil},
		{"dead for dead grace: remove", []cluster.Member{data("a", cluster.StateDead, t0)}, map[string]Member{"a": member}, dead, nil, []string{"a"}},
		{"left: remove at once", []cluster.Member{data("a", cluster.StateLeft, t0)}, map[string]Member{"a": member}, 0, nil, []string{"a"}},
		{"meta nodes are never members", []cluster.Member{{ID: "m", State: cluster.StateAlive, Since: t0, Meta: cluster.Meta{Role: cluster.RoleMeta, GRPC: "m:1"}}}, nil, time.Hour, nil, nil},
		{"moved address: update", []cluster.Member{{ID: "a", State: cluster.StateAlive, Since: t0, Meta: cluster.Meta{Role: cluster.RoleData, GRPC: "a:2"}}}, map[string]Member{"a": member}, join, []string{"a"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLiveness(join, dead)
			up, rm := l.plan(t0.Add(tc.at), tc.pool, tc.members)
			var ups []string
			for _, m := range up {
				ups = append(ups, m.ID)
			}
			if !slices.Equal(ups, tc.upserts) || !slices.Equal(rm, tc.removals) {
				t.Fatalf("upserts %v removals %v, want %v %v", ups, rm, tc.upserts, tc.removals)
			}
		})
	}
}

func TestLiveness_MissingFromPool_RemovedAfterGraceFromFirstSight(t *testing.T) {
	l := newLiveness(time.Second, 10*time.Second)
	t0 := time.Unix(1000, 0)
	members := map[string]Member{"a": {ID: "a", Role: cluster.RoleData, GRPC: "a:1"}}
	if _, rm := l.plan(t0, nil, members); len(rm) != 0 {
		t.Fatal("removed at first sight")
	}
	if _, rm := l.plan(t0.Add(9*time.Second), nil, members); len(rm) != 0 {
		t.Fatal("removed before the grace")
	}
	// It shows up alive: the timer resets.
	alive := []cluster.Member{{ID: "a", State: cluster.StateAlive, Since: t0, Meta: cluster.Meta{Role: cluster.RoleData, GRPC: "a:1"}}}
	l.plan(t0.Add(9*time.Second), alive, members)
	if _, rm := l.plan(t0.Add(12*time.Second), nil, members); len(rm) != 0 {
		t.Fatal("timer did not reset when the node came back")
	}
	if _, rm := l.plan(t0.Add(22*time.Second), nil, members); !slices.Equal(rm, []string{"a"}) {
		t.Fatalf("not removed after the grace: %v", rm)
	}
}
