package push

// timer is a deadline embedded in the state it belongs to, so scheduling
// allocates nothing and cancelling is O(log n).
type timer struct {
	due int64 // unix nanoseconds
	pos int32 // 1-based index in the heap; 0 when not scheduled
}

type timed interface{ tm() *timer }

// timerHeap is a min-heap on due. Each item is in it at most once, so its
// size is bounded by the subscribers (or keys) that hold it. Not safe for
// concurrent use.
type timerHeap[T timed] struct {
	items []T
}

func (h *timerHeap[T]) len() int { return len(h.items) }

// schedule sets x to fire at due, inserting it or moving it.
func (h *timerHeap[T]) schedule(x T, due int64) {
	t := x.tm()
	t.due = due
	if t.pos == 0 {
		h.items = append(h.items, x)
		t.pos = int32(len(h.items))
		h.up(len(h.items) - 1)
		return
	}
	i := int(t.pos) - 1
	if !h.down(i) {
		h.up(i)
	}
}

// cancel removes x if it is scheduled.
func (h *timerHeap[T]) cancel(x T) {
	t := x.tm()
	if t.pos == 0 {
		return
	}
	i := int(t.pos) - 1
	last := len(h.items) - 1
	if i != last {
		h.swap(i, last)
	}
	var zero T
	h.items[last] = zero
	h.items = h.items[:last]
	t.pos = 0
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
	// Shrink a heap that emptied after a surge, but not a small one: a
	// heap drained by the acks of every fan-out would be regrown each time.
	if cap(h.items) > 4096 && len(h.items) < cap(h.items)/4 {
		h.items = append([]T(nil), h.items...)
	}
}

// popDue removes and returns the earliest item due at or before now.
func (h *timerHeap[T]) popDue(now int64) (T, bool) {
	if len(h.items) == 0 || h.items[0].tm().due > now {
		var zero T
		return zero, false
	}
	x := h.items[0]
	h.cancel(x)
	return x, true
}

func (h *timerHeap[T]) less(i, j int) bool { return h.items[i].tm().due < h.items[j].tm().due }

func (h *timerHeap[T]) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].tm().pos = int32(i + 1)
	h.items[j].tm().pos = int32(j + 1)
}

func (h *timerHeap[T]) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

// down sifts i down and reports whether it moved.
func (h *timerHeap[T]) down(i int) bool {
	start := i
	n := len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h.swap(i, m)
		i = m
	}
	return i > start
}
