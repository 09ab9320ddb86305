package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/node"
	"github.com/strata-registry/strata/internal/publisher"
	"github.com/strata-registry/strata/internal/push"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// clientService implements SessionService.
type clientService struct {
	registryv1.UnimplementedSessionServiceServer
	s *Server
}

// clientConn is one client stream. It implements push.Conn.
type clientConn struct {
	s  *Server
	id string
	// caller is who opened the stream; owner its identity's use of this
	// session. clientID is the client's key (its identity and the client
	// id of its hello, clientKey), helloID the client id alone.
	caller   *access.Caller
	owner    *owner
	clientID string
	helloID  string
	zone     string
	out      *sendQueue
	// queued is the bytes of pushes waiting in out: bounded by the push
	// engine's per-connection in-flight cap. A client that stops reading
	// fills its own HTTP/2 receive window first (bytes in its buffers, not
	// ours); then the writer blocks, the queue reaches the cap, and the
	// client is cut off. The session holds at most the cap meanwhile.
	queued   atomic.Int64
	ctx      context.Context
	cancel   context.CancelCauseFunc
	lastSeen atomic.Int64

	// redirected: asked to move by connection balance (guarded by conns.mu).
	redirected bool

	// limiter bounds this connection's registrations per second.
	limiter *rate.Limiter
	// in holds the registrations read and waiting for the frame loop.
	in inbox
	// applied holds the applied-level acks waiting for slot leaders.
	applied appliedAcks

	// mu guards subs. Lock order: publishers.mu, then mu.
	mu   sync.Mutex
	subs map[string]string // subscriber register id -> data info id
}

// ID implements push.Conn.
func (c *clientConn) ID() string { return c.id }

// Zone implements push.Conn.
func (c *clientConn) Zone() string { return c.zone }

// outFrame is a frame waiting for the writer, with the bytes it holds.
type outFrame struct {
	f    *registryv1.ServerFrame
	size int64
	// shared identifies a push's list (key, version, scope): pushes of one
	// list waiting together go out as one Push (see write).
	shared *push.Shared
}

// Send implements push.Conn: it queues the push for the writer without
// blocking. A queue past the byte cap (or the frame cap) is a client that
// does not read: an error, and the engine disconnects it.
func (c *clientConn) Send(p *push.Push) error {
	size := int64(p.Size)
	if c.queued.Load()+size > c.s.cfg.Push.MaxInflightBytes && c.queued.Load() > 0 {
		return fmt.Errorf("session: over %d bytes waiting for the client", c.s.cfg.Push.MaxInflightBytes)
	}
	if err := c.ctx.Err(); err != nil {
		return context.Cause(c.ctx)
	}
	f := &registryv1.ServerFrame{Body: &registryv1.ServerFrame_Push{Push: toPush(p, c.s.Secure())}}
	c.queued.Add(size)
	if !c.out.tryPush(outFrame{f, size, p.Shared}) {
		c.queued.Add(-size)
		return errors.New("session: client send queue full")
	}
	return nil
}

// Close implements push.Conn: it ends the stream with reason.
func (c *clientConn) Close(reason string) {
	c.cancel(status.Error(codes.ResourceExhausted, "session: "+reason))
}

// toPush flattens a datum's publishers into the values a client sees: one
// per value, with its publisher's id and zone.
//
// The flattened values are built once per list and shared, read-only, by
// the pushes to every subscriber it goes to (marshalling only reads them).
//
// Stored register IDs are owner-qualified on a cluster with identities
// (owned): clients see their own register IDs.
func toPush(p *push.Push, owned bool) *registryv1.Push {
	values := p.Shared.Get(func() any {
		var vals []*registryv1.PushedValue
		for _, pub := range p.Publishers {
			for _, v := range pub.GetValues() {
				vals = append(vals, &registryv1.PushedValue{Data: v, Zone: pub.GetZone(), PublisherId: publisher.ClientRegisterID(pub.GetRegisterId(), owned)})
			}
		}
		return vals
	}).([]*registryv1.PushedValue)
	return &registryv1.Push{RegisterId: p.SubscriberIDs[0], AlsoRegisterIds: p.SubscriberIDs[1:], DataInfoId: p.Key, Version: p.Version, Values: values,
		InstanceStates: p.InstanceStates}
}

// maxThrottle is the longest a registration waits for its rates before it
// is refused instead.
const maxThrottle = time.Second

