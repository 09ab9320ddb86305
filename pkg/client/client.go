package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/pkg/client/wire"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Client is a connection to a Strata cluster: one stream to one session at
// a time, over which every publication and subscription of the client
// travels. It reconnects by itself (to another session when one fails or
// asks it to move) and replays what is live, so callers never see the
// connection. Safe for concurrent use; Close releases everything.
type Client struct {
	opts     options
	clientID string
	logger   *slog.Logger
	dialOpts []grpc.DialOption

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu  sync.Mutex
	cur *stream // nil while disconnected
	// changed is closed (and replaced) whenever cur changes.
	changed chan struct{}
	pubs    map[string]*Publication
	subs    map[string]*Subscription
	// moveTo is a redirect's suggested sessions, tried on the next connect.
	moveTo []string
	move   chan struct{} // capacity 1: a redirect is waiting
	closed bool
	// refused is the last connect's refusal when it was an authentication
	// failure (retrying cannot fix it, so requests fail at once); nil once
	// a stream is up.
	refused error
	// lastErr is why the last connect failed (nil once a stream is up).
	lastErr error
}

// New returns a client for the cluster named by WithSessions or WithMeta.
// It checks the options and does no I/O: it connects in the background, and
// requests wait for the connection (bounded by their contexts; see
// WaitConnected to wait up front). ctx only refuses a call made with an
// ended context; it bounds nothing after New returns.
func New(ctx context.Context, opts ...Option) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.creds != nil {
		tc, err := o.creds.tlsConfig()
		if err != nil {
			return nil, err
		}
		o.tls = tc
	}
	c := &Client{
		opts: o, clientID: o.clientID, logger: o.logger,
		changed: make(chan struct{}), pubs: map[string]*Publication{}, subs: map[string]*Subscription{},
		move: make(chan struct{}, 1),
	}
	if c.clientID == "" {
		c.clientID = "client-" + newID()
	}
	if c.logger == nil {
		c.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	creds := insecure.NewCredentials()
	if o.tls != nil {
		creds = credentials.NewTLS(o.tls)
	}
	c.dialOpts = []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		// A push carries a service's whole list, which may pass grpc-go's
		// 4 MiB default: accept what the servers accept among themselves.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(wire.MaxMessageBytes)),
		// Fixed windows turn off grpc-go's bandwidth estimation, which
		// answers each push with a PING the session must answer too.
		grpc.WithInitialWindowSize(pushWindowBytes),
		grpc.WithInitialConnWindowSize(pushWindowBytes),
		// The transport's own check, under the heartbeat deadline (see
		// watch). Never more often than MinKeepaliveTime: sessions close
		// a connection that pings more often than every 5 s.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: o.keepaliveTime, Timeout: o.keepaliveTimeout}),
	}
	if o.token != "" {
		c.dialOpts = append(c.dialOpts, grpc.WithPerRPCCredentials(wire.Bearer(o.token)))
	}
	c.dialOpts = append(c.dialOpts, o.dialOpts...)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.run()
	}()
	return c, nil
}

// ID returns the client's ID (WithClientID, or the random one).
func (c *Client) ID() string { return c.clientID }

// Session returns the address of the session the client is connected to,
// or "" while it is not connected.
func (c *Client) Session() string {
	if st := c.connected(); st != nil {
		return st.addr
	}
	return ""
}

// pushWindowBytes is the HTTP/2 flow-control window for what the session
// sends: a list of wire.MaxMessageBytes (64 MiB) flows in 16 windows, small
// pushes never wait for one.
const pushWindowBytes = 4 << 20

// closeWait bounds how long Close waits for the session to confirm the
// removal of the client's publications.
const closeWait = 2 * time.Second

// Close unpublishes every publication (waiting up to two seconds for the
// session to confirm; if it cannot, the session removes them after its
// disconnect grace, as for any client that goes away), ends every
// subscription and the connection. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	subs := make([]*Subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	pubs := make([]*Publication, 0, len(c.pubs))
	for _, p := range c.pubs {
		pubs = append(pubs, p)
	}
	clear(c.pubs)
	c.mu.Unlock()
	for _, s := range subs {
		s.finish()
	}
	if st := c.connected(); st != nil {
		ctx, cancel := context.WithTimeout(context.Background(), closeWait)
		var acks []<-chan *registryv1.Ack
		for _, p := range pubs {
			p.mu.Lock()
			if !p.gone {
				p.gone = true
				if ch, err := st.start(p.unregister(), nil); err == nil {
					acks = append(acks, ch)
				}
			}
			p.mu.Unlock()
		}
		for _, ch := range acks {
			if _, err := wait(ctx, ch); err != nil {
				break
			}
		}
		cancel()
	}
	c.cancel()
	c.wg.Wait()
	return nil
}

