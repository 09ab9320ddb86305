package push

import (
	"math/rand/v2"
	"slices"
	"testing"
)

type heapItem struct {
	timer
	id int
}

func (h *heapItem) tm() *timer { return &h.timer }

// TestTimerHeap_PopsInDueOrder schedules, reschedules and cancels at random
// and checks the heap against a plain map.
func TestTimerHeap_PopsInDueOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var h timerHeap[*heapItem]
	items := make([]*heapItem, 200)
	for i := range items {
		items[i] = &heapItem{id: i}
	}
	want := map[int]int64{}
	for range 5000 {
		x := items[rng.IntN(len(items))]
		if rng.IntN(4) == 0 {
			h.cancel(x)
			delete(want, x.id)
		} else {
			due := rng.Int64N(1000)
			h.schedule(x, due)
			want[x.id] = due
		}
	}
	if h.len() != len(want) {
		t.Fatalf("heap holds %d, want %d", h.len(), len(want))
	}
	var dues []int64
	for _, d := range want {
		dues = append(dues, d)
	}
	slices.Sort(dues)
	cut := int64(500)
	var got []int64
	for {
		x, ok := h.popDue(cut)
		if !ok {
			break
		}
		if x.pos != 0 {
			t.Fatal("popped item still marked scheduled")
		}
		if want[x.id] != x.due {
			t.Fatalf("item %d due %d, want %d", x.id, x.due, want[x.id])
		}
		got = append(got, x.due)
	}
	var wantDue []int64
	for _, d := range dues {
		if d <= cut {
			wantDue = append(wantDue, d)
		}
	}
	if !slices.Equal(got, wantDue) {
		t.Fatalf("popped %v, want %v", got, wantDue)
	}
	if h.len() != len(dues)-len(wantDue) {
		t.Fatalf("%d left, want %d", h.len(), len(dues)-len(wantDue))
	}
}
