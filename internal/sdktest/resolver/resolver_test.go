package resolver_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	grpcresolver "google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/sdktest"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/discovery"
	"github.com/strata-registry/strata/pkg/client/resolver"
)

const wait = testcluster.DefaultWait

// healthServer is a real gRPC server on loopback whose health service
// answers SERVING for one service name only, so a caller can tell which
// server it reached.
type healthServer struct {
	addr string
	srv  *grpc.Server
	done chan struct{}
}

func startHealthServer(t *testing.T, name string) *healthServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	s := &healthServer{addr: lis.Addr().String(), srv: grpc.NewServer(), done: make(chan struct{})}
	healthpb.RegisterHealthServer(s.srv, hs)
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(lis)
	}()
	t.Cleanup(s.stop)
	return s
}

// stop stops the server (idempotent) and waits for Serve to return.
func (s *healthServer) stop() {
	s.srv.Stop()
	<-s.done
}

// check asks the health service through cc, bounded by a short deadline.
func check(ctx context.Context, cc *grpc.ClientConn, service string) error {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("%q is %v", service, resp.GetStatus())
	}
	return nil
}

func TestResolver_GRPCClientFollowsTheServerAcrossAMove(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 2})
	c.WaitDataSettled(t)
	ctx := sdktest.Ctx(t)
	servers := discovery.New(sdktest.New(t, c, client.WithSessions(c.Session(0).Server().GRPCAddr()), client.WithZone("az1")))
	callerClient := sdktest.New(t, c, client.WithSessions(c.Session(1).Server().GRPCAddr()))

	one := startHealthServer(t, "one")
	reg1, err := servers.Register(ctx, "echo", discovery.Instance{Addr: one.addr})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("strata:///echo",
		grpc.WithResolvers(resolver.NewBuilder(callerClient)),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	testcluster.Eventually(t, wait, func() error { return check(ctx, cc, "one") })

	// Move: a second server comes up and registers, the first deregisters
	// and stops. Server one knows no "two", so a SERVING answer for "two"
	// comes from server two.
	two := startHealthServer(t, "two")
	reg2, err := servers.Register(ctx, "echo", discovery.Instance{Addr: two.addr})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg1.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	one.stop()
	testcluster.Eventually(t, wait, func() error { return check(ctx, cc, "two") })
	if err := check(ctx, cc, "one"); status.Code(err) != codes.NotFound {
		t.Fatalf("after the move, asking for %q: %v; want NotFound from server two", "one", err)
	}

	// No instances: calls fail fast, though server two still runs, and
	// say why.
	if err := reg2.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, wait, func() error {
		err := check(ctx, cc, "two")
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), `no instances of service "echo"`) {
			return fmt.Errorf("with no instances registered the call returned %v", err)
		}
		return nil
	})
	// And calls come back when an instance does.
	if _, err := servers.Register(ctx, "echo", discovery.Instance{Addr: two.addr}); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, wait, func() error { return check(ctx, cc, "two") })
}

func TestResolver_GroupFromTheTargetAuthority(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 1})
	c.WaitDataSettled(t)
	ctx := sdktest.Ctx(t)
	cl := sdktest.New(t, c, client.WithSessions(c.Session(0).Server().GRPCAddr()))
	srv := startHealthServer(t, "rpc")
	if _, err := discovery.New(cl).Register(ctx, "com.example/Echo", discovery.Instance{Addr: srv.addr}, client.WithGroup("RPC")); err != nil {
		t.Fatal(err)
	}
	b := resolver.NewBuilder(cl)
	dial := func(target string) *grpc.ClientConn {
		cc, err := grpc.NewClient(target, grpc.WithResolvers(b), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cc.Close() })
		return cc
	}
	inGroup := dial("strata://RPC/com.example/Echo")
	testcluster.Eventually(t, wait, func() error { return check(ctx, inGroup, "rpc") })
	// Without the group the default one is watched, where nothing is.
	defaultGroup := dial("strata:///com.example/Echo")
	testcluster.Eventually(t, wait, func() error {
		if err := check(ctx, defaultGroup, "rpc"); status.Code(err) != codes.Unavailable {
			return fmt.Errorf("the default group reached a server of group RPC: %v", err)
		}
		return nil
	})
	// A target naming no service fails the first call.
	noService := dial("strata:///")
	if err := check(ctx, noService, "rpc"); err == nil || !strings.Contains(err.Error(), "names no service") {
		t.Fatalf("call through strata:///: %v", err)
	}
}

// fakeCC records what a resolver reports.
type fakeCC struct {
	grpcresolver.ClientConn // other methods are unused (nil: they panic)
	states                  chan grpcresolver.State
	errs                    chan error
}

func newFakeCC() *fakeCC {
	return &fakeCC{states: make(chan grpcresolver.State, 100), errs: make(chan error, 100)}
}

func (f *fakeCC) UpdateState(s grpcresolver.State) error { f.states <- s; return nil }
func (f *fakeCC) ReportError(err error)                  { f.errs <- err }

func (f *fakeCC) nextState(t *testing.T) grpcresolver.State {
	t.Helper()
	select {
	case s := <-f.states:
		return s
	case <-time.After(wait):
		t.Fatal("no state reported")
		return grpcresolver.State{}
	}
}

func (f *fakeCC) nextErr(t *testing.T) error {
	t.Helper()
	select {
	case err := <-f.errs:
		return err
	case <-time.After(wait):
		t.Fatal("no error reported")
		return nil
	}
}

// stateUntil reads states until want holds for one.
func (f *fakeCC) stateUntil(t *testing.T, want func(grpcresolver.State) bool) grpcresolver.State {
	t.Helper()
	for {
		if s := f.nextState(t); want(s) {
			return s
		}
	}
}