// run keeps one stream open: connect (with backoff), replay, serve until
// the stream ends, repeat. A move is make-before-break whenever the old
// stream may still hold the client's registrations: after a redirect, and
// after the liveness deadline declared the old stream dead (a frozen
// session, a stalled link: see watch), the client connects to another
// session, replays everything there, and only then closes the old stream.
// A stream that broke (closed by the session, a failed connection) is
// gone already; its session is tried last on the next connect.
func (c *Client) run() {
	var cur *stream
	defer func() {
		if cur != nil {
			cur.close()
		}
	}()
	failures := 0
	for {
		if c.ctx.Err() != nil {
			return
		}
		var prefer []string
		avoid := ""
		if cur != nil {
			select {
			case <-cur.done:
				avoid = cur.addr
				if silentOf(cur) == nil {
					c.setStream(cur, nil)
					c.logger.Info("strata: session stream ended", "session", cur.addr, "err", cur.err)
					cur.close()
					cur = nil
				}
			case <-c.move:
				c.mu.Lock()
				prefer, c.moveTo = c.moveTo, nil
				c.mu.Unlock()
			case <-c.ctx.Done():
				return
			}
		}
		next, err := c.connect(prefer, avoid)
		if err != nil {
			if cur != nil && !cur.ended() {
				// A redirect we could not follow: stay where we are.
				c.logger.Info("strata: cannot move to the suggested sessions; staying", "session", cur.addr, "err", err)
				continue
			}
			failures++
			c.mu.Lock()
			c.lastErr = err
			c.mu.Unlock()
			if isAuthError(err) {
				c.logger.Error("strata: session refused the client", "err", err)
				c.mu.Lock()
				c.refused = fromCode(status.Code(err), status.Convert(err).Message())
				c.changedLocked()
				c.mu.Unlock()
			} else {
				c.logger.Info("strata: cannot connect", "attempt", failures, "err", err)
			}
			if !c.sleep(c.backoff(failures)) {
				return
			}
			continue
		}
		failures = 0
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.serve(next)
		}()
		old := cur
		cur = next
		c.setStream(old, next)
		c.replay(next)
		if old == nil {
			c.logger.Info("strata: connected", "session", next.addr, "conn", next.welcome.GetConnId())
			continue
		}
		if se := silentOf(old); se != nil {
			// silent: how long the old stream had heard nothing when the
			// new one carried everything; detected: when the deadline
			// struck; rehome: from then to now (connect and replay).
			c.logger.Warn("strata: moved to another session", "from", old.addr, "to", next.addr, "reason", "silent",
				"silent", old.silence().Round(time.Millisecond), "detected", se.silent.Round(time.Millisecond),
				"rehome", time.Since(se.at).Round(time.Millisecond))
		} else {
			c.logger.Info("strata: moved to another session", "from", old.addr, "to", next.addr, "reason", "redirect")
		}
		old.close()
	}
}

// silentOf returns why st ended if the liveness deadline ended it, else
// nil.
func silentOf(st *stream) *silentError {
	var se *silentError
	if errors.As(st.err, &se) {
		return se
	}
	return nil
}

// setStream swaps the current stream (old for next; next nil while
// disconnected) and wakes requests waiting for a change.
func (c *Client) setStream(old, next *stream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != old {
		return
	}
	c.cur = next
	if next != nil {
		c.refused, c.lastErr = nil, nil
	}
	c.changedLocked()
}

// changedLocked wakes everything waiting on c.changed. Caller holds c.mu.
func (c *Client) changedLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// connect opens a stream to the first session that answers: prefer (a
// redirect's suggestions) first, then the candidates; avoid (the session
// whose stream just failed), if among them, is tried last, since a frozen
// session would hold each attempt for the whole dial timeout.
func (c *Client) connect(prefer []string, avoid string) (*stream, error) {
	addrs := prefer
	if len(addrs) == 0 {
		addrs = c.candidates()
	}
	if avoid != "" && slices.Contains(addrs, avoid) {
		addrs = append(slices.DeleteFunc(slices.Clone(addrs), func(a string) bool { return a == avoid }), avoid)
	}
	var errs []error
	for _, a := range addrs {
		st, err := c.openStream(c.ctx, a)
		if err == nil {
			return st, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", a, err))
		if c.ctx.Err() != nil || isAuthError(err) {
			break
		}
	}
	if len(errs) == 0 {
		return nil, errors.New("strata: no session known")
	}
	return nil, errors.Join(errs...)
}

// candidates lists sessions to try, in order. From meta: two of the live
// sessions picked at random, the lighter one first (the power of two
// choices spreads clients that start together without herding them onto
// the single lightest), then the rest lightest first. Otherwise the
// WithSessions list, rotated to a random start.
func (c *Client) candidates() []string {
	if len(c.opts.meta) > 0 {
		if live, err := c.listSessions(); err == nil && len(live) > 0 {
			if len(live) > 1 {
				i, j := mrand.IntN(len(live)), mrand.IntN(len(live))
				first := min(i, j) // the list is lightest first
				live[0], live[first] = live[first], live[0]
			}
			return append(live, c.opts.sessions...)
		} else if err != nil {
			c.logger.Info("strata: cannot list sessions from meta", "err", err)
		}
	}
	s := c.opts.sessions
	if len(s) == 0 {
		return nil
	}
	k := mrand.IntN(len(s))
	return append(append([]string(nil), s[k:]...), s[:k]...)
}

// listSessions asks the meta nodes (in turn) for the live sessions,
// lightest first, this client's zone first.
func (c *Client) listSessions() ([]string, error) {
	var errs []error
	for _, a := range c.opts.meta {
		cc, err := grpc.NewClient(a, c.dialOpts...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.opts.dialTimeout)
		resp, err := registryv1.NewMetaServiceClient(cc).ListSessions(ctx, &registryv1.ListSessionsRequest{Zone: c.opts.zone})
		cancel()
		_ = cc.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("meta %s: %w", a, err))
			continue
		}
		var out []string
		for _, s := range resp.GetSessions() {
			if n := s.GetNode(); n.GetState() == registryv1.NodeState_NODE_STATE_ALIVE && n.GetGrpcAddress() != "" {
				out = append(out, n.GetGrpcAddress())
			}
		}
		return out, nil
	}
	return nil, errors.Join(errs...)
}

