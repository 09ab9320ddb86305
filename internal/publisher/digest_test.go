package publisher

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestNewer(t *testing.T) {
	tests := []struct {
		av   uint64
		ats  int64
		bv   uint64
		bts  int64
		want bool
	}{
		{2, 1, 1, 1, true},   // higher client version
		{2, 1, 1, 100, true}, // version beats timestamp
		{1, 100, 2, 1, false},
		{1, 2, 1, 1, true}, // same version, later timestamp
		{1, 1, 1, 2, false},
		{1, 1, 1, 1, false}, // equal is not newer
		{0, 0, 0, 0, false},
		{1, -5, 1, -6, true},
	}
	for _, tt := range tests {
		if got := Newer(tt.av, tt.ats, tt.bv, tt.bts); got != tt.want {
			t.Errorf("Newer(%d, %d, %d, %d) = %v, want %v", tt.av, tt.ats, tt.bv, tt.bts, got, tt.want)
		}
	}
}

type triple struct {
	id string
	v  uint64
	ts int64
}

func digestOf(ts []triple) Digest {
	var d Digest
	for _, x := range ts {
		d.Add(x.id, x.v, x.ts)
	}
	return d
}

func TestDigest_EqualSetsEqual(t *testing.T) {
	a := []triple{{"r1", 1, 10}, {"r2", 2, 20}, {"r3", 1, 30}}
	tests := []struct {
		name  string
		other []triple
		equal bool
	}{
		{"same order", a, true},
		{"other order", []triple{a[2], a[0], a[1]}, true},
		{"missing one", a[:2], false},
		{"other version", []triple{{"r1", 2, 10}, a[1], a[2]}, false},
		{"other timestamp", []triple{{"r1", 1, 11}, a[1], a[2]}, false},
		{"other id", []triple{{"r4", 1, 10}, a[1], a[2]}, false},
		{"id and version shifted", []triple{{"r", 1, 10}, a[1], a[2]}, false},
		{"empty", nil, false},
	}
	base := digestOf(a)
	for _, tt := range tests {
		if got := digestOf(tt.other) == base; got != tt.equal {
			t.Errorf("%s: equal = %v, want %v", tt.name, got, tt.equal)
		}
	}
	if (Digest{}) != digestOf(nil) {
		t.Error("the zero Digest is not the empty set")
	}
}

// TestDigest_IncrementalMatchesScratch keeps a digest up to date through
// random adds, replacements and removals and compares it with one computed
// from scratch over the resulting set, as a data node and a session do.
func TestDigest_IncrementalMatchesScratch(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	set := map[string]triple{}
	var inc Digest
	for i := 0; i < 5000; i++ {
		id := fmt.Sprintf("r%d", rng.IntN(200))
		old, had := set[id]
		if had {
			inc.Remove(old.id, old.v, old.ts)
			delete(set, id)
		}
		if rng.IntN(3) > 0 {
			x := triple{id, rng.Uint64N(5), rng.Int64N(5)}
			set[id] = x
			inc.Add(x.id, x.v, x.ts)
		}
		if i%500 == 0 || i == 4999 {
			var list []triple
			for _, x := range set {
				list = append(list, x)
			}
			if scratch := digestOf(list); scratch != inc {
				t.Fatalf("step %d: incremental %+v, from scratch %+v", i, inc, scratch)
			}
			if int(inc.Count) != len(set) {
				t.Fatalf("count %d, set has %d", inc.Count, len(set))
			}
		}
	}
	for _, x := range set {
		inc.Remove(x.id, x.v, x.ts)
	}
	if inc != (Digest{}) {
		t.Fatalf("removing everything left %+v", inc)
	}
}

func BenchmarkDigest_Add(b *testing.B) {
	var d Digest
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		d.Add("0b7e3c1e-6a55-4d5f-9d69-7c1f3f1ad2c1", uint64(i), 1)
	}
}