// admit lets one more registration request through: within the
// connection's rate (RegisterRate, bursts of RegisterBurst) and its
// identity's (over all its connections). A client a little over a rate is
// slowed down, not refused: the request waits for its turn (at most
// maxThrottle), and meanwhile the connection's frame loop applies no
// further registration (they wait in its inbox, bounded: see inbox; its
// heartbeats and push acks do not wait). Past that the request is
// refused, saying which limit it hit.
func (c *clientConn) admit() error { return c.s.admit(c.ctx, c.limiter, c.owner, c.caller) }

// admit is the rate check of a registration by caller, whose identity's
// use of this session is o, on a connection limited by conn (a client
// stream's, or an HTTP API pseudo client's): it waits its turn, at most
// maxThrottle, or until ctx ends (returning its cause).
func (s *Server) admit(ctx context.Context, conn *rate.Limiter, o *owner, caller *access.Caller) error {
	now := s.clock.Now()
	connWait, connRes, ok := reserve(conn, now)
	if !ok {
		s.refused(refusedRateConnection)
		return status.Errorf(codes.ResourceExhausted, "session: more than %.0f registrations per second on this connection; slow down", conn.Limit())
	}
	wait := connWait
	if o.name != "" {
		_, perSecond := s.limits(s.Perms(caller))
		idWait, _, ok := reserve(o.rateFor(perSecond, now), now)
		if !ok {
			connRes.CancelAt(now)
			s.refused(refusedRateIdentity)
			return status.Errorf(codes.ResourceExhausted, "session: more than %.0f registrations per second for %s, over all its connections; slow down", perSecond, caller.ID)
		}
		wait = max(wait, idWait)
	}
	if wait > 0 {
		s.throttled.Add(1)
		t := s.clock.NewTicker(wait)
		defer t.Stop()
		select {
		case <-t.C():
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return nil
}

// reserve takes a token from l for now, or reports that the wait for it
// would pass maxThrottle (and takes nothing).
func reserve(l *rate.Limiter, now time.Time) (time.Duration, *rate.Reservation, bool) {
	r := l.ReserveN(now, 1)
	if !r.OK() {
		return 0, r, false
	}
	d := r.DelayFrom(now)
	if d > maxThrottle {
		r.CancelAt(now)
		return 0, r, false
	}
	return d, r, true
}

// perms returns what the client may do now (its tokens file entry as the
// file reads now).
func (c *clientConn) perms() access.Perms { return c.s.Perms(c.caller) }

// conns tracks live connections and the clients whose connection ended
// recently (their registrations wait out the grace).
type conns struct {
	mu       sync.Mutex
	byID     map[string]*clientConn
	byClient map[string]*clientConn
	gone     map[string]time.Time // client id -> when its grace ends
}

func newConns() *conns {
	return &conns{byID: map[string]*clientConn{}, byClient: map[string]*clientConn{}, gone: map[string]time.Time{}}
}

func (cs *conns) count() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.byID)
}

// add registers a new connection. A reconnect within the grace cancels the
// pending removal; an older live connection of the same client is closed.
func (cs *conns) add(c *clientConn) {
	cs.mu.Lock()
	old := cs.byClient[c.clientID]
	cs.byID[c.id] = c
	cs.byClient[c.clientID] = c
	delete(cs.gone, c.clientID)
	cs.mu.Unlock()
	if old != nil {
		old.cancel(status.Error(codes.Aborted, "session: replaced by a newer connection of the same client"))
	}
}

// ended records that c's stream ended; its client's registrations are
// removed after grace unless it reconnects.
func (cs *conns) ended(c *clientConn, graceEnd time.Time) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	delete(cs.byID, c.id)
	if cs.byClient[c.clientID] == c {
		delete(cs.byClient, c.clientID)
		cs.gone[c.clientID] = graceEnd
	}
}

