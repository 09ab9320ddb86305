package balancer_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpcbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	grpcresolver "google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/pkg/client/balancer"
	"github.com/strata-registry/strata/pkg/client/discovery"
	"github.com/strata-registry/strata/pkg/client/resolver"
)

const wait = 10 * time.Second

// backend is a real gRPC server on loopback that counts the RPCs it
// serves and the connections it accepts.
type backend struct {
	addr     string
	health   *health.Server
	rpcs     atomic.Int64
	accepted atomic.Int64
}

func startBackend(t *testing.T) *backend {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: lis.Addr().String(), health: health.NewServer()}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		b.rpcs.Add(1)
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(srv, b.health)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(countingListener{lis, b})
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return b
}

type countingListener struct {
	net.Listener
	b *backend
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.b.accepted.Add(1)
	}
	return c, err
}

// dial returns a connection through the policy to what r resolves, with
// r starting at initial.
func dial(t *testing.T, r *manual.Resolver, initial ...discovery.Instance) *grpc.ClientConn {
	t.Helper()
	r.InitialState(state(initial...))
	cc, err := grpc.NewClient(r.Scheme()+":///echo", grpc.WithResolvers(r), balancer.DialOption(),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// state is what a Strata resolver reports for insts.
func state(insts ...discovery.Instance) grpcresolver.State {
	var st grpcresolver.State
	for _, inst := range insts {
		st.Endpoints = append(st.Endpoints, resolver.NewEndpoint(inst))
	}
	return st
}

func call(cc *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// warmUp calls until every backend has served a call, so that all are
// READY before shares are measured.
func warmUp(t *testing.T, cc *grpc.ClientConn, bs ...*backend) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		if err := call(cc); err != nil {
			t.Fatal(err)
		}
		all := true
		for _, b := range bs {
			all = all && b.rpcs.Load() > 0
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("some backend never got a call")
		}
	}
}

// shares makes n calls and returns how many each backend served.
func shares(t *testing.T, cc *grpc.ClientConn, n int, bs ...*backend) []int64 {
	t.Helper()
	before := make([]int64, len(bs))
	for i, b := range bs {
		before[i] = b.rpcs.Load()
	}
	for range n {
		if err := call(cc); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]int64, len(bs))
	for i, b := range bs {
		got[i] = b.rpcs.Load() - before[i]
	}
	return got
}

// follow fails unless counts, of n calls, are within 5 standard
// deviations of the shares the weights give (a fair draw is outside with
// a chance below 1e-6 per backend).
func follow(t *testing.T, counts []int64, weights ...float64) {
	t.Helper()
	var n int64
	var total float64
	for i, c := range counts {
		n += c
		total += weights[i]
	}
	for i, c := range counts {
		p := weights[i] / total
		mean, sd := float64(n)*p, math.Sqrt(float64(n)*p*(1-p))
		if math.Abs(float64(c)-mean) > 5*sd+0.5 {
			t.Fatalf("calls per backend %v for weights %v: backend %d got %d, want %.0f ± %.0f", counts, weights, i, c, mean, 5*sd)
		}
	}
}

func TestBalancer_SharesFollowTheWeights(t *testing.T) {
	b1, b2, b3 := startBackend(t), startBackend(t), startBackend(t)
	cc := dial(t, manual.NewBuilderWithScheme("weights"),
		discovery.Instance{Addr: b1.addr, Weight: 1}, discovery.Instance{Addr: b2.addr, Weight: 2}, discovery.Instance{Addr: b3.addr, Weight: 5})
	warmUp(t, cc, b1, b2, b3)
	follow(t, shares(t, cc, 3000, b1, b2, b3), 1, 2, 5)
}

func TestBalancer_WeightChangeTakesEffect_WithoutReconnecting(t *testing.T) {
	b1, b2 := startBackend(t), startBackend(t)
	r := manual.NewBuilderWithScheme("reweigh")
	cc := dial(t, r, discovery.Instance{Addr: b1.addr, Weight: 1}, discovery.Instance{Addr: b2.addr, Weight: 1})
	warmUp(t, cc, b1, b2)
	follow(t, shares(t, cc, 1000, b1, b2), 1, 1)

	// The resolver's update is handed to the policy before UpdateState
	// returns, so the next call already sees it.
	r.UpdateState(state(discovery.Instance{Addr: b1.addr, Weight: 1}, discovery.Instance{Addr: b2.addr, Weight: 9}))
	follow(t, shares(t, cc, 2000, b1, b2), 1, 9)
	if b1.accepted.Load() != 1 || b2.accepted.Load() != 1 {
		t.Fatalf("connections accepted %d and %d; want 1 each (a weight change must not reconnect)", b1.accepted.Load(), b2.accepted.Load())
	}
}

