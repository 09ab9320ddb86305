package session

import (
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/strata-registry/strata/internal/node"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// A connection reads its stream in one goroutine (read) and applies
// registrations in another (the handler's frame loop), so that what
// changes nothing never waits behind registrations that wait for their
// rate: heartbeats, push acks and frames that do not decode are answered
// by the reader as they arrive, while registrations and unregistrations
// queue in the inbox and are applied in the order the client sent them.
// (With one loop for everything, a client pipelining registrations past
// its rate held its own push acks back past the ack timeout: the session
// retried its pushes and cut it off as not reading.)

// inboxBytes bounds the frames waiting in one connection's inbox (one
// frame larger than that still waits, alone): as much as the client's
// HTTP/2 window holds. Each frame counts inFrameOverhead more than its
// encoded size, about what its decoded form costs beyond that, so that
// an inbox of tiny frames (unsubscribes) holds a few thousand of them, not
// a window's worth of bytes in a hundred thousand messages.
const (
	inboxBytes      = clientWindowBytes
	inFrameOverhead = 256
)

// inFrame is a frame waiting in the inbox: size is what it counts against
// inboxBytes, rated says it takes a registration token (admit).
type inFrame struct {
	f     *registryv1.ClientFrame
	size  int
	rated bool
}

// inbox holds a connection's registration frames between its reader and
// its frame loop, in order, within two bounds:
//   - frames that take a rate token: about a second's worth at the
//     connection's and its identity's rates (the limit put is given).
//     One more would wait past maxThrottle for its turn, so the reader
//     refuses it at once, as admit refuses a wait past maxThrottle;
//   - bytes: inboxBytes. Past them the reader waits for room (and a
//     client's large frames back up into its own HTTP/2 window): the one
//     case where its push acks wait, for one registration's turn (at
//     most maxThrottle, well within an ack timeout), and only for a
//     client that pipelines a window's worth of large registrations.
//
// It holds memory only while frames wait, like sendQueue.
type inbox struct {
	mu     sync.Mutex
	frames []inFrame
	bytes  int // of frames waiting
	rated  int // frames waiting that take a token
	// ready gets a token when a frame is added, or the client half-closes
	// (wakes the frame loop); room when one is taken (wakes a reader
	// waiting for room).
	ready, room chan struct{}
	// sent: the client has half-closed its side; no frame comes after the
	// ones waiting.
	sent bool
}

// endOfFrames notes that the client sent its last frame: the frame loop
// applies those waiting, then ends the stream.
func (q *inbox) endOfFrames() {
	q.mu.Lock()
	q.sent = true
	q.mu.Unlock()
	signal(q.ready)
}

// drained reports whether the client half-closed and every frame it sent
// has been taken.
func (q *inbox) drained() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.sent && len(q.frames) == 0
}