// expire forgets the clients whose grace has ended, removes their
// publications from ps and hands each to removed (which queues its
// removal on the data tier), and returns how many each client had. It
// holds cs.mu throughout (then ps.mu, then removed's forwarder lock): a
// client that reconnects (add) either comes first, and keeps its
// publications, or after, and what it registers then is neither removed
// nor queued before the removal of its old copy. (Removing in steps let a
// client that reconnected in between lose what it registered again: first
// from the session, then, with the removals queued after its new put,
// which the forwarder keeps only the newest op of, from the data node.)
func (cs *conns) expire(now time.Time, ps *publishers, removed func(*pubEntry)) map[string]int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var out map[string]int
	for id, end := range cs.gone {
		if now.Before(end) {
			continue
		}
		delete(cs.gone, id)
		if out == nil {
			out = map[string]int{}
		}
		gone := ps.removeClient(id)
		for _, e := range gone {
			removed(e)
		}
		out[id] = len(gone)
	}
	return out
}

// silent returns live connections not heard from since before cutoff.
func (cs *conns) silent(cutoff time.Time) []*clientConn {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var out []*clientConn
	for _, c := range cs.byID {
		if c.lastSeen.Load() < cutoff.UnixNano() {
			out = append(out, c)
		}
	}
	return out
}

func (cs *conns) closeAll(reason string) {
	cs.mu.Lock()
	all := make([]*clientConn, 0, len(cs.byID))
	for _, c := range cs.byID {
		all = append(all, c)
	}
	cs.mu.Unlock()
	for _, c := range all {
		c.cancel(status.Error(codes.Unavailable, reason))
	}
}

// graceLoop removes the registrations of clients whose grace ended,
// closes connections that went silent, and forgets identities that hold
// nothing here any more.
func (s *Server) graceLoop(ctx context.Context) error {
	t := s.clock.NewTicker(s.cfg.RetryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
		now := s.clock.Now()
		for clientID, n := range s.conns.expire(now, s.pubs, func(e *pubEntry) { s.forwardDelete(e, true) }) {
			s.logger.Info("client gone past its grace; removed its publishers", "client", clientID, "publishers", n)
		}
		for _, c := range s.conns.silent(now.Add(-s.cfg.ClientTimeout)) {
			c.cancel(status.Error(codes.DeadlineExceeded, "session: client silent past the timeout"))
		}
		s.owners.sweep(now)
	}
}

// forwardDelete queues the removal of a publication on its slot leader.
//
// An unregister by the client (expired false) is unconditional, and its
// tombstone is at the stored version and now, so no stale copy of the
// publication (another session's, still in its grace) can come back.
//
// A removal because the client's grace ended (expired true) is conditional
// on this session still owning the registration on the data node, and its
// tombstone is at the stored version and timestamp: a client that moved to
// another session re-registered there with a later timestamp, which neither
// this delete nor its tombstone may remove, in whichever order they arrive.
func (s *Server) forwardDelete(e *pubEntry, expired bool) {
	u := &registryv1.Unpublish{
		DataInfoId: e.key, RegisterId: e.registerID,
		ClientVersion: e.version, RegisterTimestamp: max(s.clock.Now().UnixNano(), e.stamp),
	}
	if expired {
		u.RegisterTimestamp = e.stamp
		u.SessionId = s.proc
	}
	// A client's own removal is news for its subscribers (urgent); the
	// removals of an expired connection are bulk.
	s.fwd.enqueue(e.slot, e.pubKey(), fwdOp{del: u, urgent: !expired}, nil)
}

