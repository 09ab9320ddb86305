package testcluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/mem"

	"github.com/strata-registry/strata/internal/node"
	"github.com/strata-registry/strata/internal/rpc"
	"github.com/strata-registry/strata/internal/session"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/wire"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// SessionNode is one session node of the cluster.
type SessionNode struct {
	Index    int
	ID       string
	Dir      string
	Registry *prometheus.Registry
	Config   session.Config
	// MetaLink is the node's path to meta (Spec.MetaLinks), else nil.
	MetaLink *MetaLink

	proc
}

// Server returns the running server, or nil when stopped.
func (n *SessionNode) Server() *session.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	srv, _ := n.srv.(*session.Server)
	return srv
}

// AddSession starts one more session node and waits until it serves.
func (c *Cluster) AddSession(t testing.TB) *SessionNode {
	t.Helper()
	i := len(c.sessions)
	id := fmt.Sprintf("session-%d", i)
	cfg := session.TestConfig()
	cfg.NodeID = id
	c.secure(t, &cfg.Config, identity.RoleSession)
	if c.spec.SessionConfig != nil {
		c.spec.SessionConfig(i, &cfg)
	}
	n := &SessionNode{Index: i, ID: id, Dir: c.dir + "/" + id, Config: cfg}
	c.sessions = append(c.sessions, n)
	lf, logger := openLog(t, n.Dir, n.ID)
	cfg.MetaAddrs = c.MetaAddrs()
	if c.spec.MetaLinks {
		n.MetaLink = c.newMetaLink(t)
		cfg.MetaAddrs = n.MetaLink.metaAddrs()
	}
	cfg.Join = c.GossipSeeds()
	n.Registry = prometheus.NewRegistry()
	srv, err := session.New(cfg, session.Deps{
		Deps:            node.Deps{Logger: logger, Registry: n.Registry, GRPCListener: Listen(t), HTTPListener: Listen(t)},
		HTTPAPIListener: Listen(t),
	})
	if err != nil {
		_ = lf.Close()
		t.Fatalf("testcluster: new %s: %v", id, err)
	}
	n.start(t, id, srv, lf)
	Eventually(t, DefaultWait, func() error {
		if ok, why := srv.ReadyState(); !ok {
			return fmt.Errorf("%s: %v", id, why)
		}
		if _, ok := c.WaitLeader(t).Server().State().Members[id]; !ok {
			return fmt.Errorf("%s is not a member yet", id)
		}
		return nil
	})
	return n
}

// Session returns session node i.
func (c *Cluster) Session(i int) *SessionNode { return c.sessions[i] }

// StopSession stops session node i (as a crash when crash is true).
func (c *Cluster) StopSession(t testing.TB, i int, crash bool) {
	t.Helper()
	c.sessions[i].stop(t, c.sessions[i].ID, crash)
}

// Client is a minimal client over the raw SessionService stream, for the
// session tier's tests (the SDK is pkg/client). It acks every push.
type Client struct {
	ID     string
	stream registryv1.SessionService_ConnectClient
	cancel context.CancelFunc
	wg     sync.WaitGroup

	sendMu     sync.Mutex
	sendClosed bool // CloseSend was called (guarded by sendMu)
	mu         sync.Mutex
	nextID     uint64
	acks       map[uint64]chan *registryv1.Ack
	closed     error
	// Pushes receives every push, in arrival order (buffered; a test that
	// lets it fill stops reading, which is how a stalled client looks). One
	// push carries a list to all its subscribers on this connection: see
	// Push.RegisterIDs.
	Pushes chan *registryv1.Push
	// Redirects receives the session's requests to move (buffered; extra
	// ones are dropped). The test decides whether to follow them.
	Redirects chan *registryv1.Redirect
	// AutoAck acks each push as it arrives; off, the client never acks.
	autoAck bool
	Welcome *registryv1.Welcome
	// paused stops the reader, as a client that stops reading.
	paused chan struct{}
	pause  sync.Once
}

// Pause stops reading the stream for good, as a stuck client would; the
// session sees its pushes pile up.
func (cl *Client) Pause() { cl.pause.Do(func() { close(cl.paused) }) }

