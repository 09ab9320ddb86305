package client

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// PublishItem is one publication of a PublishMany call.
type PublishItem struct {
	DataID  string
	Value   []byte
	Options []RegisterOption
}

// PublishResult is what PublishMany made of one item: its Publication, or
// the error Publish would have returned for it.
type PublishResult struct {
	Publication *Publication
	Err         error
}

// maxPublishInFlight bounds the registrations one PublishMany has sent and
// not yet had acked.
const maxPublishInFlight = 256

// PublishMany publishes every item and returns one result per item, in
// order. The registrations are pipelined on the client's stream, at most
// 256 unacked at a time: a batch that size costs about one round trip, and
// a larger one streams at the pace acks come back. Each item stands alone:
// bad input or a missing right fails that item only. An item the session
// refuses for its registration rate (ErrRateLimited) waits and is sent
// again, backing off from 20 ms to 1 s, until ctx ends, so a storm of
// registrations slows down to what the cluster takes instead of failing.
// Each publication then behaves as one from Publish (ack level included:
// WithAck in an item's Options).
func (c *Client) PublishMany(ctx context.Context, items []PublishItem) []PublishResult {
	out := make([]PublishResult, len(items))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(maxPublishInFlight, len(items)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(items) {
					return
				}
				it := items[i]
				out[i].Publication, out[i].Err = c.publishPatiently(ctx, it.DataID, it.Value, it.Options)
			}
		}()
	}
	wg.Wait()
	return out
}

// publishPatiently is Publish, sent again after a pause while the session
// refuses it for its rate.
func (c *Client) publishPatiently(ctx context.Context, dataID string, value []byte, opts []RegisterOption) (*Publication, error) {
	pause := 20 * time.Millisecond
	for {
		p, err := c.Publish(ctx, dataID, value, opts...)
		if !errors.Is(err, ErrRateLimited) {
			return p, err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		pause = min(2*pause, time.Second)
	}
}