func newConnID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Connect serves one client process's stream.
func (v *clientService) Connect(stream grpc.BidiStreamingServer[registryv1.ClientFrame, registryv1.ServerFrame]) error {
	s := v.s
	if s.table.Load() == nil {
		return errNoTable
	}
	first, err := stream.Recv()
	if bad, ok := node.AsBadMessage(err); ok {
		return bad.Status().Err()
	}
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "session: the first frame must be a hello")
	}
	if err := checkHello(hello); err != nil {
		return err
	}
	caller := access.FromContext(stream.Context())
	if caller == nil {
		return status.Error(codes.Unauthenticated, "session: unauthenticated stream")
	}
	ownerName := ""
	if !caller.Insecure {
		ownerName = caller.ID.Name
	}
	o, ok := s.owners.acquire(ownerName, s.cfg.IdentityMaxStreams)
	if !ok {
		s.refused(refusedStreamsIdentity)
		return status.Errorf(codes.ResourceExhausted, "session: %s has %d streams open on this session, at most %d allowed; close one first", caller.ID, s.cfg.IdentityMaxStreams, s.cfg.IdentityMaxStreams)
	}
	defer s.owners.release(o)
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	c := &clientConn{
		s: s, id: newConnID(), caller: caller, owner: o,
		clientID: clientKey(ownerName, hello.GetClientId()), helloID: hello.GetClientId(), zone: hello.GetZone(),
		ctx: ctx, cancel: cancel, in: newInbox(), applied: appliedAcks{ready: make(chan struct{}, 1)},
		subs: map[string]string{}, limiter: rate.NewLimiter(rate.Limit(s.cfg.RegisterRate), s.cfg.RegisterBurst),
	}
	// The writer (started whenever frames wait, see sendQueue) and the
	// reader belong to the server (s.streams), not to this handler: a
	// stalled client's Send and an idle Recv unblock only once the handler
	// has returned and gRPC closed the stream. The handler counts itself
	// too, until it has closed the queue, so that a writer never starts
	// uncounted.
	s.streams.Add(2)
	c.out = newSendQueue(s.cfg.SendQueue, func() {
		s.streams.Add(1)
		go func() {
			defer s.streams.Done()
			c.write(stream)
		}()
	})
	defer func() {
		c.out.close()
		s.streams.Done()
	}()
	c.lastSeen.Store(s.clock.Now().UnixNano())
	s.conns.add(c)
	defer func() {
		// The frame loop has returned: no subscriber comes or goes now.
		c.mu.Lock()
		n := len(c.subs)
		c.mu.Unlock()
		c.owner.unreserve(n)
		s.engine.RemoveConn(c.id)
		s.conns.ended(c, s.clock.Now().Add(s.cfg.DisconnectGrace))
	}()

	c.enqueue(&registryv1.ServerFrame{Body: &registryv1.ServerFrame_Welcome{Welcome: &registryv1.Welcome{
		ConnId: c.id, SessionId: s.proc, HeartbeatMs: uint32(s.cfg.ClientHeartbeat.Milliseconds()),
		PushAckDelayMs: uint32(s.cfg.Push.AckDelay.Milliseconds()),
	}}})

	// The reader answers what changes nothing at once and queues the
	// registrations in c.in; this loop applies them, in order (see inbox).
	go c.read(stream)
	for {
		select {
		case <-ctx.Done():
			cause := context.Cause(ctx)
			if _, ok := status.FromError(cause); ok {
				return cause
			}
			return nil // the client went away
		case <-c.in.ready:
		case <-c.applied.ready:
		}
		for _, id := range c.applied.takeDue() {
			c.ack(id, nil)
		}
		for ctx.Err() == nil {
			in, ok := c.in.take()
			if !ok {
				break
			}
			if err := c.handle(in.f); err != errAckLater {
				c.ack(in.f.GetId(), err)
			}
		}
		if c.in.drained() && c.applied.settled() {
			// The client half-closed, all it sent is applied, and every
			// applied-level ack is due (it waits for them): the stream
			// ends once they and the rest of its acks are on it.
			c.out.flushed(ctx.Done())
			return nil
		}
	}
}

// maxBatchPushes and maxBatchBytes bound one PushBatch.
const (
	maxBatchPushes = 256
	maxBatchBytes  = 1 << 20
)

// clientWindowBytes is the HTTP/2 flow-control window (per stream and per
// connection) for what a client sends: far above its usual frames, and a
// publication of record.MaxPublisherBytes passes in four windows.
const clientWindowBytes = 1 << 20