// Connect opens a client stream to session node n. The client's HTTP/2
// receive window is fixed at 1 MiB (grpc-go's grows to 16 MiB), so a
// paused client backs its session up at a predictable point.
func (c *Cluster) Connect(t testing.TB, n *SessionNode, clientID, zone string, autoAck bool) *Client {
	t.Helper()
	return c.ConnectAs(t, n, ClientName, clientID, zone, autoAck)
}

// ConnectAs is Connect as the client identity name (its certificate,
// issued if need be; its rights are what SetIdentities gave it).
func (c *Cluster) ConnectAs(t testing.TB, n *SessionNode, name, clientID, zone string, autoAck bool) *Client {
	t.Helper()
	return c.connect(t, n, rpc.DialOptions(c.Creds(t, identity.RoleClient, name), identity.Peer{Role: identity.RoleSession, Name: n.ID}), clientID, zone, autoAck)
}

// ConnectToken is Connect with a bearer token instead of a certificate
// (the client trusts the cluster's CA and presents none).
func (c *Cluster) ConnectToken(t testing.TB, n *SessionNode, token, clientID, zone string, autoAck bool) *Client {
	t.Helper()
	return c.connect(t, n, c.tokenDialOptions(t, n, token), clientID, zone, autoAck)
}

// TryConnectToken opens a stream with token and says hello, and returns
// why the session refused it (nil if it welcomed it; the stream is closed
// either way).
func (c *Cluster) TryConnectToken(t testing.TB, n *SessionNode, token string) error {
	t.Helper()
	conn, err := grpc.NewClient(n.Server().GRPCAddr(), c.tokenDialOptions(t, n, token)...)
	if err != nil {
		return err
	}
	defer conn.Close()
	return TryHello(conn, "probe")
}

// TryHello opens a client stream on conn and says hello as clientID, and
// returns why the session refused it: nil if it answered with a welcome.
// The stream is closed either way.
func TryHello(conn *grpc.ClientConn, clientID string) error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultWait)
	defer cancel()
	stream, err := registryv1.NewSessionServiceClient(conn).Connect(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&registryv1.ClientFrame{Body: &registryv1.ClientFrame_Hello{Hello: &registryv1.Hello{ClientId: clientID}}}); err != nil {
		_, err = stream.Recv()
		return err
	}
	f, err := stream.Recv()
	if err != nil {
		return err
	}
	if f.GetWelcome() == nil {
		return fmt.Errorf("testcluster: first frame %v, want a welcome", f)
	}
	return nil
}

// tokenDialOptions dial session node n with token and no certificate,
// accepting only n's certificate.
func (c *Cluster) tokenDialOptions(t testing.TB, n *SessionNode, token string) []grpc.DialOption {
	t.Helper()
	tc := c.AnonTLS(t, identity.Peer{Role: identity.RoleSession, Name: n.ID})
	if tc == nil {
		t.Fatal("testcluster: a token needs TLS; this cluster is insecure")
	}
	return []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tc)), grpc.WithPerRPCCredentials(wire.Bearer(token))}
}

func (c *Cluster) connect(t testing.TB, n *SessionNode, opts []grpc.DialOption, clientID, zone string, autoAck bool) *Client {
	t.Helper()
	opts = append(opts, grpc.WithInitialWindowSize(1<<20), grpc.WithInitialConnWindowSize(1<<20))
	conn, err := grpc.NewClient(n.Server().GRPCAddr(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := registryv1.NewSessionServiceClient(conn).Connect(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cl := &Client{ID: clientID, stream: stream, cancel: cancel, acks: map[uint64]chan *registryv1.Ack{},
		Pushes: make(chan *registryv1.Push, 4096), Redirects: make(chan *registryv1.Redirect, 16), autoAck: autoAck, paused: make(chan struct{})}
	t.Cleanup(func() { cl.Close(); _ = conn.Close() })
	if err := cl.send(&registryv1.ClientFrame{Body: &registryv1.ClientFrame_Hello{Hello: &registryv1.Hello{ClientId: clientID, Zone: zone}}}); err != nil {
		t.Fatal(err)
	}
	f, err := stream.Recv()
	if err != nil || f.GetWelcome() == nil {
		t.Fatalf("testcluster: no welcome from %s: %v %v", n.ID, f, err)
	}
	cl.Welcome = f.GetWelcome()
	cl.wg.Add(2)
	go func() { defer cl.wg.Done(); cl.read(ctx) }()
	go func() {
		defer cl.wg.Done()
		Heartbeat(ctx, time.Duration(cl.Welcome.GetHeartbeatMs())*time.Millisecond, cl.send)
	}()
	return cl
}

// Heartbeat sends a heartbeat through send at the interval the session
// asked for, as every client does, until ctx ends.
func Heartbeat(ctx context.Context, every time.Duration, send func(*registryv1.ClientFrame) error) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = send(&registryv1.ClientFrame{Body: &registryv1.ClientFrame_Heartbeat{Heartbeat: &registryv1.Heartbeat{}}})
		}
	}
}