// redirected takes a session's request to move (connection balance).
func (c *Client) redirected(st *stream, r *registryv1.Redirect) {
	c.mu.Lock()
	if c.cur != st || len(r.GetSessions()) == 0 {
		c.mu.Unlock()
		return
	}
	c.moveTo = r.GetSessions()
	c.mu.Unlock()
	select {
	case c.move <- struct{}{}:
	default:
	}
}

// replayer is a registration the client re-sends on every new stream.
type replayer interface {
	// replay sends the registration on st, unless it is gone, and returns
	// the channel its ack comes on (nil if nothing was sent).
	replay(st *stream) <-chan *registryv1.Ack
}

// replay registers every live publication and subscription on st, with
// their register IDs and current versions, so the cluster sees the same
// registrations, not new ones. Requests made meanwhile already go to st.
// Registrations the session refuses under its rate limit (a client with
// thousands of them exceeds the burst) are re-sent after a backoff until
// all are in or the stream ends.
func (c *Client) replay(st *stream) {
	c.mu.Lock()
	todo := make([]replayer, 0, len(c.pubs)+len(c.subs))
	for _, p := range c.pubs {
		todo = append(todo, p)
	}
	for _, s := range c.subs {
		todo = append(todo, s)
	}
	c.mu.Unlock()
	for round := 1; len(todo) > 0; round++ {
		type sent struct {
			r  replayer
			ch <-chan *registryv1.Ack
		}
		var waiting []sent
		for _, r := range todo {
			if ch := r.replay(st); ch != nil {
				waiting = append(waiting, sent{r, ch})
			}
		}
		todo = todo[:0]
		for _, w := range waiting {
			a, err := wait(c.ctx, w.ch)
			if err != nil {
				return // the stream (or the client) ended; the next one replays
			}
			switch code := codeOf(a); {
			case code == codes.ResourceExhausted:
				todo = append(todo, w.r)
			case code != codes.OK:
				c.logger.Warn("strata: session refused a replayed registration", "code", code, "message", a.GetMessage())
			}
		}
		if len(todo) > 0 && !c.sleep(c.backoff(round)) {
			return
		}
	}
}

// stream returns the current stream, waiting while ctx allows for one
// that has not ended.
func (c *Client) stream(ctx context.Context) (*stream, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		st, changed, refused := c.cur, c.changed, c.refused
		c.mu.Unlock()
		if refused != nil {
			return nil, refused
		}
		if st != nil {
			select {
			case <-st.done: // the run loop is about to replace it
			default:
				return st, nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, c.notConnected(ctx.Err())
		case <-c.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// notConnected explains a wait for a connection that ended with cause.
func (c *Client) notConnected(cause error) error {
	c.mu.Lock()
	last := c.lastErr
	c.mu.Unlock()
	if last != nil {
		return fmt.Errorf("strata: not connected to any session (last attempt: %v): %w", last, cause)
	}
	return fmt.Errorf("strata: not connected to any session: %w", cause)
}

// WaitConnected blocks until the client has a session stream, and returns
// nil; or returns ErrClosed, ErrUnauthenticated (the session refused the
// client's token), or ctx's error wrapped with why the last attempt
// failed. Requests do not need it (they wait by themselves); it is for
// programs that want to fail fast at startup.
func (c *Client) WaitConnected(ctx context.Context) error {
	_, err := c.stream(ctx)
	return err
}

// connected returns the current stream, or nil while there is none that
// has not ended; it does not wait.
func (c *Client) connected() *stream {
	c.mu.Lock()
	st := c.cur
	c.mu.Unlock()
	if st == nil {
		return nil
	}
	select {
	case <-st.done:
		return nil
	default:
		return st
	}
}

// backoff is the wait after n consecutive failures: random below
// min(max, min*2^(n-1)) ("full jitter").
func (c *Client) backoff(n int) time.Duration {
	d := c.opts.backoffMax
	if n < 30 {
		d = min(c.opts.backoffMax, c.opts.backoffMin<<(n-1))
	}
	return c.opts.backoffMin/2 + time.Duration(mrand.Int64N(int64(d)))
}

func (c *Client) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// newID returns a random 128-bit ID in hex.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