func newInbox() inbox {
	return inbox{ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

// put appends in, waiting while the inbox holds inboxBytes, and reports
// whether it did. It refuses (false, true) a rated frame when limit()
// rated frames wait already (limit is only asked when one waits), and
// gives up (false, false) when done closes.
func (q *inbox) put(in inFrame, limit func() int, done <-chan struct{}) (ok, full bool) {
	for {
		q.mu.Lock()
		if in.rated && q.rated > 0 && q.rated >= limit() {
			q.mu.Unlock()
			return false, true
		}
		if q.bytes == 0 || q.bytes+in.size <= inboxBytes {
			q.frames = append(q.frames, in)
			q.bytes += in.size
			if in.rated {
				q.rated++
			}
			q.mu.Unlock()
			signal(q.ready)
			return true, false
		}
		q.mu.Unlock()
		select {
		case <-q.room:
		case <-done:
			return false, false
		}
	}
}

// take removes and returns the oldest frame (false when none waits).
func (q *inbox) take() (inFrame, bool) {
	q.mu.Lock()
	if len(q.frames) == 0 {
		q.mu.Unlock()
		return inFrame{}, false
	}
	in := q.frames[0]
	q.frames[0] = inFrame{}
	q.frames = q.frames[1:]
	q.bytes -= in.size
	if in.rated {
		q.rated--
	}
	if len(q.frames) == 0 {
		q.frames = nil // an idle connection holds no buffer
	}
	q.mu.Unlock()
	signal(q.room)
	return in, true
}

// signal leaves a token in ch (capacity 1) unless one waits there.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// read is the connection's reader: it runs until the stream ends (the
// handler has returned, or the client went away), and counts itself in
// s.streams.
func (c *clientConn) read(stream grpc.BidiStreamingServer[registryv1.ClientFrame, registryv1.ServerFrame]) {
	defer c.s.streams.Done()
	for {
		f, err := stream.Recv()
		bad, isBad := node.AsBadMessage(err)
		if errors.Is(err, io.EOF) {
			// Half-closed: what it sent before still applies (the frame
			// loop ends the stream once it has).
			c.in.endOfFrames()
			return
		}
		if err != nil && !isBad {
			c.cancel(err)
			return
		}
		c.lastSeen.Store(c.s.clock.Now().UnixNano())
		if isBad {
			// Refused on its own, whatever it was: it changes nothing.
			c.s.refused(refusedUndecodable)
			c.ack(bad.ID, bad.Status().Err())
			continue
		}
		if !c.dispatch(f) {
			return
		}
	}
}

// dispatch answers a frame that changes nothing at once and queues the
// others for the frame loop; it returns false once the connection has
// ended.
func (c *clientConn) dispatch(f *registryv1.ClientFrame) bool {
	rated := false
	switch b := f.GetBody().(type) {
	case *registryv1.ClientFrame_Heartbeat:
		c.ack(f.GetId(), nil)
		return true
	case *registryv1.ClientFrame_PushAck:
		c.pushAck(b.PushAck)
		c.ack(f.GetId(), nil)
		return true
	case *registryv1.ClientFrame_PushAcks:
		for _, a := range b.PushAcks.GetAcks() {
			c.pushAck(a)
		}
		c.ack(f.GetId(), nil)
		return true
	case *registryv1.ClientFrame_RegisterPublisher:
		// Refused before it waits: a frame of many tiny values decodes to
		// many times its encoded size, which is what the inbox counts.
		if err := record.ValidateValues(b.RegisterPublisher.GetValues()); err != nil {
			c.ack(f.GetId(), toStatus(err))
			return true
		}
		rated = true
	case *registryv1.ClientFrame_RegisterSubscriber:
		rated = true
	case *registryv1.ClientFrame_UnregisterSubscriber, *registryv1.ClientFrame_UnregisterPublisher:
		// Removals are not rated (see handle).
	case *registryv1.ClientFrame_Hello:
		c.ack(f.GetId(), status.Error(codes.InvalidArgument, "session: hello only opens a stream"))
		return true
	default:
		c.ack(f.GetId(), status.Error(codes.InvalidArgument, "session: empty or unknown frame"))
		return true
	}
	var why refusal
	ok, full := c.in.put(inFrame{f: f, size: proto.Size(f) + inFrameOverhead, rated: rated}, func() int {
		n, r := c.waitingLimit(c.s.clock.Now())
		why = r
		return n
	}, c.ctx.Done())
	if full {
		c.s.refused(why)
		c.ack(f.GetId(), c.tooManyWaiting(why))
		return true
	}
	return ok
}

// waitingLimit returns how many registrations may wait on this connection
// now: as many as its rates serve within maxThrottle (the tokens its
// limiters hold, plus a maxThrottle's refill), at the connection's rate
// or, if lower, its identity's; and which limit that is.
func (c *clientConn) waitingLimit(now time.Time) (int, refusal) {
	n, why := c.limiter.TokensAt(now)+c.s.cfg.RegisterRate*maxThrottle.Seconds(), refusedRateConnection
	if o := c.owner; o.name != "" {
		if m := o.limiter.TokensAt(now) + o.rate()*maxThrottle.Seconds(); m < n {
			n, why = m, refusedRateIdentity
		}
	}
	return max(1, int(n)), why
}

// tooManyWaiting is the refusal of a registration past waitingLimit.
func (c *clientConn) tooManyWaiting(why refusal) error {
	if why == refusedRateIdentity {
		return status.Errorf(codes.ResourceExhausted, "session: more registrations waiting than %s makes in %v at its rate (%.0f a second, over all its connections); wait for their acks", c.caller.ID, maxThrottle, c.owner.rate())
	}
	return status.Errorf(codes.ResourceExhausted, "session: more registrations waiting than this connection makes in %v at its rate (%.0f a second); wait for their acks", maxThrottle, c.s.cfg.RegisterRate)
}