func (cl *Client) send(f *registryv1.ClientFrame) error {
	cl.sendMu.Lock()
	defer cl.sendMu.Unlock()
	if cl.sendClosed {
		// grpc-go aborts a stream sent on after CloseSend.
		return errors.New("testcluster: the stream is half-closed")
	}
	return cl.stream.Send(f)
}

func (cl *Client) read(ctx context.Context) {
	for {
		select {
		case <-cl.paused:
			<-ctx.Done()
			cl.mu.Lock()
			cl.closed = ctx.Err()
			cl.mu.Unlock()
			close(cl.Pushes)
			return
		default:
		}
		f, err := cl.stream.Recv()
		if err != nil {
			cl.mu.Lock()
			cl.closed = err
			for id, ch := range cl.acks {
				close(ch)
				delete(cl.acks, id)
			}
			cl.mu.Unlock()
			close(cl.Pushes)
			return
		}
		switch b := f.GetBody().(type) {
		case *registryv1.ServerFrame_Ack:
			cl.mu.Lock()
			if ch := cl.acks[b.Ack.GetId()]; ch != nil {
				ch <- b.Ack
				delete(cl.acks, b.Ack.GetId())
			}
			cl.mu.Unlock()
		case *registryv1.ServerFrame_Redirect:
			select {
			case cl.Redirects <- b.Redirect:
			default:
			}
		case *registryv1.ServerFrame_Push:
			cl.deliver([]*registryv1.Push{b.Push})
		case *registryv1.ServerFrame_PushBatch:
			cl.deliver(b.PushBatch.GetPushes())
		}
	}
}

// deliver hands pushes to the test as they came and acks them (one ack per
// push, all in one frame). A push names every subscriber of the list on
// this connection (Push.RegisterIDs); the test sees it once, not once per
// subscriber: the push benchmarks run this client in the cluster's process,
// where copies would be the cluster's garbage.
func (cl *Client) deliver(pushes []*registryv1.Push) {
	for _, p := range pushes {
		select {
		case cl.Pushes <- p:
		default: // the test stopped reading
		}
	}
	if !cl.autoAck {
		return
	}
	if len(pushes) == 1 {
		_ = cl.send(&registryv1.ClientFrame{Body: &registryv1.ClientFrame_PushAck{PushAck: wire.AckAll(pushes[0])}})
		return
	}
	acks := make([]*registryv1.PushAck, len(pushes))
	for i, p := range pushes {
		acks[i] = wire.AckAll(p)
	}
	_ = cl.send(&registryv1.ClientFrame{Body: &registryv1.ClientFrame_PushAcks{PushAcks: &registryv1.PushAcks{Acks: acks}}})
}

// Do sends a frame with a fresh id and waits for its ack; it returns the
// ack (Code 0 is OK) or an error if the stream ended first.
func (cl *Client) Do(body *registryv1.ClientFrame) (*registryv1.Ack, error) {
	ch := make(chan *registryv1.Ack, 1)
	cl.mu.Lock()
	if cl.closed != nil {
		cl.mu.Unlock()
		return nil, cl.closed
	}
	cl.nextID++
	body.Id = cl.nextID
	cl.acks[body.Id] = ch
	cl.mu.Unlock()
	if err := cl.send(body); err != nil {
		return nil, err
	}
	select {
	case a, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("stream ended before the ack")
		}
		return a, nil
	case <-time.After(DefaultWait):
		return nil, fmt.Errorf("no ack after %v", DefaultWait)
	}
}

