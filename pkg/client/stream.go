package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/pkg/client/wire"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// errStreamEnded: the stream a request went out on ended before its ack.
// The request is retried on the next stream (after the replay, which makes
// the retry harmless).
var errStreamEnded = errors.New("strata: session stream ended")

// silentError ends a stream that heard nothing from its session within the
// liveness deadline (WithHeartbeat times WithMissedHeartbeats). The run
// loop keeps such a stream open until another session carries everything
// (make-before-break); a stream that ends any other way is gone already.
type silentError struct {
	// silent is how long nothing had arrived when the deadline struck, at.
	silent, deadline time.Duration
	at               time.Time
}

func (e *silentError) Error() string {
	return fmt.Sprintf("strata: nothing received from the session for %v (liveness deadline %v)",
		e.silent.Round(time.Millisecond), e.deadline)
}

// stream is one connection to one session: the gRPC stream, the frames
// waiting to be written, the requests waiting for their acks, and the
// goroutines reading it, writing it and watching its liveness.
//
// Senders never block on the network: they queue frames (in order) for
// the writer goroutine, which alone calls Send. A session that stops
// reading (frozen, or behind a stalled link) stops the writer only, so a
// caller holding a publication's lock never waits on a dead stream, and
// the replay on the next stream never waits for it.
type stream struct {
	addr    string
	cc      *grpc.ClientConn
	s       registryv1.SessionService_ConnectClient
	cancel  context.CancelFunc
	welcome *registryv1.Welcome
	// opened is when the welcome arrived. received counts the frames read
	// since, and lastRecv is when the last one arrived (as time since
	// opened, so it reads the monotonic clock).
	opened   time.Time
	received atomic.Uint64
	lastRecv atomic.Int64
	// kick (capacity 1) tells the writer that out has frames.
	kick chan struct{}

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]pendingAck
	// out holds the frames for the writer, in sending order; spare is the
	// writer's emptied batch, swapped in to save an allocation per batch.
	out, spare []*registryv1.ClientFrame
	// beating: a heartbeat waits in out (one is enough).
	beating bool
	// held are push acks waiting to go out together (see ackPushes), the
	// oldest since heldSince; heldBytes is what their pushes carried.
	held      []heldAck
	heldSince time.Time
	heldBytes int
	err       error
	done      chan struct{} // closed when the stream has ended
}

// heldAck is a push ack waiting to be sent, and when its push arrived.
type heldAck struct {
	ack *registryv1.PushAck
	at  time.Time
}

// A stream holds at most maxHeldAcks push acks, for pushes of at most
// maxHeldAckBytes together, before it sends them without waiting: the
// session counts unacked push bytes against the connection's cap.
const (
	maxHeldAcks     = 256
	maxHeldAckBytes = 64 << 10
)

// pendingAck is a request waiting for its ack.
type pendingAck struct {
	ch chan *registryv1.Ack
	// unsure, if not nil, is set when the stream ends before the ack: the
	// session may have applied the frame, or (frozen, or behind a stalled
	// link) may still apply it later.
	unsure *atomic.Bool
}

