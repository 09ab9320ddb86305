package resolver

import grpcresolver "google.golang.org/grpc/resolver"

// The resolver attaches each instance's weight and zone to what it
// reports under these keys, unexported so nothing else can collide with
// them (the grpc-go convention); read them with the functions below.
type (
	weightKey struct{}
	zoneKey   struct{}
)

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