// DoLast sends a frame with a fresh id, half-closes the stream at once
// (nothing can be sent between the two), and waits for the frame's ack.
func (cl *Client) DoLast(body *registryv1.ClientFrame) (*registryv1.Ack, error) {
	ch := make(chan *registryv1.Ack, 1)
	cl.mu.Lock()
	cl.nextID++
	body.Id = cl.nextID
	cl.acks[body.Id] = ch
	cl.mu.Unlock()
	cl.sendMu.Lock()
	err := cl.stream.Send(body)
	if err == nil {
		cl.sendClosed = true
		err = cl.stream.CloseSend()
	}
	cl.sendMu.Unlock()
	if err != nil {
		return nil, err
	}
	select {
	case a, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("stream ended before the ack: %v", cl.err())
		}
		return a, nil
	case <-time.After(DefaultWait):
		return nil, fmt.Errorf("no ack after %v", DefaultWait)
	}
}

// Post sends a frame with a fresh id and does not wait for its ack.
func (cl *Client) Post(body *registryv1.ClientFrame) error {
	cl.mu.Lock()
	cl.nextID++
	body.Id = cl.nextID
	cl.mu.Unlock()
	return cl.send(body)
}

// CloseSend half-closes the stream: the client sends nothing more, and
// still reads.
func (cl *Client) CloseSend() error {
	cl.sendMu.Lock()
	defer cl.sendMu.Unlock()
	cl.sendClosed = true // no more heartbeats or push acks either
	return cl.stream.CloseSend()
}

// Publish registers (or updates) a publication and waits for the ack.
func (cl *Client) Publish(dataID, registerID string, version uint64, values ...string) (*registryv1.Ack, error) {
	rp := &registryv1.RegisterPublisher{RegisterId: registerID, DataId: dataID, Version: version}
	for _, v := range values {
		rp.Values = append(rp.Values, []byte(v))
	}
	return cl.Do(&registryv1.ClientFrame{Body: &registryv1.ClientFrame_RegisterPublisher{RegisterPublisher: rp}})
}

// Unpublish removes a publication and waits for the ack.
func (cl *Client) Unpublish(dataID, registerID string, version uint64) (*registryv1.Ack, error) {
	return cl.Do(&registryv1.ClientFrame{Body: &registryv1.ClientFrame_UnregisterPublisher{UnregisterPublisher: &registryv1.UnregisterPublisher{
		RegisterId: registerID, DataId: dataID, Version: version}}})
}

// Subscribe registers a subscriber and waits for the ack.
func (cl *Client) Subscribe(dataID, registerID string, scope registryv1.Scope) (*registryv1.Ack, error) {
	return cl.Do(&registryv1.ClientFrame{Body: &registryv1.ClientFrame_RegisterSubscriber{RegisterSubscriber: &registryv1.RegisterSubscriber{
		RegisterId: registerID, DataId: dataID, Scope: scope}}})
}

// Close ends the stream.
func (cl *Client) Close() {
	cl.cancel()
	cl.wg.Wait()
}

// RawCodec passes already-encoded messages ([]byte, by pointer) through
// gRPC, so a test can send what the protobuf library would refuse to
// encode (invalid UTF-8, truncated fields) and read answers undecoded. Use
// it with grpc.ForceCodecV2 on one call or stream.
type RawCodec struct{}

// Marshal implements encoding.CodecV2.
func (RawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*(v.(*[]byte)))}, nil
}

// Unmarshal implements encoding.CodecV2.
func (RawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*(v.(*[]byte)) = data.Materialize()
	return nil
}

// Name implements encoding.CodecV2: the content type is protobuf's.
func (RawCodec) Name() string { return "proto" }

func (cl *Client) err() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.closed
}