// write is the connection's writer, the only goroutine that sends on the
// stream; it runs while frames wait and returns when it finds none (the
// queue starts the next one, after this one's last Send). It takes every
// frame waiting at once: runs of pushes among them go out as one PushBatch
// (in order, up to maxBatchPushes and maxBatchBytes), so a burst of changes
// costs one write rather than one per push; a quiet connection's single
// push goes out alone, at once. (The engine already hands over one push
// per list for all of a fan-out's subscribers on this connection.)
func (c *clientConn) write(stream grpc.BidiStreamingServer[registryv1.ClientFrame, registryv1.ServerFrame]) {
	send := func(f *registryv1.ServerFrame, size int64) bool {
		err := stream.Send(f)
		c.queued.Add(-size)
		if err != nil {
			c.cancel(err)
			return false
		}
		return true
	}
	var frames []outFrame
	for c.ctx.Err() == nil {
		if frames = c.out.take(frames); len(frames) == 0 {
			return // the queue counts this writer as stopped
		}
		var m pushMerger
		var single *registryv1.ServerFrame // the run's frame while it holds one push
		var size int64
		flush := func() bool {
			if m.n == 0 {
				return true
			}
			f := single
			if len(m.out) > 1 {
				f = &registryv1.ServerFrame{Body: &registryv1.ServerFrame_PushBatch{PushBatch: &registryv1.PushBatch{Pushes: m.out}}}
			}
			ok := send(f, size)
			m, single, size = pushMerger{}, nil, 0
			return ok
		}
		for _, o := range frames {
			p := o.f.GetPush()
			if p == nil {
				if !flush() || !send(o.f, o.size) {
					return
				}
				continue
			}
			if m.n >= maxBatchPushes || size >= maxBatchBytes {
				if !flush() {
					return
				}
			}
			if m.n == 0 {
				single = o.f
			}
			m.add(p, o.shared)
			size += o.size
		}
		if !flush() {
			return
		}
		// Done with them: drop the references, and a buffer a burst grew.
		clear(frames)
		if cap(frames) > keptSendBuffer {
			frames = nil
		}
	}
}

// keptSendBuffer is the most frames' room a writer keeps from one take to
// the next.
const keptSendBuffer = 16

// pushMerger gathers the pushes of one write: pushes of the same list
// that the engine handed over apart (a retry, a new subscriber, next to a
// fan-out) become one Push that names every subscriber (also_register_ids),
// so the list is encoded, sent and decoded once.
type pushMerger struct {
	out   []*registryv1.Push
	byKey map[*push.Shared]*registryv1.Push
	n     int // pushes added
}

func (m *pushMerger) add(p *registryv1.Push, shared *push.Shared) {
	m.n++
	if shared != nil {
		if q := m.byKey[shared]; q != nil && q.GetVersion() == p.GetVersion() && q.GetDataInfoId() == p.GetDataInfoId() {
			q.AlsoRegisterIds = append(append(q.AlsoRegisterIds, p.GetRegisterId()), p.GetAlsoRegisterIds()...)
			return
		}
		if m.byKey == nil {
			m.byKey = map[*push.Shared]*registryv1.Push{}
		}
		m.byKey[shared] = p
	}
	m.out = append(m.out, p)
}

// enqueue queues a frame that must not be dropped (welcome, acks): it waits
// for room, so a client that does not read slows only itself.
func (c *clientConn) enqueue(f *registryv1.ServerFrame) {
	c.out.push(outFrame{f: f}, c.ctx.Done())
}

func (c *clientConn) ack(id uint64, err error) {
	if id == 0 {
		return
	}
	a := &registryv1.Ack{Id: id}
	if err != nil {
		st, _ := status.FromError(err)
		a.Code, a.Message = int32(st.Code()), st.Message()
	}
	c.enqueue(&registryv1.ServerFrame{Body: &registryv1.ServerFrame_Ack{Ack: a}})
}

// pushAck acks a push for every subscriber the ack names. An ack for an
// unknown subscriber or version changes nothing (the engine checks).
func (c *clientConn) pushAck(a *registryv1.PushAck) {
	c.s.engine.AckAll(c.id, a.GetVersion(), a.GetRegisterId(), a.GetAlsoRegisterIds(), time.Duration(a.GetHeldUs())*time.Microsecond)
}

// handle applies one frame the reader queued (a registration or an
// unregistration: dispatch answers the others) and returns what its ack
// says.
func (c *clientConn) handle(f *registryv1.ClientFrame) error {
	s := c.s
	switch b := f.GetBody().(type) {
	case *registryv1.ClientFrame_RegisterPublisher:
		return c.registerPublisher(b.RegisterPublisher, f.GetId())
	case *registryv1.ClientFrame_UnregisterPublisher:
		// Not rated: a removal that takes something away undoes a
		// registration that was (its cost is paid), one that finds nothing
		// changes nothing; and a client's removal must not be lost to a
		// refusal (Publish withdraws a refused registration this way,
		// without waiting for an ack).
		u := b.UnregisterPublisher
		key := record.DataInfoID(u.GetDataId(), u.GetInstanceId(), u.GetGroup())
		// Only the client's own: a register id of another identity names
		// another publication, one of another client of this identity is
		// not this client's to remove.
		if e := s.pubs.removeOwn(pubKey{key, publisher.Owned(c.owner.name, u.GetRegisterId())}, c.clientID); e != nil {
			s.forwardDelete(e, false)
		}
		return nil
	case *registryv1.ClientFrame_RegisterSubscriber:
		return c.registerSubscriber(b.RegisterSubscriber)
	case *registryv1.ClientFrame_UnregisterSubscriber:
		id := b.UnregisterSubscriber.GetRegisterId()
		s.engine.Unsubscribe(c.id, id)
		c.mu.Lock()
		_, held := c.subs[id]
		delete(c.subs, id)
		c.mu.Unlock()
		if held {
			c.owner.unreserve(1)
		}
		return nil
	}
	return status.Error(codes.InvalidArgument, "session: empty or unknown frame")
}

