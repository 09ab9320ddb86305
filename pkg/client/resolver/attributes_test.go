package resolver_test

import (
	"testing"

	"google.golang.org/grpc/attributes"
	grpcresolver "google.golang.org/grpc/resolver"

	"github.com/strata-registry/strata/pkg/client/discovery"
	"github.com/strata-registry/strata/pkg/client/resolver"
)

func TestAttributeHelpers_NotFromStrata(t *testing.T) {
	foreign := attributes.New("weight", 5).WithValue("zone", "az1").WithValue("state", discovery.StateDraining)
	for _, a := range []grpcresolver.Address{{Addr: "h:1"}, {Addr: "h:1", BalancerAttributes: foreign, Attributes: foreign}} {
		if w, z, s := resolver.WeightOf(a), resolver.ZoneOf(a), resolver.StateOf(a); w != 0 || z != "" || s != discovery.StateServing {
			t.Errorf("address %v: weight %d zone %q state %q; want 0, empty, serving", a, w, z, s)
		}
	}
	for _, ep := range []grpcresolver.Endpoint{{}, {Attributes: foreign}} {
		if w, z, s := resolver.EndpointWeight(ep), resolver.EndpointZone(ep), resolver.EndpointState(ep); w != 0 || z != "" || s != discovery.StateServing {
			t.Errorf("endpoint %v: weight %d zone %q state %q; want 0, empty, serving", ep, w, z, s)
		}
	}
}
