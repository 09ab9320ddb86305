package session

import (
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/slot"
)

// A slot's retries after failed sends: RetryInterval/16, doubling, capped
// at RetryInterval; a success forgets the failures; a new table lets it
// go at once.
func TestForwarder_FailedSlot_BacksOffDoubling_NewTableRetriesAtOnce(t *testing.T) {
	f := newForwarder(&Server{cfg: Config{RetryInterval: time.Second}})
	now := time.Unix(1000, 0)
	var got []time.Duration
	for range 7 {
		f.failed(slot.ID(3), now)
		got = append(got, f.backoff[3].until.Sub(now))
	}
	want := []time.Duration{62500 * time.Microsecond, 125 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
		time.Second, time.Second, time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("retry delays %v, want %v", got, want)
		}
	}
	f.retryNow()
	if u := f.backoff[3].until; !u.IsZero() {
		t.Fatalf("after a new table the slot waits until %v", u)
	}
	if f.backoff[3].failures != 7 {
		t.Fatalf("a new table forgot the failures in a row (%d)", f.backoff[3].failures)
	}
}
