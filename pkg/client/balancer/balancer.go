// Package balancer is a grpc-go load-balancing policy for Strata
// services: each RPC goes to one READY instance drawn at random with a
// chance in proportion to its weight, and never to a draining one. It
// reads what package resolver attaches to each endpoint (EndpointWeight,
// EndpointState), so it is meant for "strata:///SERVICE" targets, but any
// resolver that reports resolver.NewEndpoint endpoints works; an endpoint
// without Strata attributes counts as weight 1, serving.
//
// # Usage
//
//	balancer.Register() // once, early in main (see below); DialOption does it too
//	cc, err := grpc.NewClient("strata:///com.example.Echo",
//		grpc.WithResolvers(resolver.NewBuilder(c)),
//		balancer.DialOption(), // the service config selecting the policy
//		grpc.WithTransportCredentials(insecure.NewCredentials()))
//
// or put ServiceConfig's JSON (or its "strata_weighted" entry) in a
// service config of your own.
//
// # Registration
//
// grpc-go finds a policy by the name in the service config, in one
// registry for the whole process (google.golang.org/grpc/balancer.Register);
// there is no per-connection registration as grpc.WithResolvers offers for
// resolvers. So the policy is registered once, under Name, by an explicit
// call: Register, or ServiceConfig and DialOption, which call it. Nothing
// happens at import (no init()), so a program that does not use the
// policy pays nothing and tests stay independent. One registration serves
// every connection and every Strata cluster in the process: the policy
// holds no state of its own; what it knows of a connection lives in the
// balancer gRPC builds for that connection. grpc-go's registry is not
// safe against concurrent use, so the first call must not race with
// another goroutine creating gRPC connections: call Register in main (or
// TestMain) before starting any, as grpc-go's own policies register in
// init().
//
// # Behaviour
//
// Every endpoint the resolver lists gets a connection (a pick_first child
// per endpoint, as round_robin has), draining ones too, so calls already
// on a draining instance complete and putting it back in service is
// immediate. A pick draws among the READY endpoints whose state is
// serving; the connection is READY when any is, CONNECTING while none is
// but one is connecting, and TRANSIENT_FAILURE otherwise. When every listed
// instance is draining (or in a state this version does not know), RPCs
// fail with codes.Unavailable saying so (wait-for-ready RPCs wait); when
// it lists none, they fail with the resolver's error (for Strata's: no
// instance of the service is registered, or all are disabled). A
// weight or state change takes effect with the next resolver update,
// without reconnecting. Disabled instances never reach the policy: the
// resolver leaves them out. The draw is random per RPC, so shares follow
// the weights over many calls, not exactly over a few.
package balancer

import (
	"fmt"
	"math/rand/v2"
	"sync"

	"google.golang.org/grpc"
	grpcbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/balancer/pickfirst"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// Name is the policy's name in a service config: "strata_weighted".
const Name = "strata_weighted"

var registerOnce sync.Once

// Register registers the policy with grpc-go under Name. It is
// idempotent; see the package documentation for why it is a call and
// when to make it.
func Register() {
	registerOnce.Do(func() { grpcbalancer.Register(builder{}) })
}

// ServiceConfig registers the policy (Register) and returns a service
// config in JSON that selects it.
func ServiceConfig() string {
	Register()
	return fmt.Sprintf(`{"loadBalancingConfig":[{%q:{}}]}`, Name)
}

// DialOption registers the policy (Register) and returns the dial option
// that makes it a connection's default: grpc.WithDefaultServiceConfig of
// ServiceConfig. A service config from the resolver would take precedence;
// Strata's resolver sends none.
func DialOption() grpc.DialOption {
	return grpc.WithDefaultServiceConfig(ServiceConfig())
}

type builder struct{}

func (builder) Name() string { return Name }

// Build returns the policy for one connection: endpointsharding keeps a
// pick_first child per endpoint, and every state it reports passes
// through parent, which replaces its picker by a weighted one.
func (builder) Build(cc grpcbalancer.ClientConn, opts grpcbalancer.BuildOptions) grpcbalancer.Balancer {
	child := grpcbalancer.Get(pickfirst.Name).Build
	return &weighted{
		Balancer: endpointsharding.NewBalancer(&parent{ClientConn: cc}, opts, child, endpointsharding.Options{}),
		cc:       cc,
		empty:    true,
	}
}

// weighted is the policy for one connection. gRPC calls its methods one
// at a time.
type weighted struct {
	grpcbalancer.Balancer // endpointsharding
	cc                    grpcbalancer.ClientConn
	empty                 bool // no endpoints in the last resolver update (or none yet)
}

// UpdateClientConnState hands the resolver's endpoints to the children,
// with pick_first's health listener on so that client-side health checks
// (healthCheckConfig in the service config) apply.
func (w *weighted) UpdateClientConnState(s grpcbalancer.ClientConnState) error {
	w.empty = len(s.ResolverState.Endpoints) == 0
	return w.Balancer.UpdateClientConnState(grpcbalancer.ClientConnState{ResolverState: pickfirst.EnableHealthListener(s.ResolverState)})
}

// ResolverError passes err to the children, which keep serving the last
// endpoints. With none, RPCs fail with err (the Strata resolver's says no
// instance is registered) rather than endpointsharding's "no children".
func (w *weighted) ResolverError(err error) {
	w.Balancer.ResolverError(err)
	if w.empty {
		w.cc.UpdateState(grpcbalancer.State{
			ConnectivityState: connectivity.TransientFailure,
			Picker:            base.NewErrPicker(status.Errorf(codes.Unavailable, "name resolver error: %v", err)),
		})
	}
}

// parent is the connection as endpointsharding sees it.
type parent struct {
	grpcbalancer.ClientConn
}

// UpdateState reports the children's aggregate with a weighted picker.
// endpointsharding calls it under its own lock, one call at a time.
func (p *parent) UpdateState(s grpcbalancer.State) {
	p.ClientConn.UpdateState(aggregate(endpointsharding.ChildStatesFromPicker(s.Picker), s, rand.Uint64N))
}