// registerPublisher stores and forwards a publication: checked (input,
// then the identity's right to publish under the data ID, then the rates,
// then, if it adds one, the quotas) before anything changes. At
// ACK_LEVEL_APPLIED its ack (frame id) waits until the slot leader has it:
// it returns errAckLater, and the frame loop sends the ack then.
func (c *clientConn) registerPublisher(rp *registryv1.RegisterPublisher, id uint64) (err error) {
	s := c.s
	applied := rp.GetAck() == registryv1.AckLevel_ACK_LEVEL_APPLIED
	switch rp.GetAck() {
	case registryv1.AckLevel_ACK_LEVEL_HELD:
	case registryv1.AckLevel_ACK_LEVEL_APPLIED:
		if !c.applied.reserve() {
			s.refused(refusedAppliedWaiting)
			return status.Errorf(codes.ResourceExhausted, "session: %d registrations of this connection already wait for their slot leaders (ACK_LEVEL_APPLIED); wait for their acks", maxAppliedWaiting)
		}
		defer func() {
			// errAckLater: the ack waits, and its place with it (due
			// gives it back).
			if err != nil && err != errAckLater {
				c.applied.unreserve()
			}
		}()
	default:
		return status.Errorf(codes.InvalidArgument, "session: unknown ack level %d (ACK_LEVEL_HELD or ACK_LEVEL_APPLIED)", rp.GetAck())
	}
	p, err := publisherOf(rp, c.owner.name, c.zone, s.proc, c.id, s.clock.Now())
	if err != nil {
		return err
	}
	key := p.GetDataInfoId()
	pk := pubKey{key, p.GetRegisterId()}
	if err := c.mayRegister("publish", rp.GetDataId(), c.perms().CanPublish); err != nil {
		return err
	}
	sid, _, _, _, err := s.route(key)
	if err != nil {
		return err
	}
	quota := c.identityQuota()
	isNew := false // reserve runs only for a publication not yet held
	stored, err := s.pubs.put(p, sid, c.clientID, c.owner, func(clientPubs int) error {
		isNew = true
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.reserve(clientPubs+len(c.subs), quota)
	})
	if errors.Is(err, errTaken) {
		s.refused(refusedPermission)
	}
	if err != nil {
		return err
	}
	var onApplied func()
	if applied {
		onApplied = func() { c.applied.due(id) }
	}
	switch {
	case stored:
		// An update of a held publication is news for its subscribers:
		// it goes ahead of new registrations (a storm's bulk).
		s.fwd.enqueue(sid, pk, fwdOp{put: p, urgent: !isNew}, onApplied)
	case applied:
		// Nothing new to send: the ack waits for what is queued or in
		// flight for it, if anything.
		s.fwd.whenApplied(sid, pk, onApplied)
	}
	s.registeredPubs.Add(1)
	if applied {
		return errAckLater
	}
	return nil
}

// errAckLater is handle's answer for a frame whose ack comes later
// (appliedAcks).
var errAckLater = errors.New("session: ack sent when applied")

// maxAppliedWaiting bounds a connection's ACK_LEVEL_APPLIED registrations
// waiting for their slot leaders; past it they are refused
// (ResourceExhausted) until acks come back.
const maxAppliedWaiting = 4096

// appliedAcks is a connection's applied-level acks: how many wait for
// their slot leaders (at most maxAppliedWaiting), and the frame ids whose
// ops have landed, for the frame loop to ack. due never blocks, so the
// forwarder never waits on a client.
type appliedAcks struct {
	mu      sync.Mutex
	waiting int
	ids     []uint64
	ready   chan struct{} // capacity 1: "acks are due"
}

