package resolver

import (
	"reflect"
	"testing"

	grpcresolver "google.golang.org/grpc/resolver"

	"github.com/strata-registry/strata/pkg/client/discovery"
)

// reported is what a State says of one instance.
type reported struct {
	addr   string
	weight int
	zone   string
	state  discovery.State
}

func reportedOf(t *testing.T, st grpcresolver.State) []reported {
	t.Helper()
	if len(st.Addresses) != len(st.Endpoints) {
		t.Fatalf("%d addresses but %d endpoints", len(st.Addresses), len(st.Endpoints))
	}
	var out []reported
	for i, ep := range st.Endpoints {
		a := st.Addresses[i]
		if len(ep.Addresses) != 1 || ep.Addresses[0].Addr != a.Addr || ep.Addresses[0].Attributes != nil {
			t.Fatalf("endpoint %v does not match address %v", ep, a)
		}
		if WeightOf(a) != EndpointWeight(ep) || ZoneOf(a) != EndpointZone(ep) || StateOf(a) != EndpointState(ep) {
			t.Fatalf("address %v and endpoint %v disagree", a, ep)
		}
		out = append(out, reported{a.Addr, EndpointWeight(ep), EndpointZone(ep), EndpointState(ep)})
	}
	return out
}

func TestState_LeavesOutDisabled_PassesOtherStates(t *testing.T) {
	set := discovery.Set{Instances: []discovery.Instance{
		{Addr: "10.0.0.1:80", Weight: 1, Zone: "az1"},
		{Addr: "10.0.0.2:80", Weight: 2, Zone: "az1", State: discovery.StateDraining},
		{Addr: "10.0.0.3:80", Weight: 3, Zone: "az2", State: discovery.StateDisabled},
		{Addr: "10.0.0.4:80", Weight: 4, Zone: "az2", State: "warming"},
		// One address twice: the serving registration is reported, not
		// the disabled one listed first.
		{Addr: "10.0.0.5:80", Weight: 5, State: discovery.StateDisabled},
		{Addr: "10.0.0.5:80", Weight: 6},
	}}
	st, keys := (&strataResolver{}).state(set)
	want := []reported{
		{"10.0.0.1:80", 1, "az1", discovery.StateServing},
		{"10.0.0.2:80", 2, "az1", discovery.StateDraining},
		{"10.0.0.4:80", 4, "az2", "warming"},
		{"10.0.0.5:80", 6, "", discovery.StateServing},
	}
	if got := reportedOf(t, st); !reflect.DeepEqual(got, want) {
		t.Fatalf("reported\n %+v\nwant\n %+v", got, want)
	}
	if len(keys) != len(want) {
		t.Fatalf("%d keys for %d endpoints", len(keys), len(want))
	}

	// A state change alone is a change to report (the keys differ).
	set.Instances[0].State = discovery.StateDraining
	_, keys2 := (&strataResolver{}).state(set)
	if reflect.DeepEqual(keys, keys2) {
		t.Fatal("draining an instance leaves the keys as they were: the change would not be reported")
	}

	// Every instance disabled: an empty state.
	st, keys = (&strataResolver{}).state(discovery.Set{Instances: []discovery.Instance{{Addr: "h:1", State: discovery.StateDisabled}}})
	if len(st.Endpoints) != 0 || len(st.Addresses) != 0 || len(keys) != 0 {
		t.Fatalf("all disabled: reported %+v", st)
	}
}

func TestNewEndpoint_CarriesWhatTheHelpersRead(t *testing.T) {
	inst := discovery.Instance{Addr: "10.0.0.1:80", Weight: 7, Zone: "az3", State: discovery.StateDraining}
	ep, a := NewEndpoint(inst), NewAddress(inst)
	if got := reportedOf(t, grpcresolver.State{Endpoints: []grpcresolver.Endpoint{ep}, Addresses: []grpcresolver.Address{a}}); !reflect.DeepEqual(got, []reported{{inst.Addr, 7, "az3", discovery.StateDraining}}) {
		t.Fatalf("NewEndpoint/NewAddress of %+v read back as %+v", inst, got)
	}
}