// openStream dials addr, says hello and waits for the welcome.
func (c *Client) openStream(ctx context.Context, addr string) (*stream, error) {
	cc, err := grpc.NewClient(addr, c.dialOpts...)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	st := &stream{addr: addr, cc: cc, cancel: cancel, pending: map[uint64]pendingAck{},
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	fail := func(err error) (*stream, error) {
		cancel()
		_ = cc.Close()
		return nil, err
	}
	// The dial timeout (and ctx) bound the hello, not the stream's life.
	timer := time.AfterFunc(c.opts.dialTimeout, cancel)
	defer timer.Stop()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	st.s, err = registryv1.NewSessionServiceClient(cc).Connect(sctx)
	if err != nil {
		return fail(err)
	}
	hello := &registryv1.Hello{ClientId: c.clientID, Zone: c.opts.zone, Sdk: c.opts.sdk}
	if err := st.s.Send(&registryv1.ClientFrame{Body: &registryv1.ClientFrame_Hello{Hello: hello}}); err != nil {
		return fail(streamError(st.s, err))
	}
	f, err := st.s.Recv()
	if err != nil {
		return fail(err)
	}
	if st.welcome = f.GetWelcome(); st.welcome == nil {
		return fail(fmt.Errorf("strata: session %s answered the hello with %T", addr, f.GetBody()))
	}
	if !timer.Stop() || !stop() {
		return fail(fmt.Errorf("strata: no welcome from session %s within %v", addr, c.opts.dialTimeout))
	}
	st.opened = time.Now()
	return st, nil
}

// streamError turns a failed Send into the stream's real error (gRPC
// reports the status on Recv; Send only says io.EOF).
func streamError(s registryv1.SessionService_ConnectClient, err error) error {
	if _, rerr := s.Recv(); rerr != nil {
		return rerr
	}
	return err
}

// send queues one frame that wants no ack. It never blocks; it fails only
// once the stream has ended.
func (st *stream) send(f *registryv1.ClientFrame) error {
	st.mu.Lock()
	if st.err != nil {
		st.mu.Unlock()
		return errStreamEnded
	}
	st.out = append(st.out, f)
	st.mu.Unlock()
	st.wakeWriter()
	return nil
}

// start queues a frame that wants an ack and returns the channel the ack
// arrives on (closed if the stream ends first, after setting unsure, if
// given). It never blocks; it fails only once the stream has ended.
func (st *stream) start(f *registryv1.ClientFrame, unsure *atomic.Bool) (<-chan *registryv1.Ack, error) {
	ch := make(chan *registryv1.Ack, 1)
	st.mu.Lock()
	if st.err != nil {
		st.mu.Unlock()
		return nil, errStreamEnded
	}
	st.nextID++
	f.Id = st.nextID
	st.pending[f.Id] = pendingAck{ch: ch, unsure: unsure}
	st.out = append(st.out, f)
	st.mu.Unlock()
	st.wakeWriter()
	return ch, nil
}

// heartbeat queues a heartbeat, unless one is still waiting to be written.
// It carries an ID, so the session acks it (a heartbeat without one gets
// no answer); the ack is for no request and is dropped on arrival.
func (st *stream) heartbeat() {
	st.mu.Lock()
	if st.err != nil || st.beating {
		st.mu.Unlock()
		return
	}
	st.nextID++
	st.out = append(st.out, &registryv1.ClientFrame{Id: st.nextID, Body: &registryv1.ClientFrame_Heartbeat{Heartbeat: &registryv1.Heartbeat{}}})
	st.beating = true
	st.mu.Unlock()
	st.wakeWriter()
}

// ackPushes sends acks for pushes that carried bytes between them. A
// session that allows it (Welcome.push_ack_delay_ms) gets them held for up
// to that delay, so that the acks of many pushes go out in one write, or
// with the next frame the client sends anyway; an ack held past the cap
// or the delay goes at once. Each ack says how long it was held.
func (st *stream) ackPushes(acks []*registryv1.PushAck, bytes int) {
	delay := time.Duration(st.welcome.GetPushAckDelayMs()) * time.Millisecond
	if delay <= 0 {
		_ = st.send(pushAckFrame(acks))
		return
	}
	now := time.Now()
	st.mu.Lock()
	if st.err != nil {
		st.mu.Unlock()
		return
	}
	first := len(st.held) == 0
	if first {
		st.heldSince = now
	}
	for _, a := range acks {
		st.hold(heldAck{ack: a, at: now})
	}
	st.heldBytes += bytes
	full := len(st.held) >= maxHeldAcks || st.heldBytes >= maxHeldAckBytes
	if full {
		st.out = append(st.out, st.takeHeld(now))
	}
	st.mu.Unlock()
	if first || full {
		st.wakeWriter() // to send them, or to time the delay
	}
}

// hold adds h to the held acks. An ack of a newer version for the same
// subscribers replaces the older one, which it covers. Caller holds st.mu.
func (st *stream) hold(h heldAck) {
	for i := len(st.held) - 1; i >= 0; i-- {
		o := st.held[i].ack
		if o.GetRegisterId() == h.ack.GetRegisterId() && o.GetVersion() <= h.ack.GetVersion() &&
			slices.Equal(o.GetAlsoRegisterIds(), h.ack.GetAlsoRegisterIds()) {
			st.held[i] = h
			return
		}
	}
	st.held = append(st.held, h)
}

// takeHeld returns the held acks as one frame, each stamped with how long
// it was held, and empties them. Caller holds st.mu.
func (st *stream) takeHeld(now time.Time) *registryv1.ClientFrame {
	acks := make([]*registryv1.PushAck, len(st.held))
	for i, h := range st.held {
		h.ack.HeldUs = uint32(min(now.Sub(h.at).Microseconds(), math.MaxUint32))
		acks[i] = h.ack
		st.held[i] = heldAck{}
	}
	st.held, st.heldBytes = st.held[:0], 0
	return pushAckFrame(acks)
}

// pushAckFrame is the frame that carries acks.
func pushAckFrame(acks []*registryv1.PushAck) *registryv1.ClientFrame {
	if len(acks) == 1 {
		return &registryv1.ClientFrame{Body: &registryv1.ClientFrame_PushAck{PushAck: acks[0]}}
	}
	return &registryv1.ClientFrame{Body: &registryv1.ClientFrame_PushAcks{PushAcks: &registryv1.PushAcks{Acks: acks}}}
}

func (st *stream) wakeWriter() {
	select {
	case st.kick <- struct{}{}:
	default:
	}
}

// write sends the queued frames, in order, until the stream ends. Held
// push acks go with the next frames, or alone once the oldest has waited
// the session's delay. A Send that fails ends the writing only: Recv
// reports the stream's status (gRPC gives Send just io.EOF) and ends the
// stream.
func (st *stream) write() {
	delay := time.Duration(st.welcome.GetPushAckDelayMs()) * time.Millisecond
	due := time.NewTimer(time.Hour)
	due.Stop()
	defer due.Stop()
	for {
		select {
		case <-st.kick:
		case <-due.C:
		case <-st.done:
			return
		}
		now := time.Now()
		st.mu.Lock()
		if len(st.held) > 0 {
			if wait := delay - now.Sub(st.heldSince); len(st.out) > 0 || wait <= 0 {
				st.out = append(st.out, st.takeHeld(now))
			} else {
				due.Reset(wait)
			}
		}
		batch := st.out
		st.out, st.spare = st.spare[:0], nil
		st.beating = false
		st.mu.Unlock()
		for i, f := range batch {
			if err := st.s.Send(f); err != nil {
				return
			}
			batch[i] = nil // a frame may hold MiBs of values
		}
		st.mu.Lock()
		st.spare = batch[:0]
		st.mu.Unlock()
	}
}

// acked hands a to the request waiting for it; an ack for no request
// (a heartbeat's) is dropped.
func (st *stream) acked(a *registryv1.Ack) {
	st.mu.Lock()
	p, ok := st.pending[a.GetId()]
	delete(st.pending, a.GetId())
	st.mu.Unlock()
	if ok {
		p.ch <- a
	}
}

// wait waits for an ack started with start.
func wait(ctx context.Context, ch <-chan *registryv1.Ack) (*registryv1.Ack, error) {
	select {
	case a, ok := <-ch:
		if !ok {
			return nil, errStreamEnded
		}
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// end records why the stream ended, fails its waiting requests (marking
// their frames unsure) and drops the frames not yet written.
func (st *stream) end(err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.err != nil {
		return
	}
	st.err = err
	for id, p := range st.pending {
		if p.unsure != nil {
			p.unsure.Store(true)
		}
		close(p.ch)
		delete(st.pending, id)
	}
	st.out, st.held = nil, nil
	close(st.done)
}

// ended reports whether the stream has ended.
func (st *stream) ended() bool {
	select {
	case <-st.done:
		return true
	default:
		return false
	}
}

// close ends the stream from this side and releases the connection (and
// with it a writer blocked on a session that stopped reading).
func (st *stream) close() {
	st.end(errors.New("strata: stream closed by the client"))
	st.cancel()
	_ = st.cc.Close()
}

// heard records that a frame arrived.
func (st *stream) heard() {
	st.lastRecv.Store(int64(time.Since(st.opened)))
	st.received.Add(1)
}

// silence is how long nothing has arrived on the stream.
func (st *stream) silence() time.Duration {
	return time.Since(st.opened) - time.Duration(st.lastRecv.Load())
}

// heartbeatInterval is the interval st is heartbeaten at: the session's,
// or WithHeartbeat's if shorter (never below MinHeartbeat).
func (c *Client) heartbeatInterval(st *stream) time.Duration {
	hb := time.Duration(st.welcome.GetHeartbeatMs()) * time.Millisecond
	if hb <= 0 {
		hb = 10 * time.Second
	}
	if c.opts.heartbeat > 0 {
		hb = min(hb, c.opts.heartbeat)
	}
	return max(hb, MinHeartbeat)
}

// serve runs st until it ends: the writer, the liveness watch, and (in
// this goroutine) the reader, which hands acks to their requests and
// pushes and redirects to the client. Frames that arrive after the stream
// has ended (a frozen session that woke up) are dropped: the client has
// moved on, and its next stream replays everything.
func (c *Client) serve(st *stream) {
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		st.write()
	}()
	go func() {
		defer c.wg.Done()
		c.watch(st)
	}()
	for {
		f, err := st.s.Recv()
		if err != nil {
			st.end(err)
			return
		}
		st.heard()
		if st.ended() {
			continue
		}
		switch b := f.GetBody().(type) {
		case *registryv1.ServerFrame_Ack:
			st.acked(b.Ack)
		case *registryv1.ServerFrame_Push:
			c.deliver(st, []*registryv1.Push{b.Push})
		case *registryv1.ServerFrame_PushBatch:
			c.deliver(st, b.PushBatch.GetPushes())
		case *registryv1.ServerFrame_Redirect:
			c.redirected(st, b.Redirect)
		}
	}
}

// watch heartbeats st and ends it with a *silentError once nothing at all
// has arrived for missed heartbeat intervals (every frame counts: acks,
// the answers to heartbeats, pushes). Intervals in which this goroutine
// could not even tick (the client process was stalled: a ticker drops the
// ticks it could not deliver) do not count against the session: the
// deadline needs missed-1 heartbeats sent since the last frame.
func (c *Client) watch(st *stream) {
	every := c.heartbeatInterval(st)
	missed := c.opts.missedBeats
	deadline := every * time.Duration(missed)
	beat := time.NewTicker(every)
	defer beat.Stop()
	check := time.NewTimer(deadline)
	defer check.Stop()
	seen, unanswered := st.received.Load(), 0
	for {
		select {
		case <-st.done:
			return
		case <-beat.C:
			if n := st.received.Load(); n != seen {
				seen, unanswered = n, 0
			}
			unanswered++
			st.heartbeat()
		case <-check.C:
			silent := st.silence()
			switch {
			case silent < deadline:
				check.Reset(deadline - silent)
			case unanswered < missed-1:
				check.Reset(every) // we were stalled: give the session its heartbeats
			default:
				st.end(&silentError{silent: silent, deadline: deadline, at: time.Now()})
				c.logger.Warn("strata: session silent past the liveness deadline; moving to another session",
					"session", st.addr, "silent", silent.Round(time.Millisecond), "deadline", deadline)
				return
			}
		}
	}
}

// deliver hands pushes to their subscriptions and acks them all (an ack
// also for pushes a subscription ignores as old: the session must stop
// retrying them).
func (c *Client) deliver(st *stream, pushes []*registryv1.Push) {
	acks := make([]*registryv1.PushAck, 0, len(pushes))
	bytes := 0
	for _, p := range pushes {
		// One push may be for several subscriptions (same key, version
		// and scope): each gets it (the same values); one ack names them
		// all.
		values := make([]Value, 0, len(p.GetValues()))
		for _, v := range p.GetValues() {
			values = append(values, Value{Data: v.GetData(), Zone: v.GetZone(), PublisherID: v.GetPublisherId()})
			bytes += len(v.GetData()) + len(v.GetZone()) + len(v.GetPublisherId())
		}
		var states []InstanceState
		for _, m := range p.GetInstanceStates() {
			states = append(states, InstanceState{Addr: m.GetAddr(), State: m.GetState()})
		}
		for id := range wire.RegisterIDs(p) {
			c.mu.Lock()
			s := c.subs[id]
			c.mu.Unlock()
			if s != nil {
				s.offer(&Snapshot{Version: p.GetVersion(), Values: values, InstanceStates: states})
			}
		}
		acks = append(acks, wire.AckAll(p))
	}
	st.ackPushes(acks, bytes)
}

// isAuthError reports a refusal that retrying cannot fix.
func isAuthError(err error) bool {
	c := status.Code(err)
	return c == codes.Unauthenticated || c == codes.PermissionDenied
}