func (a *appliedAcks) reserve() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.waiting >= maxAppliedWaiting {
		return false
	}
	a.waiting++
	return true
}

func (a *appliedAcks) unreserve() {
	a.mu.Lock()
	a.waiting--
	a.mu.Unlock()
}

// due marks frame id's registration as landed.
func (a *appliedAcks) due(id uint64) {
	a.mu.Lock()
	a.waiting--
	a.ids = append(a.ids, id)
	a.mu.Unlock()
	signal(a.ready)
}

// settled reports whether no applied-level ack waits: none for its slot
// leader, none due.
func (a *appliedAcks) settled() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.waiting == 0 && len(a.ids) == 0
}

// takeDue returns the frame ids to ack now.
func (a *appliedAcks) takeDue() []uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := a.ids
	a.ids = nil
	return ids
}

// mayRegister runs a registration's first checks, in order: the
// identity's right to verb under dataID, then the rates (waiting its
// turn). The quotas come last, with the insert (reserve).
func (c *clientConn) mayRegister(verb, dataID string, allowed func(string) bool) error {
	if err := c.s.permitted(c.caller, verb, dataID, allowed); err != nil {
		return err
	}
	return c.admit()
}

// permitted checks caller's right to verb under dataID (allowed, from its
// rights as the tokens file reads now).
func (s *Server) permitted(caller *access.Caller, verb, dataID string, allowed func(string) bool) error {
	if !allowed(dataID) {
		s.refused(refusedPermission)
		return status.Errorf(codes.PermissionDenied, "session: %s may not %s under data ID %q (its tokens file entry lists no prefix of it)", caller.ID, verb, dataID)
	}
	return nil
}

// identityQuota returns how many registrations the connection's identity
// may hold on this session (no bound without TLS: only the connection's).
func (c *clientConn) identityQuota() int { return c.s.identityQuota(c.owner, c.caller) }

// identityQuota returns how many registrations o, caller's identity, may
// hold on this session (no bound without TLS: only the connection's).
func (s *Server) identityQuota(o *owner, caller *access.Caller) int {
	if o.name == "" {
		return math.MaxInt
	}
	quota, _ := s.limits(s.Perms(caller))
	return quota
}

// reserve counts one more registration against the connection's quota
// (it holds connHeld) and its identity's (quota over all its
// connections), or refuses it. The caller holds publishers.mu and c.mu and
// stores the registration before it lets go: the check and the insert are
// one step, and the identity's count (owner.reserve) is one atomic step
// over all its connections.
func (c *clientConn) reserve(connHeld, quota int) error {
	return c.s.reserve(c.owner, c.caller, connHeld, quota)
}

// reserve is clientConn.reserve for any connection of o's identity
// (caller), an HTTP API pseudo client's included.
func (s *Server) reserve(o *owner, caller *access.Caller, connHeld, quota int) error {
	if connHeld >= s.cfg.MaxPerConn {
		s.refused(refusedQuotaConnection)
		return status.Errorf(codes.ResourceExhausted, "session: at most %d registrations per connection", s.cfg.MaxPerConn)
	}
	if !o.reserve(quota) {
		s.refused(refusedQuotaIdentity)
		return status.Errorf(codes.ResourceExhausted, "session: %s holds %d registrations on this session, at most %d allowed", caller.ID, o.held.Load(), quota)
	}
	return nil
}

func (c *clientConn) registerSubscriber(rs *registryv1.RegisterSubscriber) error {
	key, scope, err := subscriberOf(rs)
	if err != nil {
		return err
	}
	if err := c.mayRegister("subscribe", rs.GetDataId(), c.perms().CanSubscribe); err != nil {
		return err
	}
	quota := c.identityQuota()
	id := rs.GetRegisterId()
	err = c.s.pubs.withClient(c.clientID, func(clientPubs int) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, held := c.subs[id]; !held {
			if err := c.reserve(clientPubs+len(c.subs), quota); err != nil {
				return err
			}
		}
		c.subs[id] = key
		return nil
	})
	if err != nil {
		return err
	}
	c.s.engine.Subscribe(c, id, key, scope, rs.GetPushedVersion())
	c.s.registeredSubs.Add(1)
	return nil
}

// toStatus maps record errors to gRPC statuses.
func toStatus(err error) error {
	switch {
	case errors.Is(err, record.ErrTooLarge):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, record.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
