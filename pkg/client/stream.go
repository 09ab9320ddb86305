package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// errStreamEnded: the stream a request went out on ended before its ack.
// The request is retried on the next stream (after the replay, which makes
// the retry harmless).
var errStreamEnded = errors.New("strata: session stream ended")

// stream is one connection to one session: the gRPC stream, the requests
// waiting for their acks, and the goroutines reading it and heartbeating.
type stream struct {
	addr    string
	cc      *grpc.ClientConn
	s       registryv1.SessionService_ConnectClient
	cancel  context.CancelFunc
	welcome *registryv1.Welcome

	sendMu sync.Mutex

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan *registryv1.Ack
	err     error
	done    chan struct{} // closed when the stream has ended
}

// openStream dials addr, says hello and waits for the welcome.
func (c *Client) openStream(ctx context.Context, addr string) (*stream, error) {
	cc, err := grpc.NewClient(addr, c.dialOpts...)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	st := &stream{addr: addr, cc: cc, cancel: cancel, pending: map[uint64]chan *registryv1.Ack{}, done: make(chan struct{})}
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

// send writes one frame.
func (st *stream) send(f *registryv1.ClientFrame) error {
	st.sendMu.Lock()
	defer st.sendMu.Unlock()
	return st.s.Send(f)
}

// start sends a frame that wants an ack and returns the channel the ack
// arrives on (closed if the stream ends first).
func (st *stream) start(f *registryv1.ClientFrame) (<-chan *registryv1.Ack, error) {
	ch := make(chan *registryv1.Ack, 1)
	st.mu.Lock()
	if st.err != nil {
		st.mu.Unlock()
		return nil, errStreamEnded
	}
	st.nextID++
	f.Id = st.nextID
	st.pending[f.Id] = ch
	st.mu.Unlock()
	if err := st.send(f); err != nil {
		st.mu.Lock()
		delete(st.pending, f.Id)
		st.mu.Unlock()
		return nil, errStreamEnded
	}
	return ch, nil
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

// end records why the stream ended and fails its waiting requests.
func (st *stream) end(err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.err != nil {
		return
	}
	st.err = err
	for id, ch := range st.pending {
		close(ch)
		delete(st.pending, id)
	}
	close(st.done)
}

// close ends the stream from this side.
func (st *stream) close() {
	st.end(errors.New("strata: stream closed by the client"))
	st.cancel()
	_ = st.cc.Close()
}

// serve reads the stream until it ends, handing acks to their requests and
// pushes and redirects to the client; it heartbeats meanwhile.
func (c *Client) serve(st *stream) {
	hb := time.Duration(st.welcome.GetHeartbeatMs()) * time.Millisecond
	if hb <= 0 {
		hb = 10 * time.Second
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(hb)
		defer t.Stop()
		for {
			select {
			case <-st.done:
				return
			case <-t.C:
				_ = st.send(&registryv1.ClientFrame{Body: &registryv1.ClientFrame_Heartbeat{Heartbeat: &registryv1.Heartbeat{}}})
			}
		}
	}()
	for {
		f, err := st.s.Recv()
		if err != nil {
			st.end(err)
			return
		}
		switch b := f.GetBody().(type) {
		case *registryv1.ServerFrame_Ack:
			st.mu.Lock()
			ch := st.pending[b.Ack.GetId()]
			delete(st.pending, b.Ack.GetId())
			st.mu.Unlock()
			if ch != nil {
				ch <- b.Ack
			}
		case *registryv1.ServerFrame_Push:
			c.deliver(st, []*registryv1.Push{b.Push})
		case *registryv1.ServerFrame_PushBatch:
			c.deliver(st, b.PushBatch.GetPushes())
		case *registryv1.ServerFrame_Redirect:
			c.redirected(st, b.Redirect)
		}
	}
}

// deliver hands pushes to their subscriptions and acks them all, in one
// frame (an ack also for pushes a subscription ignores as old: the session
// must stop retrying them).
func (c *Client) deliver(st *stream, pushes []*registryv1.Push) {
	acks := make([]*registryv1.PushAck, 0, len(pushes))
	for _, p := range pushes {
		// One push may be for several subscriptions (same key, version
		// and scope): each gets it (the same values); one ack names them
		// all.
		values := make([]Value, 0, len(p.GetValues()))
		for _, v := range p.GetValues() {
			values = append(values, Value{Data: v.GetData(), Zone: v.GetZone(), PublisherID: v.GetPublisherId()})
		}
		for id := range p.RegisterIDs() {
			c.mu.Lock()
			s := c.subs[id]
			c.mu.Unlock()
			if s != nil {
				s.offer(p.GetVersion(), values)
			}
		}
		acks = append(acks, p.AckAll())
	}
	f := &registryv1.ClientFrame{Body: &registryv1.ClientFrame_PushAcks{PushAcks: &registryv1.PushAcks{Acks: acks}}}
	if len(acks) == 1 {
		f = &registryv1.ClientFrame{Body: &registryv1.ClientFrame_PushAck{PushAck: acks[0]}}
	}
	_ = st.send(f)
}

// isAuthError reports a refusal that retrying cannot fix.
func isAuthError(err error) bool {
	c := status.Code(err)
	return c == codes.Unauthenticated || c == codes.PermissionDenied
}
