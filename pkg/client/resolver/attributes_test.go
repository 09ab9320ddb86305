package resolver_test

import (
	"testing"

	"google.golang.org/grpc/attributes"
	grpcresolver "google.golang.org/grpc/resolver"

	"github.com/strata-registry/strata/pkg/client/resolver"
)

func TestAttributeHelpers_NotFromStrata(t *testing.T) {
	foreign := attributes.New("weight", 5).WithValue("zone", "az1")
	for _, a := range []grpcresolver.Address{{Addr: "h:1"}, {Addr: "h:1", BalancerAttributes: foreign, Attributes: foreign}} {
		if w, z := resolver.WeightOf(a), resolver.ZoneOf(a); w != 0 || z != "" {
			t.Errorf("address %v: weight %d zone %q; want 0 and empty", a, w, z)
		}
	}
	for _, ep := range []grpcresolver.Endpoint{{}, {Attributes: foreign}} {
		if w, z := resolver.EndpointWeight(ep), resolver.EndpointZone(ep); w != 0 || z != "" {
			t.Errorf("endpoint %v: weight %d zone %q; want 0 and empty", ep, w, z)
		}
	}
}
