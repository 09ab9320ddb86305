package resolver

import (
	"reflect"
	"testing"

	grpcresolver "google.golang.org/grpc/resolver"

	"github.com/strata-registry/strata/pkg/client/discovery"
)

// reporting is the State a resolver reports for insts, in order.
func reporting(insts ...discovery.Instance) grpcresolver.State {
	st := grpcresolver.State{Addresses: []grpcresolver.Address{}, Endpoints: []grpcresolver.Endpoint{}}
	for _, inst := range insts {
		st.Addresses = append(st.Addresses, NewAddress(inst))
		st.Endpoints = append(st.Endpoints, NewEndpoint(inst))
	}
	return st
}

func TestState_LeavesOutDisabled_PassesOtherStates(t *testing.T) {
	serving := discovery.Instance{Addr: "10.0.0.1:80", Weight: 1, Zone: "az1"}
	draining := discovery.Instance{Addr: "10.0.0.2:80", Weight: 2, Zone: "az1", State: discovery.StateDraining}
	unknown := discovery.Instance{Addr: "10.0.0.4:80", Weight: 4, Zone: "az2", State: "warming"}
	again := discovery.Instance{Addr: "10.0.0.5:80", Weight: 6}
	set := discovery.Set{Instances: []discovery.Instance{
		serving, draining,
		{Addr: "10.0.0.3:80", Weight: 3, Zone: "az2", State: discovery.StateDisabled},
		unknown,
		// One address twice: the serving registration is reported, not
		// the disabled one listed first.
		{Addr: "10.0.0.5:80", Weight: 5, State: discovery.StateDisabled},
		again,
	}}
	st, keys := (&strataResolver{}).state(set)
	if want := reporting(serving, draining, unknown, again); !reflect.DeepEqual(st, want) {
		t.Fatalf("reported\n %+v\nwant\n %+v", st, want)
	}
	if len(keys) != len(st.Endpoints) {
		t.Fatalf("%d keys for %d endpoints", len(keys), len(st.Endpoints))
	}

	// A state change alone is a change to report (the keys differ).
	set.Instances[0].State = discovery.StateDraining
	if _, keys2 := (&strataResolver{}).state(set); reflect.DeepEqual(keys, keys2) {
		t.Fatal("draining an instance leaves the keys as they were: the change would not be reported")
	}

	// Every instance disabled: an empty state.
	st, keys = (&strataResolver{}).state(discovery.Set{Instances: []discovery.Instance{{Addr: "h:1", State: discovery.StateDisabled}}})
	if !reflect.DeepEqual(st, reporting()) || len(keys) != 0 {
		t.Fatalf("all disabled: reported %+v", st)
	}
}

func TestNewEndpoint_CarriesWhatTheHelpersRead(t *testing.T) {
	inst := discovery.Instance{Addr: "10.0.0.1:80", Weight: 7, Zone: "az3", State: discovery.StateDraining}
	ep, a := NewEndpoint(inst), NewAddress(inst)
	if len(ep.Addresses) != 1 || ep.Addresses[0].Addr != inst.Addr || ep.Addresses[0].Attributes != nil || a.Addr != inst.Addr || a.Attributes != nil {
		t.Fatalf("endpoint %v, address %v for %+v", ep, a, inst)
	}
	if EndpointWeight(ep) != 7 || EndpointZone(ep) != "az3" || EndpointState(ep) != discovery.StateDraining {
		t.Fatalf("endpoint of %+v reads weight %d zone %q state %q", inst, EndpointWeight(ep), EndpointZone(ep), EndpointState(ep))
	}
	if WeightOf(a) != 7 || ZoneOf(a) != "az3" || StateOf(a) != discovery.StateDraining {
		t.Fatalf("address of %+v reads weight %d zone %q state %q", inst, WeightOf(a), ZoneOf(a), StateOf(a))
	}
}