type got struct {
	addr   string
	weight int
	zone   string
}

// summary is a state's endpoints, checked against its addresses.
func summary(t *testing.T, s grpcresolver.State) []got {
	t.Helper()
	if len(s.Addresses) != len(s.Endpoints) {
		t.Fatalf("%d addresses but %d endpoints", len(s.Addresses), len(s.Endpoints))
	}
	var out []got
	for i, ep := range s.Endpoints {
		a := s.Addresses[i]
		if len(ep.Addresses) != 1 || ep.Addresses[0].Addr != a.Addr || ep.Addresses[0].Attributes != nil {
			t.Fatalf("endpoint %v does not match address %v", ep, a)
		}
		if resolver.WeightOf(a) != resolver.EndpointWeight(ep) || resolver.ZoneOf(a) != resolver.EndpointZone(ep) {
			t.Fatalf("address %v and endpoint %v disagree", a, ep)
		}
		out = append(out, got{a.Addr, resolver.EndpointWeight(ep), resolver.EndpointZone(ep)})
	}
	return out
}

func sameAs(t *testing.T, want ...got) func(grpcresolver.State) bool {
	return func(s grpcresolver.State) bool { return fmt.Sprint(summary(t, s)) == fmt.Sprint(want) }
}

func build(t *testing.T, b *resolver.Builder, target string) (*fakeCC, grpcresolver.Resolver) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	cc := newFakeCC()
	r, err := b.Build(grpcresolver.Target{URL: *u}, cc, grpcresolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cc, r
}

func TestResolver_ReportsWeightsAndZones(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 1})
	c.WaitDataSettled(t)
	ctx := sdktest.Ctx(t)
	addr := c.Session(0).Server().GRPCAddr()
	az1 := discovery.New(sdktest.New(t, c, client.WithSessions(addr), client.WithZone("az1")))
	az2 := discovery.New(sdktest.New(t, c, client.WithSessions(addr), client.WithZone("az2")))
	b := resolver.NewBuilder(sdktest.New(t, c, client.WithSessions(addr)))
	if b.Scheme() != "strata" {
		t.Fatalf("scheme %q", b.Scheme())
	}

	cc, r := build(t, b, "strata:///echo")
	defer r.Close()
	r.ResolveNow(grpcresolver.ResolveNowOptions{}) // a no-op while the watch is fine
	if s := cc.nextState(t); len(s.Endpoints) != 0 {
		t.Fatalf("first state %v; want empty", s)
	}
	if err := cc.nextErr(t); !strings.Contains(err.Error(), `no instances of service "echo"`) {
		t.Fatalf("error for an empty list: %v", err)
	}

	r1, err := az1.Register(ctx, "echo", discovery.Instance{Addr: "10.0.0.2:80", Weight: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := az2.Register(ctx, "echo", discovery.Instance{Addr: "10.0.0.1:80", Zone: "rack-3"}); err != nil {
		t.Fatal(err)
	}
	// The same address twice (an instance restarting, its old record not
	// yet expired) is one endpoint.
	if _, err := az2.Register(ctx, "echo", discovery.Instance{Addr: "10.0.0.2:80", Weight: 10}); err != nil {
		t.Fatal(err)
	}
	cc.stateUntil(t, sameAs(t, got{"10.0.0.1:80", 1, "rack-3"}, got{"10.0.0.2:80", 10, "az1"}))

	// A metadata-only change reports nothing; the weight change after it
	// is the next state.
	if err := r1.Update(ctx, discovery.Instance{Addr: "10.0.0.2:80", Weight: 10, Metadata: map[string]string{"v": "2"}}); err != nil {
		t.Fatal(err)
	}
	if err := r1.Update(ctx, discovery.Instance{Addr: "10.0.0.2:80", Weight: 30}); err != nil {
		t.Fatal(err)
	}
	if s := cc.nextState(t); !sameAs(t, got{"10.0.0.1:80", 1, "rack-3"}, got{"10.0.0.2:80", 30, "az1"})(s) {
		t.Fatalf("after a metadata change and a weight change, reported %v", summary(t, s))
	}
}

func TestResolver_ReportsWatchErrors(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 1})
	c.WaitDataSettled(t)
	cl := sdktest.New(t, c, client.WithSessions(c.Session(0).Server().GRPCAddr()))
	b := resolver.NewBuilder(cl)

	// A name no session accepts: reported once, not retried.
	bad, r := build(t, b, "strata:///"+strings.Repeat("x", 600))
	if err := bad.nextErr(t); !errors.Is(err, client.ErrTooLarge) {
		t.Fatalf("a 600-byte service name: %v", err)
	}
	r.ResolveNow(grpcresolver.ResolveNowOptions{})
	r.Close()
	if len(bad.states) != 0 || len(bad.errs) != 0 {
		t.Fatalf("after the refusal: %d states, %d more errors", len(bad.states), len(bad.errs))
	}

	// Closing the Client ends the watch; the resolver says so and stops.
	cc, r := build(t, b, "strata:///echo")
	defer r.Close()
	if s := cc.nextState(t); len(s.Endpoints) != 0 {
		t.Fatalf("first state %v; want empty", s)
	}
	_ = cc.nextErr(t) // no instances
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cc.nextErr(t); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("after the client's Close: %v", err)
	}
	// A resolver built on a closed Client reports the same.
	cc2, r2 := build(t, b, "strata:///echo")
	defer r2.Close()
	if err := cc2.nextErr(t); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("built after the client's Close: %v", err)
	}
}