func TestBalancer_DrainingGetsNoNewCalls_KeepsItsConnection(t *testing.T) {
	b1, b2, b3 := startBackend(t), startBackend(t), startBackend(t)
	r := manual.NewBuilderWithScheme("drain")
	serving := func(b *backend) discovery.Instance { return discovery.Instance{Addr: b.addr, Weight: 1} }
	draining := func(b *backend) discovery.Instance {
		return discovery.Instance{Addr: b.addr, Weight: 1, State: discovery.StateDraining}
	}
	cc := dial(t, r, serving(b1), serving(b2), serving(b3))
	warmUp(t, cc, b1, b2, b3)

	r.UpdateState(state(serving(b1), draining(b2), serving(b3)))
	got := shares(t, cc, 1000, b1, b2, b3)
	if got[1] != 0 {
		t.Fatalf("calls per backend %v: the draining one got %d", got, got[1])
	}
	follow(t, []int64{got[0], got[2]}, 1, 1)

	// Every one draining: calls fail Unavailable, saying why.
	r.UpdateState(state(draining(b1), draining(b2), draining(b3)))
	if err := call(cc); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "none of the 3 instances is serving") {
		t.Fatalf("call with every instance draining: %v", err)
	}

	// Back in service, b2 takes calls at once over the connection it kept.
	r.UpdateState(state(serving(b1), serving(b2), serving(b3)))
	if got := shares(t, cc, 300, b1, b2, b3); got[1] == 0 {
		t.Fatalf("calls per backend %v after undraining: none to b2", got)
	}
	for i, b := range []*backend{b1, b2, b3} {
		if n := b.accepted.Load(); n != 1 {
			t.Fatalf("backend %d accepted %d connections; want 1 (draining must keep the connection)", i+1, n)
		}
	}
}

func TestBalancer_DrainingFinishesTheCallsItHas(t *testing.T) {
	b1, b2 := startBackend(t), startBackend(t)
	r := manual.NewBuilderWithScheme("inflight")
	cc := dial(t, r, discovery.Instance{Addr: b2.addr, Weight: 1})
	// A stream opened while b2 is the only instance runs on b2.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	stream, err := healthpb.NewHealthClient(cc).Watch(ctx, &healthpb.HealthCheckRequest{Service: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
		t.Fatalf("first watch answer %v, %v", resp, err)
	}

	r.UpdateState(state(discovery.Instance{Addr: b1.addr, Weight: 1}, discovery.Instance{Addr: b2.addr, Weight: 1, State: discovery.StateDraining}))
	if got := shares(t, cc, 200, b1, b2); got[1] != 0 {
		t.Fatalf("calls per backend %v: the draining one got new calls", got)
	}
	// The stream on b2 still runs: b2's next answer reaches it.
	b2.health.SetServingStatus("echo", healthpb.HealthCheckResponse_NOT_SERVING)
	if resp, err := stream.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("the stream on the draining instance: %v, %v", resp, err)
	}
}

func TestBalancer_NoEndpoints_CallsFailWithTheResolverError(t *testing.T) {
	r := manual.NewBuilderWithScheme("empty")
	cc := dial(t, r)
	cc.Connect() // builds the resolver, which reports the empty initial state
	r.CC().ReportError(errors.New(`strata resolver: no instances of service "echo" are registered`))
	// gRPC hands the error to the policy asynchronously: poll.
	for deadline := time.Now().Add(wait); ; {
		err := call(cc)
		if status.Code(err) == codes.Unavailable && strings.Contains(err.Error(), `no instances of service "echo"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("call with no endpoints: %v", err)
		}
	}
	// An instance registers: calls go through.
	b := startBackend(t)
	r.UpdateState(state(discovery.Instance{Addr: b.addr, Weight: 1}))
	if err := call(cc); err != nil {
		t.Fatal(err)
	}
}

func TestBalancer_EndpointsWithoutStrataAttributes_AreServingWithWeight1(t *testing.T) {
	b1, b2 := startBackend(t), startBackend(t)
	r := manual.NewBuilderWithScheme("plain")
	r.InitialState(grpcresolver.State{Endpoints: []grpcresolver.Endpoint{
		{Addresses: []grpcresolver.Address{{Addr: b1.addr}}}, {Addresses: []grpcresolver.Address{{Addr: b2.addr}}},
	}})
	cc, err := grpc.NewClient(r.Scheme()+":///echo", grpc.WithResolvers(r), balancer.DialOption(),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	warmUp(t, cc, b1, b2)
	follow(t, shares(t, cc, 1000, b1, b2), 1, 1)
}

func TestRegister_IsIdempotent_AndNamesThePolicy(t *testing.T) {
	balancer.Register()
	balancer.Register()
	if b := grpcbalancer.Get(balancer.Name); b == nil || b.Name() != balancer.Name {
		t.Fatalf("after Register, grpc-go knows %v under %q", b, balancer.Name)
	}
	if want := fmt.Sprintf(`{"loadBalancingConfig":[{"%s":{}}]}`, balancer.Name); balancer.ServiceConfig() != want {
		t.Fatalf("ServiceConfig %s; want %s", balancer.ServiceConfig(), want)
	}
}
