package resolver

import (
	"google.golang.org/grpc/attributes"
	grpcresolver "google.golang.org/grpc/resolver"

	"github.com/strata-registry/strata/pkg/client/discovery"
)

// The resolver attaches each instance's weight, zone and state to what it
// reports under these keys, unexported so nothing else can collide with
// them (the grpc-go convention); read them with the functions below.
type (
	weightKey struct{}
	zoneKey   struct{}
	stateKey  struct{}
)

// attrs are the attributes the resolver reports for inst.
func attrs(inst discovery.Instance) *attributes.Attributes {
	return attributes.New(weightKey{}, inst.Weight).WithValue(zoneKey{}, inst.Zone).WithValue(stateKey{}, inst.State)
}

// NewEndpoint returns the endpoint a Strata resolver reports for inst: its
// address, with its weight, zone and state as attributes. For tests, and
// for resolvers of your own that feed package balancer.
func NewEndpoint(inst discovery.Instance) grpcresolver.Endpoint {
	return grpcresolver.Endpoint{Addresses: []grpcresolver.Address{{Addr: inst.Addr}}, Attributes: attrs(inst)}
}

// NewAddress returns the address a Strata resolver reports for inst in
// the State's Addresses list: the same attributes as BalancerAttributes.
func NewAddress(inst discovery.Instance) grpcresolver.Address {
	return grpcresolver.Address{Addr: inst.Addr, BalancerAttributes: attrs(inst)}
}

// EndpointWeight returns the weight of the instance behind ep (1 or
// more, see discovery.Instance), or 0 if ep did not come from a Strata
// resolver. Balancers see it in the resolver state's Endpoints.
func EndpointWeight(ep grpcresolver.Endpoint) int {
	w, _ := ep.Attributes.Value(weightKey{}).(int)
	return w
}

// EndpointZone returns the zone of the instance behind ep, or "" if it has
// none or ep did not come from a Strata resolver.
func EndpointZone(ep grpcresolver.Endpoint) string {
	z, _ := ep.Attributes.Value(zoneKey{}).(string)
	return z
}

// EndpointState returns the state of the instance behind ep:
// discovery.StateServing, StateDraining, or a state this version does not
// know (never StateDisabled: the resolver leaves those out). An endpoint
// that did not come from a Strata resolver is serving.
func EndpointState(ep grpcresolver.Endpoint) discovery.State {
	s, _ := ep.Attributes.Value(stateKey{}).(discovery.State)
	return s
}

// WeightOf returns the weight of the instance at addr, from its
// BalancerAttributes (set in the resolver state's Addresses list), or 0 if
// addr did not come from a Strata resolver.
func WeightOf(addr grpcresolver.Address) int {
	w, _ := addr.BalancerAttributes.Value(weightKey{}).(int)
	return w
}

// ZoneOf returns the zone of the instance at addr, from its
// BalancerAttributes, or "" if it has none or addr did not come from a
// Strata resolver.
func ZoneOf(addr grpcresolver.Address) string {
	z, _ := addr.BalancerAttributes.Value(zoneKey{}).(string)
	return z
}

// StateOf returns the state of the instance at addr, from its
// BalancerAttributes, as EndpointState does for an endpoint.
func StateOf(addr grpcresolver.Address) discovery.State {
	s, _ := addr.BalancerAttributes.Value(stateKey{}).(discovery.State)
	return s
}
